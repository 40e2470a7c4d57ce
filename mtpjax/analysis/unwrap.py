"""Unwrapping across periodic boundaries with a changing box, and drift removal.

Scheme: with wrapped positions w(t), boxes H(t) (rows = lattice vectors) and
fractional coordinates s(t) = w(t) H(t)⁻¹,

    Δs = s(t) − s(t−1) − round(s(t) − s(t−1));     u(t) = u(t−1) + Δs · H(t)

i.e. the minimum-image *fractional* step of every frame, converted with the
box of the arriving frame, and accumulated.  NPT barostats scale positions
affinely with the box; that scaling is invisible in fractional coordinates,
so the scheme returns exactly the sum of the physical steps, with neither the
"accumulated fractional coordinate × current box" artefact (box fluctuations
multiplied by the distance travelled, see von Bülow, Bullerjahn & Hummer,
J. Chem. Phys. 153, 021101 (2020)) nor the affine jitter of the wrapped
positions that Cartesian-difference schemes keep.  Valid while no atom moves
more than half a box width between stored frames; positions that are
already unwrapped come out unchanged for a fixed box.
"""
from __future__ import annotations

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.analysis.trajectory import species_indices
from ase.data import atomic_masses

__all__ = ["unwrap", "UnwrapState", "unwrap_chunk", "unwrapped_positions", "masses_of"]


class UnwrapState:
    """Carry between chunks: last fractional (n,3) and unwrapped (n,3) frame."""

    def __init__(self):
        self.last_wrapped = None
        self.last_unwrapped = None


def unwrap_chunk(pos: np.ndarray, cells: np.ndarray, state: UnwrapState | None = None) -> np.ndarray:
    """Unwrap a chunk of frames.

    pos: (f, n, 3) Å; cells: (f, 3, 3) Å rows = lattice vectors; state carries
    the previous chunk's last frame (updated in place; ``last_wrapped`` holds
    fractional coordinates).  Returns (f, n, 3) Å.
    """
    pos = np.asarray(pos, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    if state is None:
        state = UnwrapState()
    s = np.einsum("fnj,fjk->fnk", pos, np.linalg.inv(cells))
    if state.last_wrapped is None:
        prev_s, prev_u = s[0], pos[0]
    else:
        prev_s, prev_u = state.last_wrapped, state.last_unwrapped
    ds = np.diff(np.concatenate([prev_s[None], s], axis=0), axis=0)  # (f, n, 3)
    ds -= np.rint(ds)
    u = prev_u[None] + np.cumsum(np.einsum("fnj,fjk->fnk", ds, cells), axis=0)
    state.last_wrapped = s[-1].copy()
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
