"""Learning on the fly (``mtpjax learn LEARN.toml [--resume]``).

Loop (Podryabinkin & Shapeev 2017; Novikov et al. 2021; docs/spec/active_learning.md); the file is
:class:`mtpjax.config.learn.LearnConfig`:

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

import hashlib
import json
import time
from dataclasses import replace

import numpy as np

from mtpjax.active.bootstrap import bootstrap, relaxed_path, structure_key, system_structure
from mtpjax.active.explore import explore, start_frame
from mtpjax.active.grade import build_active_set, select_add
from mtpjax.active.labelling import label_into_store
from mtpjax.active.state import read_state, write_state
from mtpjax.config.learn import LearnConfig, SystemSpec, load_learn
from mtpjax.errors import ConfigurationError, MTPJaxError
from mtpjax.io.atomic import atomic_write_json
from mtpjax.io.cfg import read_cfg, write_cfg
from mtpjax.io.lock import workdir_lock
from mtpjax.io.store import TrainingStore
from mtpjax.plotting import pyplot, save
from mtpjax.progress import Progress
from mtpjax.potential.model import MTP
from mtpjax.train.data import LOSS_WEIGHT_FEATURE, Weights
from mtpjax.train.trainer import TrainConfig, train

__all__ = ["Learner", "load_learn", "weight_anchors", "PHASES"]

#: the phases of an iteration, in order (``--stop-after`` names one)
PHASES = ("bootstrap", "train", "md", "select", "label")


def weight_anchors(store, confs, weight: float) -> list:
    """``confs`` (from ``store``) with the loss weight ``weight`` on the anchor labels (the frames labelled
    at the end of every schedule stage whatever their grade: the quenched glasses, which lie far below the
    hot states the rest of the data samples). Returns ``confs`` itself when ``weight`` is 1."""
    if float(weight) == 1.0:
        return confs
    keys = {k for k, p in store.provenance().items() if p.get("anchor")}
    return [replace(c, features={**c.features, LOSS_WEIGHT_FEATURE: repr(float(weight))})
            if c.features.get("key") in keys else c for c in confs]


class _Timer:
    """Adds the wall time of a ``with`` block to ``timing[key]`` (seconds)."""

    def __init__(self, timing: dict, key: str):
        self.timing, self.key = timing, key

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *a):
        self.timing[self.key] = self.timing.get(self.key, 0.0) + time.perf_counter() - self.t0


class Learner:
    """The LOTF driver (host orchestration; see the module docstring) of a :class:`LearnConfig`."""

    def __init__(self, cfg: LearnConfig, log=print, progress: bool = True):
        self.cfg = cfg
        self.log = log
        self.progress = progress
        self.workdir = cfg.workdir_path
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.workdir / "learn_state.json"
        self.store = TrainingStore(self.workdir / "train.h5")
        self.species = list(cfg.species)
        self.type_to_symbol = dict(enumerate(self.species))
        self.symbol_to_type = {s: t for t, s in enumerate(self.species)}
        self.state = None

    # ---------------------------------------------------------- state
    def _new_state(self):
        return {"iteration": 0, "phase": "bootstrap", "done": False, "systems": {
            s.name: {"restart": None, "done": False, "runs": [], "structure_sha256": self._structure_id(s)}
            for s in self.cfg.system},
            "timing": {}, "history": [], "thresholds": self._thresholds(), "events": []}

    def _structure_id(self, s: SystemSpec) -> str:
        """sha256 of system ``s``'s starting structure: its file's bytes, or the inline table."""
        if isinstance(s.structure, str):
            p = self.cfg.path(s.structure)
            if p.exists():
                return hashlib.sha256(p.read_bytes()).hexdigest()
        return hashlib.sha256(structure_key(s).encode()).hexdigest()

    def _reopen(self):
        """On resume: systems new to the config join the loop, and a run that stopped at ``max_iterations``
        (or with every system done) continues when the config now asks for more iterations or holds systems
        that have not run their target length: the next iteration trains on the whole store and runs MD again."""
        st = self.state
        changed = []  # systems added, or whose structure changed, since the state was written
        for s in self.cfg.system:
            sid = self._structure_id(s)
            if s.name not in st["systems"]:
                st["systems"][s.name] = {"restart": None, "done": False, "runs": [], "structure_sha256": sid}
                st["events"].append({"time": time.time(), "system_added": s.name})
                self.log(f"learn: system {s.name} added on resume")
                changed.append(s.name)
                continue
            ss = st["systems"][s.name]
            old = ss.setdefault("structure_sha256", sid)  # states written before this check: trust them
            if old != sid:  # e.g. the workflow rebuilt its cells (--from build): its MD starts over, labels stay
                ss.update(restart=None, done=False, structure_sha256=sid)
                rp = relaxed_path(self.cfg, self.workdir, s)
                if rp.exists():  # the bootstrap relaxation of the old structure
                    rp.unlink()
                st["events"].append({"time": time.time(), "system_structure_changed": s.name})
                self.log(f"learn: the structure of system {s.name} changed; its MD starts over from it")
                changed.append(s.name)
        if not st["done"]:
            return
        pending = [s.name for s in self.cfg.system if not st["systems"][s.name]["done"]]
        if pending and st["iteration"] + 1 >= int(self.cfg.max_iterations):
            self.log(f"learn: {', '.join(pending)} not at their target length, but max_iterations "
                     f"({self.cfg.max_iterations}) is used up: raise it to continue")
            # systems this run never explored: the potential has not learned on them (the workflow stops)
            st["never_explored"] = sorted(set(st.get("never_explored", [])) | set(changed))
        elif pending:
            st["events"].append({"time": time.time(), "reopened": {"after": st.get("stop_reason"),
                                                                   "max_iterations": int(self.cfg.max_iterations),
                                                                   "pending": pending}})
            self.log(f"learn: continuing after '{st.get('stop_reason')}' (max_iterations now "
                     f"{self.cfg.max_iterations}; pending: {', '.join(pending)})")
            st["done"], st["stop_reason"] = False, None
            st.pop("finishing", None)
            st.pop("never_explored", None)
            if st["phase"] == "label":  # stopped right after labelling: retrain on the new labels next
                st["iteration"] += 1
                st["phase"] = "train"
            else:
                st["phase"] = "md"
            self._save()

    def _thresholds(self):
        return {s.name: {"select_threshold": s.active.select_threshold, "break_threshold": s.active.break_threshold,
                         "steps": s.md.steps, "temperature_K": s.md.temperature_K} for s in self.cfg.system}

    def _save(self):
        atomic_write_json(self.state_path, self.state)

    def _itdir(self, it=None):
        d = self.workdir / f"it{self.state['iteration'] if it is None else it:03d}"
        d.mkdir(exist_ok=True)
        return d

    def _label(self, items, phase: str):
        return label_into_store(self.store, items, self.cfg.reference, self.cfg.labels, self.workdir / "jobs",
                                self.type_to_symbol, phase, self.log)

    # ---------------------------------------------------------- phases
    def bootstrap(self):
        bootstrap(self.cfg, self.store, self.workdir, self.log)

    def _initial_model(self, it: int):
        """(model, init, max_iter): the last iteration's potential (kept, ``train.max_iter``), ``potential.init``
        or a new potential of ``potential.level`` (``train.init_max_iter``)."""
        pc, tc = self.cfg.potential, self.cfg.train
        prev = self.workdir / f"it{it - 1:03d}" / "pot.mtp" if it > 0 else None
        first_iter = int(tc.init_max_iter if tc.init_max_iter is not None else tc.max_iter)
        if prev is not None and prev.exists():
            return MTP.from_file(prev), "keep", int(tc.max_iter)
        if pc.init:
            p = self.cfg.path(pc.init)
            model = MTP.from_file(p)
            if model.n_species != len(self.species):
                raise ConfigurationError(f"potential.init = {p}: the potential has {model.n_species} species, "
                                         f"species lists {len(self.species)} ({', '.join(self.species)})")
            return model, None, first_iter
        model = MTP.from_level(int(pc.level), species=list(range(len(self.species))), cutoff=float(pc.cutoff),
                               min_dist=float(pc.min_dist), radial_basis_size=int(pc.radial_basis_size))
        return model, None, first_iter

    def train(self):
        it = self.state["iteration"]
        d = self._itdir()
        confs = self.store.configurations(order="key")  # independent of the order labels finished in
        if not confs:
            raise MTPJaxError("learn: the training store is empty (bootstrap produced no labels: all failed?) — "
                              "see the failed labels in train.h5 and the reference settings")
        tc = self.cfg.train
        model, init, max_iter = self._initial_model(it)
        w = Weights(energy=float(tc.energy_weight), force=float(tc.force_weight), stress=float(tc.stress_weight),
                    weighting=tc.weighting)
        # L-BFGS: a fresh preconditioner every iteration (one carried over from the last iteration made the
        # warm-started fit worse on the new, extrapolative data); J on at most 64 configurations bounds its cost.
        # LM (default): warm starts need no multi-start; the first fit tries n_starts initialisations.
        tcfg = TrainConfig(max_iter=max_iter, weights=w, init=init, conv_tol=float(tc.conv_tol),
                           seed=int(self.cfg.seed) + it, eval_every=0, precond_max_configs=64,
                           optimizer=str(tc.optimizer), n_starts=int(tc.n_starts), start_iter=int(tc.start_iter))
        res = train(model, weight_anchors(self.store, confs, float(tc.anchor_weight)), config=tcfg)
        model = res.model
        model.save(d / "pot.mtp")
        act = self.cfg.system[0].active
        st = build_active_set(model, confs, act.mode, act.init, act.swap_threshold)
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
        """MTP-MD of every unfinished system (:func:`mtpjax.active.explore.explore`)."""
        it = self.state["iteration"]
        d = self._itdir()
        model, ast = read_state(d / "pot.almtp")
        for s in self.cfg.system:
            ss = self.state["systems"][s.name]
            if ss["done"] or (d / f"md_{s.name}.json").exists():
                continue
            restart = self.workdir / ss["restart"] if ss["restart"] else None
            relaxed = relaxed_path(self.cfg, self.workdir, s) if self.cfg.bootstrap.method == "relax" else None
            frame = start_frame(restart, s.md.schedule is not None,
                                None if restart else system_structure(self.cfg, s), relaxed, self.symbol_to_type)
            with _Timer(self.state["timing"], "md"):
                explore(s, model, ast, frame, it, int(self.cfg.seed) + 1000 * it, d, self.workdir, self.species,
                        self.log)

    def collect_md(self):
        d = self._itdir()
        for s in self.cfg.system:
            ss = self.state["systems"][s.name]
            p = d / f"md_{s.name}.json"
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
        """MaxVol selection over all candidates → ``itNNN/selected.json``; anchor frames are added whatever
        their grade."""
        it = self.state["iteration"]
        d = self._itdir()
        model, ast = read_state(d / "pot.almtp")
        cands, names = [], []
        for s in self.cfg.system:
            p = d / f"candidates_{s.name}.cfg"
            if p.exists() and p.stat().st_size:
                cs = read_cfg(p)
                cands += cs
                names += [s.name] * len(cs)
        sel = []
        if cands:
            act = self.cfg.system[0].active
            res = select_add(model, ast, cands, threshold_select=1.0 + 1e-7, threshold_swap=act.swap_threshold,
                             selection_limit=int(act.max_select))
            sel = res["selected"]
        items = [{"key": f"it{it:03d}/{names[k]}/c{k:05d}", "system": names[k], "index": k,
                  "grade": float(cands[k].features.get("MV_grade", "nan"))} for k in sel]
        chosen = [cands[k] for k in sel]
        n_anch = 0
        for s in self.cfg.system:
            p = d / f"anchors_{s.name}.cfg"
            if p.exists() and p.stat().st_size:
                for j, c in enumerate(read_cfg(p)):
                    items.append({"key": f"it{it:03d}/{s.name}/a{j:03d}", "system": s.name, "index": -1,
                                  "grade": float(c.features.get("MV_grade", "nan")), "anchor": True})
                    chosen.append(c)
                    n_anch += 1
        write_cfg(d / "selected.cfg", chosen)
        atomic_write_json(d / "selected.json", items)
        why = ("no candidates (all frames below select_threshold)" if not cands else
               f"{len(sel)} of {len(cands)} candidates selected") + (f", {n_anch} anchor frames" if n_anch else "")
        self.log(f"select it{it:03d}: {why}")
        self.state["history"].append({"iteration": it, "phase": "select", "n_candidates": len(cands),
                                      "n_selected": len(sel), "n_anchors": n_anch})

    def label(self):
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
    def _resume(self, resume: bool):
        if self.state_path.exists():
            if not resume:
                raise MTPJaxError(f"{self.workdir}: holds a learning run (learn_state.json); use --resume "
                                  f"to continue it or another workdir")
            bad = self.store.non_finite()
            if bad:
                raise MTPJaxError(f"{self.store.path}: {len(bad)} labels hold NaN/inf (e.g. {next(iter(bad))}); "
                                  f"`mtpjax store repair {self.store.path}` moves them to /failed, then --resume")
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

    def _step(self, ph: str) -> None:
        """Run phase ``ph`` and move the state to the next one."""
        st, timing = self.state, self.state["timing"]
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
            elif st["iteration"] + 1 >= int(self.cfg.max_iterations):
                st["done"], st["stop_reason"] = True, f"max_iterations ({self.cfg.max_iterations}) reached"
            else:
                st["iteration"] += 1
                st["phase"] = "train"

    def run(self, resume: bool = False, stop_after: str | None = None) -> dict:
        """Run (or resume) the loop; ``stop_after`` = a phase name ('bootstrap', 'train', 'md', 'select',
        'label') stops cleanly after that phase (state saved; ``--resume`` continues). Holds the work folder's
        lock (:func:`~mtpjax.io.lock.workdir_lock`): a second learner on the same folder is refused."""
        with workdir_lock(self.workdir, "learn workdir"):
            return self._run(resume, stop_after)

    def _run(self, resume: bool, stop_after: str | None) -> dict:
        self._resume(resume)
        st = self.state
        prog = Progress(int(self.cfg.max_iterations), "iterations", "learn", enabled=self.progress, log=self.log,
                        every_s=0.0, initial=int(st["iteration"]), eta="ETA at most")
        try:
            while not st["done"]:
                ph, it = st["phase"], st["iteration"]
                self._step(ph)
                self._save()
                if st["iteration"] > it or st["done"]:
                    prog.update(max(st["iteration"] - it, 0), f"{len(self.store)} labels")
                if stop_after is not None and ph == stop_after and not st["done"]:
                    self.log(f"learn: stopped after phase {ph} (--stop-after); continue with --resume")
                    break
        finally:
            prog.close()
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
        atomic_write_json(self.workdir / "summary.json", sm)
        try:
            plot_summary(sm, self.workdir / "summary.png")
        except Exception as e:  # noqa: BLE001 - plots are optional
            self.log(f"learn: no plot ({e})")
        self.log(f"learn: {sm['stop_reason']}; {sm['iterations']} iterations, {sm['labels']} labels "
                 f"({sm['labels_failed']} failed); time " +
                 ", ".join(f"{k} {v:.1f} s" for k, v in st["timing"].items()))
        return sm


def plot_summary(sm: dict, path) -> None:
    """MD steps before a break and the largest grade per iteration and system, and the time per phase."""
    fig, ax = pyplot().subplots(1, 3, figsize=(12, 3.5))
    for name, s in sm["systems"].items():
        its = [r["iteration"] for r in s["runs"]]
        ax[0].plot(its, [r["steps"] for r in s["runs"]], "o-", label=name)
        ax[1].semilogy(its, [max(r["max_grade"], 1e-3) for r in s["runs"]], "o-", label=name)
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("MD steps before break")
    ax[0].legend()
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("max grade seen")
    t = sm["timing_s"]
    ax[2].bar(list(t), list(t.values()))
    ax[2].set_ylabel("time (s)")
    fig.tight_layout()
    save(fig, path, dpi=80)
