"""Learning on the fly (``mtpjax learn LEARN.toml [--resume]``).

Loop (Podryabinkin & Shapeev 2017; Novikov et al. 2021; docs/spec/active_learning.md):

0. bootstrap (optional): rattled/strained copies of every structure
   (``rattle``); a short reference relaxation whose path is labelled, then
   rattles of the relaxed cell, from which the system's MD starts (``relax``:
   random cells are far from equilibrium, and MD from them first goes down
   that path); or a short reference MD (``md``); labelled into the store;
1. train: fit the MTP to every label in the store (warm start from the last
   potential), build the active set (MaxVol over the whole training set, blocked swaps) and
   save ``itNNN/pot.mtp`` + ``itNNN/pot.almtp``;
2. MD per system (NVT/NPT/Langevin stages from the TOML) with the grade as the
   MD engine's hook: the run stops when γ > ``break_threshold``; every
   ``candidate_every`` steps frames with γ > ``select_threshold`` are kept as
   candidates; the last non-extrapolating frame is saved as the restart point;
3. select: D-optimal (MaxVol) selection of the most informative candidates of
   all systems (at most ``max_select``);
4. label them (executor, retries, timeouts; failures recorded and skipped);
   then back to 1. A system is done when one MD run of its target length
   finished without extrapolation: with ``active.done_when = "no-candidates"``
   (default) no frame had γ > ``select_threshold``, as MLIP users stop when
   nothing is preselected; with ``"no-break"`` it only had to run without
   γ > ``break_threshold``. The loop stops when every system is done or after
   ``max_iterations``.

Frames with atoms closer than ``active.min_distance_factor`` × the sum of
their covalent radii (an exploding run) are never labelled; a high grade
alone is no reason to skip a frame (``active.max_candidate_grade``, off by
default, caps it if wanted).

``active.anchors_per_stage = n`` (schedules only; default 0) also labels n
evenly spaced frames of every stage a run passes through (the stage's end for
n = 1), whatever their grade. The grade measures novelty in the potential's
parameter space, not its error: a quench can walk the potential into a basin
that no label is near in energy (a glass far below the hot training states)
while every neighbourhood still interpolates. A few such anchor labels per
traversal tie the potential to the reference along the whole protocol.

State on disk (``workdir``): ``learn_state.json`` (phase, iteration, per-system
restart/done, timings, history; written atomically after every phase), the
HDF5 store ``train.h5`` (every label flushed as it arrives), per iteration
folder ``itNNN/`` (potential, active set, candidates, selected, jobs), and
``summary.json`` (+ ``summary.png``). ``--resume`` continues after a kill at
any point: completed phases are not redone and labels already in the store are
not recomputed (no duplicates). Thresholds and lengths are read from the TOML
at every start, so they can be changed on resume (the change is logged).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError, MTPJaxError

__all__ = ["load_config", "Learner", "main", "DEFAULTS"]

#: every section, key and default; ``None`` = required or optional without default.
DEFAULTS = {
    "workdir": "learn_out",
    "seed": 0,
    "max_iterations": 20,
    "species": None,  # list of chemical symbols; type t ↔ species[t]
    "potential": {"level": 8, "cutoff": 5.0, "min_dist": 1.5, "radial_basis_size": 8, "init": None},
    "reference": {"kind": "tblite"},
    "labels": {"executor": "process", "max_workers": 1, "retries": 2, "timeout_s": 1800.0, "backoff_s": 1.0,
               "min_wall_s": 0.0, "submitit": {}},
    "train": {"max_iter": 300, "energy_weight": 1.0, "force_weight": 0.01, "stress_weight": 0.001,
              "weighting": "vibrations", "conv_tol": 1e-3, "init_max_iter": None, "optimizer": "lm", "anchor_weight": 1.0,
              "n_starts": 4, "start_iter": 8},
    "active": {"mode": "nbh", "select_threshold": 1.5, "break_threshold": 10.0, "init": 1e-5,
               "swap_threshold": 1.0000001, "max_select": 20, "grade_every": 1, "candidate_every": 10,
               "max_candidate_grade": None, "min_distance_factor": 0.5, "done_when": "no-candidates",
               "anchors_per_stage": 0},
    "md": {"timestep_fs": 1.0, "steps": 1000, "ensemble": "nvt", "temperature_K": 1000.0,
           "temperature_end_K": None, "pressure_bar": 0.0, "tdamp_fs": 100.0, "pdamp_fs": 1000.0,
           "barostat": "iso", "skin": 1.0, "max_temperature_K": 1e5, "schedule": None, "walkers": 1},
    "bootstrap": {"method": "rattle", "n_configs": 8, "rattle": 0.1, "strain": 0.03, "min_distance": 1.0, "md_steps": 100,
                  "md_every": 10, "md_temperature_K": 1000.0, "relax_steps": 12, "relax_every": 1,
                  "relax_fmax": 0.5, "data": []},
    "system": None,  # list of {name, structure, ...overrides of md/active keys}
}
SYSTEM_KEYS = {"name", "structure", "md", "active"}
ENSEMBLES = ("nvt", "npt", "langevin", "nve")
MODES = ("cfg", "nbh")
BOOTSTRAPS = ("rattle", "relax", "md", "none")
DONE_WHEN = ("no-candidates", "no-break")


# ------------------------------------------------------------------ config
def _merge(base: dict, new: dict, where: str, free=("reference", "submitit"), top: str = "learn file",
           defaults_kept=()) -> dict:
    """``base`` updated with ``new``: unknown keys are errors naming ``where`` and the allowed keys; tables in
    ``free`` are taken as given (validated elsewhere), or on top of their defaults when in ``defaults_kept``."""
    out = dict(base)
    for k, v in new.items():
        if k not in base:
            raise ConfigurationError(f"{where}: unknown key '{k}' (allowed: {', '.join(sorted(base))})")
        if k in free:
            if not isinstance(v, dict):
                raise ConfigurationError(f"{where}: '{k}' must be a table")
            out[k] = dict(base[k], **v) if k in defaults_kept else dict(v)
        elif isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigurationError(f"{where}: '{k}' must be a table")
            out[k] = _merge(base[k], v, f"{where}.{k}" if where != top else k, free, top, defaults_kept)
        else:
            out[k] = v
    return out


def load_config(path, overrides=()) -> dict:
    """Read and validate a LEARN.toml (+ ``section.key=value`` overrides).

    Raises :class:`ConfigurationError` naming the key and the allowed values.
    """
    from ..config import read_toml

    path = Path(path)
    raw = read_toml(path, overrides)
    systems = raw.pop("system", None)
    cfg = _merge({k: v for k, v in DEFAULTS.items() if k != "system"}, raw, "learn file")
    cfg["_dir"] = str(path.resolve().parent)
    if not cfg["species"] or not isinstance(cfg["species"], list):
        raise ConfigurationError("learn file: missing key 'species' (list of chemical symbols, e.g. [\"Li\", \"P\", \"S\"])")
    from ase.data import atomic_numbers

    for s in cfg["species"]:
        if s not in atomic_numbers:
            raise ConfigurationError(f"species: unknown chemical symbol {s!r}")
    if not systems:
        raise ConfigurationError("learn file: missing [[system]] table(s) with keys name, structure")
    out_sys = []
    for k, s in enumerate(systems):
        where = f"system {k + 1}"
        bad = set(s) - SYSTEM_KEYS
        if bad:
            raise ConfigurationError(f"{where}: unknown key(s) {sorted(bad)} (allowed: {', '.join(sorted(SYSTEM_KEYS))})")
        for req in ("name", "structure"):
            if req not in s:
                raise ConfigurationError(f"{where}: missing key '{req}'")
        md = _merge(cfg["md"], s.get("md", {}), f"{where}.md")
        act = _merge(cfg["active"], s.get("active", {}), f"{where}.active")
        out_sys.append({"name": str(s["name"]), "structure": s["structure"], "md": md, "active": act})
    names = [s["name"] for s in out_sys]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"system names must be unique, got {names}")
    cfg["system"] = out_sys
    _validate(cfg)
    return cfg


def _validate(cfg):
    from .reference import check_spec

    for s in cfg["system"]:
        md, act = s["md"], s["active"]
        if md["ensemble"] not in ENSEMBLES:
            raise ConfigurationError(f"system {s['name']}: md.ensemble = {md['ensemble']!r} (allowed: {', '.join(ENSEMBLES)})")
        if act["mode"] not in MODES:
            raise ConfigurationError(f"system {s['name']}: active.mode = {act['mode']!r} (allowed: {', '.join(MODES)})")
        if not act["break_threshold"] > act["select_threshold"] >= 1.0:
            raise ConfigurationError(
                f"system {s['name']}: need break_threshold > select_threshold ≥ 1 "
                f"(got {act['select_threshold']}, {act['break_threshold']})")
        ini = act["init"]
        if not ((isinstance(ini, (int, float)) and ini > 0) or (isinstance(ini, str) and ini.startswith("auto"))):
            raise ConfigurationError(f"system {s['name']}: active.init = {ini!r} (allowed: a number > 0, "
                                     "e.g. 1e-5 as MLIP, or \"auto\" / \"auto:<scale>\" for a regularised start)")
        if int(md["steps"]) <= 0:
            raise ConfigurationError(f"system {s['name']}: md.steps must be > 0")
        if md["schedule"] is not None:
            _schedule(md, s["name"])  # raises on a bad stage table
        if not (isinstance(md["walkers"], int) and md["walkers"] >= 1):
            raise ConfigurationError(f"system {s['name']}: md.walkers must be an integer ≥ 1, got {md['walkers']!r}")
        if act["done_when"] not in DONE_WHEN:
            raise ConfigurationError(f"system {s['name']}: active.done_when = {act['done_when']!r} "
                                     f"(allowed: {', '.join(DONE_WHEN)})")
        if not (isinstance(act["anchors_per_stage"], int) and act["anchors_per_stage"] >= 0):
            raise ConfigurationError(f"system {s['name']}: active.anchors_per_stage must be an integer ≥ 0, "
                                     f"got {act['anchors_per_stage']!r}")
        if not 0.0 <= float(act["min_distance_factor"]) < 1.0:
            raise ConfigurationError(f"system {s['name']}: active.min_distance_factor must be in [0, 1), "
                                     f"got {act['min_distance_factor']!r}")
    modes = {s["active"]["mode"] for s in cfg["system"]}
    if len(modes) > 1:
        raise ConfigurationError("active.mode must be the same for every system (one shared active set)")
    if cfg["bootstrap"]["method"] not in BOOTSTRAPS:
        raise ConfigurationError(f"bootstrap.method = {cfg['bootstrap']['method']!r} (allowed: {', '.join(BOOTSTRAPS)})")
    data = cfg["bootstrap"]["data"]
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigurationError(f"bootstrap.data must be a list of file names (.cfg, .extxyz, .h5), got {data!r}")
    from ..train.trainer import OPTIMIZERS

    check_anchor_weight(cfg["train"]["anchor_weight"], "train.anchor_weight")
    if cfg["train"]["optimizer"] not in OPTIMIZERS:
        raise ConfigurationError(f"train.optimizer = {cfg['train']['optimizer']!r} (allowed: {', '.join(OPTIMIZERS)})")
    cfg["reference"] = check_spec(cfg["reference"])
    if cfg["labels"]["executor"] not in ("process", "submitit", "submitit-local", "inline"):
        raise ConfigurationError(f"labels.executor = {cfg['labels']['executor']!r} "
                                 "(allowed: process, submitit, submitit-local, inline)")


# ------------------------------------------------------------------ helpers
def check_anchor_weight(value, name: str) -> None:
    """``value`` of the setting ``name`` must be a number ≥ 0 (a TOML number: not a string, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ConfigurationError(f"{name} must be a number ≥ 0, got {value!r}")


def weight_anchors(store, confs, weight: float) -> list:
    """``confs`` (from ``store``) with the loss weight ``weight`` on the anchor labels (the frames labelled
    at the end of every schedule stage whatever their grade: the quenched glasses, which lie far below the
    hot states the rest of the data samples). Returns ``confs`` itself when ``weight`` is 1."""
    from ..train.data import LOSS_WEIGHT_FEATURE

    if float(weight) == 1.0:
        return confs
    keys = {k for k, p in store.provenance().items() if p.get("anchor")}
    return [replace(c, features={**c.features, LOSS_WEIGHT_FEATURE: repr(float(weight))})
            if c.features.get("key") in keys else c for c in confs]


def _schedule_position(stages, step: int, dt: float):
    """(stage index, step within the stage, start time of the stage) of global ``step`` of a schedule."""
    acc = 0
    for i, st in enumerate(stages):
        if step < acc + int(st.steps):
            return i, step - acc, acc * dt
        acc += int(st.steps)
    return len(stages), 0, acc * dt


def _schedule(md: dict, name: str):
    """The MD stages of a system: ``md.schedule`` (a list of ``mtpjax md`` stage tables: ensemble,
    time_ps or steps, temperature_K [, temperature_end_K], pressure_bar, tdamp_fs, pdamp_fs, barostat)
    or one stage from the md keys (``steps`` at ``temperature_K``)."""
    from ..md.run import parse_stages
    from ..md.simulate import BAR, FS, Stage

    if md["schedule"] is None:
        return [Stage(md["ensemble"], int(md["steps"]), temperature=float(md["temperature_K"]),
                      temperature_end=md["temperature_end_K"],
                      pressure=float(md["pressure_bar"]) * BAR, tdamp=float(md["tdamp_fs"]) * FS,
                      pdamp=float(md["pdamp_fs"]) * FS, barostat=md["barostat"], name=name)]
    if not isinstance(md["schedule"], list) or not all(isinstance(x, dict) for x in md["schedule"]):
        raise ConfigurationError(f"system {name}: md.schedule must be a list of stage tables")
    try:
        return parse_stages({"stage": md["schedule"]}, float(md["timestep_fs"]))
    except ConfigurationError as e:
        raise ConfigurationError(f"system {name}: md.schedule: {e}") from None


def _closest_pair(positions, cell, symbols, factor: float):
    """``(i, j, r)`` of a pair closer than ``factor`` × (sum of covalent radii), or None (periodic)."""
    if factor <= 0:
        return None
    from ase import Atoms
    from ase.data import atomic_numbers, covalent_radii
    from ase.neighborlist import neighbor_list

    rc = factor * np.array([covalent_radii[atomic_numbers[s]] for s in symbols])
    at = Atoms(symbols=list(symbols), positions=np.asarray(positions), cell=np.asarray(cell), pbc=True)
    i, j, d = neighbor_list("ijd", at, 2.0 * float(rc.max()))
    bad = np.nonzero(d < rc[i] + rc[j])[0]
    return None if bad.size == 0 else (int(i[bad[0]]), int(j[bad[0]]), float(d[bad[0]]))


def _atomic_json(path: Path, obj) -> None:
    """Write JSON to ``path`` atomically (temporary file + rename); creates the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    os.replace(tmp, path)


class _Timer:
    def __init__(self, timing: dict, key: str):
        self.timing, self.key = timing, key

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *a):
        self.timing[self.key] = self.timing.get(self.key, 0.0) + time.perf_counter() - self.t0


# ------------------------------------------------------------------ learner
class Learner:
    """The LOTF driver (host orchestration; see module docstring)."""

    def __init__(self, cfg: dict, log=print):
        from .store import TrainingStore

        self.cfg = cfg
        self.log = log
        wd = Path(cfg["workdir"])
        self.workdir = wd if wd.is_absolute() else Path(cfg["_dir"]) / wd
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.workdir / "learn_state.json"
        self.store = TrainingStore(self.workdir / "train.h5")
        self.species = list(cfg["species"])
        self.type_to_symbol = {t: s for t, s in enumerate(self.species)}
        self.symbol_to_type = {s: t for t, s in enumerate(self.species)}
        self.state = None

    # ---------------------------------------------------------- state
    def _new_state(self):
        return {"iteration": 0, "phase": "bootstrap", "done": False, "systems": {
            s["name"]: {"restart": None, "done": False, "runs": [], "structure_sha256": self._structure_id(s)}
            for s in self.cfg["system"]},
            "timing": {}, "history": [], "thresholds": self._thresholds(), "events": []}

    def _structure_id(self, s) -> str:
        """sha256 of system ``s``'s starting structure: its file's bytes, or the inline spec."""
        import hashlib

        spec = s["structure"]
        if not isinstance(spec, dict):
            p = Path(spec) if Path(spec).is_absolute() else Path(self.cfg["_dir"]) / spec
            if p.exists():
                return hashlib.sha256(p.read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()

    def _reopen(self):
        """On resume: systems new to the config join the loop, and a run that stopped at
        ``max_iterations`` (or with every system done) continues when the config now asks for more
        iterations or holds systems that have not run their target length: the next iteration
        trains on the whole store and runs MD again."""
        st = self.state
        for s in self.cfg["system"]:
            sid = self._structure_id(s)
            if s["name"] not in st["systems"]:
                st["systems"][s["name"]] = {"restart": None, "done": False, "runs": [], "structure_sha256": sid}
                st["events"].append({"time": time.time(), "system_added": s["name"]})
                self.log(f"learn: system {s['name']} added on resume")
                continue
            ss = st["systems"][s["name"]]
            old = ss.setdefault("structure_sha256", sid)  # states written before this check: trust them
            if old != sid:  # e.g. the workflow rebuilt its cells (--from build): its MD starts over, labels stay
                ss.update(restart=None, done=False, structure_sha256=sid)
                rp = self._relaxed_path(s)
                if rp.exists():  # the bootstrap relaxation of the old structure
                    rp.unlink()
                st["events"].append({"time": time.time(), "system_structure_changed": s["name"]})
                self.log(f"learn: the structure of system {s['name']} changed; its MD starts over from it")
        if not st["done"]:
            return
        pending = [s["name"] for s in self.cfg["system"] if not st["systems"][s["name"]]["done"]]
        if pending and st["iteration"] + 1 >= int(self.cfg["max_iterations"]):
            self.log(f"learn: {', '.join(pending)} not at their target length, but max_iterations "
                     f"({self.cfg['max_iterations']}) is used up: raise it to continue")
        elif pending:
            st["events"].append({"time": time.time(), "reopened": {"after": st.get("stop_reason"),
                                                                   "max_iterations": int(self.cfg["max_iterations"]),
                                                                   "pending": pending}})
            self.log(f"learn: continuing after '{st.get('stop_reason')}' (max_iterations now "
                     f"{self.cfg['max_iterations']}; pending: {', '.join(pending)})")
            st["done"], st["stop_reason"] = False, None
            st.pop("finishing", None)
            if st["phase"] == "label":  # stopped right after labelling: retrain on the new labels next
                st["iteration"] += 1
                st["phase"] = "train"
            else:
                st["phase"] = "md"
            self._save()

    def _thresholds(self):
        return {s["name"]: {k: s["active"][k] for k in ("select_threshold", "break_threshold")} | {
            "steps": s["md"]["steps"], "temperature_K": s["md"]["temperature_K"]} for s in self.cfg["system"]}

    def _save(self):
        _atomic_json(self.state_path, self.state)

    def _itdir(self, it=None) -> Path:
        d = self.workdir / f"it{self.state['iteration'] if it is None else it:03d}"
        d.mkdir(exist_ok=True)
        return d

    # ---------------------------------------------------------- structures
    def _structure(self, sys_cfg):
        from ase.io import read

        from ..potential.cfg import Configuration

        spec = sys_cfg["structure"]
        if isinstance(spec, dict):  # inline: symbols, cell, positions or scaled_positions, repeat
            from ase import Atoms

            try:
                kw = {"positions": spec["positions"]} if "positions" in spec else {
                    "scaled_positions": spec["scaled_positions"]}
                at = Atoms(spec["symbols"], cell=spec["cell"], pbc=True, **kw)
            except KeyError as e:
                raise ConfigurationError(f"system {sys_cfg['name']}: inline structure needs key {e} "
                                         "(symbols, cell, positions or scaled_positions)") from None
            if "repeat" in spec:
                at = at.repeat(spec["repeat"])
        else:
            p = Path(spec)
            p = p if p.is_absolute() else Path(self.cfg["_dir"]) / p
            if not p.exists():
                raise ConfigurationError(f"system {sys_cfg['name']}: structure file {p} not found")
            at = read(str(p))
        bad = set(at.get_chemical_symbols()) - set(self.species)
        if bad:
            raise ConfigurationError(f"system {sys_cfg['name']}: elements {sorted(bad)} not in species {self.species}")
        return Configuration.from_atoms(at, symbol_to_type=self.symbol_to_type)

    def _masses(self, types):
        from ase.data import atomic_masses, atomic_numbers

        return np.array([atomic_masses[atomic_numbers[self.species[int(t)]]] for t in types])

    # ---------------------------------------------------------- labelling
    def _label(self, items, phase: str):
        """Label ``items`` = [(key, Configuration, provenance)] not yet in the store."""
        from .dispatch import Job, dispatch, make_executor
        from .reference import atoms_payload

        failed = self.store.failed()
        have = set(self.store.keys())
        todo = [(k, c, p) for k, c, p in items if k not in have and k not in failed]
        if not todo:
            return 0, 0
        lc = self.cfg["labels"]
        ex = make_executor(lc["executor"], self.workdir / "jobs", lc["max_workers"], lc.get("submitit") or None)
        confs = {k: c for k, c, _ in todo}
        spec = self.cfg["reference"]
        jobs = [Job(k, atoms_payload(c, self.type_to_symbol), dict(p)) for k, c, p in todo]
        n_ok = [0]

        def on_done(job, lab):
            c = confs[job.key]
            conf = replace(c, energy=lab.energy, forces=lab.forces, plus_stress=lab.plus_stress,
                           features={}, atom_data={})
            prov = dict(job.meta, phase=phase, attempts=job.attempts, wall=lab.wall,
                        calculator={k: v for k, v in spec.items()})
            self.store.add(job.key, conf, prov)
            n_ok[0] += 1
            self.log(f"  label {job.key}: E = {lab.energy:.6f} eV ({lab.wall:.1f} s, attempt {job.attempts})")

        def on_failed(job):
            self.store.add_failed(job.key, job.errors, job.meta)
            self.log(f"  label {job.key}: FAILED after {job.attempts} attempts: {job.errors[-1][:200]}")

        wd = self.workdir / "jobs"
        dispatch(jobs, spec, ex, retries=int(lc["retries"]), timeout=float(lc["timeout_s"]),
                 backoff=float(lc["backoff_s"]), on_done=on_done, on_failed=on_failed,
                 workdir_of=lambda j: str(wd / j.key.replace("/", "_")), min_wall=float(lc["min_wall_s"]))
        return n_ok[0], len(todo) - n_ok[0]

    # ---------------------------------------------------------- phases
    def _data_files(self):
        """``bootstrap.data``: labelled configurations (.cfg with types = indices into ``species``,
        extxyz with chemical symbols, or another run's .h5 store) that seed the training set."""
        from ..train.data import load_dataset, validate_labels

        out = []
        for f in self.cfg["bootstrap"]["data"]:
            p = Path(f) if Path(f).is_absolute() else Path(self.cfg["_dir"]) / f
            if not p.exists():
                raise ConfigurationError(f"bootstrap.data: {p} not found")
            confs = load_dataset(p, type_map=self.symbol_to_type)
            validate_labels(confs, str(p))
            for k, c in enumerate(confs):
                t = np.asarray(c.types).ravel()
                if t.size and (t.min() < 0 or t.max() >= len(self.species)):
                    raise ConfigurationError(f"bootstrap.data: {p}: configuration {k + 1} has type {int(t.max())}, "
                                             f"but species has {len(self.species)} entries ({', '.join(self.species)})")
                if c.energy is None or c.forces is None:
                    raise ConfigurationError(f"bootstrap.data: {p}: configuration {k + 1} has no energy or forces")
            out.append((p, confs))
        return out

    def bootstrap(self):
        b = self.cfg["bootstrap"]
        rng = np.random.default_rng(int(self.cfg["seed"]))
        have = set(self.store.keys())
        for p, confs in self._data_files():
            n = 0
            for k, c in enumerate(confs):
                key = f"data/{p.stem}/{k:05d}"
                if key not in have:
                    self.store.add(key, replace(c, features={}, atom_data={}),
                                   {"iteration": -1, "source": f"file {p}", "index": k, "phase": "bootstrap"})
                    n += 1
            self.log(f"bootstrap: {n} labelled configurations from {p} ({len(confs) - n} already in the store)")
        items = []
        seen = set()
        for s in self.cfg["system"]:
            spec = json.dumps(s["structure"], sort_keys=True, default=str)
            if spec in seen:  # e.g. the NVT and NPT runs of one structure: bootstrap it once
                continue
            seen.add(spec)
            c0 = self._structure(s)
            if b["method"] == "none":
                continue
            if b["method"] == "relax":
                c0 = self._reference_relax(s, c0, b)
            if b["method"] in ("rattle", "relax"):
                from ..md.neighbors import host_neighbors

                dmin = float(b["min_distance"])
                for k in range(int(b["n_configs"])):
                    for _ in range(100):  # redraw rattles that push atoms closer than min_distance
                        eps = rng.uniform(-b["strain"], b["strain"], (3, 3))
                        d = np.eye(3) + 0.5 * (eps + eps.T)
                        pos = c0.positions @ d.T + rng.normal(0.0, b["rattle"], c0.positions.shape)
                        if host_neighbors(pos, c0.cell @ d.T, (True, True, True), dmin)[2] == 0:
                            break
                    else:
                        raise ConfigurationError(f"bootstrap: cannot rattle {s['name']} by {b['rattle']} Å without "
                                                 f"atoms closer than bootstrap.min_distance = {dmin} Å")
                    c = replace(c0, positions=pos, cell=c0.cell @ d.T, features={}, atom_data={})
                    items.append((f"boot/{s['name']}/r{k:04d}", c, {"iteration": -1, "system": s["name"],
                                                                   "source": "rattle"}))
            else:
                items += self._reference_md(s, c0, b)
        ok, bad = self._label(items, "bootstrap")
        self.log(f"bootstrap: {ok} labelled, {bad} failed, store holds {len(self.store)}")

    def _relaxed_path(self, s) -> Path:
        """Where the bootstrap relaxation of system ``s``'s structure is kept (shared by the systems
        that start from the same structure)."""
        spec = json.dumps(s["structure"], sort_keys=True, default=str)
        first = next(x for x in self.cfg["system"] if json.dumps(x["structure"], sort_keys=True, default=str) == spec)
        return self.workdir / "bootstrap" / f"relaxed_{first['name']}.extxyz"

    def _reference_relax(self, s, c0, b):
        """FIRE relaxation (atoms only, fixed cell) with the reference calculator in this process; every
        ``relax_every``-th step is stored as a label as it is computed (the relaxation path is what MD from
        a random cell would go through first). Returns the relaxed configuration, from which the rattles and
        the system's first MD start. Resumable: a finished relaxation is read back, not redone."""
        from ase.io import read, write
        from ase.optimize import FIRE

        from ..potential.cfg import Configuration
        from .reference import _make_calculator

        out = self._relaxed_path(s)
        if out.exists():
            return Configuration.from_atoms(read(out), symbol_to_type=self.symbol_to_type)
        out.parent.mkdir(parents=True, exist_ok=True)
        at = c0.to_atoms(self.type_to_symbol)
        at.calc = _make_calculator(self.cfg["reference"], str(self.workdir / "jobs" / f"relax_{s['name']}"))
        spec = self.cfg["reference"]
        have = set(self.store.keys())
        t_last = [time.perf_counter()]
        n_step = [0]

        def grab():
            k = n_step[0]
            n_step[0] += 1
            if k % int(b["relax_every"]):
                return
            key = f"boot/{s['name']}/x{k:04d}"
            if key in have:
                return
            e = float(at.get_potential_energy())
            f = np.asarray(at.get_forces(), float)
            st = -np.asarray(at.get_stress(voigt=True), float) * at.get_volume()
            if not (np.isfinite(e) and np.all(np.isfinite(f)) and np.all(np.isfinite(st))):
                return
            conf = replace(c0, positions=at.positions.copy(), energy=e, forces=f, plus_stress=st, features={},
                           atom_data={})
            wall = time.perf_counter() - t_last[0]
            t_last[0] = time.perf_counter()
            self.store.add(key, conf, {"iteration": -1, "system": s["name"], "source": "reference-relax", "step": k,
                                       "phase": "bootstrap", "wall": wall, "calculator": dict(spec)})
            self.log(f"  relax {key}: E = {e:.6f} eV, max |F| = {np.abs(f).max():.2f} eV/Å ({wall:.1f} s)")

        with _Timer(self.state["timing"], "label"):
            opt = FIRE(at, maxstep=0.1, logfile=None)
            opt.attach(grab, interval=1)
            try:
                opt.run(fmax=float(b["relax_fmax"]), steps=int(b["relax_steps"]))
            except Exception as e:  # noqa: BLE001 - a failing reference: keep what was labelled, go on unrelaxed
                self.log(f"  relax {s['name']}: reference failed ({type(e).__name__}: {e}); rattling the last frame")
        at.calc = None
        tmp = out.with_suffix(".tmp.extxyz")
        write(tmp, at, format="extxyz")
        os.replace(tmp, out)
        return Configuration.from_atoms(at, symbol_to_type=self.symbol_to_type)

    def _reference_md(self, s, c0, b):
        """Snapshots of a short reference MD (Langevin, ASE, in this process)."""
        from ase import units
        from ase.md.langevin import Langevin
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        from .reference import _make_calculator

        at = c0.to_atoms(self.type_to_symbol)
        at.calc = _make_calculator(self.cfg["reference"], str(self.workdir / "jobs" / f"bootmd_{s['name']}"))
        MaxwellBoltzmannDistribution(at, temperature_K=b["md_temperature_K"], rng=np.random.default_rng(0))
        dyn = Langevin(at, s["md"]["timestep_fs"] * units.fs, temperature_K=b["md_temperature_K"], friction=0.02)
        items = []
        from ..potential.cfg import Configuration

        for k in range(int(b["md_steps"]) // int(b["md_every"])):
            dyn.run(int(b["md_every"]))
            c = Configuration.from_atoms(at, symbol_to_type=self.symbol_to_type)
            items.append((f"boot/{s['name']}/md{k:04d}", replace(c, energy=None, forces=None, plus_stress=None,
                                                                 features={}, atom_data={}),
                          {"iteration": -1, "system": s["name"], "source": "reference-md"}))
        return items

    def train(self):
        from ..potential.model import MTP
        from ..train.data import Weights
        from ..train.trainer import TrainConfig, train
        from .grade import build_active_set
        from .state import write_state

        it = self.state["iteration"]
        d = self._itdir()
        confs = self.store.configurations(order="key")  # independent of the order labels finished in
        if not confs:
            raise MTPJaxError("learn: the training store is empty (bootstrap produced no labels: all failed?) — "
                              "see the failed labels in train.h5 and the reference settings")
        pc, tc = self.cfg["potential"], self.cfg["train"]
        prev = self.workdir / f"it{it - 1:03d}" / "pot.mtp" if it > 0 else None
        if prev is not None and prev.exists():
            model, init, max_iter = MTP.from_file(prev), "keep", int(tc["max_iter"])
        elif pc.get("init"):
            p = Path(pc["init"])
            model = MTP.from_file(p if p.is_absolute() else Path(self.cfg["_dir"]) / p)
            if model.n_species != len(self.species):
                raise ConfigurationError(f"potential.init = {p}: the potential has {model.n_species} species, "
                                         f"species lists {len(self.species)} ({', '.join(self.species)})")
            init, max_iter = None, int(tc["init_max_iter"] or tc["max_iter"])
        else:
            model = MTP.from_level(int(pc["level"]), species=list(range(len(self.species))), cutoff=float(pc["cutoff"]),
                                   min_dist=float(pc["min_dist"]), radial_basis_size=int(pc["radial_basis_size"]))
            init, max_iter = None, int(tc["init_max_iter"] or tc["max_iter"])
        w = Weights(energy=float(tc["energy_weight"]), force=float(tc["force_weight"]),
                    stress=float(tc["stress_weight"]), weighting=tc["weighting"])
        # L-BFGS: a fresh preconditioner every iteration (one carried over from the last iteration made the
        # warm-started fit worse on the new, extrapolative data); J on at most 64 configurations bounds its cost.
        # LM (default): warm starts need no multi-start; the first fit tries n_starts initialisations.
        tcfg = TrainConfig(max_iter=max_iter, weights=w, init=init, conv_tol=float(tc["conv_tol"]),
                           seed=int(self.cfg["seed"]) + it, eval_every=0, precond_max_configs=64,
                           optimizer=str(tc["optimizer"]), n_starts=int(tc["n_starts"]),
                           start_iter=int(tc["start_iter"]))
        res = train(model, weight_anchors(self.store, confs, float(tc["anchor_weight"])), config=tcfg)
        model = res.model
        model.save(d / "pot.mtp")
        act = self.cfg["system"][0]["active"]
        init = act["init"] if isinstance(act["init"], str) else float(act["init"])
        st = build_active_set(model, confs, act["mode"], init, float(act["swap_threshold"]), method="blocked")
        st.self_check()
        write_state(d / "pot.almtp", model, st)
        m = res.train_metrics
        self.log(f"train it{it:03d}: {len(confs)} configurations, {res.iterations} iterations ({res.stop_reason}), "
                 f"energy RMSE {m.get('energy_rmse_per_atom', m.get('energy_rmse', float('nan'))):.4g}, "
                 f"force RMSE {m.get('force_rmse', float('nan')):.4g}; active set {st.n_selected}/{st.n}")
        self.state["history"].append({"iteration": it, "phase": "train", "n_train": len(confs),
                                      "metrics": {k: float(v) for k, v in m.items() if np.isscalar(v)},
                                      "active_rows": st.n_selected})

    def md(self):
        """MTP-MD of every unfinished system; candidates + restart frames on disk."""
        import jax.numpy as jnp

        from ..md.simulate import FS, Simulation, SimulationError
        from ..potential.cfg import Configuration, write_cfg
        from .md_grade import grade_jit, md_grade_setup
        from .state import read_state

        it = self.state["iteration"]
        d = self._itdir()
        model, ast = read_state(d / "pot.almtp")
        grade = None  # separate grade of a frame: only needed when the efs_fn does not return it
        for s in self.cfg["system"]:
            ss = self.state["systems"][s["name"]]
            if ss["done"] or (d / f"md_{s['name']}.json").exists():
                continue
            md, act = s["md"], s["active"]
            sched = None
            if ss["restart"]:
                r = np.load(self.workdir / ss["restart"])
                pos, cell, types, momenta = r["positions"], r["cell"], r["types"], r["momenta"]
                if md["schedule"] is not None and "stage_index" in r:
                    sched = {k: r[k] for k in ("stage_index", "stage_step", "stage_t0", "step", "time")}
            else:
                c0 = self._structure(s)
                rp = self._relaxed_path(s)
                if self.cfg["bootstrap"]["method"] == "relax" and rp.exists():  # start from the relaxed cell
                    from ase.io import read

                    c0 = Configuration.from_atoms(read(rp), symbol_to_type=self.symbol_to_type)
                pos, cell, types, momenta = c0.positions, c0.cell, c0.types, None
            species = model.species_index(types)
            masses = self._masses(types)
            stages = _schedule(md, s["name"])
            every = int(act["candidate_every"])
            # cfg mode: the grade comes out of the force call (MDState.aux); nbh mode: separate hook.
            # Both are parametric: the MD block compiled in an earlier iteration is reused.
            efs, hook, fused = md_grade_setup(model, ast, float(act["break_threshold"]), int(act["grade_every"]))
            if not fused and grade is None:
                grade = grade_jit(model, ast)
            sim = Simulation(efs, float(model.cutoff), float(md["timestep_fs"]) * FS, stages, skin=float(md["skin"]),
                             thermo_every=every, traj_every=every, hook=hook,
                             max_temperature=float(md["max_temperature_K"]))
            gmax = float("inf") if act["max_candidate_grade"] is None else float(act["max_candidate_grade"])
            sym = [self.species[t] for t in np.asarray(types)]

            def physical(c):
                # a frame with atoms much closer than covalent bonding (an exploding run) is not worth a
                # label (the reference may not even converge); a high grade alone is no reason to skip it:
                # a physical frame with, say, a first P–P pair inside the cutoff has γ ~ 1e7
                return _closest_pair(c.positions, c.cell, sym, float(act["min_distance_factor"])) is None

            # anchor frames: n evenly spaced frames of every stage (global step numbers of the schedule)
            n_anch = int(act["anchors_per_stage"]) if md["schedule"] is not None else 0
            anchor_steps, acc = [], 0
            for st_ in stages:
                anchor_steps += [acc + int(round(int(st_.steps) * (j + 1) / n_anch)) for j in range(n_anch)]
                acc += int(st_.steps)

            def walk(w):
                """One trajectory from the start frame; walker 0 keeps the restart momenta, the others draw
                new ones at the current temperature (independent directions out of the same frame)."""
                cands, grades_seen, anchors = [], [], []
                last = {"state": None}
                k_start = int(sched["step"]) if sched is not None else 0
                todo = [a for a in anchor_steps if a > k_start] if w == 0 else []

                def on_frame(st):
                    g = float(st.aux) if st.aux is not None else float(_grade_state(grade, sim, st))
                    grades_seen.append((int(st.step), g))
                    last["state"] = st
                    if todo and int(st.step) >= todo[0]:
                        while todo and int(st.step) >= todo[0]:
                            todo.pop(0)
                        c = Configuration(positions=np.asarray(st.positions), types=np.asarray(types),
                                          cell=np.asarray(st.cell), pbc=np.ones(3, bool),
                                          features={"MV_grade": f"{g:f}", "anchor_step": str(int(st.step))})
                        if g <= gmax and physical(c):
                            anchors.append(c)
                    if float(act["select_threshold"]) < g <= gmax:
                        c = Configuration(positions=np.asarray(st.positions), types=np.asarray(types),
                                          cell=np.asarray(st.cell), pbc=np.ones(3, bool),
                                          features={"MV_grade": f"{g:f}"})
                        if physical(c):
                            cands.append((int(st.step), g, c))

                k0 = int(sched["step"]) if sched is not None else 0
                i0, _, _ = _schedule_position(stages, k0, 1.0)
                st0 = stages[min(i0, len(stages) - 1)]
                t_now = st0.temperature
                if st0.temperature_end is not None and sched is not None and st0.steps:
                    f = float(sched["stage_step"]) / st0.steps
                    t_now = (1 - f) * st0.temperature + f * st0.temperature_end
                sim.stage_index, sim.stage_step, sim.stage_t0 = 0, 0, 0.0
                if sched is not None:  # a schedule continues where the last run stopped
                    sim.stage_index, sim.stage_step, sim.stage_t0 = (int(sched["stage_index"]),
                                                                     int(sched["stage_step"]), float(sched["stage_t0"]))
                state0, nbrs = sim.init_state(pos, masses, cell, species, t_now,
                                              seed=int(self.cfg["seed"]) + 1000 * it + 7919 * w,
                                              momenta=momenta if w == 0 else None)
                if sched is not None:
                    state0 = state0._replace(step=jnp.asarray(sched["step"], state0.step.dtype),
                                             time=jnp.asarray(sched["time"], state0.time.dtype))
                exploded = False
                try:
                    res = sim.run(state0, nbrs, on_frame=on_frame)
                    stopped, final, hv, steps = res.stopped_by_hook, res.state, res.hook_value, res.steps
                    bs = res.break_state
                    if (stopped and bs is not None and np.all(np.isfinite(np.asarray(bs.positions)))
                            and float(hv) <= gmax):
                        # the extrapolating frame itself is a candidate too (as MLIP keeps it): without it a
                        # restart frame that breaks at once would never teach the potential anything
                        c = Configuration(positions=np.asarray(bs.positions), types=np.asarray(types),
                                          cell=np.asarray(bs.cell), pbc=np.ones(3, bool),
                                          features={"MV_grade": f"{float(hv):f}"})
                        if physical(c):
                            cands.append((int(bs.step), float(hv), c))
                except SimulationError as e:  # unphysical: treat as extrapolation, restart from the last frame
                    exploded, stopped, hv, steps = True, True, float("inf"), (grades_seen[-1][0] - k0 if grades_seen else 0)
                    final = last["state"]
                    self.log(f"  md {s['name']} (walker {w}): {e}")
                if md["schedule"] is not None:
                    complete = final is not None and _schedule_position(stages, int(np.asarray(final.step)), 1.0)[0] >= len(stages)
                else:
                    complete = steps >= int(md["steps"])
                return {"stopped": bool(stopped), "final": final, "hv": hv, "steps": int(steps), "exploded": exploded,
                        "cands": cands, "grades": grades_seen, "complete": bool(complete), "anchors": anchors}

            t0 = time.perf_counter()
            with _Timer(self.state["timing"], "md"):
                walks = [walk(w) for w in range(int(md["walkers"]))]
            # the walker that got furthest gives the restart frame; every walker's candidates count
            best = max(walks, key=lambda x: (x["final"] is not None, x["steps"]))
            final, steps = best["final"], best["steps"]
            cands = [c for x in walks for c in x["cands"]]
            grades_seen = [g for x in walks for g in x["grades"]]
            complete = all(x["complete"] for x in walks)
            stopped = any(x["stopped"] for x in walks)
            exploded = any(x["exploded"] for x in walks)
            hv = max((x["hv"] for x in walks if x["stopped"]), default=None)  # the highest grade that broke a walker
            wall = time.perf_counter() - t0
            restart = None
            if final is not None:
                restart = f"it{it:03d}/restart_{s['name']}.npz"
                extra = {}
                if md["schedule"] is not None:
                    k = int(np.asarray(final.step))
                    extra = dict(zip(("stage_index", "stage_step", "stage_t0"), _schedule_position(stages, k, sim.dt)),
                                 step=k, time=float(np.asarray(final.time)))
                np.savez(self.workdir / restart, positions=np.asarray(final.positions), cell=np.asarray(final.cell),
                         types=np.asarray(types), momenta=np.asarray(final.momenta), **extra)
            write_cfg(d / f"candidates_{s['name']}.cfg", [c for _, _, c in cands])
            anchors = [c for x in walks for c in x["anchors"]]
            if n_anch:
                write_cfg(d / f"anchors_{s['name']}.cfg", anchors)
            # one stage: a run of the target length from the restart frame; a schedule: its end reached;
            # with several walkers, all of them
            done = not stopped and complete and (act["done_when"] == "no-break" or not cands)
            start_over = md["schedule"] is not None and complete and not done
            if start_over:
                restart = None  # the schedule's end was reached with extrapolating frames: the next run starts over
            rec = {"system": s["name"], "iteration": it, "steps": int(steps), "stopped": bool(stopped),
                   "exploded": exploded, "break_grade": None if hv is None else float(hv),
                   "n_candidates": len(cands), "n_anchors": len(anchors),
                   "max_grade": max([g for _, g in grades_seen], default=0.0),
                   "wall_s": wall, "restart": restart, "done": done, "start_over": start_over,
                   "walkers": [{"steps": x["steps"], "stopped": x["stopped"], "n_candidates": len(x["cands"])}
                               for x in walks]}
            _atomic_json(d / f"md_{s['name']}.json", rec)
            self.log(f"md it{it:03d} {s['name']}: {steps} steps, "
                     f"{'BREAK γ=%.3g' % hv if stopped and hv is not None else 'no break'}, "
                     f"{len(cands)} candidates{f', {len(anchors)} anchors' if n_anch else ''}, {wall:.1f} s")

    def collect_md(self):
        d = self._itdir()
        for s in self.cfg["system"]:
            ss = self.state["systems"][s["name"]]
            p = d / f"md_{s['name']}.json"
            if ss["done"] or not p.exists():
                continue
            rec = json.loads(p.read_text())
            ss["runs"].append(rec)
            if rec.get("start_over"):
                ss["restart"] = None
            elif rec["restart"]:
                ss["restart"] = rec["restart"]
            ss["done"] = rec["done"]
            self.state["history"].append(dict(rec, phase="md"))

    def select(self):
        """MaxVol selection over all candidates → ``itNNN/selected.json``."""
        from ..potential.cfg import read_cfg, write_cfg
        from .grade import select_add
        from .state import read_state

        it = self.state["iteration"]
        d = self._itdir()
        model, ast = read_state(d / "pot.almtp")
        cands, names = [], []
        for s in self.cfg["system"]:
            p = d / f"candidates_{s['name']}.cfg"
            if p.exists() and p.stat().st_size:
                cs = read_cfg(p)
                cands += cs
                names += [s["name"]] * len(cs)
        sel = []
        if cands:
            act = self.cfg["system"][0]["active"]
            res = select_add(model, ast, cands, threshold_select=1.0 + 1e-7, threshold_swap=float(act["swap_threshold"]),
                             selection_limit=int(act["max_select"]))
            sel = res["selected"]
        items = [{"key": f"it{it:03d}/{names[k]}/c{k:05d}", "system": names[k], "index": k,
                  "grade": float(cands[k].features.get("MV_grade", "nan"))} for k in sel]
        chosen = [cands[k] for k in sel]
        n_anch = 0
        for s in self.cfg["system"]:  # anchor frames are labelled whatever their grade
            p = d / f"anchors_{s['name']}.cfg"
            if p.exists() and p.stat().st_size:
                for j, c in enumerate(read_cfg(p)):
                    items.append({"key": f"it{it:03d}/{s['name']}/a{j:03d}", "system": s["name"], "index": -1,
                                  "grade": float(c.features.get("MV_grade", "nan")), "anchor": True})
                    chosen.append(c)
                    n_anch += 1
        write_cfg(d / "selected.cfg", chosen)
        _atomic_json(d / "selected.json", items)
        why = ("no candidates (all frames below select_threshold)" if not cands else
               f"{len(sel)} of {len(cands)} candidates selected") + (f", {n_anch} anchor frames" if n_anch else "")
        self.log(f"select it{it:03d}: {why}")
        self.state["history"].append({"iteration": it, "phase": "select", "n_candidates": len(cands),
                                      "n_selected": len(sel), "n_anchors": n_anch})

    def label(self):
        from ..potential.cfg import read_cfg

        it = self.state["iteration"]
        d = self._itdir()
        items = json.loads((d / "selected.json").read_text())
        confs = read_cfg(d / "selected.cfg") if items else []
        todo = [(x["key"], replace(c, features={}), {"iteration": it, "system": x["system"], "grade": x["grade"]}
                 | ({"anchor": True} if x.get("anchor") else {})) for x, c in zip(items, confs)]
        ok, bad = self._label(todo, "lotf")
        self.log(f"label it{it:03d}: {ok} labelled, {bad} failed, store holds {len(self.store)}")
        self.state["history"].append({"iteration": it, "phase": "label", "n_labelled": ok, "n_failed": bad})

    # ---------------------------------------------------------- driver
    def run(self, resume: bool = False, stop_after: str | None = None) -> dict:
        """Run (or resume) the loop; ``stop_after`` = a phase name ('bootstrap',
        'train', 'md', 'select', 'label') stops cleanly after that phase
        (state saved; ``--resume`` continues)."""
        if self.state_path.exists():
            if not resume:
                raise MTPJaxError(f"{self.workdir}: holds a learning run (learn_state.json); use --resume "
                                  f"to continue it or another workdir")
            self.state = json.loads(self.state_path.read_text())
            new = self._thresholds()
            if new != self.state.get("thresholds"):
                self.state["events"].append({"time": time.time(), "thresholds_changed": {
                    "old": self.state.get("thresholds"), "new": new}})
                self.log(f"learn: thresholds changed on resume: {new}")
                self.state["thresholds"] = new
            self._reopen()
            self.log(f"learn: resuming at iteration {self.state['iteration']}, phase {self.state['phase']}")
        else:
            self.state = self._new_state()
            self._save()
        st = self.state
        timing = st["timing"]
        while not st["done"]:
            ph = st["phase"]
            if ph == "bootstrap":
                with _Timer(timing, "label"):
                    self.bootstrap()
                st["phase"] = "train"
            elif ph == "train":
                with _Timer(timing, "train"):
                    self.train()
                st["phase"] = "md"
            elif ph == "md":
                self.md()
                self.collect_md()
                if all(x["done"] for x in st["systems"].values()):
                    why = "all systems ran their target length without extrapolation"
                    if any(p.stat().st_size for p in self._itdir().glob("anchors_*.cfg")):
                        st["finishing"] = why  # label this iteration's anchor frames, then stop
                        st["phase"] = "select"
                    else:
                        st["done"], st["stop_reason"] = True, why
                else:
                    st["phase"] = "select"
            elif ph == "select":
                self.select()
                st["phase"] = "label"
            elif ph == "label":
                with _Timer(timing, "label"):
                    self.label()
                if st.get("finishing"):
                    st["done"], st["stop_reason"] = True, st["finishing"] + " (anchor frames labelled)"
                elif st["iteration"] + 1 >= int(self.cfg["max_iterations"]):
                    st["done"], st["stop_reason"] = True, f"max_iterations ({self.cfg['max_iterations']}) reached"
                else:
                    st["iteration"] += 1
                    st["phase"] = "train"
            self._save()
            if stop_after is not None and ph == stop_after and not st["done"]:
                self.log(f"learn: stopped after phase {ph} (--stop-after); continue with --resume")
                break
        self.summary()
        return st

    def summary(self) -> dict:
        st = self.state
        failed = self.store.failed()
        prov = self.store.provenance()
        sm = {
            "iterations": st["iteration"] + 1,
            "stop_reason": st.get("stop_reason"),
            "labels": len(prov),
            "labels_failed": len(failed),
            "failed": failed,
            "timing_s": st["timing"],
            "systems": {k: {"done": v["done"], "runs": v["runs"]} for k, v in st["systems"].items()},
            "history": st["history"],
            "events": st["events"],
        }
        _atomic_json(self.workdir / "summary.json", sm)
        try:
            _plot_summary(sm, self.workdir / "summary.png")
        except Exception as e:  # noqa: BLE001 - plots are optional
            self.log(f"learn: no plot ({e})")
        self.log(f"learn: {sm['stop_reason']}; {sm['iterations']} iterations, {sm['labels']} labels "
                 f"({sm['labels_failed']} failed); time " +
                 ", ".join(f"{k} {v:.1f} s" for k, v in st["timing"].items()))
        return sm


def _grade_state(grade, sim, st):
    """γ of an MD state (fresh exact neighbour list; the builder is jitted once per simulation)."""
    import jax

    b = sim._cache.get("_grade_build")
    if b is None or b[0] is not sim.neighbor_fns:
        b = (sim.neighbor_fns, jax.jit(sim.neighbor_fns.build))
        sim._cache["_grade_build"] = b
    nbrs = b[1](st.positions, st.cell)
    return grade(st.positions, st.cell, nbrs.idx, nbrs.shifts, st.species)


def _plot_summary(sm, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(12, 3.5))
    for name, s in sm["systems"].items():
        its = [r["iteration"] for r in s["runs"]]
        ax[0].plot(its, [r["steps"] for r in s["runs"]], "o-", label=name)
        ax[1].semilogy(its, [max(r["max_grade"], 1e-3) for r in s["runs"]], "o-", label=name)
    ax[0].set_xlabel("iteration"); ax[0].set_ylabel("MD steps before break"); ax[0].legend()
    ax[1].set_xlabel("iteration"); ax[1].set_ylabel("max grade seen")
    t = sm["timing_s"]
    ax[2].bar(list(t), list(t.values())); ax[2].set_ylabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="mtpjax learn", description="active learning on the fly (LOTF)")
    p.add_argument("config", help="LEARN.toml")
    p.add_argument("--resume", action="store_true", help="continue the run in the workdir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TOML key, e.g. --set active.select_threshold=2.0")
    p.add_argument("--stop-after", default=None, choices=("bootstrap", "train", "md", "select", "label"),
                   help="stop cleanly after this phase (resume later)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    Learner(cfg).run(resume=args.resume, stop_after=args.stop_after)
    return 0
