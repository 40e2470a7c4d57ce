"""The first labels of a learning run (``[bootstrap]``), before any potential exists.

* ``data``: labelled configurations from files (``.cfg`` with types = indices into ``species``, extxyz with
  chemical symbols, or another run's ``.h5`` store) enter the store as they are;
* ``rattle``: rattled and strained copies of every structure, labelled;
* ``relax``: a short reference relaxation of every structure, its path labelled step by step; the system's
  rattles and its first MD start from the relaxed cell (random cells are far from equilibrium, and MD from
  them first goes down that path);
* ``md``: snapshots of a short reference MD (Langevin) of every structure, labelled as they are computed;
* ``none``: nothing beyond ``data``.

Structures shared by several systems (e.g. the NVT and the NPT run of one cell) are bootstrapped once.
Every reference calculation goes through the one labelling path (:mod:`mtpjax.active.dispatch`: the
executor, retries, timeouts and checks of ``[labels]``); a relaxation or MD is one job.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from mtpjax.active.dispatch import Job, dispatch, make_executor
from mtpjax.active.labelling import label_into_store
from mtpjax.active.reference import atoms_payload, md_atoms, relax_atoms
from mtpjax.config.learn import LearnConfig, SystemSpec
from mtpjax.errors import ConfigurationError
from mtpjax.geometry.neighbors import host_neighbors
from mtpjax.io.atomic import atomic_path
from mtpjax.io.cfg import Configuration
from mtpjax.io.store import TrainingStore, is_anchor
from mtpjax.train.data import load_dataset, validate_labels


def structure_key(system: SystemSpec) -> str:
    """A system's structure as text (file name or inline table): equal keys, one structure."""
    s = system.structure
    return json.dumps(s if isinstance(s, str) else s.model_dump(exclude_none=True), sort_keys=True, default=str)


def system_structure(cfg: LearnConfig, system: SystemSpec) -> Configuration:
    """The starting structure of ``system`` (a file, or the inline table), with MLIP types from ``species``."""
    spec = system.structure
    if isinstance(spec, str):
        p = cfg.path(spec)
        if not p.exists():
            raise ConfigurationError(f"system {system.name}: structure file {p} not found")
        at = read(str(p))
    else:
        kw = {"positions": spec.positions} if spec.positions is not None else {"scaled_positions": spec.scaled_positions}
        at = Atoms(spec.symbols, cell=spec.cell, pbc=True, **kw)
        if spec.repeat is not None:
            at = at.repeat(spec.repeat)
    bad = set(at.get_chemical_symbols()) - set(cfg.species)
    if bad:
        raise ConfigurationError(f"system {system.name}: elements {sorted(bad)} not in species {cfg.species}")
    return Configuration.from_atoms(at, symbol_to_type={s: t for t, s in enumerate(cfg.species)})


def relaxed_path(cfg: LearnConfig, workdir: Path, system: SystemSpec) -> Path:
    """Where the bootstrap relaxation of ``system``'s structure is kept (shared by the systems that start from
    the same structure: named after the first of them)."""
    key = structure_key(system)
    first = next(x for x in cfg.system if structure_key(x) == key)
    return workdir / "bootstrap" / f"relaxed_{first.name}.extxyz"


def data_files(cfg: LearnConfig) -> list:
    """``bootstrap.data``: [(path, labelled configurations)], every label checked against ``species``."""
    symbol_to_type = {s: t for t, s in enumerate(cfg.species)}
    out = []
    for f in cfg.bootstrap.data:
        p = cfg.path(f)
        if not p.exists():
            raise ConfigurationError(f"bootstrap.data: {p} not found")
        confs = load_dataset(p, type_map=symbol_to_type)
        validate_labels(confs, str(p))
        for k, c in enumerate(confs):
            t = np.asarray(c.types).ravel()
            if t.size and (t.min() < 0 or t.max() >= len(cfg.species)):
                raise ConfigurationError(f"bootstrap.data: {p}: configuration {k + 1} has type {int(t.max())}, "
                                         f"but species has {len(cfg.species)} entries ({', '.join(cfg.species)})")
            if c.energy is None or c.forces is None:
                raise ConfigurationError(f"bootstrap.data: {p}: configuration {k + 1} has no energy or forces")
        out.append((p, confs))
    return out


def rattles(c0: Configuration, system: SystemSpec, b, rng) -> list:
    """``b.n_configs`` rattled (σ ``b.rattle`` Å) and strained (±``b.strain``) copies of ``c0``, redrawn while
    two atoms are closer than ``b.min_distance`` Å."""
    items = []
    dmin = float(b.min_distance)
    for k in range(int(b.n_configs)):
        for _ in range(100):
            eps = rng.uniform(-b.strain, b.strain, (3, 3))
            d = np.eye(3) + 0.5 * (eps + eps.T)
            pos = c0.positions @ d.T + rng.normal(0.0, b.rattle, c0.positions.shape)
            if host_neighbors(pos, c0.cell @ d.T, (True, True, True), dmin)[2] == 0:
                break
        else:
            raise ConfigurationError(f"bootstrap: cannot rattle {system.name} by {b.rattle} Å without atoms closer "
                                     f"than bootstrap.min_distance = {dmin} Å")
        c = replace(c0, positions=pos, cell=c0.cell @ d.T, features={}, atom_data={})
        items.append((f"boot/{system.name}/r{k:04d}", c, {"iteration": -1, "system": system.name, "source": "rattle"}))
    return items


def trajectory_path(cfg: LearnConfig, workdir: Path, system: SystemSpec, method: str) -> Path:
    """Where the end of the bootstrap relaxation (``relaxed_*``) or MD (``md_*``) of ``system``'s structure is
    kept; it also marks the trajectory as done (a resumed run does not redo it)."""
    p = relaxed_path(cfg, workdir, system)
    return p if method == "relax" else p.with_name(p.name.replace("relaxed_", "md_", 1))


def reference_trajectory(cfg: LearnConfig, store: TrainingStore, workdir: Path, system: SystemSpec,
                         c0: Configuration, log) -> Configuration:
    """The bootstrap relaxation (``method = "relax"``: FIRE, atoms only, a label every ``relax_every`` steps) or
    MD (``"md"``: Langevin at ``md_temperature_K``, a label every ``md_every`` steps) of ``c0`` with the
    reference: one job through :func:`~mtpjax.active.dispatch.dispatch`, as every label (the executor of
    ``[labels]``, its retries, and a timeout of ``labels.timeout_s`` per calculation of the trajectory); its
    labelled frames enter the store, the rest of a trajectory that failed part-way is dropped (logged).
    Returns where it ended (the relaxed structure; ``c0`` when it failed altogether)."""
    b, lab = cfg.bootstrap, cfg.labels
    method = b.method
    symbol_to_type = {s: t for t, s in enumerate(cfg.species)}
    out = trajectory_path(cfg, workdir, system, method)
    if out.exists():
        return Configuration.from_atoms(read(out), symbol_to_type=symbol_to_type)
    if method == "relax":
        body, n_calc, tag = partial(relax_atoms, fmax=float(b.relax_fmax), steps=int(b.relax_steps),
                                    every=int(b.relax_every)), int(b.relax_steps) + 1, "x"
    else:
        body, n_calc, tag = partial(md_atoms, temperature_K=float(b.md_temperature_K),
                                    timestep_fs=float(system.md.timestep_fs), steps=int(b.md_steps),
                                    every=int(b.md_every), seed=int(cfg.seed)), int(b.md_steps) + 1, "md"
    key = f"boot/{system.name}/{method}"
    job = Job(key, atoms_payload(c0, dict(enumerate(cfg.species))), {"iteration": -1, "system": system.name})
    ex = make_executor(lab.executor, workdir / "jobs", 1, lab.submitit or None)
    res = {}
    dispatch([job], dict(cfg.reference), ex, retries=int(lab.retries), timeout=float(lab.timeout_s) * n_calc,
             backoff=float(lab.backoff_s), on_done=lambda j, frames: res.update(frames=frames),
             on_failed=lambda j: store.add_failed(j.key, j.errors, j.meta),
             workdir_of=lambda j: str(workdir / "jobs" / j.key.replace("/", "_")), fn=body)
    if "frames" not in res:
        why = job.errors[-1][:200] if job.errors else "?"
        log(f"  {method} {system.name}: reference failed ({why})"
            + ("; going on from the unrelaxed structure" if method == "relax" else ""))
        return c0
    frames = res["frames"]
    every = int(b.relax_every) if method == "relax" else 1
    for k, f in enumerate(frames.labels):
        conf = replace(c0, positions=f.positions, cell=f.cell, energy=f.energy, forces=f.forces,
                       plus_stress=f.plus_stress, features={}, atom_data={})
        store.add(f"boot/{system.name}/{tag}{k * every:04d}", conf,
                  {"iteration": -1, "system": system.name, "source": f"reference-{method}", "step": k * every,
                   "phase": "bootstrap", "attempts": job.attempts, "calculator": dict(cfg.reference)})
    log(f"  {method} {system.name}: {len(frames.labels)} labelled frames, E {frames.labels[0].energy:.4f} → "
        f"{frames.labels[-1].energy:.4f} eV ({frames.wall:.1f} s)"
        + (f"; ended early: {frames.error[:200]}" if frames.error else ""))
    end = replace(c0, positions=frames.final_positions, cell=frames.final_cell, energy=None, forces=None,
                  plus_stress=None, features={}, atom_data={})
    with atomic_path(out, keep_suffix=True) as tmp:
        write(tmp, end.to_atoms(dict(enumerate(cfg.species))), format="extxyz")
    return end


def bootstrap(cfg: LearnConfig, store: TrainingStore, workdir: Path, log) -> None:
    """Every bootstrap label of ``cfg`` into ``store`` (what is there already is not redone)."""
    b = cfg.bootstrap
    rng = np.random.default_rng(int(cfg.seed))
    have = set(store.keys())
    for p, confs in data_files(cfg):
        n = 0
        for k, c in enumerate(confs):
            key = f"data/{p.stem}/{k:05d}"
            if key not in have:
                origin = c.features.get("key") or c.features.get("name")
                store.add(key, replace(c, features={}, atom_data={}),
                          {"iteration": -1, "source": f"file {p}", "index": k, "phase": "bootstrap"}
                          | ({"origin": origin} if origin else {}) | ({"anchor": True} if is_anchor(c.features) else {}))
                n += 1
        log(f"bootstrap: {n} labelled configurations from {p} ({len(confs) - n} already in the store)")
    items, seen = [], set()
    for s in cfg.system:
        key = structure_key(s)
        if key in seen:  # e.g. the NVT and NPT runs of one structure: bootstrap it once
            continue
        seen.add(key)
        c0 = system_structure(cfg, s)
        if b.method == "none":
            continue
        if b.method in ("relax", "md"):
            c0 = reference_trajectory(cfg, store, workdir, s, c0, log)
        if b.method in ("rattle", "relax"):
            items += rattles(c0, s, b, rng)
    ok, bad = label_into_store(store, items, cfg.reference, cfg.labels, workdir / "jobs",
                               dict(enumerate(cfg.species)), "bootstrap", log)
    log(f"bootstrap: {ok} labelled, {bad} failed, store holds {len(store)}")
