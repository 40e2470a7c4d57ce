"""Stages 4 and 5 of the workflow: the production MD with the consolidated potential.

* quench: every starting cell (a 2×2×2 bulk or 2×2×1 interface supercell with ``production.supercell``) is
  minimised with the potential (FIRE, atoms only), then melted, quenched linearly and relaxed in NPT
  (:func:`quench_stages`), all cells of a composition as batched replicas;
* sweep: NVT of every quenched cell at ``sweep.temperatures_K`` (replicas × temperatures batched), and more
  rounds going down by ``step_K`` while Li still hops at the lowest temperature.

Each run is an ordinary MD run (:func:`mtpjax.md.run.run_md`): its run file is written beside it as a record
(``quench.toml``, ``sweep.toml``) and it resumes from its checkpoint after a kill.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
from ase.io import read, write
from ase.optimize import FIRE
from ase.units import GPa

from mtpjax.analysis.trajectory import open_trajectory
from mtpjax.analysis.unwrap import unwrapped_positions
from mtpjax.builders import production_supercell
from mtpjax.config.base import parse, with_base
from mtpjax.config.md import MDRun
from mtpjax.errors import ConfigurationError, MTPJaxError
from mtpjax.io.atomic import atomic_path, atomic_write_json
from mtpjax.io.toml import dumps
from mtpjax.md.run import run_md
from mtpjax.md.simulation import SimulationError
from mtpjax.potential.calculator import MTPCalculator


def quench_stages(cfg) -> list[dict]:
    """The production protocol as ``[[stage]]`` tables: melt at ``melt_K``, linear quench to ``quench_end_K``,
    relax there (NPT at ``pressure_bar`` with ``production.barostat``)."""
    p = cfg.production
    common = {"ensemble": "npt", "pressure_bar": float(p.pressure_bar), "barostat": p.barostat,
              "tdamp_fs": float(p.tdamp_fs), "pdamp_fs": float(p.pdamp_fs)}
    return [dict(common, name="melt", time_ps=float(p.melt_ps), temperature_K=float(p.melt_K)),
            dict(common, name="quench", time_ps=float(p.quench_ps), temperature_K=float(p.melt_K),
                 temperature_end_K=float(p.quench_end_K)),
            dict(common, name="relax", time_ps=float(p.relax_ps), temperature_K=float(p.quench_end_K))]


def learn_schedule(cfg) -> list[dict]:
    """The production protocol as a learning schedule: melt → quench → relax (NPT), then, when the sweep goes
    hotter than the melt, NVT at the hottest sweep temperature for ``learn.hot_ps``."""
    st = quench_stages(cfg)
    t_hot = max(float(t) for t in cfg.sweep.temperatures_K)
    if t_hot > float(cfg.production.melt_K) and float(cfg.learn.hot_ps) > 0:
        st.append({"name": "hot", "ensemble": "nvt", "time_ps": float(cfg.learn.hot_ps), "temperature_K": t_hot,
                   "tdamp_fs": float(cfg.sweep.tdamp_fs)})
    return st


def minimized(wf, src, dst: Path, potential) -> Path:
    """``src`` (extxyz) relaxed with ``potential`` — FIRE, atoms only, fixed cell, at most
    ``production.minimize_steps`` steps down to ``production.minimize_fmax`` eV/Å — written to ``dst``
    (atomically; an existing ``dst`` minimised from the same ``src`` bytes and with the same potential is kept,
    so a resumed run starts from the same cell). Returns ``dst``, or ``src`` when minimize_steps is 0."""
    p = wf.cfg.production
    if int(p.minimize_steps) == 0:
        return Path(src)
    made_from = {"minimized_from_sha256": hashlib.sha256(Path(src).read_bytes()).hexdigest(),
                 "minimized_with_sha256": hashlib.sha256(Path(potential).read_bytes()).hexdigest()}
    if dst.exists():
        old = read(dst).info
        if all(old.get(k) == v for k, v in made_from.items()):
            return dst

    def pressure_gpa(atoms):
        return -float(np.mean(atoms.get_stress()[:3])) / GPa

    at = read(src)
    at.calc = MTPCalculator(str(potential), symbols=wf.species)
    e0, p0 = at.get_potential_energy(), pressure_gpa(at)
    opt = FIRE(at, logfile=None)
    try:
        opt.run(fmax=float(p.minimize_fmax), steps=int(p.minimize_steps))
    except ConfigurationError as e:  # atoms driven together: the potential is not usable from this cell
        raise MTPJaxError(f"minimising {src} with {potential}: {e}") from None
    n = len(at)
    fmax = float(np.sqrt((at.get_forces() ** 2).sum(axis=1)).max())
    wf.log(f"  minimised {Path(src).name} in {opt.nsteps} FIRE steps: E {e0 / n:.4f} → "
           f"{at.get_potential_energy() / n:.4f} eV/atom, P {p0:.2f} → "
           f"{pressure_gpa(at):.2f} GPa, max |F| {fmax:.3f} eV/Å")
    at.calc = None
    at.info.update(made_from)
    with atomic_path(dst, keep_suffix=True) as tmp:
        write(tmp, at, format="extxyz")
    return dst


def md_run(wf, out: Path, dt: float, thermo_every: int, traj_every: int, **keys) -> MDRun:
    """A production MD run file with the consolidated potential (paths relative to the workdir)."""
    run = {"elements": wf.species, "potential": wf.done("fit")["potential"], "output": str(out),
           "timestep_fs": dt, "seed": int(wf.cfg.seed) + 11, "skin": 1.0, "thermo_every": thermo_every,
           "traj_every": traj_every, "checkpoint_every": 10 * traj_every, "max_temperature_K": 1e4,
           "min_distance": 0.5, **keys}
    return with_base(parse(MDRun, run, out), wf.workdir)


def write_record(run: MDRun, path: Path) -> None:
    """The run file of a production run, beside it (``mtpjax md PATH`` repeats it)."""
    path.write_text(dumps(run.model_dump(exclude_none=True)))


def production_md(wf, run: MDRun, stage: str, comp: str) -> None:
    """``run_md`` with the consolidated potential; a broken run names what to change in the workflow file."""
    try:
        run_md(run, progress=False, log=lambda m: wf.log(f"[{stage}] {m}"))
    except SimulationError as e:
        learn = wf.done("learn") or {}
        ln = wf.cfg.learn
        hints = []
        if "production" not in ln.ensembles:
            hints.append('learn along the production protocol (learn.ensembles = ["production"])')
        if int(ln.structures_per_composition) < int(wf.cfg.n_structures):
            hints.append(f"learn on every structure that runs here (learn.structures_per_composition = "
                         f"{wf.cfg.n_structures}, now {ln.structures_per_composition})")
        hints.append(f"raise learn.max_iterations (now {ln.max_iterations})")
        hints.append("or soften the barostat (production.pdamp_fs)")
        raise MTPJaxError(
            f"{stage} ({comp}): {e}.\nThe learned potential is not yet reliable along this run (learn stopped: "
            f"{learn.get('stop_reason', '?')}). " + "; ".join(hints)[0].upper() + "; ".join(hints)[1:]
            + "; then `mtpjax run FILE --from learn` (labels already computed are kept)"
        ) from e


def quench(wf) -> dict:
    """Stage 4: melt → quench → relax of every cell (replicas batched per composition)."""
    p = wf.cfg.production
    pot = wf.done("fit")["potential"]
    info = {}
    for comp in wf.comps():
        d = wf.workdir / "quench" / comp
        d.mkdir(parents=True, exist_ok=True)
        starts = []
        for k, s in enumerate(wf.structures(comp)):
            if p.supercell:
                q = d / f"supercell_{k}.extxyz"
                if not q.exists():
                    write(q, production_supercell(read(s), "interface" if comp == "int" else "bulk"))
                s = q
            starts.append(str(minimized(wf, s, d / f"start_{k}.extxyz", pot)))
        run = md_run(wf, d / "md", float(p.timestep_fs), int(p.thermo_every), int(p.traj_every),
                     structure=starts[0], temperature_K=float(p.melt_K), stage=quench_stages(wf.cfg),
                     replicas={"structures": starts,
                               "seeds": [int(wf.cfg.seed) + 17 + k for k in range(len(starts))]})
        write_record(run, d / "quench.toml")
        t0 = time.perf_counter()
        production_md(wf, run, "quench", comp)
        info[comp] = {"replicas": len(starts), "wall_s": time.perf_counter() - t0, "natoms": len(read(starts[0]))}
        wf.log(f"[quench] {comp}: {len(starts)} replicas in {info[comp]['wall_s']:.1f} s")
    return info


def li_msd_end(path) -> float:
    """Mean squared Li displacement (Å²) between the first and the last frame (unwrapped)."""
    U, _, _ = unwrapped_positions(open_trajectory(path), "Li", drift="all")
    return float(np.mean(np.sum((U[-1] - U[0]) ** 2, axis=-1)))


def sweep(wf) -> dict:
    """Stage 5: NVT of every quenched cell at every sweep temperature; more rounds, lower, while Li hops."""
    sw = wf.cfg.sweep
    info = {}
    for comp in wf.comps():
        finals = [wf.workdir / "quench" / comp / "md" / f"r{k:02d}" / "final.extxyz"
                  for k in range(int(wf.cfg.n_structures))]
        temps = [float(t) for t in sw.temperatures_K]
        rounds = []
        for rnd in range(int(sw.max_rounds)):
            d = wf.workdir / "sweep" / comp / f"round{rnd}"
            d.mkdir(parents=True, exist_ok=True)
            reps = [(k, T) for T in temps for k in range(len(finals))]
            run = md_run(wf, d, float(sw.timestep_fs), int(sw.thermo_every), int(sw.traj_every),
                         structure=str(finals[0]), temperature_K=temps[0],
                         stage=[{"name": "nvt", "ensemble": "nvt", "time_ps": float(sw.time_ps),
                                 "temperature_K": temps[0], "tdamp_fs": float(sw.tdamp_fs)}],
                         replicas={"structures": [str(finals[k]) for k, _ in reps],
                                   "temperatures_K": [T for _, T in reps],
                                   "seeds": [int(wf.cfg.seed) + 1000 * rnd + 31 + j for j in range(len(reps))]})
            write_record(run, d / "sweep.toml")
            atomic_write_json(d / "replicas.json", [{"replica": j, "structure": k, "T_K": T}
                                                    for j, (k, T) in enumerate(reps)])
            t0 = time.perf_counter()
            production_md(wf, run, "sweep", comp)
            hop = {}
            for j, (k, T) in enumerate(reps):
                hop.setdefault(T, []).append(li_msd_end(d / f"r{j:02d}" / "traj.h5md"))
            rounds.append({"dir": str(d), "temperatures_K": temps, "wall_s": time.perf_counter() - t0,
                           "li_msd_end_A2": {str(T): v for T, v in hop.items()}})
            wf.log(f"[sweep] {comp} round {rnd}: T = {temps} K, end Li MSD (Å²) = "
                   + ", ".join(f"{T:g}: {np.mean(v):.2f}" for T, v in hop.items()))
            lowest = min(temps)
            if np.mean(hop[lowest]) < float(sw.hop_msd_A2):
                break  # no hopping at the lowest temperature: the sweep is complete
            temps = [lowest - float(sw.step_K) * (i + 1) for i in range(len(temps))]
            if min(temps) <= 0:
                break
        info[comp] = {"rounds": rounds}
    return info
