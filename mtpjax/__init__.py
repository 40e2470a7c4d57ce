"""mtpjax: MLIP-compatible Moment Tensor Potentials, active learning and MD in JAX.

Importing the package switches JAX to float64 before any array is created (MLIP computes in double);
set ``MTPJAX_X64=0`` in the environment to keep JAX's float32 default.
"""
import os

import jax

if os.environ.get("MTPJAX_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
