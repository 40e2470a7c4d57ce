"""``mtpjax train``: fit a potential (MLIP's ``mlp train`` flags where they exist).

    mtpjax train INIT.mtp TRAIN.cfg --trained-pot-name OUT.mtp --max-iter 1000 \\
        --energy-weight 1 --force-weight 0.01 --stress-weight 0.001 [--valid-cfgs VALID.cfg]
    mtpjax train --config run.toml [overriding flags]

The TOML form takes the same option names with underscores (``potential``,
``train_cfgs``, ``valid_cfgs``, ``trained_pot_name``, ``max_iter``,
``energy_weight`` …), at top level or in a ``[train]`` table; relative paths
are relative to the TOML file; command-line flags win. Data sets: ``.cfg``, ``.xyz``/``.extxyz`` (see
:func:`mtpjax.train.data.load_dataset`). MLIP's ``--curr-pot-name FILE`` (the potential being fitted, written
with every checkpoint), ``--skip-preinit`` and ``--update-mindist`` (min_dist = 0.99 × the training set's
minimal distance, as MLIP-3 does by default) are accepted too.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from mtpjax.cli.mlp import config_mindist
from mtpjax.config.train import HELP, TrainOptions, train_options
from mtpjax.potential import MTP
from mtpjax.potential.params import with_params
from mtpjax.train import TrainConfig
from mtpjax.train import Weights
from mtpjax.train import load_dataset
from mtpjax.train import prepare_training_set
from mtpjax.train import train
from mtpjax.train.plots import learning_curve, parity_plot

def _flag_type(name: str):
    ann = TrainOptions.model_fields[name].annotation
    text = str(ann)
    return int if "int" in text and "float" not in text else float if "float" in text else str


def _is_switch(name: str) -> bool:
    return TrainOptions.model_fields[name].annotation is bool


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtpjax train", description="fit an MTP (like mlp train)")
    p.add_argument("potential", nargs="?", help="initial potential (.mtp/.almtp, trained or not)")
    p.add_argument("train", nargs="?", help="training set (.cfg, .xyz/.extxyz)")
    p.add_argument("--config", help="TOML file with the same options")
    for name, helptext in HELP.items():
        if _is_switch(name):
            p.add_argument("--" + name.replace("_", "-"), action="store_true", default=None, help=helptext)
        else:
            p.add_argument("--" + name.replace("_", "-"), type=_flag_type(name), default=None, help=helptext)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def resolve_options(args) -> TrainOptions:
    """Defaults < TOML < command line, validated."""
    flags = {k: getattr(args, k) for k in list(HELP) + ["potential", "train"]}
    flags["resume"] = True if args.resume else None
    return train_options(flags, args.config)


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


def updated_mindist(model: MTP, configs, quiet: bool = False) -> MTP:
    """``model`` with min_dist = 0.99 × the minimal interatomic distance of ``configs`` (MLIP-3's update)."""
    md = min(config_mindist(c) for c in configs)
    new = dataclasses.replace(model, min_dist=0.99 * md)
    if not quiet:
        print(f"train: minimal interatomic distance in the training set {md:.6g} Å; min_dist {model.min_dist:.6g} "
              f"→ {new.min_dist:.6g} Å")
    return new


def current_potential_writer(model: MTP, checkpoint: Path, dest: Path, every: int):
    """A ``callback(record)`` for :func:`mtpjax.train.train`: after an iteration that wrote the checkpoint, the
    potential it holds (θ = P·x of its parameters and scaling) is written to ``dest`` (MLIP's --curr-pot-name)."""
    def callback(rec: dict) -> bool:
        if every and rec["iter"] % every == 0 and checkpoint.exists():
            with np.load(checkpoint) as z:
                flat, precond, scaling = z["flat"], z["precond"], z["scaling"]
            theta = precond @ flat if precond.size else flat
            current = eqx.tree_at(lambda m: m.scaling, model, jnp.asarray(scaling, dtype=model.scaling.dtype))
            with_params(current, jnp.asarray(theta, dtype=model.moment_coeffs.dtype)).save(dest)
        return False

    return callback


def main(argv: list[str]) -> int:
    """Fit a potential (see the module docstring); returns the exit status."""
    args = build_parser().parse_args(argv)
    o = resolve_options(args)

    out = Path(o.trained_pot_name)
    model = MTP.from_file(o.potential)
    weights = Weights(energy=o.energy_weight, force=o.force_weight, stress=o.stress_weight,
                      weighting=o.weighting, scale_by_force=o.scale_by_force, penalty=o.penalty_weight)
    cfg = TrainConfig(
        max_iter=o.max_iter, optimizer=o.optimizer, learning_rate=o.learning_rate, gtol=o.gtol,
        conv_tol=o.bfgs_conv_tol, init=o.init_params, seed=o.seed, linear_every=o.linear_every,
        n_starts=1 if o.skip_preinit else o.n_starts, start_iter=0 if o.skip_preinit else o.start_iter,
        **({"pretrain_iter": 0} if o.skip_preinit else {}),
        precondition=o.precondition, eval_every=o.eval_every,
        checkpoint=o.checkpoint or str(out) + ".ckpt.npz", checkpoint_every=o.checkpoint_every,
        resume=o.resume, log=o.log or str(out) + ".log.jsonl",
        progress=not (args.no_progress or args.quiet), weights=weights,
    )
    t0 = time.perf_counter()
    configs = load_dataset(o.train)
    if o.update_mindist:
        model = updated_mindist(model, configs, args.quiet)
    tset = prepare_training_set(model, configs, weights, source=str(o.train), min_distance=o.min_dist)
    vset = None
    if o.valid_cfgs:
        vset = prepare_training_set(model, load_dataset(o.valid_cfgs), weights, source=str(o.valid_cfgs),
                                    min_distance=o.min_dist)
    if not args.quiet:
        print(f"train: {o.potential} (level {model.level}, {model.n_params} parameters) on "
              f"{tset.n_configs} configurations / {tset.n_atoms} atoms"
              + (f", validation {vset.n_configs}" if vset else ""))
    callback = (current_potential_writer(model, Path(cfg.checkpoint), Path(o.curr_pot_name), cfg.checkpoint_every)
                if o.curr_pot_name else None)
    res = train(model, tset, vset, cfg, callback=callback)
    res.model.save(out)
    if not args.quiet:
        print(f"train: {res.iterations} iterations ({res.stop_reason}), {time.perf_counter() - t0:.1f} s → {out}")
        print(_fmt_metrics("train", res.train_metrics))
        if res.valid_metrics:
            print(_fmt_metrics("valid", res.valid_metrics))
    if o.plot:
        sets = {"train": tset, **({"valid": vset} if vset else {})}
        a, b = plot_paths(o.plot)
        a = parity_plot(res.model, sets, a)
        b = learning_curve(res.history, b) if res.history else None
        if not args.quiet:
            print(f"train: plots → {a}" + (f", {b}" if b else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
