"""The jitted MD block: many integrator steps in one ``jax.lax.while_loop`` (no host round trip inside).

A block advances the state by up to ``n_steps`` steps and stops early when the neighbour list overflows (the
driver re-allocates and redoes the block from its start, so wrong forces are never kept), when a hook value
(e.g. the extrapolation grade) exceeds its threshold, or when a guard fires (:data:`FAULTS`). It records one
thermo row every ``thermo_every`` steps (:data:`THERMO_COLUMNS`), with linear temperature/pressure ramps
evaluated from the simulation time.

:func:`run_block` is the compiled entry point: an ``equinox.filter_jit`` function whose static arguments (the
:class:`BlockSpec`) and the structure of the force field and hook decide what is compiled; their arrays (the
potential's coefficients, the active set) are ordinary arguments, so a retrained potential of the same
structure reuses the compiled block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from mtpjax.geometry.neighbors import NeighborList, NeighborListFns, pair_vectors
from mtpjax.md import integrators as I
from mtpjax.md.stages import Stage, make_integrator
from mtpjax.units import BAR, FS, KB

THERMO_COLUMNS = (
    "step", "time_fs", "temperature_K", "pressure_bar", "epot_eV", "ekin_eV", "conserved_eV", "volume_A3",
    "pxx_bar", "pyy_bar", "pzz_bar", "pyz_bar", "pxz_bar", "pxy_bar", "hook",
)

#: guard codes of :attr:`BlockResult.fault` (0: none)
FAULTS = {1: "the energy or the forces became NaN/inf",
          2: "the temperature rose above max_temperature",
          3: "two atoms came closer than min_distance"}


class BlockCarry(NamedTuple):
    """The while-loop carry of a block."""

    steps_done: jax.Array
    state: I.MDState
    nbrs: NeighborList
    overflow: jax.Array
    records: jax.Array  # (max_records, len(THERMO_COLUMNS))
    n_records: jax.Array
    hook_stopped: jax.Array
    fault: jax.Array  # int code, see FAULTS
    last_good: I.MDState  # state at the last hook check below threshold (== state without a hook)
    hook_value: jax.Array


class BlockResult(NamedTuple):
    state: I.MDState
    nbrs: NeighborList
    overflow: jax.Array
    records: jax.Array
    n_records: jax.Array
    steps_done: jax.Array
    hook_stopped: jax.Array
    fault: jax.Array
    last_good: I.MDState
    hook_value: jax.Array

    @property
    def exploded(self) -> jax.Array:
        return self.fault > 0


def ramp_targets(sched, t):
    """(kT eV, P eV/Å³) at simulation time ``t`` of ``sched`` = (t0, t1, kT0, kT1, P0, P1): linear in time."""
    t0, t1, k0, k1, p0, p1 = sched
    frac = jnp.clip((t - t0) / jnp.maximum(t1 - t0, 1e-30), 0.0, 1.0)
    return k0 + frac * (k1 - k0), p0 + frac * (p1 - p0)


def thermo_record(integ: I.Integrator, state: I.MDState, kT, P0, hook_value) -> jax.Array:
    """One thermo row (:data:`THERMO_COLUMNS`, user units: fs, K, bar, eV, Å³)."""
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

    Guards (:attr:`BlockResult.fault`): the energy or temperature is not finite (1), T > ``max_temperature``
    K (2), or, with ``min_distance`` > 0 and a neighbour list, two atoms are closer than ``min_distance`` Å
    (3: fused atoms, a potential far outside its training data).

    ``sched`` = (t_start, t_end, kT_start, kT_end, P_start, P_end) (ASE units): kT and P are linear in the
    simulation time between t_start and t_end. ``hook_fn(state, nbrs) -> (value, threshold)``: when value >
    threshold the block stops and ``last_good`` is the state of the last check below it (a hook may read
    ``state.aux``, computed by the efs_fn with the forces).
    """
    ncol = len(THERMO_COLUMNS)
    thermo_every = int(thermo_every)
    hook_every = int(hook_every)
    kmax = KB * float(max_temperature)

    def check_hook(c: BlockCarry, st2, nb2, dtype):
        if hook_fn is None:
            return jnp.asarray(False), c.last_good, c.hook_value
        if hook_every == 1:  # every step: no branch
            do_hook = jnp.asarray(True)
            val, thr = tuple(jnp.asarray(v, dtype) for v in hook_fn(st2, nb2))
        else:
            do_hook = (st2.step % hook_every) == 0
            val, thr = jax.lax.cond(
                do_hook,
                lambda: tuple(jnp.asarray(v, dtype) for v in hook_fn(st2, nb2)),
                lambda: (c.hook_value, jnp.asarray(jnp.inf, dtype)),
            )
        stop = do_hook & (val > thr)
        good = jax.tree_util.tree_map(lambda a, b: jnp.where(do_hook & ~stop, a, b), st2, c.last_good)
        return stop, good, val

    def fault_of(st2, nb2, dof):
        ktemp = 2.0 * I.kinetic_energy(st2.momenta, st2.masses) / dof
        code = jnp.where(~jnp.isfinite(st2.energy) | ~jnp.isfinite(ktemp), 1, jnp.where(ktemp > kmax, 2, 0))
        if min_distance > 0 and neighbor_fns is not None:
            rv, vm = pair_vectors(st2.positions, st2.cell, nb2.idx, nb2.shifts)
            r2 = jnp.where(vm, jnp.sum(rv * rv, axis=-1), jnp.inf)
            code = jnp.where((code == 0) & (jnp.min(r2, initial=jnp.inf) < min_distance**2), 3, code)
        return code.astype(jnp.int32)

    def block(state, nbrs, n_steps, sched) -> BlockResult:
        dtype = state.energy.dtype
        dof = integ.dof(state.positions.shape[0])

        def cond(c: BlockCarry):
            return (c.steps_done < n_steps) & ~c.overflow & ~c.hook_stopped & (c.fault == 0)

        def body(c: BlockCarry) -> BlockCarry:
            kT, P0 = ramp_targets(sched, c.state.time)
            st2, nb2 = integ.step(c.state, c.nbrs, kT, P0)
            ov2 = nb2.did_overflow if neighbor_fns is not None else jnp.asarray(False)
            stop, good, hv = check_hook(c, st2, nb2, dtype)
            rec = ((st2.step % thermo_every) == 0) & ~ov2
            kT2, P2 = ramp_targets(sched, st2.time)
            records = jax.lax.cond(
                rec,
                lambda b: jax.lax.dynamic_update_slice(
                    b, thermo_record(integ, st2, kT2, P2, hv)[None, :],
                    (jnp.minimum(c.n_records, max_records - 1), jnp.zeros((), c.n_records.dtype))),
                lambda b: b,
                c.records,
            )
            return BlockCarry(c.steps_done + 1, st2, nb2, ov2, records, c.n_records + rec.astype(c.n_records.dtype),
                              stop, fault_of(st2, nb2, dof), good, hv)

        zero, false = jnp.zeros((), jnp.int32), jnp.asarray(False)
        c = BlockCarry(zero, state, nbrs, false, jnp.zeros((max_records, ncol), dtype), zero, false, zero, state,
                       jnp.asarray(-jnp.inf, dtype))
        c = jax.lax.while_loop(cond, body, c)
        good = c.state if hook_fn is None else c.last_good
        return BlockResult(c.state, c.nbrs, c.overflow, c.records, c.n_records, c.steps_done, c.hook_stopped,
                           c.fault, good, c.hook_value)

    return block


@dataclass(frozen=True)
class BlockSpec:
    """The static description of a compiled block (hashable: one compilation per distinct spec)."""

    stage: Stage
    neighbor_fns: NeighborListFns | None
    dt: float
    dof: int | None
    thermo_every: int
    max_records: int
    hook_every: int
    max_temperature: float
    min_distance: float
    replicas: bool


_TRACES = [0]


def block_traces() -> int:
    """Number of times an MD block has been traced (≈ compiled) in this process."""
    return _TRACES[0]


@eqx.filter_jit
def run_block(spec: BlockSpec, efs_fn, hook_fn, state, nbrs, n_steps, sched) -> BlockResult:
    """Advance ``state`` by up to ``n_steps`` steps of ``spec.stage`` (see :func:`make_block`).

    ``efs_fn(positions, cell, nbrs, species)`` and ``hook_fn(state, nbrs)`` may be equinox modules: their
    arrays are traced arguments, their structure is static. With ``spec.replicas`` every argument but the
    force field and the hook has a leading replica axis and the block is ``vmap``-ed over it."""
    _TRACES[0] += 1  # Python side effect: runs once per trace
    fns = spec.neighbor_fns
    if spec.replicas and fns is not None:
        fns = fns.for_replicas("replica")

    def one(state, nbrs, sched):
        integ = make_integrator(spec.stage, efs_fn, fns, spec.dt, spec.dof)
        block = make_block(integ, fns, spec.thermo_every, spec.max_records, hook_fn, spec.hook_every,
                           spec.max_temperature, spec.min_distance)
        return block(state, nbrs, n_steps, sched)

    if spec.replicas:
        return jax.vmap(one, axis_name="replica")(state, nbrs, sched)
    return one(state, nbrs, sched)
