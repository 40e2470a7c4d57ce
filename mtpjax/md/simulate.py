"""Jitted MD blocks and the host-side driver (stages, overflow redo, hooks, replicas).

Inside a block everything runs in one ``jax.lax.while_loop``: the integrator
step (with the on-device neighbour-list update), linear temperature/pressure
ramps evaluated from the simulation time, thermo records every
``thermo_every`` steps, the optional hook (an on-device scalar, e.g. an
extrapolation grade, every ``hook_every`` steps) and the explosion guard
(NaN or T above ``max_temperature``). Python only runs between blocks:
writing output, re-allocating an overflowed neighbour list (the block is then
redone from its start state, so wrong forces are never kept) and moving
between stages.

Parameters: an efs_fn or hook that is a
:class:`~mtpjax.md.forcefields.Parametric` (``mtp_efs``, the grade hooks of
:mod:`mtpjax.active.md_grade`) enters the jitted block through its ``params``
argument; such blocks are cached per process by the functions' static keys, so
a new :class:`Simulation` with a retrained potential of the same structure
(and the same stage, timestep, neighbour capacity...) reuses the compiled
block (:func:`block_traces` counts the traces). The hook may read
``state.aux``, a value the efs_fn returned together with the forces (the
fused extrapolation grade).

Replicas: give states with a leading axis (:func:`stack_states`); the block is
``vmap``-ed over replicas (different seeds, temperatures or structures of
equal size) and all advance in one jitted call.
"""
from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigurationError, MTPJaxError
from . import integrators as I
from .forcefields import is_parametric
from .neighbors import NeighborList, NeighborListFns, neighbor_list, pair_vectors

FS = 0.09822694788464063  # ase.units.fs
KB = 8.617330337217213e-05  # ase.units.kB (eV/K)
BAR = 6.241509125883258e-07  # ase.units.bar (eV/Å³)
GPA = 0.006241509125883258
AMU_PER_A3_TO_G_CM3 = 1.66053906660

THERMO_COLUMNS = (
    "step", "time_fs", "temperature_K", "pressure_bar", "epot_eV", "ekin_eV", "conserved_eV", "volume_A3",
    "pxx_bar", "pyy_bar", "pzz_bar", "pyz_bar", "pxz_bar", "pxy_bar", "hook",
)


class SimulationError(MTPJaxError, RuntimeError):
    """The simulation became unphysical (NaN, temperature above the limit...)."""


# ------------------------------------------------------------------ stages
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


def make_integrator(stage: Stage, efs_fn, neighbor_fns, dt: float, dof=None) -> I.Integrator:
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


# ------------------------------------------------------------------- block
class BlockResult(NamedTuple):
    state: I.MDState
    nbrs: NeighborList
    overflow: jax.Array
    records: jax.Array  # (max_records, len(THERMO_COLUMNS))
    n_records: jax.Array
    steps_done: jax.Array
    hook_stopped: jax.Array
    exploded: jax.Array
    last_good: I.MDState  # state at the last hook check below threshold (== state without a hook)
    hook_value: jax.Array


def _record(integ, state, kT, P0, hook_value):
    n = state.positions.shape[0]
    dof = integ.dof(n)
    ek = I.kinetic_energy(state.momenta, state.masses)
    pt = I.pressure_tensor(state)
    return jnp.stack(
        [
            state.step.astype(state.energy.dtype),
            state.time / FS,
            2.0 * ek / dof / KB,
            jnp.trace(pt) / 3.0 / BAR,
            state.energy,
            ek,
            integ.conserved(state, kT, P0),
            I.volume(state.cell),
            pt[0, 0] / BAR, pt[1, 1] / BAR, pt[2, 2] / BAR, pt[1, 2] / BAR, pt[0, 2] / BAR, pt[0, 1] / BAR,
            hook_value,
        ]
    )


def make_block(
    integ: I.Integrator,
    neighbor_fns: NeighborListFns | None,
    thermo_every: int,
    max_records: int,
    hook_fn: Callable | None = None,
    hook_every: int = 1,
    max_temperature: float = 1e5,
    min_distance: float = 0.0,
):
    """Build ``block(state, nbrs, n_steps, sched) -> BlockResult`` (not jitted).

    The block stops as *exploded* when the energy or temperature is not
    finite, T > ``max_temperature`` (K) or, with ``min_distance`` > 0 and a
    neighbour list, two atoms come closer than ``min_distance`` (Å; fused
    atoms: a potential far outside its training data).

    ``sched`` = (t_start, t_end, kT_start, kT_end, P_start, P_end) (ASE units):
    kT and P are linear in the simulation time between t_start and t_end.
    ``hook_fn(state, nbrs) -> (value, threshold)``: when value > threshold the
    block stops and ``last_good`` is the state of the last check below it
    (a hook may read ``state.aux``, computed by the efs_fn with the forces).
    """
    ncol = len(THERMO_COLUMNS)
    thermo_every = int(thermo_every)
    hook_every = int(hook_every)
    kmax = KB * float(max_temperature)

    def targets(sched, t):
        t0, t1, k0, k1, p0, p1 = sched
        frac = jnp.clip((t - t0) / jnp.maximum(t1 - t0, 1e-30), 0.0, 1.0)
        return k0 + frac * (k1 - k0), p0 + frac * (p1 - p0)

    def block(state, nbrs, n_steps, sched):
        dtype = state.energy.dtype
        n = state.positions.shape[0]
        dof = integ.dof(n)
        buf = jnp.zeros((max_records, ncol), dtype)

        def cond(c):
            i, st, nb, ov, buf, nrec, hs, ex, good, hv = c
            return (i < n_steps) & ~ov & ~hs & ~ex

        def body(c):
            i, st, nb, ov, buf, nrec, hs, ex, good, hv = c
            kT, P0 = targets(sched, st.time)
            st2, nb2 = integ.step(st, nb, kT, P0)
            ov2 = nb2.did_overflow if neighbor_fns is not None else jnp.asarray(False)
            if hook_fn is not None:
                if hook_every == 1:  # every step: no branch
                    do_hook = jnp.asarray(True)
                    val, thr = tuple(jnp.asarray(v, dtype) for v in hook_fn(st2, nb2))
                else:
                    do_hook = (st2.step % hook_every) == 0
                    val, thr = jax.lax.cond(
                        do_hook,
                        lambda: tuple(jnp.asarray(v, dtype) for v in hook_fn(st2, nb2)),
                        lambda: (hv, jnp.asarray(jnp.inf, dtype)),
                    )
                hs2 = do_hook & (val > thr)
                good2 = jax.tree_util.tree_map(
                    lambda a, b: jnp.where(do_hook & ~hs2, a, b), st2, good
                )
                hv2 = val
            else:
                hs2, good2, hv2 = jnp.asarray(False), good, hv
            ktemp = 2.0 * I.kinetic_energy(st2.momenta, st2.masses) / dof
            ex2 = ~jnp.isfinite(st2.energy) | ~jnp.isfinite(ktemp) | (ktemp > kmax)
            if min_distance > 0 and neighbor_fns is not None:
                rv, vm = pair_vectors(st2.positions, st2.cell, nb2.idx, nb2.shifts)
                r2 = jnp.where(vm, jnp.sum(rv * rv, axis=-1), jnp.inf)
                ex2 = ex2 | (jnp.min(r2, initial=jnp.inf) < min_distance**2)
            rec = (st2.step % thermo_every) == 0
            kT2, P2 = targets(sched, st2.time)
            buf2 = jax.lax.cond(
                rec & ~ov2,
                lambda b: jax.lax.dynamic_update_slice(
                    b, _record(integ, st2, kT2, P2, hv2)[None, :], (jnp.minimum(nrec, max_records - 1), jnp.zeros((), nrec.dtype))
                ),
                lambda b: b,
                buf,
            )
            nrec2 = nrec + (rec & ~ov2).astype(nrec.dtype)
            return (i + 1, st2, nb2, ov2, buf2, nrec2, hs2, ex2, good2, hv2)

        zero = jnp.zeros((), jnp.int32)
        f = jnp.asarray(False)
        hv0 = jnp.asarray(-jnp.inf, dtype)
        c = (zero, state, nbrs, f, buf, zero, f, f, state, hv0)
        i, st, nb, ov, buf, nrec, hs, ex, good, hv = jax.lax.while_loop(cond, body, c)
        if hook_fn is None:
            good = st
        return BlockResult(st, nb, ov, buf, nrec, i, hs, ex, good, hv)

    return block


# compiled blocks of parametric force fields/hooks, shared between Simulations
_BLOCK_CACHE = None  # collections.OrderedDict, made on first use
_BLOCK_CACHE_SIZE = 32
_TRACES = [0]


def block_traces() -> int:
    """Number of times an MD block has been traced (≈ compiled) in this process."""
    return _TRACES[0]


def _shared_cache():
    global _BLOCK_CACHE
    if _BLOCK_CACHE is None:
        from collections import OrderedDict

        _BLOCK_CACHE = OrderedDict()
    return _BLOCK_CACHE


def stack_states(states):
    """Stack a list of states (or neighbour lists) along a new leading replica axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)


def unstack(tree, k):
    return jax.tree_util.tree_map(lambda x: x[k], tree)


def replicate_neighbors(fns: NeighborListFns, positions, cells):
    """Neighbour lists (stacked) for replicas sharing ``fns``' capacity."""
    return stack_states([jax.jit(fns.build)(p, c) for p, c in zip(positions, cells)])


# ------------------------------------------------------------------ driver
@dataclass
class RunResult:
    state: I.MDState
    nbrs: NeighborList
    stopped_by_hook: bool = False
    hook_value: float | None = None
    steps: int = 0
    break_state: I.MDState | None = None  # the state whose hook value stopped the run (not kept as ``state``)


@dataclass
class Simulation:
    """Host-side driver of a multi-stage run.

    Parameters: ``efs_fn`` (see :mod:`mtpjax.md.forcefields`), ``cutoff`` of
    the potential (Å), ``dt`` (ASE time), ``stages`` (list of :class:`Stage`),
    ``skin`` (Å), ``pbc``, ``thermo_every``/``traj_every`` (steps, traj a
    multiple of thermo), ``hook``: ``(hook_fn, hook_every)``, ``replicas``:
    the states carry a leading replica axis, ``sched_override``: per-replica
    (kT scale factors) not needed; different replica temperatures go through
    ``replica_temperatures`` (K, one per replica, replacing the stages').
    ``on_block(sim, result_records, state)`` and ``on_frame(state)`` are host
    callbacks used by the writers. Collapse guards: the run stops with
    :class:`SimulationError` when two atoms come closer than ``min_distance``
    (Å; 0 disables) or when the neighbour capacity has to grow beyond
    ``max_capacity_growth`` × its first allocation (a box collapsing to
    several times its density under a potential that extrapolates badly —
    without the guard the re-allocations would eat the memory).
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
    # run bookkeeping (checkpointed)
    stage_index: int = 0
    stage_step: int = 0
    stage_t0: float = 0.0
    neighbor_fns: NeighborListFns | None = None
    _first_capacity: int | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ConfigurationError(f"timestep must be positive, got {self.dt / FS:g} fs")
        if self.thermo_every < 1 or self.traj_every < 1 or self.traj_every % self.thermo_every:
            raise ConfigurationError("traj_every must be a positive multiple of thermo_every")
        for s in self.stages:
            s.validate()

    # --------------------------------------------------------------- setup
    def allocate(self, positions, cell):
        """Allocate the neighbour list (replicas: from all and the largest count)."""
        pos = np.asarray(positions)
        cells = np.asarray(cell)
        if self.replicas:
            best = None
            for r in range(pos.shape[0]):
                fns, _ = neighbor_list(
                    pos[r], cells[r], self.pbc, self.cutoff, self.skin, self.capacity_multiplier, self.neighbor_method
                )
                if best is None or fns.capacity > best.capacity:
                    best = fns
            self.neighbor_fns = best
            return replicate_neighbors(best, pos, cells)
        fns, nbrs = neighbor_list(pos, cells, self.pbc, self.cutoff, self.skin, self.capacity_multiplier, self.neighbor_method)
        self.neighbor_fns = fns
        return jax.jit(fns.build)(jnp.asarray(pos), jnp.asarray(cells))

    def integrator(self, stage: Stage) -> I.Integrator:
        return make_integrator(stage, self.efs_fn, self.neighbor_fns, self.dt, self.dof)

    def init_state(self, positions, masses, cell, species, temperature, seed: int = 0, momenta=None):
        """Initial state(s) with Maxwell–Boltzmann momenta at ``temperature`` K (seeded), shaped for the
        current stage (``stage_index``)."""
        nbrs = self.allocate(positions, cell)
        integ = self.integrator(self.stages[min(self.stage_index, len(self.stages) - 1)])
        if self.replicas:
            temps = self.replica_temperatures or [temperature] * self.replicas
            seeds = seed if isinstance(seed, (list, tuple)) else [seed + r for r in range(self.replicas)]
            sts = []
            for r in range(self.replicas):
                sts.append(
                    integ.init(
                        jnp.asarray(positions[r]), masses[r] if np.ndim(masses) == 2 else masses,
                        cell[r], unstack(nbrs, r), species[r] if np.ndim(species) == 2 else species,
                        kT=KB * temps[r], key=jax.random.PRNGKey(seeds[r]),
                        momenta=None if momenta is None else momenta[r],
                    )
                )
            return stack_states(sts), nbrs
        st = integ.init(
            jnp.asarray(positions), masses, cell, nbrs, species,
            kT=None if temperature is None else KB * temperature, key=jax.random.PRNGKey(seed), momenta=momenta,
        )
        return st, nbrs

    def _block_fn(self, stage: Stage, max_records: int):
        """Jitted ``fn(efs_params, hook_params, state, nbrs, n_steps, sched)``.

        Parametric efs_fn and hook (or no hook): cached per process by their
        static keys, so another Simulation of the same structure reuses it;
        otherwise cached on this Simulation (the block closes over them).
        """
        hook_fn, hook_every = (None, 1) if self.hook is None else self.hook
        hook_every = int(hook_every)
        efs_p = is_parametric(self.efs_fn)
        hook_p = hook_fn is None or is_parametric(hook_fn)
        stage_key = (stage.ensemble, stage.barostat, stage.tdamp, stage.pdamp, stage.tchain, stage.pchain,
                     stage.tloop, stage.ploop)
        key = stage_key + (self.neighbor_fns, max_records)
        shared = efs_p and hook_p
        if shared:
            key = ("block", self.efs_fn.key, None if hook_fn is None else hook_fn.key, hook_every, key,
                   float(self.dt), self.dof, int(self.thermo_every), float(self.max_temperature), bool(self.replicas),
                   float(self.min_distance))
            cache = _shared_cache()
        else:
            cache = self._cache
        fn = cache.get(key)
        if fn is None:
            fns = self.neighbor_fns
            if self.replicas and fns is not None:
                fns = fns.for_replicas("replica")
            efs_fn, dt, dof = self.efs_fn, self.dt, self.dof
            thermo_every, max_temperature, min_distance = self.thermo_every, self.max_temperature, self.min_distance

            def blk(eparams, hparams, state, nbrs, n_steps, sched):
                _TRACES[0] += 1  # Python side effect: runs once per trace
                efs = efs_fn.bind(eparams) if efs_p else efs_fn
                hk = hook_fn.bind(hparams) if (hook_fn is not None and is_parametric(hook_fn)) else hook_fn
                integ = make_integrator(stage, efs, fns, dt, dof)
                b = make_block(integ, fns, thermo_every, max_records, hk, hook_every, max_temperature, min_distance)
                return b(state, nbrs, n_steps, sched)

            if self.replicas:
                blk = jax.vmap(blk, in_axes=(None, None, 0, 0, None, 0), axis_name="replica")
            fn = jax.jit(blk)
            cache[key] = fn
            if shared:
                while len(cache) > _BLOCK_CACHE_SIZE:
                    cache.popitem(last=False)
        elif shared:
            cache.move_to_end(key)
        return fn

    def _params(self):
        """(efs params, hook params) passed to the jitted block (None when closed over)."""
        ep = self.efs_fn.params if is_parametric(self.efs_fn) else None
        hook_fn = None if self.hook is None else self.hook[0]
        hp = hook_fn.params if (hook_fn is not None and is_parametric(hook_fn)) else None
        return ep, hp

    def _sched(self, stage: Stage):
        t0 = self.stage_t0
        t1 = t0 + stage.steps * self.dt
        k0, k1 = stage.kT_range()
        p0, p1 = stage.P_range()
        if self.replicas:
            temps = self.replica_temperatures
            rows = []
            for r in range(self.replicas):
                if temps is not None and stage.temperature is not None:
                    f = temps[r] / stage.temperature
                    rows.append((t0, t1, k0 * f, k1 * f, p0, p1))
                else:
                    rows.append((t0, t1, k0, k1, p0, p1))
            return jnp.asarray(np.array(rows, dtype=float))
        return jnp.asarray(np.array([t0, t1, k0, k1, p0, p1], dtype=float))

    # ----------------------------------------------------------------- run
    def run(self, state, nbrs, on_block=None, on_frame=None, should_checkpoint=None, progress=None) -> RunResult:
        """Run the remaining stages from ``state`` (resumable through the bookkeeping fields).

        ``on_block(records (n, C) numpy, state)``: thermo rows of a finished
        block; ``on_frame(state)`` at steps that are multiples of
        ``traj_every``; ``should_checkpoint(sim, state, nbrs)`` after every
        block. Raises :class:`SimulationError` on explosion, leaving the
        checkpoints untouched.
        """
        total = 0
        max_rec = self.traj_every // self.thermo_every + 1
        while self.stage_index < len(self.stages):
            stage = self.stages[self.stage_index]
            remaining = stage.steps - self.stage_step
            if remaining <= 0:
                self.stage_index += 1
                self.stage_step = 0
                self.stage_t0 = float(np.max(np.asarray(state.time)))
                if self.stage_index < len(self.stages):
                    state = enter_stage(state, stage, self.stages[self.stage_index])
                continue
            step_now = int(np.max(np.asarray(state.step)))
            n = min(remaining, self.traj_every - step_now % self.traj_every)
            t_wall = _time.perf_counter()
            while True:
                fn = self._block_fn(stage, max_rec)
                res = fn(*self._params(), state, nbrs, jnp.asarray(n, jnp.int32), self._sched(stage))
                if bool(jnp.any(res.overflow)):
                    # re-allocate from the block's start state and redo the block
                    if self._first_capacity is None:
                        self._first_capacity = self.neighbor_fns.capacity
                    self.capacity_multiplier *= 1.25
                    pos = np.asarray(state.positions)
                    cells = np.asarray(state.cell)
                    nbrs = self.allocate(pos, cells)
                    if self.neighbor_fns.capacity > self.max_capacity_growth * self._first_capacity:
                        raise SimulationError(
                            f"simulation collapsed in stage {self.stage_index + 1} ({stage.ensemble}) near step "
                            f"{int(np.max(np.asarray(state.step)))}: the neighbour list had to grow from "
                            f"{self._first_capacity} to {self.neighbor_fns.capacity} pairs per atom (the density "
                            f"rose several-fold; the potential is extrapolating); the last good checkpoint is kept")
                    continue
                break
            if bool(jnp.any(res.exploded)):
                recs = np.asarray(res.records)
                raise SimulationError(
                    f"simulation exploded in stage {self.stage_index + 1} ({stage.ensemble}) near step "
                    f"{int(np.max(np.asarray(res.state.step)))}: energy NaN, temperature above "
                    f"{self.max_temperature:g} K or atoms closer than {self.min_distance:g} Å; the last good "
                    f"checkpoint is kept (reduce the timestep, check the structure/potential)"
                )
            hook_stop = bool(jnp.any(res.hook_stopped))
            out_state = res.last_good if hook_stop else res.state
            steps_done = int(np.max(np.asarray(res.steps_done)))
            if on_block is not None:
                nrec = np.asarray(res.n_records)
                recs = np.asarray(res.records)
                if hook_stop:  # drop rows past the last good state
                    last = np.asarray(out_state.step)
                    keep = recs[..., 0] <= (last[..., None] if recs.ndim == 3 else last)
                    keep &= np.arange(recs.shape[-2]) < (nrec[..., None] if recs.ndim == 3 else nrec)
                    nrec = keep.sum(-1)
                on_block(recs, nrec, out_state)
            state, nbrs = out_state, res.nbrs
            total += steps_done
            self.stage_step += steps_done
            if progress is not None:
                progress(steps_done, _time.perf_counter() - t_wall)
            if hook_stop:
                # the neighbour list of the last good state: rebuild exactly
                nbrs = self.allocate(np.asarray(state.positions), np.asarray(state.cell))
                if on_frame is not None:
                    on_frame(state)
                hv = np.asarray(res.hook_value)
                return RunResult(state, nbrs, True, float(np.max(hv)), total, break_state=res.state)
            if on_frame is not None and int(np.max(np.asarray(state.step))) % self.traj_every == 0:
                on_frame(state)
            if should_checkpoint is not None:
                should_checkpoint(self, state, nbrs)
        return RunResult(state, nbrs, False, None, total)
