"""Run an MD simulation from a run file (what ``mtpjax md RUN.toml`` does): one driver for 1…R replicas.

The run file (:class:`mtpjax.config.md.MDRun`, user units) is converted here once: stages to ASE units
(:func:`~mtpjax.md.stages.stage_from_spec`), the structure read and checked, the force field built. Without a
``[replicas]`` table the run writes ``OUTPUT/{traj.h5md, thermo.csv, final.extxyz}``; with one, the R
replicas advance together in one ``vmap``-ed block and write ``OUTPUT/rNN/…``. One checkpoint
(``OUTPUT/checkpoint.npz``) holds the whole state; a killed run restarted with the same command resumes at the
last checkpoint, bit for bit the same continuation (trajectories and logs are cut back to it);
``overwrite=True`` starts afresh.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.io import write

from mtpjax.config.base import parse
from mtpjax.config.md import MDRun, load_md_run
from mtpjax.errors import ConfigurationError
from mtpjax.geometry.neighbors import NeighborListFns, host_neighbors
from mtpjax.io.checkpoint import load_checkpoint, load_checkpoint_meta, save_checkpoint
from mtpjax.io.h5md import H5MDWriter
from mtpjax.io.structure import Structure, read_structure
from mtpjax.io.lock import workdir_lock
from mtpjax.io.thermo import ThermoLog, read_thermo
from mtpjax.md import forcefields as FF
from mtpjax.md.block import THERMO_COLUMNS, thermo_record
from mtpjax.md.diagnostics import drift_warnings
from mtpjax.md.output import state_frame
from mtpjax.md.simulation import Simulation, unstack
from mtpjax.md.stages import StagePosition, stages_from_specs
from mtpjax.potential.model import MTP
from mtpjax.progress import Progress
from mtpjax.units import FS, FS_PER_PS

__all__ = ["run_md", "load_md_run", "read_structure", "make_force_field", "Structure"]


def make_force_field(run: MDRun):
    """``(efs_fn, cutoff Å, species_of(types) -> species indices)`` of the run's potential."""
    if isinstance(run.potential, str):
        path = run.path(run.potential)
        if not path.exists():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        model = MTP.from_file(path)
        where = f"{run.structure}: "
        return FF.mtp_efs(model, run.chunk_atoms), float(model.cutoff), lambda t: model.species_index(t, where=where)
    factory = FF.lennard_jones if run.potential.type == "lj" else FF.morse
    efs, rc = factory(**run.potential.kwargs())
    return efs, rc, lambda t: np.zeros(len(t), np.int32)


def check_overlap(pos, cell, pbc, dmin: float, where: str = "") -> None:
    """No two atoms closer than ``dmin`` Å (a structure error, named with the pair and its distance)."""
    idx, sh, maxc = host_neighbors(pos, cell, pbc, dmin)
    if maxc > 0:
        i = int(np.argmax((idx < len(pos)).sum(1)))
        j = int(idx[i, 0])
        r = np.linalg.norm(pos[j] + sh[i, 0] @ cell - pos[i])
        raise ConfigurationError(
            f"{where}atoms {i} and {j} overlap ({r:.3f} Å apart, below min_distance {dmin} Å); fix the structure")


def neighbor_fns_meta(fns: NeighborListFns) -> dict:
    """JSON-ready static settings of a neighbour list (for checkpoints)."""
    return dict(cutoff=fns.cutoff, skin=fns.skin, capacity=fns.capacity, pbc=list(fns.pbc),
                images=[list(x) for x in fns.images], method=fns.method, grid=list(fns.grid),
                bin_capacity=fns.bin_capacity)


def neighbor_fns_from_meta(nf: dict) -> NeighborListFns:
    """Inverse of :func:`neighbor_fns_meta`."""
    return NeighborListFns(nf["cutoff"], nf["skin"], nf["capacity"], tuple(nf["pbc"]),
                           tuple(tuple(s) for s in nf["images"]), nf["method"], tuple(nf["grid"]), nf["bin_capacity"])


def write_final(path, st, numbers, types) -> None:
    """The last state as extended XYZ (positions, cell, momenta, MLIP types, step, time)."""
    a = Atoms(numbers=numbers, positions=np.asarray(st.positions), cell=np.asarray(st.cell), pbc=True)
    a.set_momenta(np.asarray(st.momenta))
    a.set_array("mlip_type", np.asarray(types, int))
    a.info["step"] = int(st.step)
    a.info["time_fs"] = float(st.time) / FS
    write(path, a, format="extxyz")


class _Stop(Exception):
    """``max_blocks`` reached (tests of resuming)."""


def config_hash(run: MDRun) -> str:
    """Digest of everything that defines the run (the output folder excluded): a checkpoint of another run
    file is not resumed."""
    d = run.model_dump(exclude={"output"})
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunSetup(NamedTuple):
    """What a run file sets up: the systems (one per replica), the simulation, the start state and where the
    output goes."""

    systems: list
    sim: Simulation
    state: object
    nbrs: object
    dirs: list
    replicas: int | None


def set_up(run: MDRun, out: Path) -> RunSetup:
    """Structures read and checked, force field, Simulation (1 run or R replicas) and the seeded start state."""
    rep = run.replicas
    R = rep.n if rep is not None else None
    n_rep = R or 1
    paths = [run.path(s) for s in (rep.structures if rep is not None and rep.structures else [run.structure])]
    paths = paths * n_rep if len(paths) == 1 else paths
    systems = [read_structure(p, run.elements) for p in paths]
    n0 = len(systems[0].positions)
    for p, s in zip(paths, systems):
        if len(s.positions) != n0:
            raise ConfigurationError(f"[replicas]: structure {p} has {len(s.positions)} atoms, the first has {n0} "
                                     "(replicas must have equal sizes)")
        check_overlap(s.positions, s.cell, (True, True, True), run.min_distance, f"{p}: ")
    efs, rc, species_of = make_force_field(run)
    temps = rep.temperatures_K if rep is not None else None
    if temps is not None and len(temps) == 1:
        temps = temps * n_rep
    seeds = (rep.seeds * n_rep if len(rep.seeds) == 1 else rep.seeds) if rep is not None and rep.seeds else \
        [run.seed + k for k in range(n_rep)]
    stages = stages_from_specs(run.stage, run.timestep_fs)
    sim = Simulation(efs, rc, run.timestep_fs * FS, stages, skin=run.skin, thermo_every=run.thermo_every,
                     traj_every=run.traj_every, max_temperature=run.max_temperature_K,
                     neighbor_method=run.neighbor_method, capacity_multiplier=run.capacity_multiplier,
                     replicas=R, replica_temperatures=temps)

    def batch(xs):
        return np.stack(xs) if R else xs[0]

    t_init = run.temperature_K if run.temperature_K is not None else stages[0].temperature
    state, nbrs = sim.init_state(batch([s.positions for s in systems]), batch([s.masses for s in systems]),
                                 batch([s.cell for s in systems]), batch([species_of(s.types) for s in systems]),
                                 t_init, seed=seeds if R else seeds[0])
    dirs = [out / f"r{k:02d}" for k in range(R)] if R else [out]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return RunSetup(systems, sim, state, nbrs, dirs, R)


class _Recorder:
    """The output of a run (R replicas or one): trajectory frames, thermo rows and checkpoints, resumable from
    checkpoint metadata (files are cut back to the checkpoint, so a killed run leaves no gaps or duplicates)."""

    def __init__(self, run: MDRun, setup: RunSetup, ck: Path, meta: dict | None, max_blocks=None):
        self.run, self.sim, self.ck, self.R = run, setup.sim, ck, setup.replicas
        self.n_rep = self.R or 1
        self.dof = 3 * len(setup.systems[0].positions) - 3
        self.hash = config_hash(run)
        self.max_blocks, self.blocks = max_blocks, 0
        dirs = setup.dirs
        if meta is None:
            for d in dirs:
                for f in ("traj.h5md", "thermo.csv", "final.extxyz"):
                    if (d / f).exists():
                        (d / f).unlink()
        frames = _per_replica(meta, "n_frames", len(dirs))
        offsets = _per_replica(meta, "thermo_bytes", len(dirs))
        mode = "w" if meta is None else "a"
        order = [atomic_numbers[e] for e in run.elements] if run.elements else None
        dt_ps = run.traj_every * run.timestep_fs / FS_PER_PS
        self.traj = [H5MDWriter(d / "traj.h5md", s.numbers, s.masses, order, dt_ps, velocities=run.velocities,
                                mode=mode, n_frames=frames[k]) for k, (d, s) in enumerate(zip(dirs, setup.systems))]
        self.thermo = [ThermoLog(d / "thermo.csv", THERMO_COLUMNS, float(np.sum(s.masses)), mode=mode,
                                 offset=offsets[k]) for k, (d, s) in enumerate(zip(dirs, setup.systems))]

    def replica(self, tree, r):
        return unstack(tree, r) if self.R else tree

    def frame(self, st, pos: StagePosition):
        """One trajectory frame per replica (with the conserved quantity of the current stage)."""
        integ = self.sim.integrator(self.sim.stage_at(pos))
        kT, P = self.sim.targets(pos, np.asarray(st.time))
        for r in range(self.n_rep):
            s = self.replica(st, r)
            fr = state_frame(s, self.dof)
            fr["observables"]["conserved_energy"] = float(integ.conserved(s, np.ravel(kT)[r], np.ravel(P)[r]))
            self.traj[r].append(fr["step"], fr["time_fs"], fr["positions"], fr["cell"], fr["velocities"],
                                fr["observables"])

    def rows(self, recs, nrec, st):
        """The thermo rows of a finished block."""
        recs, nrec = np.asarray(recs), np.asarray(nrec)
        for r in range(self.n_rep):
            self.thermo[r].write((recs[r] if self.R else recs)[: int(np.ravel(nrec)[r])])

    def first(self, st, nbrs, pos: StagePosition):
        """The start of a fresh run: its frame, its thermo row and a checkpoint."""
        self.frame(st, pos)
        integ0 = self.sim.integrator(self.sim.stages[0])
        kT, P = self.sim.targets(pos, np.asarray(st.time))
        for r in range(self.n_rep):
            self.thermo[r].write(np.asarray(thermo_record(integ0, self.replica(st, r), np.ravel(kT)[r],
                                                          np.ravel(P)[r], jnp.asarray(-jnp.inf))))
        self.checkpoint(st, nbrs, pos, force=True)
        self.blocks = 0

    def checkpoint(self, st, nb, pos: StagePosition, force=False):
        """A checkpoint every ``checkpoint_steps`` (or ``force``); stops after ``max_blocks`` blocks (tests)."""
        step = int(np.max(np.asarray(st.step)))
        if force or step % self.run.checkpoint_steps == 0:
            save_checkpoint(self.ck, {"state": st, "nbrs": nb}, dict(
                config_hash=self.hash, stage_index=pos.index, stage_step=pos.step, stage_t0=pos.t0,
                n_frames=[w.n_frames for w in self.traj], thermo_bytes=[t.tell() for t in self.thermo],
                capacity_multiplier=self.sim.capacity_multiplier, step=step, replicas=self.R,
                neighbor_fns=neighbor_fns_meta(self.sim.neighbor_fns)))
        self.blocks += 1
        if self.max_blocks is not None and self.blocks >= self.max_blocks:
            raise _Stop()

    def close(self):
        for w in self.traj:
            w.close()
        for t in self.thermo:
            t.close()


def _per_replica(meta, key, n):
    if meta is None:
        return [None] * n
    v = meta[key]
    return list(v) if isinstance(v, list) else [v]  # single-run checkpoints of earlier versions: a number


def resume_point(setup: RunSetup, ck: Path, run: MDRun, overwrite: bool, log):
    """(state, nbrs, position, checkpoint meta or None): the last checkpoint of this run file, or the start."""
    sim, state, nbrs = setup.sim, setup.state, setup.nbrs
    if not ck.exists():
        return state, nbrs, StagePosition(), None
    if overwrite:
        ck.unlink()
        return state, nbrs, StagePosition(), None
    meta = load_checkpoint_meta(ck)
    if meta.get("config_hash") != config_hash(run):
        raise ConfigurationError(f"{ck.parent}: holds a checkpoint of a different run file; use --overwrite or "
                                 "another output folder")
    sim.neighbor_fns = neighbor_fns_from_meta(meta["neighbor_fns"])
    sim.capacity_multiplier = meta["capacity_multiplier"]
    loaded, meta = load_checkpoint(ck, {"state": state, "nbrs": nbrs})  # arrays (shapes too) from the file
    state = loaded["state"]
    R = setup.replicas
    log(f"md: resuming {f'{R} replicas ' if R else ''}from {ck} at step {int(np.max(np.asarray(state.step)))}")
    return state, loaded["nbrs"], StagePosition(meta["stage_index"], meta["stage_step"], meta["stage_t0"]), meta


def run_md(run, output=None, overwrite: bool = False, progress: bool = True, max_blocks=None, log=print) -> Path:
    """Run (or resume) the simulation ``run`` (an :class:`~mtpjax.config.md.MDRun`, a run-file path, or a
    dict of run-file keys); returns the output folder. ``max_blocks`` stops early (tests of resuming)."""
    if isinstance(run, (str, Path)):
        run = load_md_run(run)
    elif isinstance(run, dict):
        run = parse(MDRun, run, "run")
    out = Path(output) if output is not None else run.path(run.output)
    with workdir_lock(out, "output"):
        return _run_locked(run, out, overwrite, progress, max_blocks, log)


def _run_locked(run: MDRun, out: Path, overwrite: bool, progress: bool, max_blocks, log) -> Path:
    """:func:`run_md` once the output folder's lock is held."""
    setup = set_up(run, out)
    ck = out / "checkpoint.npz"
    state, nbrs, position, meta = resume_point(setup, ck, run, overwrite, log)
    rec = _Recorder(run, setup, ck, meta, max_blocks)
    sim = setup.sim
    n_atoms = len(setup.systems[0].positions) * (setup.replicas or 1)
    prog = Progress(sum(s.steps for s in sim.stages), "steps", "md", enabled=progress, log=log,
                    initial=int(np.max(np.asarray(state.step))))

    def on_progress(steps, wall):
        rate = steps / wall if wall > 0 else 0.0
        prog.update(steps, f"{rate * run.timestep_fs * 1e-6 * 86400:.3g} ns/day, {rate * n_atoms:.3g} atom-steps/s")

    try:
        if meta is None:
            rec.first(state, nbrs, position)
        res = sim.run(state, nbrs, position, on_block=rec.rows, on_frame=rec.frame, on_checkpoint=rec.checkpoint,
                      progress=on_progress)
        rec.checkpoint(res.state, res.nbrs, res.position, force=True)
        for r, (d, s) in enumerate(zip(setup.dirs, setup.systems)):
            write_final(d / "final.extxyz", rec.replica(res.state, r), s.numbers, s.types)
        rec.close()
        for d, s in zip(setup.dirs, setup.systems):
            for line in drift_warnings(read_thermo(d / "thermo.csv"), run.stage, run.timestep_fs, len(s.positions)):
                log(f"md: {d.name if len(setup.dirs) > 1 else ''}{': ' if len(setup.dirs) > 1 else ''}{line}")
    except _Stop:
        pass
    finally:
        prog.close()
        rec.close()
    return out
