"""MD stages: what one stage of a run is, where a run is within its stages, and what carries over between them.

A run is a list of :class:`Stage` (ensemble, length, temperature/pressure targets and ramps, damping; ASE
units) made from the user's ``[[stage]]`` tables (:class:`mtpjax.config.md.StageSpec`) by
:func:`stage_from_spec`. :class:`StagePosition` says where a run is (stage index, step within it, the stage's
start time); :func:`enter_stage` is the rule for the integrator state at a stage change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from mtpjax.config.md import StageSpec
from mtpjax.errors import ConfigurationError
from mtpjax.md import integrators as I
from mtpjax.units import FS, KB

import jax.numpy as jnp


@dataclass(frozen=True)
class Stage:
    """One stage of a run (host side, user units converted to ASE units).

    ``ensemble``: 'nve', 'nvt' (Nosé–Hoover chain), 'langevin', 'npt'.
    ``temperature`` (T at the start, K) and ``temperature_end`` (K, linear ramp
    in time; None = constant); ``pressure``/``pressure_end`` in eV/Å³;
    ``tdamp``/``pdamp`` in ASE time; ``barostat`` 'iso' | 'aniso' | 'tri'.
    """

    ensemble: str
    steps: int
    temperature: float | None = None
    temperature_end: float | None = None
    pressure: float = 0.0
    pressure_end: float | None = None
    tdamp: float | None = None
    pdamp: float | None = None
    barostat: str = "iso"
    tchain: int = 3
    pchain: int = 3
    tloop: int = 1
    ploop: int = 1
    name: str = ""

    def validate(self):
        if self.ensemble not in ("nve", "nvt", "langevin", "npt"):
            raise ConfigurationError(
                f"stage {self.name!r}: unknown ensemble {self.ensemble!r} (use nve, nvt, langevin or npt)"
            )
        if int(self.steps) < 0:
            raise ConfigurationError(f"stage {self.name!r}: negative number of steps {self.steps}")
        if self.ensemble != "nve":
            if self.temperature is None or not self.temperature > 0:
                raise ConfigurationError(f"stage {self.name!r}: {self.ensemble} needs a positive temperature")
            if self.temperature_end is not None and not self.temperature_end > 0:
                raise ConfigurationError(f"stage {self.name!r}: temperature_end must be positive")
            if self.tdamp is None or not self.tdamp > 0:
                raise ConfigurationError(f"stage {self.name!r}: tdamp must be positive, got {self.tdamp}")
        if self.ensemble == "npt":
            if self.pdamp is None or not self.pdamp > 0:
                raise ConfigurationError(f"stage {self.name!r}: pdamp must be positive, got {self.pdamp}")
            if self.barostat not in ("iso", "aniso", "tri"):
                raise ConfigurationError(
                    f"stage {self.name!r}: unknown barostat {self.barostat!r} (iso, aniso or tri)"
                )
        return self

    def kT_range(self):
        if self.temperature is None:
            return 0.0, 0.0
        t1 = self.temperature if self.temperature_end is None else self.temperature_end
        return KB * self.temperature, KB * t1

    def P_range(self):
        p1 = self.pressure if self.pressure_end is None else self.pressure_end
        return float(self.pressure), float(p1)


class StagePosition(NamedTuple):
    """Where a run is: stage ``index`` (== len(stages) when finished), ``step`` within that stage and the
    simulation time ``t0`` (ASE units) at which the stage started."""

    index: int = 0
    step: int = 0
    t0: float = 0.0


def schedule_position(stages, step: int, dt: float) -> StagePosition:
    """The :class:`StagePosition` of global time step ``step`` of ``stages`` (time step ``dt``)."""
    acc = 0
    for i, st in enumerate(stages):
        if step < acc + int(st.steps):
            return StagePosition(i, step - acc, acc * dt)
        acc += int(st.steps)
    return StagePosition(len(stages), 0, acc * dt)


def stage_from_spec(spec: StageSpec, timestep_fs: float, name: str = "") -> Stage:
    """The :class:`Stage` (ASE units) of a ``[[stage]]`` table; Tdamp defaults to 100, Pdamp to 1000 time steps."""
    return Stage(
        ensemble=spec.ensemble, steps=spec.n_steps(timestep_fs), temperature=spec.temperature_K,
        temperature_end=spec.temperature_end_K, pressure=spec.pressure_ev_A3() or 0.0,
        pressure_end=spec.pressure_ev_A3(end=True),
        tdamp=(spec.tdamp_fs if spec.tdamp_fs is not None else 100.0 * timestep_fs) * FS,
        pdamp=(spec.pdamp_fs if spec.pdamp_fs is not None else 1000.0 * timestep_fs) * FS,
        barostat=spec.barostat, tchain=spec.tchain, pchain=spec.pchain, tloop=spec.tloop, ploop=spec.ploop,
        name=spec.name or name,
    ).validate()


def stages_from_specs(specs, timestep_fs: float) -> list[Stage]:
    """:func:`stage_from_spec` of every table (unnamed stages are ``stage1``, ``stage2``, …)."""
    return [stage_from_spec(s, timestep_fs, f"stage{k + 1}") for k, s in enumerate(specs)]


def make_integrator(stage: Stage, efs_fn, neighbor_fns, dt: float, dof=None) -> I.Integrator:
    """The integrator of ``stage`` (``dt`` in ASE time; ``dof`` degrees of freedom, default 3N − 3)."""
    stage.validate()
    if stage.ensemble == "nve":
        return I.nve(efs_fn, neighbor_fns, dt)
    if stage.ensemble == "nvt":
        return I.nvt_nose_hoover(efs_fn, neighbor_fns, dt, stage.tdamp, stage.tchain, stage.tloop, dof=dof)
    if stage.ensemble == "langevin":
        return I.nvt_langevin(efs_fn, neighbor_fns, dt, stage.tdamp)
    return I.npt_mtk(
        efs_fn, neighbor_fns, dt, stage.tdamp, stage.pdamp, stage.barostat,
        stage.tchain, stage.pchain, stage.tloop, stage.ploop, dof=dof,
    )


def chain_lengths(stage: Stage) -> tuple[int, int]:
    """(thermostat, barostat) Nosé–Hoover chain lengths of ``stage``'s integrator state (1 where unused)."""
    if stage.ensemble == "nvt":
        return stage.tchain, 1
    if stage.ensemble == "npt":
        return stage.tchain, stage.pchain
    return 1, 1


def enter_stage(state: I.MDState, prev: Stage, new: Stage) -> I.MDState:
    """The state at the start of stage ``new`` after stage ``prev`` (positions, momenta, cell carried).

    The rule for the extended variables, as when a LAMMPS ``fix nvt``/``fix npt`` is redefined between runs
    only where the two stages disagree:

    * the particles' Nosé–Hoover chain (nvt, npt) is carried over when ``prev`` had one of the same length,
      otherwise it starts at rest (η = p_η = 0);
    * the barostat's chain and the cell momenta are carried over only between npt stages with the same
      barostat (iso/aniso/tri) and chain length, otherwise they start at rest (a new barostat starts from a
      cell at rest; an nvt/nve/langevin stage has none).

    Works on single states and on replicas (leading axis)."""
    (mt0, mb0), (mt1, mb1) = chain_lengths(prev), chain_lengths(new)
    nhc = ("nvt", "npt")

    def rest(chain, m):
        z = jnp.zeros(chain.eta.shape[:-1] + (m,), chain.eta.dtype)
        return I.ChainState(z, z)

    thermo = state.thermostat
    if not (prev.ensemble in nhc and new.ensemble in nhc and mt0 == mt1):
        thermo = rest(thermo, mt1)
    baro, p_cell = state.barostat, state.p_cell
    if not (prev.ensemble == new.ensemble == "npt" and prev.barostat == new.barostat and mb0 == mb1):
        baro, p_cell = rest(baro, mb1), jnp.zeros_like(p_cell)
    return state._replace(thermostat=thermo, barostat=baro, p_cell=p_cell)


