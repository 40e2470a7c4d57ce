"""The one parameter view of a potential: θ, MLIP's ordering of the trainable coefficients.

    θ = (radial coefficients c[a, b, μ, β] flattened in C order, species coefficients, moment coefficients)

(docs/spec/mtp.md §4.5). The order is MLIP's: active-learning rows, Jacobian columns and the states in ``.als``
and ``.almtp`` files index θ this way. ``scaling`` is not a parameter (MLIP fixes it before fitting).
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from mtpjax.potential.model import MTP


def params(model: MTP) -> jax.Array:
    """θ (n_params,) of ``model`` in MLIP's order."""
    return jnp.concatenate([model.radial_coeffs.reshape(-1), model.species_coeffs.reshape(-1),
                            model.moment_coeffs.reshape(-1)])


def split(model: MTP, theta) -> tuple:
    """(radial (C, C, K, N_Q), species (C,), moment (S,)) of θ (arrays of ``model``'s dtype)."""
    rc = model.radial_coeffs
    nr, c = rc.size, model.species_coeffs.size
    theta = jnp.asarray(theta, rc.dtype)
    return theta[:nr].reshape(rc.shape), theta[nr:nr + c], theta[nr + c:]


def with_params(model: MTP, theta) -> MTP:
    """``model`` with its coefficients replaced by θ (traceable: θ may be a tracer)."""
    return eqx.tree_at(lambda m: (m.radial_coeffs, m.species_coeffs, m.moment_coeffs), model, split(model, theta))
