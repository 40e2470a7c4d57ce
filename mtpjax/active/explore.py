"""The exploration step of learning on the fly: MTP-MD of one system, graded as it runs.

One call of :func:`explore` is what MLIP users do with LAMMPS between retrainings: run MD with the current
potential and its active set, stop at the first frame whose extrapolation grade γ exceeds the break threshold,
and keep the frames above the select threshold as candidates for labelling (Podryabinkin & Shapeev 2017;
Novikov et al. 2021; docs/spec/active_learning.md). In steps:

1. :func:`start_frame` — where the run starts: the last restart frame (positions, cell, momenta and, for a
   schedule, the stage position), the relaxed bootstrap cell, or the system's structure;
2. :func:`anchor_steps` — with ``anchors_per_stage = n``, the global steps whose frames are labelled whatever
   their grade (n evenly spaced frames of every stage of a schedule);
3. :func:`walk` — one trajectory (``md.walkers`` of them, from the same frame with new momenta for all but the
   first): candidates, anchors, the grades seen, whether it broke or exploded, how far it got;
4. :func:`explore` — the walkers together: the restart frame (the furthest walker's last good frame), the
   candidate and anchor files, and the record of the run (``md_<system>.json``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, covalent_radii
from ase.io import read
from ase.neighborlist import neighbor_list

from mtpjax.active.md_grade import hook_grade, md_grade_setup
from mtpjax.config.learn import LearnMDSpec, SystemSpec
from mtpjax.io.atomic import atomic_write_json
from mtpjax.io.cfg import Configuration, write_cfg
from mtpjax.md.simulation import Simulation, SimulationError
from mtpjax.md.stages import Stage, StagePosition, schedule_position, stages_from_specs
from mtpjax.units import BAR, FS


def system_stages(md: LearnMDSpec, name: str) -> list[Stage]:
    """The MD stages of a system: ``md.schedule`` (``mtpjax md`` stage tables) or one stage from the md keys
    (``steps`` at ``temperature_K``)."""
    if md.schedule is None:
        return [Stage(md.ensemble, int(md.steps), temperature=float(md.temperature_K),
                      temperature_end=md.temperature_end_K, pressure=float(md.pressure_bar) * BAR,
                      tdamp=float(md.tdamp_fs) * FS, pdamp=float(md.pdamp_fs) * FS, barostat=md.barostat,
                      name=name)]
    return stages_from_specs(md.schedule, md.timestep_fs)


def closest_pair(positions, cell, symbols, factor: float):
    """``(i, j, r)`` of a pair closer than ``factor`` × (sum of covalent radii), or None (periodic cell)."""
    if factor <= 0:
        return None
    rc = factor * np.array([covalent_radii[atomic_numbers[s]] for s in symbols])
    at = Atoms(symbols=list(symbols), positions=np.asarray(positions), cell=np.asarray(cell), pbc=True)
    i, j, d = neighbor_list("ijd", at, 2.0 * float(rc.max()))
    bad = np.nonzero(d < rc[i] + rc[j])[0]
    return None if bad.size == 0 else (int(i[bad[0]]), int(j[bad[0]]), float(d[bad[0]]))


class StartFrame(NamedTuple):
    """Where a system's MD starts: positions (N, 3), cell (3, 3), MLIP types (N,), momenta (N, 3) or None,
    and for a schedule continued after a break its stage position, global step and time (ASE units)."""

    positions: np.ndarray
    cell: np.ndarray
    types: np.ndarray
    momenta: np.ndarray | None
    position: StagePosition | None = None
    step: int = 0
    time: float = 0.0


def start_frame(restart: Path | None, schedule: bool, structure: Configuration,
                relaxed: Path | None, symbol_to_type) -> StartFrame:
    """The restart frame of the last run if there is one, else the relaxed bootstrap cell if there is one,
    else the system's structure."""
    if restart is not None:
        r = np.load(restart)
        frame = StartFrame(r["positions"], r["cell"], r["types"], r["momenta"])
        if schedule and "stage_index" in r:
            frame = frame._replace(position=StagePosition(int(r["stage_index"]), int(r["stage_step"]),
                                                          float(r["stage_t0"])),
                                   step=int(r["step"]), time=float(r["time"]))
        return frame
    c0 = structure
    if relaxed is not None and relaxed.exists():  # start from the relaxed cell
        c0 = Configuration.from_atoms(read(relaxed), symbol_to_type=symbol_to_type)
    return StartFrame(c0.positions, c0.cell, c0.types, None)


def anchor_steps(stages, n_per_stage: int) -> list[int]:
    """Global steps of ``n_per_stage`` evenly spaced frames of every stage (the stage's end for n = 1)."""
    out, acc = [], 0
    for st in stages:
        out += [acc + int(round(int(st.steps) * (j + 1) / n_per_stage)) for j in range(n_per_stage)]
        acc += int(st.steps)
    return out


def _temperature_at(stages, frame: StartFrame) -> float:
    """The target temperature (K) where ``frame`` continues its schedule (the ramp's current value)."""
    st0 = stages[min(schedule_position(stages, frame.step, 1.0).index, len(stages) - 1)]
    t_now = st0.temperature
    if st0.temperature_end is not None and frame.position is not None and st0.steps:
        f = float(frame.position.step) / st0.steps
        t_now = (1 - f) * st0.temperature + f * st0.temperature_end
    return t_now


class Walk(NamedTuple):
    stopped: bool
    final: object  # the last good MD state (None when nothing ran)
    hook_value: float
    steps: int
    exploded: bool
    candidates: list  # (step, grade, Configuration)
    grades: list  # (step, grade)
    complete: bool
    anchors: list


def walk(sim: Simulation, stages, frame: StartFrame, walker: int, seed: int, md: LearnMDSpec, act, anchors_at,
         grade, species, masses, symbols, log) -> Walk:
    """One trajectory from ``frame``: walker 0 keeps the restart momenta, the others draw new ones at the
    current temperature (independent directions out of the same frame)."""
    cands, grades_seen, anchors = [], [], []
    last = {"state": None}
    todo = [a for a in anchors_at if a > frame.step] if walker == 0 else []
    gmax = float("inf") if act.max_candidate_grade is None else float(act.max_candidate_grade)

    def physical(c):
        # a frame with atoms much closer than covalent bonding (an exploding run) is not worth a label (the
        # reference may not even converge); a high grade alone is no reason to skip it: a physical frame with,
        # say, a first P–P pair inside the cutoff has γ ~ 1e7
        return closest_pair(c.positions, c.cell, symbols, float(act.min_distance_factor)) is None

    def frame_conf(st, **features):
        return Configuration(positions=np.asarray(st.positions), types=np.asarray(frame.types),
                             cell=np.asarray(st.cell), pbc=np.ones(3, bool), features=features)

    def on_frame(st, pos):
        g = float(st.aux) if st.aux is not None else float(grade(st.positions, st.cell,
                                                                 *_exact_pairs(sim, st), st.species))
        grades_seen.append((int(st.step), g))
        last["state"] = st
        if todo and int(st.step) >= todo[0]:
            while todo and int(st.step) >= todo[0]:
                todo.pop(0)
            c = frame_conf(st, MV_grade=f"{g:f}", anchor_step=str(int(st.step)))
            if g <= gmax and physical(c):
                anchors.append(c)
        if float(act.select_threshold) < g <= gmax:
            c = frame_conf(st, MV_grade=f"{g:f}")
            if physical(c):
                cands.append((int(st.step), g, c))

    start = frame.position or StagePosition()
    state0, nbrs = sim.init_state(frame.positions, masses, frame.cell, species, _temperature_at(stages, frame),
                                  seed=seed, momenta=frame.momenta if walker == 0 else None, at=start)
    if frame.position is not None:  # a schedule continues where the last run stopped
        state0 = state0._replace(step=jnp.asarray(frame.step, state0.step.dtype),
                                 time=jnp.asarray(frame.time, state0.time.dtype))
    exploded = False
    try:
        res = sim.run(state0, nbrs, start, on_frame=on_frame)
        stopped, final, hv, steps = res.stopped_by_hook, res.state, res.hook_value, res.steps
        bs = res.break_state
        if stopped and bs is not None and np.all(np.isfinite(np.asarray(bs.positions))) and float(hv) <= gmax:
            # the extrapolating frame itself is a candidate too (as MLIP keeps it): without it a restart frame
            # that breaks at once would never teach the potential anything
            c = frame_conf(bs, MV_grade=f"{float(hv):f}")
            if physical(c):
                cands.append((int(bs.step), float(hv), c))
    except SimulationError as e:  # unphysical: treat as extrapolation, restart from the last frame
        exploded, stopped, hv = True, True, float("inf")
        steps = grades_seen[-1][0] - frame.step if grades_seen else 0
        final = last["state"]
        log(f"  md (walker {walker}): {e}")
    if md.schedule is not None:
        complete = final is not None and schedule_position(stages, int(np.asarray(final.step)), 1.0).index >= len(stages)
    else:
        complete = steps >= int(md.steps)
    return Walk(bool(stopped), final, hv, int(steps), exploded, cands, grades_seen, bool(complete), anchors)


def _exact_pairs(sim: Simulation, st):
    nbrs = sim.exact_neighbors(st.positions, st.cell)
    return nbrs.idx, nbrs.shifts


def explore(system: SystemSpec, model, active_set, frame: StartFrame, it: int, seed: int, itdir: Path,
            workdir: Path, species_names, log) -> dict:
    """MTP-MD of ``system`` from ``frame`` (iteration ``it``): writes ``itdir/candidates_<name>.cfg``,
    ``anchors_<name>.cfg`` (schedules with anchors), the restart frame ``restart_<name>.npz`` and the record
    ``md_<name>.json``; returns the record."""
    md, act = system.md, system.active
    name = system.name
    types = np.asarray(frame.types)
    species = model.species_index(types)
    masses = np.array([atomic_masses[atomic_numbers[species_names[int(t)]]] for t in types])
    symbols = [species_names[t] for t in types]
    stages = system_stages(md, name)
    # cfg mode: the grade comes out of the force call (MDState.aux); nbh mode: a separate hook. Both are equinox
    # modules: the MD block compiled in an earlier iteration is reused.
    efs, hook, fused = md_grade_setup(model, active_set, float(act.break_threshold), int(act.grade_every))
    grade = None if fused else (lambda *a: hook_grade(hook[0], *a))
    every = int(act.candidate_every)
    sim = Simulation(efs, float(model.cutoff), float(md.timestep_fs) * FS, stages, skin=float(md.skin),
                     thermo_every=every, traj_every=every, hook=hook, max_temperature=float(md.max_temperature_K))
    n_anchor = int(act.anchors_per_stage) if md.schedule is not None else 0
    anchors_at = anchor_steps(stages, n_anchor) if n_anchor else []
    t0 = time.perf_counter()
    walks = [walk(sim, stages, frame, w, seed + 7919 * w, md, act, anchors_at, grade, species, masses, symbols,
                  lambda m: log(m.replace("  md (", f"  md {name} (", 1)))
             for w in range(int(md.walkers))]
    # the walker that got furthest gives the restart frame; every walker's candidates count
    best = max(walks, key=lambda x: (x.final is not None, x.steps))
    final, steps = best.final, best.steps
    cands = [c for x in walks for c in x.candidates]
    grades_seen = [g for x in walks for g in x.grades]
    complete = all(x.complete for x in walks)
    stopped = any(x.stopped for x in walks)
    exploded = any(x.exploded for x in walks)
    hv = max((x.hook_value for x in walks if x.stopped), default=None)  # the highest grade that broke a walker
    wall = time.perf_counter() - t0
    restart = None
    if final is not None:
        restart = f"it{it:03d}/restart_{name}.npz"
        extra = {}
        if md.schedule is not None:
            k = int(np.asarray(final.step))
            pos = schedule_position(stages, k, sim.dt)
            extra = dict(stage_index=pos.index, stage_step=pos.step, stage_t0=pos.t0, step=k,
                         time=float(np.asarray(final.time)))
        np.savez(workdir / restart, positions=np.asarray(final.positions), cell=np.asarray(final.cell),
                 types=types, momenta=np.asarray(final.momenta), **extra)
    write_cfg(itdir / f"candidates_{name}.cfg", [c for _, _, c in cands])
    anchors = [c for x in walks for c in x.anchors]
    if n_anchor:
        write_cfg(itdir / f"anchors_{name}.cfg", anchors)
    # one stage: a run of the target length from the restart frame; a schedule: its end reached; with several
    # walkers, all of them
    done = not stopped and complete and (act.done_when == "no-break" or not cands)
    start_over = md.schedule is not None and complete and not done
    if start_over:
        restart = None  # the schedule's end was reached with extrapolating frames: the next run starts over
    rec = {"system": name, "iteration": it, "steps": int(steps), "stopped": bool(stopped),
           "exploded": exploded, "break_grade": None if hv is None else float(hv),
           "n_candidates": len(cands), "n_anchors": len(anchors),
           "max_grade": max([g for _, g in grades_seen], default=0.0),
           "wall_s": wall, "restart": restart, "done": done, "start_over": start_over,
           "walkers": [{"steps": x.steps, "stopped": x.stopped, "n_candidates": len(x.candidates)} for x in walks]}
    atomic_write_json(itdir / f"md_{name}.json", rec)
    log(f"md it{it:03d} {name}: {steps} steps, "
        f"{'BREAK γ=%.3g' % hv if stopped and hv is not None else 'no break'}, "
        f"{len(cands)} candidates{f', {len(anchors)} anchors' if n_anchor else ''}, {wall:.1f} s")
    return rec
