"""The angular part of MTP's moments (Shapeev 2016, eq. 5; docs/spec/mtp.md §4): the monomials
x̂^a ŷ^b ẑ^c of the unit pair vector û that the basic moments are built from.

Shapes: ``u`` (..., 3) unit vectors, ``r`` (...) distances in Å; results (..., n_mono) and (..., n_mono, 3).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mtpjax.potential.program import ContractionProgram


def monomials(prog: ContractionProgram, u):
    """x̂^a ŷ^b ẑ^c for the program's exponent triples, (N, M, n_mono).

    Each monomial is one multiplication of a lower-degree one (shared
    prefixes are reused), which keeps the backward pass free of gathers and
    scatters (an indexed formulation was ~6× slower on CPU).
    """
    comps = (u[..., 0], u[..., 1], u[..., 2])
    cache = {(0, 0, 0): jnp.ones_like(comps[0])}

    def get(t):
        if t not in cache:
            d = 0 if t[0] > 0 else (1 if t[1] > 0 else 2)
            lower = list(t)
            lower[d] -= 1
            cache[t] = get(tuple(lower)) * comps[d]
        return cache[t]

    return jnp.stack([get(tuple(int(v) for v in row)) for row in prog.monomials], axis=-1)


def basic_selector(prog: ContractionProgram, dtype):
    """(n_basic, K·n_mono) one-hot: row b picks moment (μ_b, monomial_b)."""
    nm = len(prog.monomials)
    sel = np.zeros((prog.n_basic, prog.radial_funcs_count * nm))
    sel[np.arange(prog.n_basic), prog.basic_mu * nm + prog.basic_mono] = 1.0
    return jnp.asarray(sel, dtype=dtype)


def monomials_and_gradients(prog: ContractionProgram, u, r):
    """Monomials (..., nm) of û and their gradients (..., nm, 3) w.r.t. the pair vector."""
    mon = prog.monomials
    pmax = max(prog.max_power, 1)
    pw = [jnp.ones_like(u)]
    for _ in range(pmax):
        pw.append(pw[-1] * u)
    pw = jnp.stack(pw, axis=-2)  # (..., pmax+1, 3)
    a, b, c = mon[:, 0], mon[:, 1], mon[:, 2]
    px, py, pz = pw[..., a, 0], pw[..., b, 1], pw[..., c, 2]
    mono = px * py * pz
    dx = a * pw[..., np.maximum(a - 1, 0), 0] * py * pz
    dy = b * px * pw[..., np.maximum(b - 1, 0), 1] * pz
    dz = c * px * py * pw[..., np.maximum(c - 1, 0), 2]
    dmono_du = jnp.stack([dx, dy, dz], axis=-1)
    nu = (a + b + c).astype(u.dtype)
    dmono = (dmono_du - (nu * mono)[..., None] * u[..., None, :]) / r[..., None, None]
    return mono, dmono
