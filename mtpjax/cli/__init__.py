"""The ``mtpjax`` command: MLIP-style sub-commands, one module per command group.

    mtpjax calc-efs POT.mtp IN.cfg OUT.cfg     energies, forces, stresses → .cfg
    mtpjax level POT.mtp                       level, species, basis and parameter counts
    mtpjax init --level 16 --species 3 15 16 --cutoff 5.0 OUT.mtp
    mtpjax train | calc-grade | select-add | md | convert | learn | store | analyze | run ...

``mtpjax COMMAND --help`` describes each. Errors in user input are printed as one line
(``mtpjax: error: …``) with exit status 2, never as a traceback; ``MTPJAX_DEBUG=1`` shows the traceback.
"""
from __future__ import annotations

import os
import sys

from mtpjax.cli import active, analyze, learn, md, potential, store, train, workflow
from mtpjax.errors import MTPJaxError

#: command → (function(argv) -> exit status, one-line help)
COMMANDS = {
    "calc-efs": (potential.calc_efs, "energies, forces and stresses of configurations (like mlp calc-efs)"),
    "level": (potential.level, "level, species, basis and parameter counts of a potential"),
    "init": (potential.init, "write an untrained potential of a given level (no template needed)"),
    "train": (train.main, "fit a potential to energies/forces/stresses (like mlp train)"),
    "calc-grade": (active.calc_grade, "extrapolation grades (like mlp calc-grade)"),
    "select-add": (active.select_add, "D-optimal selection of new configurations (like mlp select-add)"),
    "md": (md.md, "molecular dynamics from a TOML run file"),
    "convert": (md.convert, "convert H5MD trajectories to extxyz / LAMMPS dump"),
    "learn": (learn.main, "active learning on the fly from a TOML file"),
    "store": (store.main, "a learning run's training store: info | export | repair"),
    "analyze": (analyze.main, "trajectory analysis: diffusion | rdf | gii | units | arrhenius"),
    "run": (workflow.main, "the paper's workflow end to end from a TOML file"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mtpjax COMMAND [ARGS]   (mtpjax COMMAND --help for its options)", "",
             "Moment Tensor Potentials in JAX (MLIP-compatible). Commands:"]
    lines += [f"  {name:<{width}}  {helptext}" for name, (_, helptext) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Entry point of the ``mtpjax`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 1
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"mtpjax: error: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return guard(lambda: COMMANDS[cmd][0](rest))


def guard(fn) -> int:
    """``fn()``'s exit status; a user error (bad input, missing file) becomes one line on stderr and status 2."""
    try:
        return int(fn() or 0)
    except (MTPJaxError, OSError) as e:  # OSError: missing file, permission, read-only or full disk, ...
        if os.environ.get("MTPJAX_DEBUG"):
            raise
        print(f"mtpjax: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mtpjax: interrupted (what was written is kept; md, learn and run continue where they stopped)",
              file=sys.stderr)
        return 130


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line; an OS error as 'reason: path' (errno's text, the file it names)."""
    if isinstance(e, OSError) and not isinstance(e, MTPJaxError) and e.strerror:
        where = f": {e.filename}" + (f" → {e.filename2}" if e.filename2 else "") if e.filename else ""
        return f"{e.strerror}{where}"
    return str(e) or type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
