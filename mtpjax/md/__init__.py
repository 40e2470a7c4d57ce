"""mtpjax.md — molecular dynamics with any JAX energy (MTP, LJ, Morse...).

Pure-function integrators (``init``/``step``/``conserved``, state as a pytree):
:func:`nve`, :func:`nvt_nose_hoover`, :func:`nvt_langevin`, :func:`npt_mtk`
(``mode='iso' | 'aniso' | 'tri'``); force-field adapters in
:mod:`mtpjax.md.forcefields` (``mtp_efs``, ``lennard_jones``, ``morse``,
``efs_from_energy``); neighbour lists in :mod:`mtpjax.md.neighbors`; jitted
blocks, stages, hooks and replicas in :mod:`mtpjax.md.simulate`; H5MD/CSV/
checkpoint I/O in :mod:`mtpjax.md.io`; the TOML runner in :mod:`mtpjax.md.run`.
"""
from .integrators import (  # noqa: F401
    ChainState,
    Integrator,
    MDState,
    kinetic_energy,
    maxwell_boltzmann,
    npt_mtk,
    nve,
    nvt_langevin,
    nvt_nose_hoover,
    pressure,
    pressure_tensor,
    temperature,
)
from .neighbors import NeighborList, NeighborListFns, check_overflow, host_neighbors, neighbor_list  # noqa: F401
from .simulate import Simulation, SimulationError, Stage, make_block, stack_states  # noqa: F401
