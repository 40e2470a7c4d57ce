"""Mean-squared displacement over all time origins by FFT.

For one coordinate x(t), t = 0..F−1 and lag m:

    MSD(m) = 1/(F−m) Σ_{t=0}^{F−m−1} [x(t+m) − x(t)]²  =  S1(m) − 2 S2(m)

with S2(m) = 1/(F−m) Σ_t x(t) x(t+m) (autocorrelation, by zero-padded FFT)
and S1(m) = 1/(F−m) [2 Σ_t x² − Σ_{t<m} x(t)² − Σ_{t≥F−m} x(t)²] written
with cumulative sums (Calandrini et al., Collect. SFN 12, 201 (2011)).
Vectorised over columns (atoms × axes); atoms are processed in blocks so the
FFT workspace stays within ``max_bytes``.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = ["msd_columns", "msd_axes", "msd_per_atom", "n_origins"]


def msd_columns(x: np.ndarray, workers: int | None = None) -> np.ndarray:
    """MSD over all origins for each column of x (F, m) -> (F, m), same units²."""
    x = np.asarray(x, dtype=np.float64)
    F = x.shape[0]
    nfft = sfft.next_fast_len(2 * F, real=True)
    X = sfft.rfft(x, n=nfft, axis=0, workers=workers)
    S2 = sfft.irfft(X * np.conj(X), n=nfft, axis=0, workers=workers)[:F]
    sq = x * x
    total = sq.sum(axis=0)
    head = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(sq, axis=0)[:-1]], axis=0)  # Σ_{t<m}
    tail = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(sq[::-1], axis=0)[:-1]], axis=0)  # Σ_{t≥F−m}
    cnt = (F - np.arange(F)).reshape((F,) + (1,) * (x.ndim - 1))
    S1 = 2 * total - head - tail
    out = (S1 - 2 * S2) / cnt
    out[0] = 0.0
    return np.maximum(out, 0.0)


def _blocks(n_atoms: int, F: int, max_bytes: float) -> int:
    per_atom = 3 * (2 * F) * 16 * 3  # complex spectrum + real copies, rough
    return int(max(1, min(n_atoms, max_bytes // per_atom)))


def msd_axes(U: np.ndarray, max_bytes: float = 2.0e8, workers: int | None = None) -> np.ndarray:
    """Total MSD per axis, summed over atoms: U (F, n, 3) Å -> (F, 3) Å².

    ``out[m, α] = Σ_i ⟨[u_iα(t+m) − u_iα(t)]²⟩_t`` (He et al. eq. 2 per axis);
    divide by n for the per-ion MSD.  U may be a memmap: atoms are read in
    blocks.
    """
    F, n, _ = U.shape
    b = _blocks(n, F, max_bytes)
    acc = np.zeros((F, 3))
    for s in range(0, n, b):
        blk = np.asarray(U[:, s:s + b, :], dtype=np.float64)
        acc += msd_columns(blk.reshape(F, -1), workers).reshape(F, -1, 3).sum(axis=1)
    return acc


def msd_per_atom(U: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Per-atom, per-axis MSD (F, n, 3) Å² (memory F·n·3; small systems)."""
    F, n, _ = U.shape
    return msd_columns(np.asarray(U, dtype=np.float64).reshape(F, -1), workers).reshape(F, n, 3)


def n_origins(F: int) -> np.ndarray:
    """Number of time origins per lag (F,)."""
    return F - np.arange(F)
