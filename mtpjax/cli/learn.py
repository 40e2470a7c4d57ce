"""``mtpjax learn LEARN.toml [--resume] [--set KEY=VALUE ...] [--stop-after PHASE]``: learning on the fly."""
from __future__ import annotations

import argparse

from mtpjax.active.learn import PHASES, Learner
from mtpjax.config.learn import load_learn


def main(argv) -> int:
    """Run or resume the learning loop of a LEARN.toml (:mod:`mtpjax.active.learn`)."""
    p = argparse.ArgumentParser(prog="mtpjax learn", description="active learning on the fly (LOTF)")
    p.add_argument("config", help="LEARN.toml")
    p.add_argument("--resume", action="store_true", help="continue the run in the workdir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TOML key, e.g. --set active.select_threshold=2.0")
    p.add_argument("--stop-after", default=None, choices=PHASES,
                   help="stop cleanly after this phase (resume later)")
    args = p.parse_args(argv)
    Learner(load_learn(args.config, args.set)).run(resume=args.resume, stop_after=args.stop_after)
    return 0
