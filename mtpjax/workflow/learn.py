"""Stage 2 of the workflow: learning on the fly on the built cells (:mod:`mtpjax.active.learn`).

The workflow's ``[learn]`` table becomes a :class:`~mtpjax.config.learn.LearnConfig` handed to the learner
directly; ``workdir/learn/learn.toml`` is written as a record of it (``mtpjax learn learn.toml --resume``
continues the same run alone). Every composition's first ``structures_per_composition`` cells learn along each
of ``learn.ensembles`` (``production``: along the production protocol itself).
"""
from __future__ import annotations

import json
from pathlib import Path

from mtpjax.active.learn import Learner
from mtpjax.config.base import parse, with_base
from mtpjax.config.learn import LearnConfig
from mtpjax.errors import MTPJaxError
from mtpjax.io.toml import dumps
from mtpjax.workflow.production import learn_schedule, minimized


def learn_config(wf) -> LearnConfig:
    """The learner's configuration of the workflow ``wf`` (its starting cells minimised with ``potential.init``
    when one is given, as the production starts are)."""
    c, ln = wf.cfg, wf.cfg.learn
    d = wf.workdir / "learn"
    d.mkdir(exist_ok=True)
    nper = min(int(ln.structures_per_composition), int(c.n_structures))
    starts = {comp: wf.structures(comp)[:nper] for comp in wf.comps()}
    if c.potential.init:
        starts = {comp: [minimized(wf, s, d / f"start_{comp}_{k}.extxyz", c.path(c.potential.init))
                         for k, s in enumerate(v)] for comp, v in starts.items()}
    systems = []
    for comp in wf.comps():
        for k in range(nper):
            for ens in ln.ensembles:
                md = {"ensemble": ens, "walkers": int(ln.walkers)}
                if ens == "production":  # LOTF along the production protocol itself (melt → quench → relax)
                    md.update(ensemble="npt", schedule=learn_schedule(c), timestep_fs=float(c.production.timestep_fs))
                systems.append({"name": f"{comp}{k}_{ens}", "structure": str(starts[comp][k]), "md": md})
    potential = c.potential.model_dump(exclude={"init"})
    if c.potential.init:
        potential["init"] = str(c.path(c.potential.init))
    learn = {
        "workdir": str(d), "seed": int(c.seed), "max_iterations": int(ln.max_iterations), "species": list(wf.species),
        "potential": potential, "reference": dict(c.reference),
        "labels": c.labels.model_dump(exclude={"submitit"}) | ({"submitit": c.labels.submitit}
                                                               if c.labels.submitit else {}),
        "train": ln.train.model_dump(),
        "active": {"mode": "nbh", "init": ln.active_init, "select_threshold": float(ln.select_threshold),
                   "break_threshold": float(ln.break_threshold), "max_select": int(ln.max_select),
                   "candidate_every": int(ln.candidate_every), "anchors_per_stage": int(ln.anchors_per_stage)},
        "md": {"timestep_fs": float(ln.timestep_fs), "steps": int(ln.steps), "temperature_K": float(ln.temperature_K),
               "pressure_bar": float(ln.pressure_bar), "tdamp_fs": float(ln.tdamp_fs),
               "pdamp_fs": float(ln.pdamp_fs), "barostat": c.production.barostat},
        "bootstrap": ln.bootstrap.model_dump() | {"data": [str(c.path(f)) for f in ln.bootstrap.data]},
        "system": systems,
    }
    return with_base(parse(LearnConfig, learn, c.source or "workflow"), d)


def write_learn_record(wf, cfg: LearnConfig) -> Path:
    """``workdir/learn/learn.toml``: the learner's file as run (rewritten only when it changed)."""
    p = wf.workdir / "learn" / "learn.toml"
    raw = cfg.model_dump(exclude_none=True)
    raw["system"] = [{"name": s["name"], "structure": s["structure"], "md": s["md"], "active": s["active"]}
                     for s in raw["system"]]
    for k in ("md", "active"):  # the per-system tables hold the full settings
        raw.pop(k)
    text = (f"# written by `mtpjax run` from {wf.cfg.source or ''}; resume alone with\n"
            f"#   mtpjax learn {p} --resume\n" + dumps(raw))
    if not p.exists() or p.read_text() != text:
        p.write_text(text)
    return p


def check_learned_every_cell(state: dict, max_iterations: int, source=None) -> None:
    """Stop when the learner ended without running MD on some of its cells (cells rebuilt by ``--from
    build``, or added, after a run that had used all of ``learn.max_iterations``): the potential has not learned
    on them, so the stages after it would run with a potential that never saw them."""
    never = state.get("never_explored") or []
    if state.get("done") and never:
        run = f"mtpjax run {source or 'FILE'}"
        raise MTPJaxError(
            f"learn: the learning run has used all of learn.max_iterations ({max_iterations}) and never ran on "
            f"{', '.join(never)} (cells rebuilt by --from build, or new): the potential has not learned on them. "
            f"Raise learn.max_iterations (e.g. `{run} --set learn.max_iterations={max_iterations + 4} --from "
            "learn`; labels already computed are kept)")


def learn(wf) -> dict:
    """Stage 2: run (or resume) the learner; returns its record (the newest trained potential, labels, why it
    stopped)."""
    cfg = learn_config(wf)
    write_learn_record(wf, cfg)
    learner = Learner(cfg, log=lambda m: wf.log(f"[learn] {m}"))
    st = learner.run(resume=learner.state_path.exists())
    check_learned_every_cell(st, int(cfg.max_iterations), wf.cfg.source)
    it = int(st["iteration"])
    pot = None
    for j in range(it, -1, -1):  # the newest trained potential
        q = cfg.workdir_path / f"it{j:03d}" / "pot.mtp"
        if q.exists():
            pot = q
            break
    if pot is None:
        raise MTPJaxError("learn: no trained potential was produced")
    sm = json.loads((cfg.workdir_path / "summary.json").read_text())
    return {"potential": str(pot), "iterations": sm["iterations"], "labels": sm["labels"],
            "labels_failed": sm["labels_failed"], "stop_reason": sm["stop_reason"], "timing_s": sm["timing_s"],
            "systems_done": {k: v["done"] for k, v in sm["systems"].items()}}
