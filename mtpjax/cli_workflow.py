"""``mtpjax run WORKFLOW.toml [--from STAGE] [--until STAGE] [--set KEY=VALUE]``.

Runs the stages build → learn → fit → quench → sweep → analyze → report
(see :mod:`mtpjax.workflow`). Re-running the command skips finished stages
and resumes an interrupted one; ``--from STAGE`` redoes that stage and every
later one.
"""
from __future__ import annotations

import argparse


def main(argv) -> int:
    from .workflow import STAGES, Workflow, load_workflow

    p = argparse.ArgumentParser(prog="mtpjax run", description="the paper's workflow end to end")
    p.add_argument("workflow", help="WORKFLOW.toml (see examples/quick.toml, examples/paper.toml)")
    p.add_argument("--from", dest="from_stage", choices=STAGES, help="redo this stage and every later one")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. --set sweep.time_ps=50")
    a = p.parse_args(argv)
    cfg = load_workflow(a.workflow, a.set)
    wf = Workflow(cfg)
    wf.run(from_stage=a.from_stage, until=a.until)
    rep = wf.workdir / "report" / "report.md"
    if rep.exists():
        print(f"run: report → {rep}")
    return 0
