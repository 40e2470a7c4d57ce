"""Enable float64 in JAX before any array is created (MLIP computes in double).

Set ``MTPJAX_X64=0`` in the environment to leave JAX's default (float32) alone.
"""
import os

import jax

if os.environ.get("MTPJAX_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)
