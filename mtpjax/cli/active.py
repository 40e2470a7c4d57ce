"""``mtpjax calc-grade`` and ``mtpjax select-add``.

    mtpjax calc-grade POT.mtp TRAIN.cfg IN.cfg OUT.cfg [--als-filename STATE]
    mtpjax calc-grade POT.almtp IN.cfg OUT.cfg          (grades from the stored state)
    mtpjax select-add POT.mtp TRAIN.cfg NEW.cfg DIFF.cfg [--selection-limit N]

Defaults are those of the MLIP generation each mode follows
(:func:`mtpjax.active.grade.mlip_settings`, ``docs/spec/mtp.md`` §8.2–8.3): configuration mode (the
default, MLIP-2's ``calc-grade``/``select-add``): MaxVol init 1e-5, select threshold 1.1, swap threshold
1.0000001; neighbourhood mode (MLIP-3's ``train --al_mode=nbh``/``calculate_grade``/``select_add``): init
1e-6, select and swap threshold 1.001. Energy rows are divided by N in both. ``select-add`` saves the active set
beside the potential (``POT.almtp``, MLIP-3 ``#MVS_v1.1`` layout; a ``.als`` name gives MLIP-2's binary layout)
unless ``--als-filename`` names another file. ``calc-grade`` without ``--als-filename`` saves it as MLIP-2 does, to
``state.als`` (MLIP-2's layout) in the working folder, and, as earlier versions did, to ``POT.almtp`` beside the
potential; ``--no-state-als`` leaves out ``state.als``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mtpjax.errors import MTPJaxError
from mtpjax.active.grade import attach_grades
from mtpjax.active.grade import build_active_set
from mtpjax.active.grade import grade_configs
from mtpjax.active.grade import mlip_settings
from mtpjax.active.grade import select_add as select_configurations
from mtpjax.active.state import parse_state
from mtpjax.active.state import write_state
from mtpjax.potential import MTP
from mtpjax.potential import read_cfg
from mtpjax.potential import read_mtp
from mtpjax.potential import write_cfg
from mtpjax.active.maxvol import ActiveSet

__all__ = ["calc_grade", "select_add"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("cfg", "nbh"), default=None,
                   help="rows per configuration (cfg, default) or per atom neighbourhood (nbh)")
    p.add_argument("--init", type=float, default=None,
                   help="MaxVol initial diagonal (default: 1e-5 in cfg mode as MLIP-2, 1e-6 in nbh mode as MLIP-3)")
    p.add_argument("--threshold-swap", type=float, default=None,
                   help="swap rows while max |C| exceeds this (default: 1.0000001 cfg / MLIP-2, 1.001 nbh / MLIP-3)")
    p.add_argument("--weight-scaling", type=float, default=None,
                   help="energy rows divided by N^(p/2) (default 2, i.e. /N)")
    p.add_argument("--als-filename", "--als_filename", default=None,
                   help="where to save the active set (.als = MLIP-2 layout; default: POT with suffix .almtp, and "
                        "for calc-grade also state.als in the working folder)")
    p.add_argument("--min-dist", type=float, default=None, help="refuse atoms closer than this (Å); default: no check")
    p.add_argument("-q", "--quiet", action="store_true")


def _load_potential(path):
    f = read_mtp(path)
    if not f.is_trained:
        raise MTPJaxError(f"{path}: potential is untrained (no radial_coeffs / moment_coeffs)")
    state = parse_state(f, path) if f.extra.strip() else None
    return MTP.from_mtpfile(f), state


def _state_path(args, pot: str) -> Path:
    return Path(args.als_filename) if args.als_filename else Path(pot).with_suffix(".almtp")


def _grade_state_paths(args, pot: str) -> list[Path]:
    """Where calc-grade saves the set it built: ``--als-filename``; else MLIP-2's ``state.als`` in the working
    folder (unless ``--no-state-als``) and ``POT.almtp`` beside the potential (mtpjax's earlier default)."""
    if args.als_filename:
        return [Path(args.als_filename)]
    return ([] if args.no_state_als else [Path("state.als")]) + [Path(pot).with_suffix(".almtp")]


def calc_grade(argv) -> int:
    p = argparse.ArgumentParser(prog="mtpjax calc-grade", description="extrapolation grades (like mlp calc-grade)")
    p.add_argument("files", nargs="+", metavar="FILE", help="POT TRAIN IN OUT, or POT.almtp IN OUT")
    p.add_argument("--rounded", action="store_true", help="MLIP's rounded output instead of 16 digits")
    p.add_argument("--no-state-als", action="store_true",
                   help="without --als-filename: do not write MLIP-2's state.als in the working folder (only "
                        "POT.almtp beside the potential, as earlier versions)")
    _common(p)
    args = p.parse_args(argv)
    if len(args.files) not in (3, 4):
        raise MTPJaxError("calc-grade: give POT TRAIN.cfg IN.cfg OUT.cfg, or POT.almtp IN.cfg OUT.cfg")
    t0 = time.perf_counter()
    model, stored = _load_potential(args.files[0])
    if len(args.files) == 3:
        pot, inp, out = args.files
        if stored is None:
            raise MTPJaxError(f"{pot}: no active-learning state stored in this file; give a training set "
                              f"(calc-grade POT TRAIN.cfg IN.cfg OUT.cfg)")
        state = stored
    else:
        pot, train, inp, out = args.files
        mode = args.mode or (stored.mode if stored else "cfg")
        ws = args.weight_scaling if args.weight_scaling is not None else (stored.weight_scaling if stored else 2.0)
        state = build_active_set(model, read_cfg(train), mode, args.init, args.threshold_swap, ws,
                                 min_distance=args.min_dist, source=str(train))
        for path in _grade_state_paths(args, pot):
            write_state(path, model, state)
    configs = read_cfg(inp)
    g, per = grade_configs(model, state, configs, min_distance=args.min_dist, source=str(inp))
    write_cfg(out, attach_grades(configs, g, per, state.mode), lossless=not args.rounded)
    if not args.quiet:
        print(f"calc-grade: {state.mode} mode, active set {state.n_selected}/{state.n} rows from "
              f"{len(state.configs)} configurations; {len(configs)} graded, max grade "
              f"{(max(g) if len(g) else 0):.6g}, {time.perf_counter() - t0:.2f} s → {out}")
    return 0


def select_add(argv) -> int:
    p = argparse.ArgumentParser(prog="mtpjax select-add",
                                description="D-optimal selection of new configurations (like mlp select-add)")
    p.add_argument("potential")
    p.add_argument("train")
    p.add_argument("new")
    p.add_argument("diff")
    p.add_argument("--threshold-select", type=float, default=None,
                   help="select only if a new configuration's grade exceeds this (default: 1.1 cfg / MLIP-2, "
                        "1.001 nbh / MLIP-3)")
    p.add_argument("--selection-limit", type=int, default=None, help="at most this many new configurations")
    p.add_argument("--selected-filename", default=None,
                   help="also write every configuration of the new active set here")
    _common(p)
    args = p.parse_args(argv)
    model, stored = _load_potential(args.potential)
    mode = args.mode or (stored.mode if stored else "cfg")
    ws = args.weight_scaling if args.weight_scaling is not None else (stored.weight_scaling if stored else 2.0)
    train = read_cfg(args.train) if Path(args.train).stat().st_size else []
    if train:
        state = build_active_set(model, train, mode, args.init, args.threshold_swap, ws,
                                 min_distance=args.min_dist, source=str(args.train))
    else:
        init = mlip_settings(mode)["init"] if args.init is None else args.init
        state = ActiveSet.empty(model.n_params, init, mode, ws)
    n_train = len(state.configs)
    new = read_cfg(args.new)
    res = select_configurations(model, state, new, args.threshold_select, args.threshold_swap, args.selection_limit,
                     min_distance=args.min_dist, source=str(args.new))
    write_cfg(args.diff, [new[k] for k in res["selected"]])
    write_state(_state_path(args, args.potential), model, state)
    if args.selected_filename:
        write_cfg(args.selected_filename, state.configs)
    if not args.quiet:
        print(f"select-add: {n_train} configurations in the active set of {args.train}; {len(new)} new, "
              f"max grade {(max(res['grades']) if len(res['grades']) else 0):.6g}; "
              f"{len(res['selected'])} selected → {args.diff}")
    return 0
