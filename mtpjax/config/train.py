"""The options of ``mtpjax train`` (MLIP's ``mlp train`` flags where they exist), from the command line and an
optional TOML file (``--config``): the same names with underscores, at top level or in a ``[train]`` table,
``train_cfgs`` for the training set; relative paths are relative to the TOML file; command-line flags win."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from mtpjax.config.base import Int, NonNegFloat, NonNegInt, PosFloat, PosInt, Table, parse
from mtpjax.errors import ConfigurationError
from mtpjax.io.toml import read_toml

#: option → help (the keys of a train TOML file and the ``--flags`` of ``mtpjax train``)
HELP = {
    "trained_pot_name": "output potential (.mtp); MLIP's default name",
    "valid_cfgs": "validation set (.cfg/.extxyz); errors logged and summarised",
    "max_iter": "maximum optimiser iterations (MLIP default 1000)",
    "energy_weight": "w_E (MLIP default 1)",
    "force_weight": "w_F (MLIP default 0.01)",
    "stress_weight": "w_S (MLIP default 0.001)",
    "weighting": "vibrations | structures (per-atom energies) | molecules",
    "scale_by_force": "force weight × ε/(|F_ref|²+ε); 0 = off",
    "penalty_weight": "radial orthonormality penalty weight (MLIP-2: 1e-9)",
    "bfgs_conv_tol": "stop when the loss decreased < tol (relative) over 50 L-BFGS / 10 LM iterations; 0 = off",
    "gtol": "stop when the gradient norm is below this",
    "init_params": "keep | orth | mlip3 | same | random (default: keep if trained, else orth for lm, mlip3 otherwise)",
    "seed": "random seed (init_params=orth/random)",
    "optimizer": "lm (Levenberg-Marquardt, exact Jacobian) | lbfgs | adam",
    "n_starts": "lm from scratch: seeded initialisations tried (the best after --start-iter continues)",
    "start_iter": "lm from scratch: iterations per initialisation before choosing",
    "learning_rate": "Adam step size",
    "precondition": "gauss-newton | none",
    "linear_every": "exact linear solve for species/moment coefficients every N iterations",
    "eval_every": "log train/validation errors every N iterations",
    "checkpoint": "checkpoint file (.npz); default OUT.ckpt.npz",
    "checkpoint_every": "write the checkpoint every N iterations",
    "log": "JSON-lines log, one line per iteration; default OUT.log.jsonl",
    "plot": "PNG parity plots and learning curve: PREFIX_parity.png, PREFIX_learning.png, or parity.png, "
            "learning.png in a folder (PREFIX ending in /); \"\" = none",
    "min_dist": "refuse configurations with atoms closer than this (Å)",
}
PATHS = ("potential", "train", "valid_cfgs", "trained_pot_name", "checkpoint", "log", "plot")


class TrainOptions(Table):
    """``mtpjax train``'s options (defaults: MLIP's)."""

    potential: str
    train: str
    trained_pot_name: str = "Trained.mtp_"
    valid_cfgs: Optional[str] = None
    max_iter: NonNegInt = 1000
    energy_weight: NonNegFloat = 1.0
    force_weight: NonNegFloat = 0.01
    stress_weight: NonNegFloat = 0.001
    weighting: Literal["vibrations", "structures", "molecules"] = "vibrations"
    scale_by_force: NonNegFloat = 0.0
    penalty_weight: NonNegFloat = 1e-9
    bfgs_conv_tol: NonNegFloat = 1e-3
    gtol: NonNegFloat = 1e-10
    init_params: Optional[Literal["keep", "orth", "mlip3", "same", "random"]] = None
    seed: Int = 0
    optimizer: Literal["lm", "lbfgs", "adam"] = "lm"
    n_starts: PosInt = 4
    start_iter: NonNegInt = 8
    learning_rate: PosFloat = 1e-3
    precondition: Literal["gauss-newton", "none"] = "gauss-newton"
    linear_every: NonNegInt = 50
    eval_every: NonNegInt = 10
    checkpoint: Optional[str] = None
    checkpoint_every: NonNegInt = 10
    log: Optional[str] = None
    plot: Optional[str] = None
    min_dist: NonNegFloat = 0.5
    resume: bool = False


def read_train_toml(path) -> dict:
    """The options of a train TOML file (``[train]`` flattened, ``train_cfgs`` → ``train``), paths resolved
    against its folder (a folder name keeps its trailing slash)."""
    d = read_toml(path)
    if isinstance(d.get("train"), dict):
        d = {**{k: v for k, v in d.items() if k != "train"}, **d["train"]}
    if "train_cfgs" in d:
        d["train"] = d.pop("train_cfgs")
    base = Path(path).resolve().parent
    for k in PATHS:
        if isinstance(d.get(k), str) and d[k] and not Path(d[k]).is_absolute():
            d[k] = str(base / d[k]) + ("/" if d[k].endswith("/") else "")
    return d


def train_options(flags: dict, toml: str | None = None) -> TrainOptions:
    """Defaults < the TOML file ``toml`` < ``flags`` (the command line's given options), validated."""
    d = read_train_toml(toml) if toml else {}
    d.update({k: v for k, v in flags.items() if v is not None})
    if not d.get("potential") or not d.get("train"):
        raise ConfigurationError("train: give the initial potential and the training set (or --config FILE)")
    return parse(TrainOptions, d, toml or "train")
