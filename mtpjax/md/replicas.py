"""Batched replicas from a TOML run file (``[replicas]`` table of ``mtpjax md``).

Independent copies of one system — different seeds, temperatures or
starting structures of equal size — advance together in one ``vmap``-ed,
jitted block (see :class:`mtpjax.md.simulate.Simulation`)::

    structure = "quenched.extxyz"
    [replicas]
    temperatures_K = [600, 700, 800]        # one per replica (scale every stage's T)
    seeds = [1, 2, 3]                        # default: seed + replica index
    structures = ["a.extxyz", "b.extxyz"]    # optional; equal atom counts
    count = 4                                # when neither list sets the number

Lists of length 1 are broadcast. Output: one folder per replica,
``OUTPUT/rNN/{traj.h5md, thermo.csv, final.extxyz}``, and one checkpoint
``OUTPUT/checkpoint.npz`` for all of them (a killed run resumes at the last
checkpoint; every replica's trajectory and log are cut back to it).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError
from .io import H5MDWriter, ThermoLog, load_checkpoint, load_checkpoint_meta, save_checkpoint, state_frame
from .simulate import FS, THERMO_COLUMNS, Simulation, replicate_neighbors, unstack

REPLICA_KEYS = {"temperatures_K", "seeds", "structures", "count"}

__all__ = ["parse_replicas", "run_md_replicas", "replica_dirs"]


def parse_replicas(cfg: dict) -> dict:
    """Validate the ``[replicas]`` table → {'structures', 'temperatures', 'seeds', 'count'} (lists)."""
    r = cfg.get("replicas")
    if not isinstance(r, dict):
        raise ConfigurationError("run file: 'replicas' must be a table ([replicas])")
    bad = set(r) - REPLICA_KEYS
    if bad:
        raise ConfigurationError(f"[replicas]: unknown key(s) {sorted(bad)} (allowed: {', '.join(sorted(REPLICA_KEYS))})")
    lists = {}
    for k in ("temperatures_K", "seeds", "structures"):
        if k in r:
            v = r[k]
            if not isinstance(v, list) or not v:
                raise ConfigurationError(f"[replicas]: '{k}' must be a non-empty list")
            lists[k] = v
    lens = {len(v) for v in lists.values() if len(v) > 1}
    if len(lens) > 1:
        raise ConfigurationError(f"[replicas]: lists of different lengths {sorted(lens)} (give equal lengths or 1)")
    n = lens.pop() if lens else int(r.get("count", max([1] + [len(v) for v in lists.values()])))
    if "count" in r and int(r["count"]) != n:
        raise ConfigurationError(f"[replicas]: count = {r['count']} but the lists have {n} entries")
    if n < 1:
        raise ConfigurationError("[replicas]: count must be ≥ 1")

    def bc(k, default):
        v = lists.get(k)
        return list(default) if v is None else (v * n if len(v) == 1 else list(v))

    temps = bc("temperatures_K", [None] * n)
    for t in temps:
        if t is not None and not float(t) > 0:
            raise ConfigurationError(f"[replicas]: temperatures must be positive, got {t}")
    seed0 = int(cfg.get("seed", 0))
    return {"count": n, "structures": bc("structures", [cfg.get("structure")] * n),
            "temperatures": None if "temperatures_K" not in lists else [float(t) for t in temps],
            "seeds": [int(s) for s in bc("seeds", [seed0 + k for k in range(n)])]}


def replica_dirs(output, n: int) -> list[Path]:
    return [Path(output) / f"r{k:02d}" for k in range(n)]


def _targets_r(sim, r):
    stage = sim.stages[min(sim.stage_index, len(sim.stages) - 1)]
    t0, t1, k0, k1, p0, p1 = np.asarray(sim._sched(stage))[r]
    return t0, t1, k0, k1, p0, p1


def run_md_replicas(cfg: dict, output=None, overwrite: bool = False, progress: bool = True, max_blocks=None,
                    log=print):
    """Run (or resume) the replicas of ``cfg`` (see the module docstring); returns the output folder."""
    from .run import (_check_overlap, _Progress, _resolve, _StopRun, _write_final, make_potential,
                      neighbor_fns_from_meta, neighbor_fns_meta, parse_stages, read_structure)

    dt_fs = float(cfg.get("timestep_fs", 1.0))
    if not (dt_fs > 0 and math.isfinite(dt_fs)):
        raise ConfigurationError(f"run file: timestep_fs must be positive, got {cfg.get('timestep_fs')}")
    stages = parse_stages(cfg, dt_fs)
    rep = parse_replicas(cfg)
    R = rep["count"]
    systems = [read_structure(dict(cfg, structure=s)) for s in rep["structures"]]
    n0 = len(systems[0][0])
    for s, sysk in zip(rep["structures"], systems):
        if len(sysk[0]) != n0:
            raise ConfigurationError(f"[replicas]: structure {s} has {len(sysk[0])} atoms, the first has {n0} "
                                     "(replicas must have equal sizes)")
    efs, rc, species_of = make_potential(cfg)
    for s, (pos, cell, pbc, *_r) in zip(rep["structures"], systems):
        _check_overlap(pos, cell, pbc, float(cfg.get("min_distance", 0.5)))
    pos = np.stack([s[0] for s in systems])
    cells = np.stack([np.asarray(s[1], float) for s in systems])
    types = np.stack([np.asarray(s[3]) for s in systems])
    numbers = [s[4] for s in systems]
    masses = np.stack([s[5] for s in systems])
    species = np.stack([species_of(t) for t in types])
    out = Path(output) if output is not None else _resolve(cfg, cfg.get("output", "md_out"))
    dirs = replica_dirs(out, R)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    thermo_every = int(cfg.get("thermo_every", 10))
    traj_every = int(cfg.get("traj_every", 100))
    ck_every = int(cfg.get("checkpoint_every", 10 * traj_every))
    ck_every = max(traj_every, int(math.ceil(ck_every / traj_every)) * traj_every)
    temps = rep["temperatures"]
    if temps is not None and any(s.temperature is None for s in stages if s.ensemble != "nve"):
        raise ConfigurationError("[replicas]: temperatures_K needs temperature_K in every thermostatted stage")
    sim = Simulation(
        efs, rc, dt_fs * FS, stages, skin=float(cfg.get("skin", 1.0)), thermo_every=thermo_every,
        traj_every=traj_every, max_temperature=float(cfg.get("max_temperature_K", 1e5)),
        neighbor_method=cfg.get("neighbor_method"), capacity_multiplier=float(cfg.get("capacity_multiplier", 1.25)),
        replicas=R, replica_temperatures=temps,
    )
    t_init = cfg.get("temperature_K", stages[0].temperature)
    state, nbrs = sim.init_state(pos, masses, cells, species, t_init, seed=rep["seeds"])
    ck = out / "checkpoint.npz"
    h = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if not k.startswith("_") and k != "output"},
                                  sort_keys=True, default=str).encode()).hexdigest()[:16]
    dof = 3 * n0 - 3
    mass_tot = [float(np.sum(m)) for m in masses]
    resume = ck.exists() and not overwrite
    vel = bool(cfg.get("velocities", False))
    if resume:
        meta = load_checkpoint_meta(ck)
        if meta.get("config_hash") != h:
            raise ConfigurationError(f"{out}: holds a checkpoint of a different run file; use --overwrite "
                                     "or another output folder")
        sim.neighbor_fns = neighbor_fns_from_meta(meta["neighbor_fns"])
        sim.capacity_multiplier = meta["capacity_multiplier"]
        tmpl = replicate_neighbors(sim.neighbor_fns, state.positions, state.cell)
        loaded, meta = load_checkpoint(ck, {"state": state, "nbrs": tmpl})
        state, nbrs = loaded["state"], loaded["nbrs"]
        sim.stage_index, sim.stage_step, sim.stage_t0 = meta["stage_index"], meta["stage_step"], meta["stage_t0"]
        writers = [H5MDWriter(d / "traj.h5md", numbers[k], velocities=vel, mode="a", n_frames=meta["n_frames"][k])
                   for k, d in enumerate(dirs)]
        thermos = [ThermoLog(d / "thermo.csv", THERMO_COLUMNS, mass_tot[k], mode="a", offset=meta["thermo_bytes"][k])
                   for k, d in enumerate(dirs)]
        log(f"md: resuming {R} replicas from {ck} at step {int(np.max(np.asarray(state.step)))}")
    else:
        for p in [ck] + [d / f for d in dirs for f in ("traj.h5md", "thermo.csv", "final.extxyz")]:
            if p.exists():
                p.unlink()
        writers = [H5MDWriter(d / "traj.h5md", numbers[k], velocities=vel, mode="w") for k, d in enumerate(dirs)]
        thermos = [ThermoLog(d / "thermo.csv", THERMO_COLUMNS, mass_tot[k], mode="w") for k, d in enumerate(dirs)]

    def write_frame(st):
        integ = sim.integrator(stages[min(sim.stage_index, len(stages) - 1)])
        for r in range(R):
            s = unstack(st, r)
            fr = state_frame(s, dof)
            t0, t1, k0, k1, p0, p1 = _targets_r(sim, r)
            f = float(np.clip((float(s.time) - t0) / max(t1 - t0, 1e-30), 0, 1))
            fr["observables"]["conserved_energy"] = float(integ.conserved(s, k0 + f * (k1 - k0), p0 + f * (p1 - p0)))
            writers[r].append(fr["step"], fr["time_fs"], fr["positions"], fr["cell"], fr["velocities"],
                              fr["observables"])

    def on_block(recs, nrec, st):
        recs, nrec = np.asarray(recs), np.asarray(nrec)
        for r in range(R):
            thermos[r].write(recs[r][: int(nrec[r])])

    blocks = [0]

    def checkpoint(s, st, nb, force=False):
        step = int(np.max(np.asarray(st.step)))
        if force or step % ck_every == 0:
            fns = s.neighbor_fns
            meta = dict(
                config_hash=h, stage_index=s.stage_index, stage_step=s.stage_step, stage_t0=s.stage_t0,
                n_frames=[w.n_frames for w in writers], thermo_bytes=[t.tell() for t in thermos],
                capacity_multiplier=s.capacity_multiplier, step=step, replicas=R,
                neighbor_fns=neighbor_fns_meta(fns))
            save_checkpoint(ck, {"state": st, "nbrs": nb}, meta)
        blocks[0] += 1
        if max_blocks is not None and blocks[0] >= max_blocks:
            raise _StopRun()

    if not resume:
        write_frame(state)
        integ0 = sim.integrator(stages[0])
        for r in range(R):
            t0, t1, k0, k1, p0, p1 = _targets_r(sim, r)
            thermos[r].write(np.asarray(_initial_record_r(integ0, unstack(state, r), k0, p0)))
        checkpoint(sim, state, nbrs, force=True)
        blocks[0] = 0
    total = sum(s.steps for s in stages)
    prog = _Progress(total, R * n0, dt_fs, progress)
    prog.bar and prog.bar.update(int(np.max(np.asarray(state.step))))
    try:
        res = sim.run(state, nbrs, on_block=on_block, on_frame=write_frame, should_checkpoint=checkpoint,
                      progress=prog)
        checkpoint(sim, res.state, res.nbrs, force=True)
        for r in range(R):
            _write_final(dirs[r] / "final.extxyz", unstack(res.state, r), numbers[r], types[r])
    except _StopRun:
        pass
    finally:
        prog.close()
        for w in writers:
            w.close()
        for t in thermos:
            t.close()
    return out


def _initial_record_r(integ, st, kT, P):
    import jax.numpy as jnp

    from .simulate import _record

    return _record(integ, st, kT, P, jnp.asarray(-jnp.inf))
