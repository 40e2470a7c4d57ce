"""``mtpjax run WORKFLOW.toml [--from STAGE] [--until STAGE] [--set KEY=VALUE]``.

Runs the stages build → learn → fit → quench → sweep → analyze → report
(see :mod:`mtpjax.workflow`). Re-running the command skips finished stages
and resumes an interrupted one; ``--from STAGE`` redoes that stage and every
later one.
"""
from __future__ import annotations

import argparse
from mtpjax.workflow import STAGES
from mtpjax.workflow import Workflow
from mtpjax.workflow import load_workflow
import jax
import os


def enable_compilation_cache(path) -> None:
    """JAX's persistent compilation cache (the MD blocks and training steps of
    a resumed or repeated run are not compiled again); the user's
    ``JAX_COMPILATION_CACHE_DIR`` wins."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    try:
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception:  # noqa: BLE001 - an older JAX without the option: run uncached
        pass


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="mtpjax run", description="the paper's workflow end to end")
    p.add_argument("workflow", help="WORKFLOW.toml (see examples/quick.toml, examples/paper.toml)")
    p.add_argument("--from", dest="from_stage", choices=STAGES, help="redo this stage and every later one")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. --set sweep.time_ps=50")
    a = p.parse_args(argv)
    cfg = load_workflow(a.workflow, a.set)
    wf = Workflow(cfg)
    enable_compilation_cache(wf.workdir / "jax_cache")
    wf.run(from_stage=a.from_stage, until=a.until)
    rep = wf.workdir / "report" / "report.md"
    if rep.exists():
        print(f"run: report → {rep}")
    return 0
