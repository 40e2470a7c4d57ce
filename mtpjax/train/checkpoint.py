"""Checkpoints of a training run (an atomic ``.npz``, :mod:`mtpjax.io.atomic`), so that an interrupted run
resumes bit for bit.

Stored: the (preconditioned) parameter vector x, the preconditioner P and P⁻¹, ``scaling``, every leaf of the optax state
(restored into the tree structure of a freshly initialised state), the
iteration counter, the loss history and the random seed.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import MTPJaxError
from mtpjax.io.atomic import atomic_write

FORMAT = 2  # 2: θ in MLIP order for every optimiser (1: L-BFGS/Adam in a sorted-dict order)


def save_checkpoint(path, *, flat, scaling, opt_state, iteration: int, losses, seed: int, n_params: int,
                    precond, precond_inv) -> None:
    """Write the training state to ``path`` atomically."""
    path = Path(path)
    leaves = jax.tree_util.tree_leaves(opt_state)
    arrays = {f"opt_{i:04d}": np.asarray(a) for i, a in enumerate(leaves)}
    with atomic_write(path) as fh:
        np.savez(
            fh,
            format=np.int64(FORMAT),
            flat=np.asarray(flat),
            scaling=np.asarray(scaling),
            iteration=np.int64(iteration),
            losses=np.asarray(losses, dtype=float),
            seed=np.int64(seed),
            n_params=np.int64(n_params),
            n_opt=np.int64(len(leaves)),
            precond=np.asarray(precond),
            precond_inv=np.asarray(precond_inv),
            **arrays,
        )


def load_checkpoint(path, opt_state_template, n_params: int) -> dict:
    """Read a checkpoint; ``opt_state_template`` (a freshly initialised optax
    state of the same optimiser) gives the tree structure and dtypes."""
    path = Path(path)
    try:
        z = np.load(path)
    except (OSError, ValueError) as e:
        raise MTPJaxError(f"{path}: not a readable training checkpoint ({e})") from None
    with z:
        if int(z["format"]) != FORMAT:
            raise MTPJaxError(f"{path}: checkpoint format {int(z['format'])} is not supported")
        if int(z["n_params"]) != n_params:
            raise MTPJaxError(
                f"{path}: checkpoint has {int(z['n_params'])} parameters, the potential {n_params}"
            )
        leaves_t, treedef = jax.tree_util.tree_flatten(opt_state_template)
        if int(z["n_opt"]) != len(leaves_t):
            raise MTPJaxError(f"{path}: checkpoint was written by another optimiser")
        leaves = [jnp.asarray(z[f"opt_{i:04d}"], dtype=jnp.asarray(t).dtype) for i, t in enumerate(leaves_t)]
        return {
            "flat": jnp.asarray(z["flat"]),
            "scaling": jnp.asarray(z["scaling"]),
            "opt_state": jax.tree_util.tree_unflatten(treedef, leaves),
            "iteration": int(z["iteration"]),
            "losses": list(np.asarray(z["losses"], dtype=float)),
            "seed": int(z["seed"]),
            "precond": jnp.asarray(z["precond"]),
            "precond_inv": jnp.asarray(z["precond_inv"]),
        }
