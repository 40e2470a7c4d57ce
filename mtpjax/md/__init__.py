"""mtpjax.md — molecular dynamics with any JAX energy (MTP, LJ, Morse...).

Pure-function integrators (``init``/``step``/``conserved``, state as a pytree, :mod:`mtpjax.md.integrators`):
:func:`nve`, :func:`nvt_nose_hoover`, :func:`nvt_langevin`, :func:`npt_mtk` (``mode='iso' | 'aniso' | 'tri'``);
force-field adapters in :mod:`mtpjax.md.forcefields`; stages and their transitions in :mod:`mtpjax.md.stages`;
the jitted block in :mod:`mtpjax.md.block`; the driver (overflow, guards, hooks, replicas) in
:mod:`mtpjax.md.simulation`; run files and output (one driver for 1…R replicas) in :mod:`mtpjax.md.run`.
Neighbour lists are in :mod:`mtpjax.geometry.neighbors`, trajectory and checkpoint files in :mod:`mtpjax.io`.
From Python on an ``ase.Atoms``: :func:`simulate` (:mod:`mtpjax.md.api`).
"""
from mtpjax.md.block import THERMO_COLUMNS, make_block  # noqa: F401
from mtpjax.md.integrators import (  # noqa: F401
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
from mtpjax.md.simulation import RunResult, Simulation, SimulationError, stack_states, unstack  # noqa: F401
from mtpjax.md.stages import Stage, StagePosition, enter_stage  # noqa: F401
from mtpjax.md.api import MDTrajectory, simulate  # noqa: F401
