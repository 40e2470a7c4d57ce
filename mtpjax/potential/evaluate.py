"""Evaluate an MTP on many configurations: batching, padding, sanity checks.

Orchestration only (host side). Configurations are packed into flat padded
batches (graph batching, see :func:`~mtpjax.potential.model.efs_batch`) whose
shapes are bucketed, so a whole data set of mixed sizes runs through one or
two compiled kernels instead of one per configuration size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import jax.numpy as jnp
import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.geometry.neighbors import host_neighbors, pair_distances
from mtpjax.io.cfg import Configuration
from mtpjax.potential.model import MTP, efs_batch

#: default smallest allowed interatomic distance (Å); closer atoms are refused
#: as overlapping. MLIP itself has no such check.
DEFAULT_MIN_DISTANCE = 0.5


def bucket(n: int, base: int = 8, growth: float = 1.25) -> int:
    """Round ``n`` up to a geometric grid of sizes (few distinct shapes)."""
    if n <= base:
        return base
    k = math.ceil(math.log(n / base, growth) - 1e-12)
    return int(math.ceil(base * growth**k / base) * base)


@dataclass
class Neighbors:
    """Host-side neighbour list of one configuration: idx (N, M) padded with
    N, shifts (N, M, 3), distances (N, M) Å (inf on padding)."""

    idx: np.ndarray
    shifts: np.ndarray
    distances: np.ndarray

    @property
    def min_distance(self) -> float:
        return float(self.distances.min()) if self.distances.size else math.inf


def config_neighbors(conf: Configuration, cutoff: float) -> Neighbors:
    pos = np.asarray(conf.positions, dtype=float)
    cell = np.asarray(conf.cell, dtype=float)
    idx, shifts, _ = host_neighbors(pos, cell, conf.pbc, cutoff)
    return Neighbors(idx, shifts, pair_distances(pos, cell, idx, shifts))


@dataclass
class Batch:
    """A padded batch (numpy arrays; see ``efs_batch`` for shapes).

    ``members`` are the indices of the configurations it holds (in order),
    ``offsets`` their first atom and ``sizes`` their atom counts.
    """

    positions: np.ndarray
    cells: np.ndarray
    config_of_atom: np.ndarray
    species: np.ndarray
    idx: np.ndarray
    shifts: np.ndarray
    atom_mask: np.ndarray
    members: list
    offsets: np.ndarray
    sizes: np.ndarray

    def device_args(self):
        return tuple(
            jnp.asarray(a)
            for a in (self.positions, self.cells, self.config_of_atom, self.species, self.idx, self.shifts, self.atom_mask)
        )


def check_config(model: MTP, conf: Configuration, nbrs: Neighbors, min_distance, where: str) -> np.ndarray:
    """Validate one configuration; return its species indices."""
    pos = np.asarray(conf.positions)
    if len(pos) == 0:
        raise ConfigurationError(f"{where}configuration has no atoms")
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ConfigurationError(f"{where}positions must have shape (N, 3), got {pos.shape}")
    if len(conf.types) != len(pos):
        raise ConfigurationError(f"{where}{len(conf.types)} types for {len(pos)} atoms")
    if not np.all(np.isfinite(pos)):
        raise ConfigurationError(f"{where}non-finite atomic positions")
    species = model.species_index(conf.types, where=where)
    if min_distance is not None and nbrs.min_distance < min_distance:
        i, m = np.unravel_index(np.argmin(nbrs.distances), nbrs.distances.shape)
        raise ConfigurationError(
            f"{where}atoms {i + 1} and {int(nbrs.idx[i, m]) + 1} are {nbrs.min_distance:.4f} Å apart, closer "
            f"than the allowed minimum {min_distance} Å (set min_distance / --min-dist to change)"
        )
    return species


def make_batch(configs, species, nbrs, members, n_pad: int, m_pad: int, b_pad: int) -> Batch:
    """Pack ``configs[members]`` into one padded :class:`Batch`."""
    sizes = np.asarray([configs[k].natoms for k in members])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    P = np.zeros((n_pad, 3))
    C = np.zeros((b_pad, 3, 3))
    A = np.full(n_pad, b_pad - 1 if b_pad > len(members) else 0, dtype=np.int32)
    S = np.zeros(n_pad, dtype=np.int32)
    I = np.full((n_pad, m_pad), n_pad, dtype=np.int32)
    SH = np.zeros((n_pad, m_pad, 3), dtype=np.int32)
    mask = np.zeros(n_pad, dtype=bool)
    for b, (k, o, n) in enumerate(zip(members, offsets, sizes)):
        conf, nb = configs[k], nbrs[k]
        P[o : o + n] = conf.positions
        C[b] = conf.cell
        A[o : o + n] = b
        S[o : o + n] = species[k]
        m = nb.idx.shape[1]
        I[o : o + n, :m] = np.where(nb.idx < n, nb.idx + o, n_pad)
        SH[o : o + n, :m] = nb.shifts
        mask[o : o + n] = True
    return Batch(P, C, A, S, I, SH, mask, list(members), offsets, sizes)


def plan_batches(sizes, atom_budget: int = 4096) -> list[list[int]]:
    """Greedy chunks of consecutive configurations with ≤ ``atom_budget`` atoms
    (a single larger configuration gets a chunk of its own)."""
    chunks, cur, tot = [], [], 0
    for k, n in enumerate(sizes):
        if cur and tot + n > atom_budget:
            chunks.append(cur)
            cur, tot = [], 0
        cur.append(k)
        tot += n
    if cur:
        chunks.append(cur)
    return chunks


def prepare_batches(
    model: MTP,
    configs,
    min_distance: float | None = DEFAULT_MIN_DISTANCE,
    source: str | None = None,
    atom_budget: int = 4096,
    group_neighbors: bool = False,
):
    """Neighbour lists, validation and padded batches for a list of configurations.

    All batches share the neighbour capacity (the largest count in the data)
    and the batch sizes are bucketed, so few shapes are compiled.

    ``group_neighbors``: order the configurations by their largest neighbour
    count before chunking and give each batch its own (bucketed) neighbour
    capacity instead — fewer padded pairs for work that scales with them (the
    LM Jacobian), at the price of one compiled shape per capacity bucket.
    Batches then hold non-consecutive configurations (``Batch.members``).
    """
    configs = list(configs)
    if not configs:
        raise ConfigurationError(f"{source + ': ' if source else ''}no configurations")
    nbrs, species = [], []
    for k, conf in enumerate(configs):
        where = f"{source + ': ' if source else ''}configuration {k + 1}: "
        nb = config_neighbors(conf, model.cutoff)
        species.append(check_config(model, conf, nb, min_distance, where))
        nbrs.append(nb)
    width = [nb.idx.shape[1] for nb in nbrs]
    order = sorted(range(len(configs)), key=width.__getitem__) if group_neighbors else list(range(len(configs)))
    chunks = [[order[i] for i in ch] for ch in plan_batches([configs[k].natoms for k in order], atom_budget)]
    if group_neighbors:
        m_pads = [bucket(max(width[k] for k in ch)) for ch in chunks]
    else:
        m_pads = [bucket(max(width))] * len(chunks)
    n_pad = bucket(max(sum(configs[k].natoms for k in ch) for ch in chunks))
    b_pad = bucket(max(len(ch) for ch in chunks) + 1, base=4)
    return [make_batch(configs, species, nbrs, ch, n_pad, m, b_pad) for ch, m in zip(chunks, m_pads)]


def calc_efs(
    model: MTP,
    configs,
    min_distance: float | None = DEFAULT_MIN_DISTANCE,
    source: str | None = None,
    atom_budget: int = 4096,
) -> list[Configuration]:
    """Energies, forces and PlusStress of every configuration (``mlp calc-efs``).

    Returns new :class:`Configuration` objects with ``energy``, ``forces`` and
    ``plus_stress`` replaced (−∂E/∂ε in eV, defined for open cells too); the
    features are kept and nothing is added, as MLIP does. Errors name the
    configuration (1-based index within ``source``).
    """
    configs = list(configs)
    out: list = [None] * len(configs)
    for batch in prepare_batches(model, configs, min_distance, source, atom_budget):
        e, f, s, _ = efs_batch(model, *batch.device_args())
        e, f, s = np.asarray(e, float), np.asarray(f, float), np.asarray(s, float)
        for b, (k, o, n) in enumerate(zip(batch.members, batch.offsets, batch.sizes)):
            conf = configs[k]
            out[k] = replace(
                conf,
                energy=float(e[b]),
                forces=f[o : o + n].copy(),
                plus_stress=s[b].copy(),
                features=dict(conf.features),
                atom_data=dict(conf.atom_data),
            )
    return out
