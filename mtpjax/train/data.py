"""Training data: reading data sets, validating labels, padded label arrays.

Host-side orchestration only. A data set is a list of
:class:`~mtpjax.io.cfg.Configuration` with energy (eV), forces
(N, 3) eV/Å and/or PlusStress (6,) eV labels. :func:`prepare_training_set`
packs it into the padded batches of :func:`mtpjax.potential.evaluate.prepare_batches`
(neighbour lists are built once: they depend only on positions and the cutoff)
and attaches padded label and weight arrays of the same shapes, so that the
loss of the whole data set runs through one compiled function.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from mtpjax.errors import ConfigurationError, MTPJaxError
from mtpjax.io.cfg import Configuration, read_cfg
from mtpjax.potential.evaluate import DEFAULT_MIN_DISTANCE, prepare_batches
from ase.io import read
from mtpjax.io.store import TrainingStore

#: weightings of MLIP-2 (docs/spec/mtp.md §7.1): powers (p_E, p_F, p_S) of 1/N
WEIGHTINGS = {
    "vibrations": (1, 0, 1),  # MLIP default: w_E/N, w_F, w_S/N
    "structures": (2, 1, 2),  # per-atom normalisation: w_E/N², w_F/N, w_S/N²
    "molecules": (0, 0, 0),
}

#: configuration feature (``Feature loss_weight 10`` in a .cfg) that multiplies that configuration's energy,
#: force and stress weights in the loss (an mtpjax extension; MLIP keeps it as an ordinary feature)
LOSS_WEIGHT_FEATURE = "loss_weight"

#: multiplicity of the six Voigt components in the 9-component sum (off-diagonals twice)
VOIGT_MULT = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])


class DatasetError(MTPJaxError, ValueError):
    """An unreadable or unusable training data set."""


def load_dataset(path, type_map=None) -> list[Configuration]:
    """Read labelled configurations from ``path``, dispatching on the extension.

    ``.cfg`` (MLIP), ``.xyz``/``.extxyz`` (ASE extended XYZ; atomic numbers
    are the types unless ``type_map`` {symbol or Z: type} is given, or the
    file carries MLIP types in a ``mlip_type`` column). HDF5 training-set
    stores (``.h5``/``.hdf5``, :class:`mtpjax.io.store.TrainingStore`)
    give their labelled configurations. Raises :class:`DatasetError` for unknown formats.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    ext = p.suffix.lower()
    if ext == ".cfg":
        return read_cfg(p)
    if ext in (".xyz", ".extxyz"):
        atoms = read(str(p), index=":", format="extxyz")
        return [Configuration.from_atoms(a, symbol_to_type=type_map) for a in atoms]
    if ext in (".h5", ".hdf5"):
        return TrainingStore(p).configurations()
    raise DatasetError(f"{p}: unknown data set format '{ext or p.name}' (use .cfg, .xyz/.extxyz or .h5)")


def validate_labels(configs, source: str | None = None, require_labels: bool = True) -> None:
    """Check labels for NaN/inf and array sizes; errors name the configuration (1-based)."""
    pre = f"{source}: " if source else ""
    if not configs:
        raise DatasetError(f"{pre}empty data set (no configurations)")
    n_labelled = 0
    for k, c in enumerate(configs):
        where = f"{pre}configuration {k + 1}: "
        n = c.natoms
        if n == 0:
            raise ConfigurationError(f"{where}configuration has no atoms")
        if np.shape(c.positions) != (n, 3):
            raise ConfigurationError(f"{where}positions must have shape (N, 3), got {np.shape(c.positions)}")
        if len(np.reshape(c.types, -1)) != n:
            raise ConfigurationError(f"{where}{len(np.reshape(c.types, -1))} types for {n} atoms")
        if c.energy is not None and not np.isfinite(c.energy):
            raise ConfigurationError(f"{where}energy label is {c.energy}")
        if c.forces is not None:
            f = np.asarray(c.forces, dtype=float)
            if f.shape != (n, 3):
                raise ConfigurationError(f"{where}forces have shape {f.shape}, expected ({n}, 3)")
            if not np.all(np.isfinite(f)):
                bad = int(np.argwhere(~np.isfinite(f))[0, 0]) + 1
                raise ConfigurationError(f"{where}non-finite force label on atom {bad}")
        if c.plus_stress is not None:
            s = np.asarray(c.plus_stress, dtype=float)
            if s.shape != (6,):
                raise ConfigurationError(f"{where}PlusStress has shape {s.shape}, expected (6,)")
            if not np.all(np.isfinite(s)):
                raise ConfigurationError(f"{where}non-finite PlusStress label")
        config_weight(c, where)
        if c.energy is not None or c.forces is not None or c.plus_stress is not None:
            n_labelled += 1
    if require_labels and n_labelled == 0:
        raise DatasetError(f"{pre}no configuration has energy, force or stress labels")


def config_weight(conf: Configuration, where: str = "") -> float:
    """The configuration's ``loss_weight`` feature (default 1): a finite number ≥ 0."""
    raw = conf.features.get(LOSS_WEIGHT_FEATURE)
    if raw is None:
        return 1.0
    try:
        w = float(raw)
    except (TypeError, ValueError):
        w = float("nan")
    if not np.isfinite(w) or w < 0:
        raise ConfigurationError(f"{where}feature {LOSS_WEIGHT_FEATURE} must be a finite number ≥ 0, got {raw!r}")
    return w


@dataclass(frozen=True)
class Weights:
    """Loss weights (MLIP's ``--energy-weight`` etc.; docs/spec/mtp.md §7.1).

    ``weighting``: ``vibrations`` (MLIP default: w_E/N, w_F, w_S/N),
    ``structures`` (per-atom normalisation w_E/N², w_F/N, w_S/N²) or
    ``molecules`` (no 1/N). ``scale_by_force`` ε > 0 multiplies the force weight
    of atom i by ε/(|F_ref,i|² + ε). ``penalty`` is MLIP's orthonormality
    penalty weight on the radial functions (1e-9 in MLIP-2; 0 disables).
    """

    energy: float = 1.0
    force: float = 0.01
    stress: float = 0.001
    weighting: str = "vibrations"
    scale_by_force: float = 0.0
    penalty: float = 1e-9

    def __post_init__(self):
        if self.weighting not in WEIGHTINGS:
            raise MTPJaxError(f"unknown weighting '{self.weighting}' (use {', '.join(WEIGHTINGS)})")
        for name in ("energy", "force", "stress", "penalty", "scale_by_force"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise MTPJaxError(f"{name} weight must be a finite number ≥ 0, got {v}")


@dataclass
class LabelBatch:
    """Padded labels and loss weights matching one :class:`Batch` (numpy).

    e_ref, e_w (B,) eV and 1/eV²; f_ref (Nt, 3) eV/Å, f_w (Nt,) 1/(eV/Å)²;
    s_ref (B, 6) eV, s_w (B, 6) (Voigt multiplicity included); natoms (B,)
    (0 for padding); the *_mask arrays say which labels exist (for metrics).
    """

    e_ref: np.ndarray
    e_w: np.ndarray
    e_mask: np.ndarray
    f_ref: np.ndarray
    f_w: np.ndarray
    f_mask: np.ndarray
    s_ref: np.ndarray
    s_w: np.ndarray
    s_mask: np.ndarray
    natoms: np.ndarray

    def device_args(self):
        return tuple(jnp.asarray(getattr(self, k)) for k in self.__dataclass_fields__)


def make_labels(configs, batch, weights: Weights, n_total: int) -> LabelBatch:
    """Labels and per-entry weights for ``batch`` (the /K normalisation included; each configuration's
    ``loss_weight`` feature, default 1, multiplies its energy, force and stress weights)."""
    b_pad = batch.cells.shape[0]
    n_pad = batch.positions.shape[0]
    pe, pf, ps = WEIGHTINGS[weights.weighting]
    out = LabelBatch(
        e_ref=np.zeros(b_pad), e_w=np.zeros(b_pad), e_mask=np.zeros(b_pad, bool),
        f_ref=np.zeros((n_pad, 3)), f_w=np.zeros(n_pad), f_mask=np.zeros(n_pad, bool),
        s_ref=np.zeros((b_pad, 6)), s_w=np.zeros((b_pad, 6)), s_mask=np.zeros(b_pad, bool),
        natoms=np.zeros(b_pad),
    )
    for b, (k, o, n) in enumerate(zip(batch.members, batch.offsets, batch.sizes)):
        c = configs[k]
        cw = config_weight(c, f"configuration {k + 1}: ")
        out.natoms[b] = n
        if c.energy is not None:
            out.e_ref[b] = c.energy
            out.e_mask[b] = True
            out.e_w[b] = cw * weights.energy / n**pe / n_total
        if c.forces is not None:
            f = np.asarray(c.forces, dtype=float)
            out.f_ref[o : o + n] = f
            out.f_mask[o : o + n] = True
            w = np.full(n, cw * weights.force / n**pf / n_total)
            if weights.scale_by_force > 0:
                eps = weights.scale_by_force
                w *= eps / ((f**2).sum(-1) + eps)
            out.f_w[o : o + n] = w
        if c.plus_stress is not None:
            out.s_ref[b] = np.asarray(c.plus_stress, dtype=float)
            out.s_mask[b] = True
            out.s_w[b] = cw * VOIGT_MULT * weights.stress / n**ps / n_total
    return out


@dataclass
class TrainingSet:
    """A validated, batched data set: ``batches`` (padded geometry) and
    ``labels`` (same order), ``configs`` and ``source`` for messages."""

    configs: list
    batches: list
    labels: list
    source: str | None = None

    @property
    def n_configs(self) -> int:
        return len(self.configs)

    @property
    def n_atoms(self) -> int:
        return int(sum(c.natoms for c in self.configs))

    def device_args(self):
        """Tuple over batches of (geometry args, label args), device arrays."""
        return tuple((b.device_args(), l.device_args()) for b, l in zip(self.batches, self.labels))


def prepare_training_set(
    model,
    configs,
    weights: Weights | None = None,
    source: str | None = None,
    min_distance: float | None = DEFAULT_MIN_DISTANCE,
    atom_budget: int = 4096,
    group_neighbors: bool = False,
) -> TrainingSet:
    """Validate ``configs`` against ``model`` and build padded batches + labels
    (``group_neighbors``: see :func:`~mtpjax.potential.evaluate.prepare_batches`)."""
    configs = list(configs)
    validate_labels(configs, source)
    weights = weights or Weights()
    batches = prepare_batches(model, configs, min_distance=min_distance, source=source, atom_budget=atom_budget,
                              group_neighbors=group_neighbors)
    labels = [make_labels(configs, b, weights, len(configs)) for b in batches]
    return TrainingSet(configs, batches, labels, source)
