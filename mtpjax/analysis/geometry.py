"""Periodic pair distances for general (triclinic) cells, vectorised.

Fractional differences are wrapped into [−0.5, 0.5) and every lattice image
n with |n_α| ≤ k_α = ceil(r_max / w_α + 0.5) is visited (w_α = distance
between opposite cell faces), so pairs are found for any r_max, also beyond
half the box, and in strongly skewed cells.  Loops run over the (few) image
shifts only; atoms and frames are broadcast.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["face_widths", "image_shifts", "pair_distances_frames", "neighbor_pairs"]


def face_widths(cell: np.ndarray) -> np.ndarray:
    """Perpendicular widths (..., 3) Å of cells (..., 3, 3), rows = vectors."""
    cell = np.asarray(cell, dtype=np.float64)
    vol = np.abs(np.linalg.det(cell))
    a, b, c = cell[..., 0, :], cell[..., 1, :], cell[..., 2, :]
    areas = np.stack([np.linalg.norm(np.cross(b, c), axis=-1), np.linalg.norm(np.cross(c, a), axis=-1),
                      np.linalg.norm(np.cross(a, b), axis=-1)], axis=-1)
    return vol[..., None] / areas


def image_shifts(cells: np.ndarray, r_max: float) -> np.ndarray:
    """Integer image shifts (S, 3) covering r_max for all cells (..., 3, 3)."""
    w = face_widths(cells).reshape(-1, 3).min(axis=0)
    k = np.ceil(r_max / w + 0.5).astype(int)
    rng = [range(-kk, kk + 1) for kk in k]
    n = np.array(list(itertools.product(*rng)), dtype=np.float64)
    # |(Δs + n) H| ≥ (|n_α| − 0.5) w_α for Δs in [−0.5, 0.5): drop shifts
    # that cannot reach r_max
    lower = np.max((np.abs(n) - 0.5).clip(min=0) * w, axis=1)
    return n[lower < r_max]


def pair_distances_frames(pa, pb, cells, r_max: float, same: bool = False):
    """Yield, per image shift, distances (f, na, nb) Å and a validity mask.

    pa (f, na, 3), pb (f, nb, 3), cells (f, 3, 3).  With ``same`` (pa is pb)
    the self-pair i == j of the zero shift is masked out.  Entries with
    d ≥ r_max are masked too.
    """
    pa = np.asarray(pa, dtype=np.float64)
    pb = np.asarray(pb, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    inv = np.linalg.inv(cells)
    sa = np.einsum("fnj,fjk->fnk", pa, inv)
    sb = np.einsum("fnj,fjk->fnk", pb, inv)
    ds = sb[:, None, :, :] - sa[:, :, None, :]  # (f, na, nb, 3)
    ds -= np.floor(ds + 0.5)
    for n in image_shifts(cells, r_max):
        v = np.einsum("fabj,fjk->fabk", ds + n, cells)
        d = np.sqrt(np.einsum("fabk,fabk->fab", v, v))
        mask = d < r_max
        if same and not np.any(n):
            idx = np.arange(pa.shape[1])
            mask[:, idx, idx] = False
        yield d, mask


def neighbor_pairs(pa, pb, cell, r_max: float, same: bool = False):
    """All pairs within r_max in one frame: (i, j, d) arrays (i in a, j in b).

    Periodic images count separately (a pair can appear more than once when
    r_max exceeds half a cell width)."""
    I, J, D = [], [], []
    for d, m in pair_distances_frames(np.asarray(pa)[None], np.asarray(pb)[None], np.asarray(cell)[None], r_max, same):
        i, j = np.nonzero(m[0])
        I.append(i)
        J.append(j)
        D.append(d[0][i, j])
    return np.concatenate(I), np.concatenate(J), np.concatenate(D)
