"""Unwrapping across periodic boundaries with a changing box, and drift removal.

Unwrapping scheme ("toroidal-view preserving", Kulke & Vermaas, J. Chem.
Theory Comput. 18, 6161 (2022); von Bülow et al., J. Chem. Phys. 153, 021101
(2020) for the NPT pitfalls): with wrapped positions w(t) and box H(t)
(rows = lattice vectors),

    Δ = w(t) − w(t−1);   n = round(Δ · H(t)⁻¹);   u(t) = u(t−1) + Δ − n · H(t)

i.e. each step takes the minimum image of the *Cartesian* step in the box of
the arriving frame.  Unlike accumulating fractional steps times the current
box, it does not inject box fluctuations × position into every step.  Valid
while no atom moves more than half a box width between stored frames.
Positions that are already unwrapped pass through unchanged.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigurationError
from .trajectory import species_indices

__all__ = ["unwrap", "UnwrapState", "unwrap_chunk", "unwrapped_positions", "masses_of"]


class UnwrapState:
    """Carry between chunks: last wrapped (n,3) and unwrapped (n,3) frame."""

    def __init__(self):
        self.last_wrapped = None
        self.last_unwrapped = None


def unwrap_chunk(pos: np.ndarray, cells: np.ndarray, state: UnwrapState | None = None) -> np.ndarray:
    """Unwrap a chunk of frames.

    pos: (f, n, 3) Å; cells: (f, 3, 3) Å rows = lattice vectors; state carries
    the previous chunk's last frame (updated in place).  Returns (f, n, 3) Å.
    """
    pos = np.asarray(pos, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    if state is None:
        state = UnwrapState()
    if state.last_wrapped is None:
        prev_w, prev_u = pos[0], pos[0]
    else:
        prev_w, prev_u = state.last_wrapped, state.last_unwrapped
    w = np.concatenate([prev_w[None], pos], axis=0)
    d = np.diff(w, axis=0)  # (f, n, 3)
    inv = np.linalg.inv(cells)  # (f, 3, 3)
    n = np.rint(np.einsum("fnj,fjk->fnk", d, inv))
    d -= np.einsum("fnj,fjk->fnk", n, cells)
    u = prev_u[None] + np.cumsum(d, axis=0)
    state.last_wrapped = pos[-1].copy()
    state.last_unwrapped = u[-1].copy()
    return u


def unwrap(positions: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Unwrap a whole in-memory trajectory: (F, n, 3), (F, 3, 3) -> (F, n, 3) Å."""
    cells = np.asarray(cells, dtype=np.float64)
    if cells.ndim == 2:
        cells = np.broadcast_to(cells, (len(positions), 3, 3))
    return unwrap_chunk(positions, cells, UnwrapState())


def masses_of(species: np.ndarray) -> np.ndarray:
    """Standard atomic masses (N,) amu from atomic numbers."""
    from ase.data import atomic_masses

    return np.asarray(atomic_masses)[np.asarray(species)]


def _reference_atoms(species, mobile, drift):
    if drift is None or drift is False:
        return None
    if isinstance(drift, str):
        if drift == "all":
            return np.arange(len(species))
        if drift == "framework":
            ref = np.setdiff1d(np.arange(len(species)), mobile)
            if ref.size == 0:
                raise ConfigurationError("drift='framework' but every atom is mobile; use drift='all' or None")
            return ref
        raise ConfigurationError(f"drift must be 'all', 'framework', None or an index array, got {drift!r}")
    return species_indices(species, np.asarray(drift, dtype=np.int64))


def unwrapped_positions(traj, select="Li", drift="all", chunk: int = 2048,
                        memmap_path=None, dtype=np.float64):
    """Unwrapped, drift-corrected positions of the selected atoms.

    traj: a trajectory source (see :mod:`.trajectory`); select: species or an
    index array; drift: 'all' (default: subtract the mass-weighted centre-of-
    mass displacement of all atoms), 'framework' (of the non-selected atoms),
    an index array, or None (no correction).  Streams frames in chunks; the
    result (F, n, 3) Å is an ndarray, or an ``np.memmap`` at ``memmap_path``
    for trajectories that do not fit in memory.
    Returns (U, idx, volumes) with idx the selected atom indices (n,) and
    volumes (F,) the cell volume of every frame in Å³.
    """
    species = np.asarray(traj.species)
    idx = species_indices(species, select)
    ref = _reference_atoms(species, idx, drift)
    need = idx if ref is None else np.union1d(idx, ref)
    pos_in_need = np.searchsorted(need, idx)
    F, n = traj.n_frames, len(idx)
    if memmap_path is None:
        out = np.empty((F, n, 3), dtype=dtype)
    else:
        out = np.lib.format.open_memmap(str(memmap_path), mode="w+", dtype=dtype, shape=(F, n, 3))
    if ref is not None:
        m = masses_of(species[ref])
        m = m / m.sum()
        ref_in_need = np.searchsorted(need, ref)
        com0 = None
    state = UnwrapState()
    vols = np.empty(F)
    for s, p, c in traj.iter_chunks(chunk, need):
        vols[s:s + len(p)] = np.abs(np.linalg.det(c))
        u = unwrap_chunk(p, c, state)
        sel = u[:, pos_in_need]
        if ref is not None:
            com = np.einsum("fnk,n->fk", u[:, ref_in_need], m)
            if com0 is None:
                com0 = com[0].copy()
            sel = sel - (com - com0)[:, None, :]
        out[s:s + len(u)] = sel
    return out, idx, vols
