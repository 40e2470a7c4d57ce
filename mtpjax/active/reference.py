"""Reference (ab initio / semi-empirical) calculators behind one small interface.

A reference calculator is described by a plain, picklable *spec*
``{"kind": ..., **settings}`` so that labelling jobs can run in other
processes or on a cluster. The job bodies: :func:`label_atoms` (one
configuration → :class:`Label`), :func:`relax_atoms` and :func:`md_atoms` (a
reference relaxation or MD → :class:`Frames`, a labelled frame every few steps).
Each builds the calculator (cached per process), computes energy, forces and
stress and checks them (:func:`check_label`: finite numbers, positions and cell
included, right shapes, SCF converged where the calculator reports it); the
dispatcher (:mod:`mtpjax.active.dispatch`) checks again what it receives. Kinds:

* ``"tblite"``: GFN1-xTB (default ``method = "GFN1-xTB"``) via ``tblite.ase``
  (``pip install tblite``). GFN2-xTB does not converge on random Li–P–S cells.
* ``"vasp"``: ``ase.calculators.vasp.Vasp``; INCAR keys from the spec (paper
  defaults: PBE, ENCUT 400, Γ-only, ISPIN 1); command from ``command`` or
  ``ASE_VASP_COMMAND``; POTCARs from ``VASP_PP_PATH``.
* ``"emt"``: ASE's EMT (fast toy labels for tests).
* ``"ase"``: any ASE calculator ``factory = "module:callable"`` with ``kwargs``.

Units: energy eV, forces eV/Å; the stress is returned as MLIP's PlusStress
(eV, ``−σ_ASE·V``, xx yy zz yz xz xy) and is None for non-periodic cells.
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field

import numpy as np

from mtpjax.config.reference import KINDS, VASP_DEFAULTS, ReferenceNotAvailable, check_spec
from mtpjax.errors import MTPJaxError
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.calculators.vasp import Vasp
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.optimize import FIRE

__all__ = [
    "Label",
    "Frames",
    "LabelError",
    "check_label",
    "check_result",
    "relax_atoms",
    "md_atoms",
    "ReferenceNotAvailable",
    "check_spec",
    "label_atoms",
    "atoms_payload",
    "VASP_DEFAULTS",
    "KINDS",
]

class LabelError(MTPJaxError, RuntimeError):
    """A reference calculation failed (exception, NaN, non-converged SCF,
    missing output, timeout)."""


@dataclass
class Label:
    """Result of one reference calculation (host numpy).

    ``energy`` eV, ``forces`` (N, 3) eV/Å, ``plus_stress`` (6,) eV or None,
    ``wall`` seconds, ``info`` extra calculator output (e.g. converged flag);
    ``positions`` (N, 3) Å and ``cell`` (3, 3) Å rows where the calculation moved the atoms (a frame of a
    reference relaxation or MD), None for a single point (the job's own positions).
    """

    energy: float
    forces: np.ndarray
    plus_stress: np.ndarray | None
    wall: float
    info: dict = field(default_factory=dict)
    positions: np.ndarray | None = None
    cell: np.ndarray | None = None


@dataclass
class Frames:
    """The labelled frames of a reference relaxation or MD (one job), in order; ``final`` the positions
    (N, 3) and cell where it ended; ``error`` why it ended early (None: it ran to its end)."""

    labels: list
    wall: float
    final_positions: np.ndarray
    final_cell: np.ndarray
    error: str | None = None


def check_label(lab: Label, n_atoms: int, kind: str) -> Label:
    """``lab`` if every number is finite and every shape right (energy, forces (n_atoms, 3), stress (6,),
    positions and cell where given); else :class:`LabelError`. Applied where a label is computed and again
    where it is received, so nothing non-finite reaches the store whatever ran the job."""
    f = np.asarray(lab.forces, dtype=float)
    if f.shape != (n_atoms, 3):
        raise LabelError(f"{kind}: forces missing or of shape {f.shape} (expected ({n_atoms}, 3))")
    bad = [name for name, v in (("energy", lab.energy), ("forces", f), ("stress", lab.plus_stress),
                                ("positions", lab.positions), ("cell", lab.cell))
           if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    if bad:
        raise LabelError(f"{kind}: non-finite {'/'.join(bad)}")
    if lab.plus_stress is not None and np.shape(lab.plus_stress) != (6,):
        raise LabelError(f"{kind}: stress of shape {np.shape(lab.plus_stress)} (expected (6,))")
    return lab


def check_result(res, n_atoms: int, kind: str):
    """:func:`check_label` on a :class:`Label` or on every frame of :class:`Frames` (frames after the first
    bad one are dropped and the reason kept in ``error``; no good frame at all is a :class:`LabelError`)."""
    if isinstance(res, Label):
        return check_label(res, n_atoms, kind)
    if not isinstance(res, Frames):
        raise LabelError(f"{kind}: the job returned {type(res).__name__}, not a label")
    good = []
    for lab in res.labels:
        try:
            good.append(check_label(lab, n_atoms, kind))
        except LabelError as e:
            res.error = res.error or str(e)
            break
    if not good:
        raise LabelError(res.error or f"{kind}: no frame computed")
    res.labels = good
    if not (np.all(np.isfinite(res.final_positions)) and np.all(np.isfinite(res.final_cell))):
        res.final_positions, res.final_cell = good[-1].positions, good[-1].cell
    return res


_CACHE: dict = {}


def make_calculator(spec: dict, workdir: str | None):
    kind = spec["kind"]
    if kind == "tblite":
        from tblite.ase import TBLite

        kw = {k: v for k, v in spec.items() if k in ("accuracy", "electronic_temperature", "max_iterations",
                                                        "mixer_damping", "charge", "multiplicity")}
        return TBLite(method=spec["method"], verbosity=0, **kw)
    if kind == "emt":
        return EMT()
    if kind == "vasp":
        return Vasp(directory=workdir or ".", command=spec["command"], **spec["incar"])
    if kind == "ase":
        mod, _, fn = spec["factory"].partition(":")
        return getattr(importlib.import_module(mod), fn)(**spec.get("kwargs", {}))
    raise MTPJaxError(f"unknown reference kind {kind!r}")


def atoms_payload(conf, type_to_symbol) -> dict:
    """Picklable description of a configuration for a labelling job:
    numbers, positions (Å), cell rows (Å), pbc."""
    at = conf.to_atoms(type_to_symbol)
    return {"numbers": at.numbers.tolist(), "positions": at.positions.tolist(),
            "cell": np.asarray(at.cell).tolist(), "pbc": at.pbc.tolist()}


def _atoms(payload: dict) -> Atoms:
    """The job's atoms; non-finite input positions or cell are a :class:`LabelError` (never computed)."""
    pos, cell = np.asarray(payload["positions"], float), np.asarray(payload["cell"], float)
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(cell))):
        raise LabelError("non-finite positions or cell in the configuration to label")
    return Atoms(numbers=payload["numbers"], positions=pos, cell=cell, pbc=payload["pbc"])


def _calculator(spec: dict, workdir: str | None):
    """``(calculator, cache key)``; calculators other than VASP are reused within a process."""
    key = (repr(sorted((k, repr(v)) for k, v in spec.items())), workdir if spec["kind"] == "vasp" else None)
    calc = _CACHE.get(key)
    if calc is None:
        calc = make_calculator(spec, workdir)
        if spec["kind"] != "vasp":
            _CACHE[key] = calc
    return calc, key


def _single_point(atoms: Atoms, spec: dict, key, t0: float, moved: bool = False) -> Label:
    """Energy, forces and (periodic cells) PlusStress of ``atoms`` with its calculator, checked."""
    try:
        e = float(atoms.get_potential_energy())
        f = np.asarray(atoms.get_forces(), dtype=float)
        s = -np.asarray(atoms.get_stress(voigt=True), dtype=float) * atoms.get_volume() if all(atoms.pbc) else None
    except LabelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any calculator failure becomes a LabelError
        _CACHE.pop(key, None)
        raise LabelError(f"{spec['kind']}: {type(exc).__name__}: {exc}") from None
    if getattr(atoms.calc, "converged", True) is False:
        raise LabelError(f"{spec['kind']}: SCF not converged")
    lab = Label(energy=e, forces=f, plus_stress=s, wall=time.perf_counter() - t0, info={"kind": spec["kind"]},
                positions=atoms.positions.copy() if moved else None,
                cell=np.asarray(atoms.cell).copy() if moved else None)
    return check_label(lab, len(atoms), spec["kind"])


def label_atoms(spec: dict, payload: dict, workdir: str | None = None) -> Label:
    """Run the reference calculation of one configuration (the job body).

    Raises :class:`LabelError` for any failure, including non-finite input positions/cell, NaN/inf results,
    missing forces, a non-converged SCF (``calc.converged is False``).
    """
    atoms = _atoms(payload)
    if workdir:
        os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    atoms.calc, key = _calculator(spec, workdir)
    return _single_point(atoms, spec, key, t0)


def _frames(spec: dict, payload: dict, workdir: str | None, run, every: int) -> Frames:
    """Run ``run(atoms, observe)`` (an ASE optimiser or dynamics) and label every ``every``-th step; stop at
    the first failing calculation and return what was labelled (its reason in ``error``)."""
    atoms = _atoms(payload)
    if workdir:
        os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    atoms.calc, key = _calculator(spec, workdir)
    labels, step, error = [], [0], None

    def observe():
        if step[0] % every == 0:
            labels.append(_single_point(atoms, spec, key, t0, moved=True))
        step[0] += 1

    try:
        run(atoms, observe)
    except Exception as exc:  # noqa: BLE001 - a failure ends the trajectory; what was labelled is kept
        error = str(exc) if isinstance(exc, LabelError) else f"{spec['kind']}: {type(exc).__name__}: {exc}"
    if not labels:
        raise LabelError(error or f"{spec['kind']}: no frame computed")
    return Frames(labels, time.perf_counter() - t0, atoms.positions.copy(), np.asarray(atoms.cell).copy(), error)


def relax_atoms(spec: dict, payload: dict, workdir: str | None = None, fmax: float = 0.5, steps: int = 12,
                every: int = 1) -> Frames:
    """FIRE relaxation of the atoms (cell fixed) with the reference calculator, a labelled frame every
    ``every``-th step (the job body of ``bootstrap.method = "relax"``); ``fmax`` eV/Å."""

    def run(atoms, observe):
        opt = FIRE(atoms, maxstep=0.1, logfile=None)
        opt.attach(observe, interval=1)
        opt.run(fmax=float(fmax), steps=int(steps))

    return _frames(spec, payload, workdir, run, int(every))


def md_atoms(spec: dict, payload: dict, workdir: str | None = None, temperature_K: float = 1000.0,
             timestep_fs: float = 1.0, steps: int = 100, every: int = 10, seed: int = 0) -> Frames:
    """Langevin MD (friction 0.02 /fs-units of ASE) with the reference calculator from Maxwell–Boltzmann
    velocities at ``temperature_K``; a labelled frame every ``every`` steps after the first (the job body of
    ``bootstrap.method = "md"``; AIMD as in the paper's bootstrap)."""

    def run(atoms, observe):
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
        dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K, friction=0.02, fixcm=False,
                       rng=np.random.default_rng(seed + 1))
        for _ in range(int(steps) // int(every)):
            dyn.run(int(every))
            observe()

    return _frames(spec, payload, workdir, run, 1)
