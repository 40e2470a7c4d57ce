"""Initial radial coefficients (docs/spec/mtp.md §7.2).

* ``"mlip3"`` — MLIP-3's deterministic default: 1e-6 everywhere and
  1e-3·(pair index + 1) at β = μ (what :meth:`MTP.from_file` gives an
  untrained file).
* ``"same"`` — MLIP-2 ``--init-params=same``: 1e-6 everywhere, 1e-3 at β = μ.
* ``"random"`` — MLIP-2's default ``--init-params=random``, every coefficient
  ``scale·U(−1, 1)`` (scale 5e-7 as MLIP), but seeded: reproducible.
* ``"orth"`` — seeded random *orthonormal* radial coefficient vectors c_μ
  (all species pairs and β concatenated, as in MLIP's penalty
  Σ_μ(‖c_μ‖²−1)² + Σ_{μ<μ'}(c_μ·c_μ')², which they satisfy exactly): O(0.1)
  coefficients. The default of the Levenberg–Marquardt trainer: MLIP-2's
  tiny random values and MLIP-3's near-diagonal ones start it in poor basins
  far more often (measured on MLIP's reference training set).
* ``"keep"`` — leave the potential's coefficients as they are (warm start).

The linear coefficients are replaced by the first linear solve anyway.
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import MTPJaxError
from mtpjax.potential.model import MTP, initial_radial_coeffs

INIT_METHODS = ("keep", "orth", "mlip3", "same", "random")


def init_radial(model: MTP, method: str = "mlip3", seed: int = 0, scale: float = 5e-7) -> MTP:
    """``model`` with radial coefficients (C, C, K, N_Q) initialised by ``method``."""
    c, _, k, nq = model.radial_coeffs.shape
    if method == "keep":
        return model
    if method == "mlip3":
        rc = initial_radial_coeffs(c, k, nq)
    elif method == "same":
        rc = np.full((c, c, k, nq), 1e-6)
        for mu in range(min(k, nq)):
            rc[:, :, mu, mu] = 1e-3
    elif method == "orth":
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((c * c * nq, k)))  # (C²·N_Q, K), orthonormal columns
        rc = q.T.reshape(k, c, c, nq).transpose(1, 2, 0, 3)
    elif method == "random":
        rc = scale * jax.random.uniform(jax.random.PRNGKey(seed), (c, c, k, nq), minval=-1.0, maxval=1.0,
                                        dtype=jnp.float64)
    else:
        raise MTPJaxError(f"unknown radial initialisation '{method}' (use {', '.join(INIT_METHODS)})")
    return eqx.tree_at(lambda m: m.radial_coeffs, model, jnp.asarray(rc, model.radial_coeffs.dtype))
