"""mtpjax: MLIP-compatible Moment Tensor Potentials, active learning and MD in JAX."""
from . import _jaxconfig  # noqa: F401  (float64 on by default)

__version__ = "0.1.0"
