"""Run an MD simulation described by a TOML run file (what ``mtpjax md RUN.toml`` does).

Run file (user units: fs, K, bar or GPa, Å; converted once here)::

    structure = "start.cfg"          # any ASE-readable file or an MLIP .cfg (first configuration)
    elements = ["Cu", "Ag", "Au"]    # MLIP type i ↔ element (masses; species in the output)
    potential = "pot.mtp"            # or {type = "lj", epsilon = 0.0104, sigma = 3.4, cutoff = 8.5}
                                     #    {type = "morse", D = .., alpha = .., r0 = .., cutoff = ..}
    output = "run1"                  # folder: traj.h5md, thermo.csv, checkpoint.npz, final.extxyz
    timestep_fs = 1.0
    temperature_K = 1000             # initial Maxwell–Boltzmann velocities (zero total momentum)
    seed = 1
    skin = 1.0                       # Å
    thermo_every = 10                # steps
    traj_every = 100                 # steps (multiple of thermo_every)
    checkpoint_every = 1000          # steps (rounded up to a multiple of traj_every)
    velocities = false               # also store velocities in the H5MD file
    max_temperature_K = 20000        # explosion guard
    min_distance = 0.5               # Å; closer atoms are an input error

    [[stage]]
    name = "melt"
    ensemble = "npt"                 # nve | nvt | langevin | npt
    time_ps = 20                     # or steps = 20000
    temperature_K = 1000             # temperature_end_K = 300 for a linear ramp
    pressure_bar = 1.01325           # or pressure_GPa; pressure_end_bar/GPa for a ramp
    barostat = "iso"                 # iso | aniso | tri
    tdamp_fs = 100                   # LAMMPS Tdamp
    pdamp_fs = 1000                  # LAMMPS Pdamp
    tchain = 3

    [replicas]                       # optional: batched copies in one jitted run
    temperatures_K = [600, 700, 800] # (see mtpjax.md.replicas; output in OUTPUT/rNN/)

A killed run restarted with the same command resumes at the last checkpoint
(bit-for-bit the same continuation); ``overwrite=True`` starts afresh.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..config import read_toml
from ..errors import ConfigurationError, FileFormatError
from . import forcefields as FF
from .io import H5MDWriter, ThermoLog, load_checkpoint, load_checkpoint_meta, save_checkpoint, state_frame
from .neighbors import NeighborListFns, host_neighbors
from .simulate import BAR, FS, GPA, THERMO_COLUMNS, Simulation, Stage

STAGE_KEYS = {
    "name", "ensemble", "time_ps", "time_fs", "steps", "temperature_K", "temperature_end_K", "pressure_bar",
    "pressure_GPa", "pressure_end_bar", "pressure_end_GPa", "barostat", "tdamp_fs", "pdamp_fs", "tchain",
    "pchain", "tloop", "ploop",
}
TOP_KEYS = {
    "structure", "elements", "potential", "output", "timestep_fs", "temperature_K", "seed", "skin",
    "thermo_every", "traj_every", "checkpoint_every", "velocities", "max_temperature_K", "min_distance",
    "stage", "neighbor_method", "capacity_multiplier", "replicas", "chunk_atoms",
}


def load_toml(path, overrides=()) -> dict:
    """The run file ``path`` (+ ``KEY=VALUE`` overrides) as a dict; relative paths in it are relative to it."""
    path = Path(path)
    cfg = read_toml(path, overrides)
    cfg["_base"] = str(path.parent.resolve())
    cfg["_path"] = str(path)
    return cfg


def _resolve(cfg, p):
    p = Path(p)
    return p if p.is_absolute() else Path(cfg.get("_base", ".")) / p


def parse_stages(cfg, dt_fs: float) -> list[Stage]:
    raw = cfg.get("stage")
    if not raw:
        raise ConfigurationError("run file: no [[stage]] given")
    stages = []
    for k, s in enumerate(raw):
        name = s.get("name", f"stage{k + 1}")
        unknown = set(s) - STAGE_KEYS
        if unknown:
            raise ConfigurationError(f"stage {name!r}: unknown key(s) {sorted(unknown)}")
        if "ensemble" not in s:
            raise ConfigurationError(f"stage {name!r}: missing 'ensemble' (nve, nvt, langevin or npt)")
        if "steps" in s:
            steps = int(s["steps"])
        elif "time_ps" in s or "time_fs" in s:
            t_fs = float(s["time_ps"]) * 1000.0 if "time_ps" in s else float(s["time_fs"])
            steps = int(round(t_fs / dt_fs))
        else:
            raise ConfigurationError(f"stage {name!r}: give 'steps' or 'time_ps'")
        if steps <= 0:
            raise ConfigurationError(f"stage {name!r}: the stage must last a positive time, got {steps} steps")

        def pres(key):
            if f"{key}_GPa" in s:
                return float(s[f"{key}_GPa"]) * GPA
            if f"{key}_bar" in s:
                return float(s[f"{key}_bar"]) * BAR
            return None

        p0 = pres("pressure")
        ens = str(s["ensemble"]).lower()
        if ens == "npt" and p0 is None:
            raise ConfigurationError(f"stage {name!r}: npt needs pressure_bar or pressure_GPa")
        for key in ("tdamp_fs", "pdamp_fs"):
            if key in s and not float(s[key]) > 0:
                raise ConfigurationError(f"stage {name!r}: {key} must be positive, got {s[key]}")
        tdamp = float(s.get("tdamp_fs", 100.0 * dt_fs)) * FS
        pdamp = float(s.get("pdamp_fs", 1000.0 * dt_fs)) * FS
        st = Stage(
            ensemble=ens, steps=steps, temperature=s.get("temperature_K"),
            temperature_end=s.get("temperature_end_K"), pressure=p0 or 0.0, pressure_end=pres("pressure_end"),
            tdamp=tdamp, pdamp=pdamp, barostat=str(s.get("barostat", "iso")), tchain=int(s.get("tchain", 3)),
            pchain=int(s.get("pchain", 3)), tloop=int(s.get("tloop", 1)), ploop=int(s.get("ploop", 1)), name=name,
        )
        stages.append(st.validate())
    chains = {s.tchain for s in stages} | {s.pchain for s in stages}
    if len({s.tchain for s in stages}) > 1 or len({s.pchain for s in stages}) > 1:
        raise ConfigurationError(f"all stages must use the same tchain/pchain, got {sorted(chains)}")
    return stages


def read_structure(cfg):
    """Return (positions, cell, pbc, types (MLIP labels), numbers, masses)."""
    from ase.data import atomic_masses, atomic_numbers

    if "structure" not in cfg:
        raise ConfigurationError("run file: missing 'structure'")
    path = _resolve(cfg, cfg["structure"])
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    elements = cfg.get("elements")
    if elements is not None:
        try:
            znum = [atomic_numbers[e] for e in elements]
        except KeyError as e:
            raise ConfigurationError(f"run file: unknown element {e.args[0]!r} in 'elements'") from None
    if path.suffix.lower() == ".cfg":
        from ..potential import read_cfg

        c = read_cfg(path)[0]
        types = np.asarray(c.types, int)
        pos = np.asarray(c.positions, float)
        cell = np.zeros((3, 3)) if c.cell is None else np.asarray(c.cell, float)
        pbc = np.asarray(c.pbc, bool) if getattr(c, "pbc", None) is not None else np.linalg.norm(cell, axis=1) > 0
        if elements is None:
            raise ConfigurationError(f"{path}: a .cfg structure needs 'elements' (MLIP type → element) for the masses")
        if types.max() >= len(elements):
            raise ConfigurationError(f"{path}: atom type {types.max()} has no entry in 'elements' {elements}")
        numbers = np.array([znum[t] for t in types])
    else:
        from ase.io import read

        try:
            atoms = read(path)
        except Exception as e:  # noqa: BLE001
            raise FileFormatError(f"cannot read structure ({e})", path=path) from None
        pos, cell, pbc = atoms.positions, np.asarray(atoms.cell.array), atoms.pbc
        numbers = atoms.numbers
        if elements is not None:
            lut = {z: k for k, z in enumerate(znum)}
            missing = sorted({int(z) for z in numbers} - set(lut))
            if missing:
                from ase.data import chemical_symbols

                raise ConfigurationError(
                    f"{path}: element(s) {[chemical_symbols[z] for z in missing]} not in 'elements' {elements}"
                )
            types = np.array([lut[int(z)] for z in numbers])
        else:
            types = np.asarray(numbers, int)
    masses = atomic_masses[numbers]
    if not np.all(pbc):
        raise ConfigurationError(f"{path}: MD needs a fully periodic cell (pbc = {list(map(bool, pbc))})")
    return pos, cell, (True, True, True), types, numbers, masses


def make_potential(cfg):
    """Return (efs_fn, cutoff, species_of(types) -> indices)."""
    pot = cfg.get("potential")
    if pot is None:
        raise ConfigurationError("run file: missing 'potential'")
    chunk = cfg.get("chunk_atoms")  # MTP only: E+F+S in blocks of this many atoms (huge cells)
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ConfigurationError(f"run file: 'chunk_atoms' must be a positive integer (atoms per block), "
                                 f"got {chunk!r}")
    if isinstance(pot, str):
        path = _resolve(cfg, pot)
        if not path.exists():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        from ..potential import MTP

        model = MTP.from_file(path)
        return FF.mtp_efs(model, chunk), float(model.cutoff), lambda t: model.species_index(t, where=f"{cfg.get('structure')}: ")
    kind = str(pot.get("type", "")).lower()
    args = {k: v for k, v in pot.items() if k != "type"}
    if kind == "lj":
        efs, rc = FF.lennard_jones(**args)
    elif kind == "morse":
        efs, rc = FF.morse(**args)
    else:
        raise ConfigurationError(f"run file: unknown potential type {kind!r} (an .mtp path, 'lj' or 'morse')")
    return efs, rc, lambda t: np.zeros(len(t), np.int32)


def _check_overlap(pos, cell, pbc, dmin):
    idx, sh, maxc = host_neighbors(pos, cell, pbc, dmin)
    if maxc > 0:
        i = int(np.argmax((idx < len(pos)).sum(1)))
        j = int(idx[i, 0])
        r = np.linalg.norm(pos[j] + sh[i, 0] @ cell - pos[i])
        raise ConfigurationError(
            f"atoms {i} and {j} overlap ({r:.3f} Å apart, below min_distance {dmin} Å); fix the structure"
        )


class _Progress:
    def __init__(self, total, natoms, dt_fs, enabled):
        self.natoms, self.dt_fs = natoms, dt_fs
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def __call__(self, steps, wall):
        if self.bar is None or wall <= 0:
            return
        rate = steps / wall
        ns_day = rate * self.dt_fs * 1e-6 * 86400
        self.bar.set_postfix_str(f"{ns_day:.3g} ns/day, {rate * self.natoms:.3g} atom-steps/s")
        self.bar.update(steps)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_md(cfg: dict, output=None, overwrite: bool = False, progress: bool = True, max_blocks=None, log=print):
    """Run (or resume) the simulation in ``cfg`` (a dict from :func:`load_toml`).

    Returns the output folder. ``max_blocks`` stops early (tests of resuming).
    """
    unknown = set(k for k in cfg if not k.startswith("_")) - TOP_KEYS
    if unknown:
        raise ConfigurationError(f"run file: unknown key(s) {sorted(unknown)}")
    if "replicas" in cfg:
        from .replicas import run_md_replicas

        return run_md_replicas(cfg, output, overwrite, progress, max_blocks, log)
    dt_fs = float(cfg.get("timestep_fs", 1.0))
    if not (dt_fs > 0 and math.isfinite(dt_fs)):
        raise ConfigurationError(f"run file: timestep_fs must be positive, got {cfg.get('timestep_fs')}")
    stages = parse_stages(cfg, dt_fs)
    pos, cell, pbc, types, numbers, masses = read_structure(cfg)
    efs, rc, species_of = make_potential(cfg)
    species = species_of(types)
    _check_overlap(pos, cell, pbc, float(cfg.get("min_distance", 0.5)))
    out = Path(output) if output is not None else _resolve(cfg, cfg.get("output", "md_out"))
    out.mkdir(parents=True, exist_ok=True)
    thermo_every = int(cfg.get("thermo_every", 10))
    traj_every = int(cfg.get("traj_every", 100))
    ck_every = int(cfg.get("checkpoint_every", 10 * traj_every))
    ck_every = max(traj_every, int(math.ceil(ck_every / traj_every)) * traj_every)
    sim = Simulation(
        efs, rc, dt_fs * FS, stages, skin=float(cfg.get("skin", 1.0)), pbc=pbc, thermo_every=thermo_every,
        traj_every=traj_every, max_temperature=float(cfg.get("max_temperature_K", 1e5)),
        neighbor_method=cfg.get("neighbor_method"), capacity_multiplier=float(cfg.get("capacity_multiplier", 1.25)),
    )
    t_init = cfg.get("temperature_K", stages[0].temperature)
    state, nbrs = sim.init_state(pos, masses, cell, species, t_init, seed=int(cfg.get("seed", 0)))
    ck = out / "checkpoint.npz"
    traj_path, thermo_path = out / "traj.h5md", out / "thermo.csv"
    h = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if not k.startswith("_") and k != "output"},
                                  sort_keys=True, default=str).encode()).hexdigest()[:16]
    dof = 3 * len(pos) - 3
    species_out = numbers if numbers is not None else types
    resume = ck.exists() and not overwrite
    if resume:
        meta = load_checkpoint_meta(ck)
        if meta.get("config_hash") != h:
            raise ConfigurationError(
                f"{out}: holds a checkpoint of a different run file; use --overwrite or another output folder"
            )
        sim.neighbor_fns = neighbor_fns_from_meta(meta["neighbor_fns"])
        sim.capacity_multiplier = meta["capacity_multiplier"]
        tmpl_nbrs = jax.jit(sim.neighbor_fns.build)(state.positions, state.cell)
        loaded, meta = load_checkpoint(ck, {"state": state, "nbrs": tmpl_nbrs})
        state, nbrs = loaded["state"], loaded["nbrs"]
        sim.stage_index, sim.stage_step, sim.stage_t0 = meta["stage_index"], meta["stage_step"], meta["stage_t0"]
        writer = H5MDWriter(traj_path, species_out, velocities=bool(cfg.get("velocities", False)), mode="a",
                            n_frames=meta["n_frames"])
        thermo = ThermoLog(thermo_path, THERMO_COLUMNS, float(np.sum(masses)), mode="a", offset=meta["thermo_bytes"])
        log(f"md: resuming from {ck} at step {int(state.step)}")
    else:
        for p in (ck, traj_path, thermo_path):
            if p.exists():
                p.unlink()
        writer = H5MDWriter(traj_path, species_out, velocities=bool(cfg.get("velocities", False)), mode="w")
        thermo = ThermoLog(thermo_path, THERMO_COLUMNS, float(np.sum(masses)), mode="w")

    integ0 = sim.integrator(stages[min(sim.stage_index, len(stages) - 1)])

    def write_frame(st):
        fr = state_frame(st, dof)
        fr["observables"]["conserved_energy"] = float(
            sim.integrator(stages[min(sim.stage_index, len(stages) - 1)]).conserved(st, *_targets(sim, st))
        )
        writer.append(fr["step"], fr["time_fs"], fr["positions"], fr["cell"], fr["velocities"], fr["observables"])

    def on_block(recs, nrec, st):
        thermo.write(np.asarray(recs)[: int(nrec)])

    blocks = [0]

    def checkpoint(s, st, nb, force=False):
        step = int(st.step)
        if force or step % ck_every == 0:
            fns = s.neighbor_fns
            meta = dict(
                config_hash=h, stage_index=s.stage_index, stage_step=s.stage_step, stage_t0=s.stage_t0,
                n_frames=writer.n_frames, thermo_bytes=thermo.tell(), capacity_multiplier=s.capacity_multiplier,
                step=step,
                neighbor_fns=neighbor_fns_meta(fns),
            )
            save_checkpoint(ck, {"state": st, "nbrs": nb}, meta)
        blocks[0] += 1
        if max_blocks is not None and blocks[0] >= max_blocks:
            raise _StopRun()

    if not resume:
        write_frame(state)
        rec0 = np.asarray(_initial_record(integ0, sim, state))
        thermo.write(rec0)
        checkpoint(sim, state, nbrs, force=True)
        blocks[0] = 0
    total = sum(s.steps for s in stages)
    prog = _Progress(total, len(pos), dt_fs, progress)
    prog.bar and prog.bar.update(int(state.step))
    try:
        res = sim.run(state, nbrs, on_block=on_block, on_frame=write_frame, should_checkpoint=checkpoint, progress=prog)
        checkpoint(sim, res.state, res.nbrs, force=True)
        _write_final(out / "final.extxyz", res.state, numbers, types)
    except _StopRun:
        pass
    finally:
        prog.close()
        writer.close()
        thermo.close()
    return out


def neighbor_fns_meta(fns: NeighborListFns) -> dict:
    """JSON-ready static settings of a neighbour list (for checkpoints)."""
    return dict(cutoff=fns.cutoff, skin=fns.skin, capacity=fns.capacity, pbc=list(fns.pbc),
                images=[list(x) for x in fns.images], method=fns.method, grid=list(fns.grid),
                bin_capacity=fns.bin_capacity)


def neighbor_fns_from_meta(nf: dict) -> NeighborListFns:
    """Inverse of :func:`neighbor_fns_meta`."""
    return NeighborListFns(nf["cutoff"], nf["skin"], nf["capacity"], tuple(nf["pbc"]),
                           tuple(tuple(s) for s in nf["images"]), nf["method"], tuple(nf["grid"]), nf["bin_capacity"])


class _StopRun(Exception):
    pass


def _targets(sim, st):
    if sim.stage_index >= len(sim.stages):
        stage = sim.stages[-1]
        k0, k1 = stage.kT_range()
        return k1, stage.P_range()[1]
    stage = sim.stages[sim.stage_index]
    sch = np.asarray(sim._sched(stage))
    t0, t1, k0, k1, p0, p1 = sch
    f = float(np.clip((float(st.time) - t0) / max(t1 - t0, 1e-30), 0, 1))
    return k0 + f * (k1 - k0), p0 + f * (p1 - p0)


def _initial_record(integ, sim, st):
    from .simulate import _record

    kT, P = _targets(sim, st)
    return _record(integ, st, kT, P, jnp.asarray(-jnp.inf))


def _write_final(path, st, numbers, types):
    from ase import Atoms
    from ase.io import write

    a = Atoms(numbers=numbers, positions=np.asarray(st.positions), cell=np.asarray(st.cell), pbc=True)
    a.set_momenta(np.asarray(st.momenta))
    a.set_array("mlip_type", np.asarray(types, int))
    a.info["step"] = int(st.step)
    a.info["time_fs"] = float(st.time) / FS
    write(path, a, format="extxyz")
