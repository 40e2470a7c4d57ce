"""MTP: basis, radial basis, model, MLIP file I/O and the ASE calculator."""
from mtpjax.io.cfg import Configuration, read_cfg, write_cfg  # noqa: F401
from mtpjax.io.mtp import MTPFile, read_mtp, write_mtp  # noqa: F401
from mtpjax.potential.model import MTP, energy_forces_stress, energy_forces_stress_chunked  # noqa: F401
from mtpjax.potential.evaluate import calc_efs  # noqa: F401


def __getattr__(name):  # lazy: ASE's calculator machinery is only needed on demand
    if name == "MTPCalculator":
        from mtpjax.potential.calculator import MTPCalculator

        return MTPCalculator
    raise AttributeError(name)
