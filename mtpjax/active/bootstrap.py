"""The first labels of a learning run (``[bootstrap]``), before any potential exists.

* ``data``: labelled configurations from files (``.cfg`` with types = indices into ``species``, extxyz with
  chemical symbols, or another run's ``.h5`` store) enter the store as they are;
* ``rattle``: rattled and strained copies of every structure, labelled;
* ``relax``: a short reference relaxation of every structure, its path labelled step by step; the system's
  rattles and its first MD start from the relaxed cell (random cells are far from equilibrium, and MD from
  them first goes down that path);
* ``md``: snapshots of a short reference MD (Langevin) of every structure, labelled;
* ``none``: nothing beyond ``data``.

Structures shared by several systems (e.g. the NVT and the NPT run of one cell) are bootstrapped once.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.optimize import FIRE

from mtpjax.active.labelling import label_into_store
from mtpjax.active.reference import make_calculator
from mtpjax.config.learn import LearnConfig, SystemSpec
from mtpjax.errors import ConfigurationError
from mtpjax.geometry.neighbors import host_neighbors
from mtpjax.io.atomic import atomic_path
from mtpjax.io.cfg import Configuration
from mtpjax.io.store import TrainingStore
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


def reference_relax(cfg: LearnConfig, store: TrainingStore, workdir: Path, system: SystemSpec, c0: Configuration,
                    log) -> Configuration:
    """FIRE relaxation (atoms only, fixed cell) with the reference calculator in this process; every
    ``relax_every``-th step is stored as a label as it is computed (the relaxation path is what MD from a random
    cell would go through first). Returns the relaxed configuration. Resumable: a finished relaxation is read
    back, not redone."""
    b = cfg.bootstrap
    symbol_to_type = {s: t for t, s in enumerate(cfg.species)}
    out = relaxed_path(cfg, workdir, system)
    if out.exists():
        return Configuration.from_atoms(read(out), symbol_to_type=symbol_to_type)
    out.parent.mkdir(parents=True, exist_ok=True)
    at = c0.to_atoms(dict(enumerate(cfg.species)))
    at.calc = make_calculator(cfg.reference, str(workdir / "jobs" / f"relax_{system.name}"))
    have = set(store.keys())
    t_last = [time.perf_counter()]
    n_step = [0]

    def grab():
        k = n_step[0]
        n_step[0] += 1
        if k % int(b.relax_every):
            return
        key = f"boot/{system.name}/x{k:04d}"
        if key in have:
            return
        e = float(at.get_potential_energy())
        f = np.asarray(at.get_forces(), float)
        st = -np.asarray(at.get_stress(voigt=True), float) * at.get_volume()
        if not (np.isfinite(e) and np.all(np.isfinite(f)) and np.all(np.isfinite(st))):
            return
        conf = replace(c0, positions=at.positions.copy(), energy=e, forces=f, plus_stress=st, features={}, atom_data={})
        wall = time.perf_counter() - t_last[0]
        t_last[0] = time.perf_counter()
        store.add(key, conf, {"iteration": -1, "system": system.name, "source": "reference-relax", "step": k,
                              "phase": "bootstrap", "wall": wall, "calculator": dict(cfg.reference)})
        log(f"  relax {key}: E = {e:.6f} eV, max |F| = {np.abs(f).max():.2f} eV/Å ({wall:.1f} s)")

    opt = FIRE(at, maxstep=0.1, logfile=None)
    opt.attach(grab, interval=1)
    try:
        opt.run(fmax=float(b.relax_fmax), steps=int(b.relax_steps))
    except Exception as e:  # noqa: BLE001 - a failing reference: keep what was labelled, go on unrelaxed
        log(f"  relax {system.name}: reference failed ({type(e).__name__}: {e}); rattling the last frame")
    at.calc = None
    with atomic_path(out, keep_suffix=True) as tmp:
        write(tmp, at, format="extxyz")
    return Configuration.from_atoms(at, symbol_to_type=symbol_to_type)


def reference_md(cfg: LearnConfig, workdir: Path, system: SystemSpec, c0: Configuration) -> list:
    """Snapshots (unlabelled, to be labelled) of a short reference MD (Langevin, ASE, in this process)."""
    b = cfg.bootstrap
    at = c0.to_atoms(dict(enumerate(cfg.species)))
    at.calc = make_calculator(cfg.reference, str(workdir / "jobs" / f"bootmd_{system.name}"))
    MaxwellBoltzmannDistribution(at, temperature_K=b.md_temperature_K, rng=np.random.default_rng(0))
    dyn = Langevin(at, system.md.timestep_fs * units.fs, temperature_K=b.md_temperature_K, friction=0.02)
    symbol_to_type = {s: t for t, s in enumerate(cfg.species)}
    items = []
    for k in range(int(b.md_steps) // int(b.md_every)):
        dyn.run(int(b.md_every))
        c = Configuration.from_atoms(at, symbol_to_type=symbol_to_type)
        items.append((f"boot/{system.name}/md{k:04d}", replace(c, energy=None, forces=None, plus_stress=None,
                                                                features={}, atom_data={}),
                      {"iteration": -1, "system": system.name, "source": "reference-md"}))
    return items


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
                store.add(key, replace(c, features={}, atom_data={}),
                          {"iteration": -1, "source": f"file {p}", "index": k, "phase": "bootstrap"})
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
        if b.method == "relax":
            c0 = reference_relax(cfg, store, workdir, s, c0, log)
        if b.method in ("rattle", "relax"):
            items += rattles(c0, s, b, rng)
        else:
            items += reference_md(cfg, workdir, s, c0)
    ok, bad = label_into_store(store, items, cfg.reference, cfg.labels, workdir / "jobs",
                               dict(enumerate(cfg.species)), "bootstrap", log)
    log(f"bootstrap: {ok} labelled, {bad} failed, store holds {len(store)}")
