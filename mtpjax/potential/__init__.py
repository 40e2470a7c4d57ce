"""MTP: basis, radial basis, model, the parameter view, evaluation of configurations and the ASE calculator
(MLIP's file formats, :mod:`mtpjax.io.cfg` and :mod:`mtpjax.io.mtp`, are re-exported here for convenience)."""
from mtpjax.io.cfg import Configuration, read_cfg, write_cfg  # noqa: F401
from mtpjax.io.mtp import MTPFile, read_mtp, write_mtp  # noqa: F401
from mtpjax.potential.calculator import MTPCalculator  # noqa: F401
from mtpjax.potential.evaluate import calc_efs  # noqa: F401
from mtpjax.potential.model import MTP, energy_forces_stress, energy_forces_stress_chunked  # noqa: F401
