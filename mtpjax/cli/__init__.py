"""The ``mtpjax`` command: MLIP-style sub-commands, one module per command group.

    mtpjax calc-efs POT.mtp IN.cfg OUT.cfg     energies, forces, stresses → .cfg
    mtpjax level POT.mtp                       level, species, basis and parameter counts
    mtpjax init --level 16 --species 3 15 16 --cutoff 5.0 OUT.mtp
    mtpjax train | calc-grade | select-add | md | convert | learn | store | analyze | run ...
    mtpjax calc-errors | mindist | convert-cfg | filter-nonconv | cut-extrapolative-nbh | relax ...

``mtpjax COMMAND --help`` (or ``mtpjax help COMMAND``) describes each, ``mtpjax list`` lists them, ``mtpjax
--version`` prints the version. MLIP-3's underscore names are aliases (``ALIASES``: ``calculate_efs``,
``check_errors``, ...); ``convert`` converts H5MD trajectories and hands any other input to ``convert-cfg``
(MLIP-3's ``convert``). Errors in user input are printed as one line (``mtpjax: error: …``) with exit status 2,
never as a traceback; ``MTPJAX_DEBUG=1`` shows the traceback.
"""
from __future__ import annotations

import os
import sys

from mtpjax import __version__
from mtpjax.cli import active, analyze, learn, md, mlp, potential, store, train, workflow
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
    "convert": (mlp.convert, "H5MD trajectories to extxyz / LAMMPS dump; other inputs as convert-cfg"),
    "learn": (learn.main, "active learning on the fly from a TOML file"),
    "store": (store.main, "a learning run's training store: info | export | repair"),
    "analyze": (analyze.main, "trajectory analysis: diffusion | rdf | gii | units | arrhenius"),
    "run": (workflow.main, "the paper's workflow end to end from a TOML file"),
    "calc-errors": (mlp.calc_errors, "errors of a potential on labelled configurations (like mlp check_errors)"),
    "mindist": (mlp.mindist, "minimal interatomic distances, global and per type pair (like mlp mindist)"),
    "convert-cfg": (mlp.convert_cfg, "OUTCAR / ASE formats ↔ .cfg, .cfg → extxyz / POSCAR (like mlp convert)"),
    "filter-nonconv": (mlp.filter_nonconv, "drop configurations from non-converged VASP runs (EFS_by)"),
    "cut-extrapolative-nbh": (mlp.cut_extrapolative_nbh,
                              "most extrapolative neighbourhood of each configuration as a cluster"),
    "relax": (mlp.relax, "relax atoms and cell with ASE's optimiser (like mlp relax)"),
    "help": (None, "usage, or the options of a command (help COMMAND)"),
    "list": (None, "the commands and MLIP's names for them"),
}

#: MLIP's spellings of the commands (MLIP-3's underscore names, MLIP-2's where they differ) → mtpjax's;
#: ``calculate_efs`` also takes MLIP-3's arguments (``POT CFG [--output_filename=OUT]``, OUT = CFG by default)
ALIASES = {
    "calculate_efs": "calc-efs", "calc_efs": "calc-efs", "calculate_grade": "calc-grade",
    "calc_grade": "calc-grade", "select_add": "select-add", "check_errors": "calc-errors",
    "calc_errors": "calc-errors", "cut_extrapolative_nbh": "cut-extrapolative-nbh",
    "filter_nonconv": "filter-nonconv", "convert_cfg": "convert-cfg",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mtpjax COMMAND [ARGS]   (mtpjax COMMAND --help for its options)", "",
             "Moment Tensor Potentials in JAX (MLIP-compatible). Commands:"]
    lines += [f"  {name:<{width}}  {helptext}" for name, (_, helptext) in COMMANDS.items()]
    return "\n".join(lines)


def command_list() -> str:
    """``mtpjax list``: every command with its one-line help, then MLIP's names for them."""
    width = max(map(len, COMMANDS))
    lines = [f"mtpjax {__version__}", "List of available commands:"]
    lines += [f"    {name:<{width}}  {helptext}" for name, (_, helptext) in COMMANDS.items()]
    lines += ["MLIP's names (aliases):"]
    lines += [f"    {alias:<{width}}  = {name}" for alias, name in ALIASES.items()]
    lines += [f"    {'convert':<{width}}  = convert-cfg for inputs that are not H5MD (MLIP-3's convert)"]
    return "\n".join(lines)


def help_command(rest) -> int:
    """``mtpjax help [COMMAND]``: the usage, or the command's ``--help``."""
    if not rest:
        print(usage())
        return 0
    name = ALIASES.get(rest[0], rest[0])
    if name in ("help", "list"):
        print(usage())
        return 0
    if name not in COMMANDS:
        print(f"mtpjax: error: unknown command {rest[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        return int(COMMANDS[name][0](["--help"]) or 0)
    except SystemExit as e:  # argparse's --help
        return int(e.code or 0)


def main(argv=None) -> int:
    """Entry point of the ``mtpjax`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 1
    if argv[0] in ("-V", "--version", "version"):
        print(f"mtpjax {__version__}")
        return 0
    cmd, rest = ALIASES.get(argv[0], argv[0]), argv[1:]
    if argv[0] == "calculate_efs":  # MLIP-3's arguments: POT CFG [--output_filename=OUT]
        rest = mlp.mlip3_calc_efs_args(rest)
    if cmd == "help":
        return help_command(rest)
    if cmd == "list":
        print(command_list())
        return 0
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
