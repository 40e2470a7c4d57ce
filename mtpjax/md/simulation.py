"""The host-side MD driver: neighbour-list allocation, stages, overflow re-allocation, guards, replicas.

:class:`Simulation` runs a list of :class:`~mtpjax.md.stages.Stage` from a state, one jitted block
(:func:`mtpjax.md.block.run_block`) at a time; Python only runs between blocks: writing output (through the
callbacks), re-allocating an overflowed neighbour list (the block is then redone from its start state, so
wrong forces are never kept), moving between stages (:func:`~mtpjax.md.stages.enter_stage`) and stopping with a
:class:`SimulationError` that says which guard fired. Where a run is in its stages is explicit: ``run`` takes a
:class:`~mtpjax.md.stages.StagePosition` and reports the new one, so resuming from a checkpoint is passing the
stored position back.

Replicas: give states with a leading axis (:func:`stack_states`); the block is ``vmap``-ed over replicas
(different seeds, temperatures or structures of equal size) and all advance in one jitted call.
"""
from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field, replace
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import ConfigurationError, MTPJaxError
from mtpjax.geometry.neighbors import NeighborList, NeighborListFns, neighbor_list
from mtpjax.md import integrators as I
from mtpjax.md.block import FAULTS, BlockSpec, run_block
from mtpjax.md.stages import Stage, StagePosition, enter_stage, make_integrator
from mtpjax.units import FS, KB


class SimulationError(MTPJaxError, RuntimeError):
    """The simulation became unphysical (NaN, temperature above the limit, fused atoms, collapsed box)."""


def stack_states(states):
    """Stack a list of states (or neighbour lists) along a new leading replica axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)


def unstack(tree, k):
    """Replica ``k`` of a stacked state (or neighbour list)."""
    return jax.tree_util.tree_map(lambda x: x[k], tree)


def replicate_neighbors(fns: NeighborListFns, positions, cells):
    """Neighbour lists (stacked) for replicas sharing ``fns``' capacity."""
    return stack_states([jax.jit(fns.build)(p, c) for p, c in zip(positions, cells)])


@dataclass
class RunResult:
    """What :meth:`Simulation.run` ends with: the state and list, where the run is now, whether a hook
    stopped it (and its value), the steps done, and the state whose hook value stopped it (not kept as
    ``state``: that is the last state below the threshold)."""

    state: I.MDState
    nbrs: NeighborList
    position: StagePosition
    stopped_by_hook: bool = False
    hook_value: float | None = None
    steps: int = 0
    break_state: I.MDState | None = None


def integrator_key(stage: Stage) -> Stage:
    """``stage`` without what a block takes as arguments (length, temperature/pressure targets, name): the
    stages that share it share one compiled block."""
    return replace(stage, steps=0, temperature=None if stage.ensemble == "nve" else 1.0, temperature_end=None,
                   pressure=0.0, pressure_end=None, name="")


@dataclass
class Simulation:
    """MD of ``stages`` with the force field ``efs_fn(positions, cell, nbrs, species) -> (E, F, virial[, aux])``.

    ``cutoff`` and ``skin`` in Å, ``dt`` in ASE time, ``max_temperature`` in K, ``min_distance`` in Å.
    ``hook = (hook_fn, every)``: ``hook_fn(state, nbrs) -> (value, threshold)`` stops the run when the value
    exceeds the threshold. ``replicas``: number of batched replicas (states with a leading axis), with
    ``replica_temperatures`` scaling every stage's temperature by T_r / T_stage. ``neighbor_fns`` is the
    current neighbour-list allocation (set by :meth:`allocate`, grown when a block overflows).
    """

    efs_fn: Callable
    cutoff: float
    dt: float
    stages: list
    skin: float = 1.0
    pbc: tuple = (True, True, True)
    thermo_every: int = 10
    traj_every: int = 100
    capacity_multiplier: float = 1.25
    neighbor_method: str | None = None
    hook: tuple | None = None
    max_temperature: float = 1e5
    min_distance: float = 0.5
    max_capacity_growth: float = 4.0
    replicas: int | None = None
    replica_temperatures: list | None = None
    dof: int | None = None
    neighbor_fns: NeighborListFns | None = None
    _first_capacity: int | None = field(default=None, repr=False)
    _exact_build: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ConfigurationError(f"timestep must be positive, got {self.dt / FS:g} fs")
        if self.thermo_every < 1 or self.traj_every < 1 or self.traj_every % self.thermo_every:
            raise ConfigurationError("traj_every must be a positive multiple of thermo_every")
        for s in self.stages:
            s.validate()

    # --------------------------------------------------------------- setup
    def allocate(self, positions, cell):
        """Allocate the neighbour list (replicas: from all of them, with the largest count)."""
        pos, cells = np.asarray(positions), np.asarray(cell)
        if self.replicas:
            best = None
            for r in range(pos.shape[0]):
                fns, _ = neighbor_list(pos[r], cells[r], self.pbc, self.cutoff, self.skin, self.capacity_multiplier,
                                       self.neighbor_method)
                if best is None or fns.capacity > best.capacity:
                    best = fns
            self.neighbor_fns = best
            return replicate_neighbors(best, pos, cells)
        fns, _ = neighbor_list(pos, cells, self.pbc, self.cutoff, self.skin, self.capacity_multiplier,
                               self.neighbor_method)
        self.neighbor_fns = fns
        return jax.jit(fns.build)(jnp.asarray(pos), jnp.asarray(cells))

    def exact_neighbors(self, positions, cell) -> NeighborList:
        """A freshly built list for one configuration in the current allocation (the build is jitted once
        per allocation)."""
        if self._exact_build is None or self._exact_build[0] is not self.neighbor_fns:
            self._exact_build = (self.neighbor_fns, jax.jit(self.neighbor_fns.build))
        return self._exact_build[1](positions, cell)

    def stage_at(self, position: StagePosition) -> Stage:
        """The stage ``position`` is in (the last one once the run is complete)."""
        return self.stages[min(position.index, len(self.stages) - 1)]

    def integrator(self, stage: Stage) -> I.Integrator:
        return make_integrator(stage, self.efs_fn, self.neighbor_fns, self.dt, self.dof)

    def init_state(self, positions, masses, cell, species, temperature, seed=0, momenta=None,
                   at: StagePosition = StagePosition()):
        """Initial state(s) with Maxwell–Boltzmann momenta at ``temperature`` K (seeded; replicas: a seed per
        replica, default ``seed + r``), shaped for the stage of ``at``."""
        nbrs = self.allocate(positions, cell)
        integ = self.integrator(self.stage_at(at))
        if not self.replicas:
            st = integ.init(jnp.asarray(positions), masses, cell, nbrs, species,
                            kT=None if temperature is None else KB * temperature, key=jax.random.PRNGKey(seed),
                            momenta=momenta)
            return st, nbrs
        temps = self.replica_temperatures or [temperature] * self.replicas
        seeds = seed if isinstance(seed, (list, tuple)) else [seed + r for r in range(self.replicas)]
        sts = [integ.init(jnp.asarray(positions[r]), masses[r] if np.ndim(masses) == 2 else masses, cell[r],
                          unstack(nbrs, r), species[r] if np.ndim(species) == 2 else species,
                          kT=KB * temps[r], key=jax.random.PRNGKey(seeds[r]),
                          momenta=None if momenta is None else momenta[r])
               for r in range(self.replicas)]
        return stack_states(sts), nbrs

    # --------------------------------------------------------------- targets
    def schedule(self, stage: Stage, t0: float) -> np.ndarray:
        """(t0, t1, kT0, kT1, P0, P1) of ``stage`` started at time ``t0`` (per replica: shape (R, 6))."""
        t1 = t0 + stage.steps * self.dt
        k0, k1 = stage.kT_range()
        p0, p1 = stage.P_range()
        if not self.replicas:
            return np.array([t0, t1, k0, k1, p0, p1], dtype=float)
        rows = []
        for r in range(self.replicas):
            f = 1.0
            if self.replica_temperatures is not None and stage.temperature is not None:
                f = self.replica_temperatures[r] / stage.temperature
            rows.append((t0, t1, k0 * f, k1 * f, p0, p1))
        return np.array(rows, dtype=float)

    def targets(self, position: StagePosition, time) -> tuple[np.ndarray, np.ndarray]:
        """(kT eV, P eV/Å³) at simulation ``time`` (per replica) within the stage of ``position``."""
        stage = self.stage_at(position)
        if position.index >= len(self.stages):
            k1, p1 = stage.kT_range()[1], stage.P_range()[1]
            n = self.replicas or 1
            k = self.schedule(stage, position.t0)[..., 3] if self.replicas else k1
            return (np.asarray(k), np.full(n, p1) if self.replicas else np.asarray(p1))
        t0, t1, k0, k1, p0, p1 = np.moveaxis(self.schedule(stage, position.t0), -1, 0)
        f = np.clip((np.asarray(time, float) - t0) / np.maximum(t1 - t0, 1e-30), 0.0, 1.0)
        return k0 + f * (k1 - k0), p0 + f * (p1 - p0)

    # ----------------------------------------------------------------- run
    def _spec(self, stage: Stage) -> BlockSpec:
        hook_every = 1 if self.hook is None else int(self.hook[1])
        return BlockSpec(integrator_key(stage), self.neighbor_fns, float(self.dt), self.dof, int(self.thermo_every),
                         self.traj_every // self.thermo_every + 1, hook_every, float(self.max_temperature),
                         float(self.min_distance), bool(self.replicas))

    def _reallocate(self, state, stage_number: int, ensemble: str):
        """Grow the neighbour list from ``state`` (the start of a block that overflowed)."""
        if self._first_capacity is None:
            self._first_capacity = self.neighbor_fns.capacity
        self.capacity_multiplier *= 1.25
        nbrs = self.allocate(np.asarray(state.positions), np.asarray(state.cell))
        if self.neighbor_fns.capacity > self.max_capacity_growth * self._first_capacity:
            raise SimulationError(
                f"simulation collapsed in stage {stage_number} ({ensemble}) near step "
                f"{int(np.max(np.asarray(state.step)))}: the neighbour list had to grow from "
                f"{self._first_capacity} to {self.neighbor_fns.capacity} pairs per atom (the density rose "
                f"several-fold; the potential is extrapolating); the last good checkpoint is kept")
        return nbrs

    def _fault(self, res, stage_number: int, ensemble: str) -> SimulationError:
        code = int(np.max(np.asarray(res.fault)))
        what = FAULTS[code].replace("max_temperature", f"{self.max_temperature:g} K").replace(
            "min_distance", f"{self.min_distance:g} Å")
        cause = {1: "the potential is evaluated far outside its training data, or the timestep is too large",
                 2: "the timestep is too large or the potential is extrapolating",
                 3: "the potential is extrapolating (atoms fused)"}[code]
        return SimulationError(
            f"simulation exploded in stage {stage_number} ({ensemble}) near step "
            f"{int(np.max(np.asarray(res.state.step)))}: {what}; likely cause: {cause}; the last good checkpoint "
            f"is kept (reduce the timestep, check the structure/potential)")

    def run(self, state, nbrs, start: StagePosition = StagePosition(), on_block=None, on_frame=None,
            on_checkpoint=None, progress=None) -> RunResult:
        """Run the stages from ``start`` (where ``state`` is) to the end, or until the hook stops it.

        ``on_block(records (n, C), n_records, state)``: thermo rows of a finished block;
        ``on_frame(state, position)`` at steps that are multiples of ``traj_every``;
        ``on_checkpoint(state, nbrs, position)`` after every block; ``progress(steps, wall_s)``. Raises
        :class:`SimulationError` on explosion (the last checkpoint is untouched)."""
        efs_fn = self.efs_fn
        hook_fn = None if self.hook is None else self.hook[0]
        pos, total = StagePosition(*start), 0
        while pos.index < len(self.stages):
            stage = self.stages[pos.index]
            remaining = stage.steps - pos.step
            if remaining <= 0:
                nxt = StagePosition(pos.index + 1, 0, float(np.max(np.asarray(state.time))))
                if nxt.index < len(self.stages):
                    state = enter_stage(state, stage, self.stages[nxt.index])
                pos = nxt
                continue
            step_now = int(np.max(np.asarray(state.step)))
            n = min(remaining, self.traj_every - step_now % self.traj_every)
            t_wall = _time.perf_counter()
            sched = jnp.asarray(self.schedule(stage, pos.t0))
            while True:
                res = run_block(self._spec(stage), efs_fn, hook_fn, state, nbrs, jnp.asarray(n, jnp.int32), sched)
                if not bool(jnp.any(res.overflow)):
                    break
                nbrs = self._reallocate(state, pos.index + 1, stage.ensemble)  # and redo the block
            if bool(jnp.any(res.exploded)):
                raise self._fault(res, pos.index + 1, stage.ensemble)
            hook_stop = bool(jnp.any(res.hook_stopped))
            out_state = res.last_good if hook_stop else res.state
            steps_done = int(np.max(np.asarray(res.steps_done)))
            if on_block is not None:
                nrec, recs = np.asarray(res.n_records), np.asarray(res.records)
                if hook_stop:  # drop rows past the last good state
                    last = np.asarray(out_state.step)
                    keep = recs[..., 0] <= (last[..., None] if recs.ndim == 3 else last)
                    keep &= np.arange(recs.shape[-2]) < (nrec[..., None] if recs.ndim == 3 else nrec)
                    nrec = keep.sum(-1)
                on_block(recs, nrec, out_state)
            state, nbrs = out_state, res.nbrs
            total += steps_done
            pos = pos._replace(step=pos.step + steps_done)
            if progress is not None:
                progress(steps_done, _time.perf_counter() - t_wall)
            if hook_stop:
                # the neighbour list of the last good state: rebuild exactly
                nbrs = self.allocate(np.asarray(state.positions), np.asarray(state.cell))
                if on_frame is not None:
                    on_frame(state, pos)
                return RunResult(state, nbrs, pos, True, float(np.max(np.asarray(res.hook_value))), total,
                                 break_state=res.state)
            if on_frame is not None and int(np.max(np.asarray(state.step))) % self.traj_every == 0:
                on_frame(state, pos)
            if on_checkpoint is not None:
                on_checkpoint(state, nbrs, pos)
        return RunResult(state, nbrs, pos, False, None, total)
