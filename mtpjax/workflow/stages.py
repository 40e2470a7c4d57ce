"""The workflow's stages (``mtpjax run WORKFLOW.toml``).

build → learn → fit → quench → sweep → analyze → report. Every stage writes
its outputs under ``workdir/<stage>/`` and, when it has finished, a marker
``workdir/stages/<stage>.json`` (atomically). A re-run skips finished
stages; ``--from STAGE`` removes the markers from that stage on and re-runs
them. A killed stage resumes where it was: the learning loop through its
own state file, the MD runs through their checkpoints; build, fit and the
analysis are deterministic and simply redone. Every random choice is seeded
from ``seed``, so a resumed run ends with the same report as an
uninterrupted one.

Compositions: ``lps`` (Li3PS4), ``lbo`` (Li3B11O18) and ``int`` (LPS at the
bottom, LBO on top, stacked along c).
"""
from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path

from mtpjax.config.workflow import STAGES, WorkflowConfig
from mtpjax.errors import ConfigurationError
from mtpjax.io.atomic import atomic_write_json
from mtpjax.io.lock import workdir_lock
from mtpjax.workflow.analyze import analyze_all
from mtpjax.workflow.build import build_cells
from mtpjax.workflow.fit import fit
from mtpjax.workflow.learn import learn
from mtpjax.workflow.paper import COMPS
from mtpjax.workflow.production import quench, sweep
from mtpjax.workflow.report import write_report

__all__ = ["Workflow"]

#: stage name → the function that runs it (``fn(workflow) -> record``)
STAGE_FUNCTIONS = {"build": build_cells, "learn": learn, "fit": fit, "quench": quench, "sweep": sweep,
                   "analyze": analyze_all, "report": write_report}


class Workflow:
    """Runs the stages of a :class:`~mtpjax.config.workflow.WorkflowConfig` (bookkeeping: a marker per
    finished stage; the stages themselves are :data:`STAGE_FUNCTIONS`)."""

    def __init__(self, cfg: WorkflowConfig, log=print):
        self.cfg = cfg
        self.log = log
        self.workdir = cfg.workdir_path
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.markers = self.workdir / "stages"
        self.markers.mkdir(exist_ok=True)
        self.species = list(cfg.species)

    # ---------------------------------------------------------------- bookkeeping
    def done(self, stage: str) -> dict | None:
        """The record of a finished ``stage`` (None when it has not finished)."""
        p = self.markers / f"{stage}.json"
        return json.loads(p.read_text()) if p.exists() else None

    def _mark(self, stage: str, info: dict, wall: float):
        atomic_write_json(self.markers / f"{stage}.json", {"stage": stage, **info, "wall_s": wall,
                                                           "finished": time.time()})

    def reset_from(self, stage: str):
        """Forget ``stage`` and every later one (their outputs are redone; the learning run is resumed, never
        discarded)."""
        if stage not in STAGES:
            raise ConfigurationError(f"--from {stage!r}: unknown stage (allowed: {', '.join(STAGES)})")
        for s in STAGES[STAGES.index(stage):]:
            m = self.markers / f"{s}.json"
            if m.exists():
                m.unlink()
            d = self.workdir / s
            if s == "learn":
                # never discard labels: the learner resumes from its store and state (raise
                # learn.max_iterations or add ensembles to learn more)
                continue
            if d.exists():
                shutil.rmtree(d)

    def run(self, from_stage: str | None = None, until: str | None = None) -> dict:
        """Run every unfinished stage in order (``until``: stop after that stage), holding the work folder's
        lock (:func:`~mtpjax.io.lock.workdir_lock`)."""
        with workdir_lock(self.workdir, "workflow workdir"):
            return self._run(from_stage, until)

    def _run(self, from_stage: str | None, until: str | None) -> dict:
        if until is not None and until not in STAGES:
            raise ConfigurationError(f"--until {until!r}: unknown stage (allowed: {', '.join(STAGES)})")
        if from_stage is not None:
            self.reset_from(from_stage)
        atomic_write_json(self.workdir / "workflow_config.json", self.cfg.model_dump(mode="json"))
        t_run = time.perf_counter()
        for k, s in enumerate(STAGES):
            if self.done(s):
                self.log(f"[{s}] done already (skipped)")
            else:
                self.log(f"[{s}] starting (stage {k + 1}/{len(STAGES)})")
                t0 = time.perf_counter()
                info = STAGE_FUNCTIONS[s](self) or {}
                wall = time.perf_counter() - t0
                self._mark(s, info, wall)
                self.log(f"[{s}] finished in {wall:.1f} s (stage {k + 1}/{len(STAGES)}; this run so far "
                         f"{datetime.timedelta(seconds=int(time.perf_counter() - t_run))})")
            if s == until:
                break
        return {s: self.done(s) for s in STAGES}

    # ---------------------------------------------------------------- what the stages share
    def structures(self, comp: str) -> list[Path]:
        """The built cells of composition ``comp`` (``workdir/build/<comp>_<k>.extxyz``)."""
        return [self.workdir / "build" / f"{comp}_{k}.extxyz" for k in range(int(self.cfg.n_structures))]

    def comps(self) -> tuple:
        return COMPS if self.cfg.build.interface else COMPS[:2]
