"""``mtpjax train``: fit a potential (MLIP's ``mlp train`` flags where they exist).

    mtpjax train INIT.mtp TRAIN.cfg --trained-pot-name OUT.mtp --max-iter 1000 \\
        --energy-weight 1 --force-weight 0.01 --stress-weight 0.001 [--valid-cfgs VALID.cfg]
    mtpjax train --config run.toml [overriding flags]

The TOML form takes the same option names with underscores (``potential``,
``train_cfgs``, ``valid_cfgs``, ``trained_pot_name``, ``max_iter``,
``energy_weight`` …), at top level or in a ``[train]`` table; relative paths
are relative to the TOML file; command-line flags win. Data sets: ``.cfg``, ``.xyz``/``.extxyz`` (see
:func:`mtpjax.train.data.load_dataset`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mtpjax.errors import MTPJaxError
from mtpjax.config import read_toml
from mtpjax.potential import MTP
from mtpjax.train import TrainConfig
from mtpjax.train import Weights
from mtpjax.train import load_dataset
from mtpjax.train import prepare_training_set
from mtpjax.train import train

#: option name → (type, default, help); also the keys accepted in the TOML file
OPTIONS = {
    "trained_pot_name": (str, "Trained.mtp_", "output potential (.mtp); MLIP's default name"),
    "valid_cfgs": (str, None, "validation set (.cfg/.extxyz); errors logged and summarised"),
    "max_iter": (int, 1000, "maximum optimiser iterations (MLIP default 1000)"),
    "energy_weight": (float, 1.0, "w_E (MLIP default 1)"),
    "force_weight": (float, 0.01, "w_F (MLIP default 0.01)"),
    "stress_weight": (float, 0.001, "w_S (MLIP default 0.001)"),
    "weighting": (str, "vibrations", "vibrations | structures (per-atom energies) | molecules"),
    "scale_by_force": (float, 0.0, "force weight × ε/(|F_ref|²+ε); 0 = off"),
    "penalty_weight": (float, 1e-9, "radial orthonormality penalty weight (MLIP-2: 1e-9)"),
    "bfgs_conv_tol": (float, 1e-3, "stop when the loss decreased < tol (relative) over 50 L-BFGS / 10 LM "
                                   "iterations; 0 = off"),
    "gtol": (float, 1e-10, "stop when the gradient norm is below this"),
    "init_params": (str, None, "keep | orth | mlip3 | same | random (default: keep if trained, else orth for "
                               "lm, mlip3 otherwise)"),
    "seed": (int, 0, "random seed (init_params=orth/random)"),
    "optimizer": (str, "lm", "lm (Levenberg-Marquardt, exact Jacobian) | lbfgs | adam"),
    "n_starts": (int, 4, "lm from scratch: seeded initialisations tried (the best after --start-iter continues)"),
    "start_iter": (int, 8, "lm from scratch: iterations per initialisation before choosing"),
    "learning_rate": (float, 1e-3, "Adam step size"),
    "precondition": (str, "gauss-newton", "gauss-newton | none"),
    "linear_every": (int, 50, "exact linear solve for species/moment coefficients every N iterations"),
    "eval_every": (int, 10, "log train/validation errors every N iterations"),
    "checkpoint": (str, None, "checkpoint file (.npz); default OUT.ckpt.npz"),
    "checkpoint_every": (int, 10, "write the checkpoint every N iterations"),
    "log": (str, None, "JSON-lines log, one line per iteration; default OUT.log.jsonl"),
    "plot": (str, None, "PNG parity plots and learning curve: PREFIX_parity.png, PREFIX_learning.png, or "
                       "parity.png, learning.png in a folder (PREFIX ending in /)"),
    "min_dist": (float, 0.5, "refuse configurations with atoms closer than this (Å)"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtpjax train", description="fit an MTP (like mlp train)")
    p.add_argument("potential", nargs="?", help="initial potential (.mtp/.almtp, trained or not)")
    p.add_argument("train", nargs="?", help="training set (.cfg, .xyz/.extxyz)")
    p.add_argument("--config", help="TOML file with the same options")
    for name, (typ, _, helptext) in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=typ, default=None, help=helptext)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def _read_toml(path) -> dict:
    d = read_toml(path)
    if isinstance(d.get("train"), dict):
        d = {**{k: v for k, v in d.items() if k != "train"}, **d["train"]}
    if "train_cfgs" in d:
        d["train"] = d.pop("train_cfgs")
    known = set(OPTIONS) | {"potential", "train", "resume"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise MTPJaxError(f"{path}: unknown option(s) {', '.join(unknown)}")
    base = Path(path).resolve().parent
    for k in ("potential", "train", "valid_cfgs", "trained_pot_name", "checkpoint", "log", "plot"):
        if isinstance(d.get(k), str) and not Path(d[k]).is_absolute():
            d[k] = str(base / d[k]) + ("/" if d[k].endswith("/") else "")  # a folder stays a folder
    return d


def resolve_options(args) -> dict:
    """Merge defaults < TOML < command line."""
    opts = {k: v[1] for k, v in OPTIONS.items()}
    opts.update(potential=None, train=None, resume=False)
    if args.config:
        opts.update(_read_toml(args.config))
    for k in list(OPTIONS) + ["potential", "train"]:
        v = getattr(args, k)
        if v is not None:
            opts[k] = v
    if args.resume:
        opts["resume"] = True
    if not opts["potential"] or not opts["train"]:
        raise MTPJaxError("train: give the initial potential and the training set (or --config FILE)")
    return opts


def plot_paths(prefix: str) -> tuple[Path, Path]:
    """(parity, learning-curve) PNG paths of ``--plot PREFIX``: ``PREFIX_parity.png`` and
    ``PREFIX_learning.png``, or ``parity.png`` and ``learning.png`` inside ``PREFIX`` when it names a folder
    (ends with a slash or exists as one). Missing folders are created when the plots are written."""
    p = Path(prefix)
    if prefix.endswith(("/", "\\")) or p.is_dir():
        return p / "parity.png", p / "learning.png"
    return Path(f"{prefix}_parity.png"), Path(f"{prefix}_learning.png")


def _fmt_metrics(name: str, m: dict) -> str:
    parts = [f"{name:<6}"]
    if "energy_rmse" in m:
        parts.append(f"E/atom MAE {m['energy_mae']:.3e} RMSE {m['energy_rmse']:.3e} eV")
    if "force_rmse" in m:
        parts.append(f"F MAE {m['force_mae']:.4f} RMSE {m['force_rmse']:.4f} eV/Å")
    if "stress_rmse" in m:
        parts.append(f"S MAE {m['stress_mae']:.3f} RMSE {m['stress_rmse']:.3f} eV")
    return " | ".join(parts)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    o = resolve_options(args)

    out = Path(o["trained_pot_name"])
    model = MTP.from_file(o["potential"])
    weights = Weights(energy=o["energy_weight"], force=o["force_weight"], stress=o["stress_weight"],
                      weighting=o["weighting"], scale_by_force=o["scale_by_force"], penalty=o["penalty_weight"])
    cfg = TrainConfig(
        max_iter=o["max_iter"], optimizer=o["optimizer"], learning_rate=o["learning_rate"], gtol=o["gtol"],
        conv_tol=o["bfgs_conv_tol"], init=o["init_params"], seed=o["seed"], linear_every=o["linear_every"],
        n_starts=o["n_starts"], start_iter=o["start_iter"],
        precondition=o["precondition"], eval_every=o["eval_every"],
        checkpoint=o["checkpoint"] or str(out) + ".ckpt.npz", checkpoint_every=o["checkpoint_every"],
        resume=o["resume"], log=o["log"] or str(out) + ".log.jsonl",
        progress=not (args.no_progress or args.quiet), weights=weights,
    )
    t0 = time.perf_counter()
    tset = prepare_training_set(model, load_dataset(o["train"]), weights, source=str(o["train"]),
                                min_distance=o["min_dist"])
    vset = None
    if o["valid_cfgs"]:
        vset = prepare_training_set(model, load_dataset(o["valid_cfgs"]), weights, source=str(o["valid_cfgs"]),
                                    min_distance=o["min_dist"])
    if not args.quiet:
        print(f"train: {o['potential']} (level {model.level}, {model.n_params} parameters) on "
              f"{tset.n_configs} configurations / {tset.n_atoms} atoms"
              + (f", validation {vset.n_configs}" if vset else ""))
    res = train(model, tset, vset, cfg)
    res.model.save(out)
    if not args.quiet:
        print(f"train: {res.iterations} iterations ({res.stop_reason}), {time.perf_counter() - t0:.1f} s → {out}")
        print(_fmt_metrics("train", res.train_metrics))
        if res.valid_metrics:
            print(_fmt_metrics("valid", res.valid_metrics))
    if o["plot"]:
        from mtpjax.train.plots import learning_curve, parity_plot

        sets = {"train": tset, **({"valid": vset} if vset else {})}
        a, b = plot_paths(o["plot"])
        a = parity_plot(res.model, sets, a)
        b = learning_curve(res.history, b) if res.history else None
        if not args.quiet:
            print(f"train: plots → {a}" + (f", {b}" if b else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
