"""MLIP's radial basis (Shapeev 2016, eq. 4; docs/spec/mtp.md §3): Chebyshev polynomials of the first kind
on [R_min, R_cut] times the smooth cut-off (R_cut − r)².

    Q_β(r) = s · T_β(ξ) · (R_cut − r)²,   ξ = (2r − R_min − R_cut) / (R_cut − R_min),   β = 0 … N_Q − 1

``s`` is the potential's ``scaling``. Distances in Å. Works on numpy arrays (host-side precomputation, float64)
and on JAX arrays (traced), with the same operations in the same order.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _xp(r):
    return np if isinstance(r, np.ndarray) else jnp


def chebyshev(r, rmin: float, rmax: float, nq: int):
    """T_β(ξ(r)) for β < ``nq``: (..., nq) for distances ``r`` (...)."""
    xp = _xp(r)
    xi = (2.0 * r - (rmin + rmax)) / (rmax - rmin)
    t = [xp.ones_like(xi), xi]
    for _ in range(2, nq):
        t.append(2.0 * xi * t[-1] - t[-2])
    return xp.stack(t[:nq], axis=-1)


def chebyshev_and_derivative(r, rmin: float, rmax: float, nq: int):
    """(T_β(ξ(r)), dT_β(ξ(r))/dr), each (..., nq)."""
    xp = _xp(r)
    xi = (2.0 * r - (rmin + rmax)) / (rmax - rmin)
    dxi = 2.0 / (rmax - rmin)
    t = [xp.ones_like(xi), xi]
    dt = [xp.zeros_like(xi), xp.ones_like(xi)]
    for _ in range(2, nq):
        t.append(2 * xi * t[-1] - t[-2])
        dt.append(2 * t[-2] + 2 * xi * dt[-1] - dt[-2])
    return xp.stack(t[:nq], -1), xp.stack(dt[:nq], -1) * dxi


def radial_basis(r, rmin: float, rmax: float, nq: int, scaling):
    """Q (..., nq) = s · T_β(ξ) · (R_cut − r)²."""
    return scaling * chebyshev(r, rmin, rmax, nq) * ((rmax - r) ** 2)[..., None]


def radial_basis_and_derivative(r, rmin: float, rmax: float, nq: int, scaling=1.0):
    """(Q, dQ/dr), each (..., nq); ``scaling = 1`` gives the unscaled basis."""
    t, dt = chebyshev_and_derivative(r, rmin, rmax, nq)
    w = ((rmax - r) ** 2)[..., None]
    dw = (-2.0 * (rmax - r))[..., None]
    return scaling * t * w, scaling * (dt * w + t * dw)
