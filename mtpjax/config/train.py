"""The options of ``mtpjax train`` (MLIP's ``mlp train`` flags where they exist), from the command line and an
optional TOML file (``--config``): the same names with underscores, at top level or in a ``[train]`` table,
``train_cfgs`` for the training set; relative paths are relative to the TOML file; command-line flags win."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from mtpjax.config.base import Int, NonNegFloat, NonNegInt, PosFloat, PosInt, Table, parse, require_file
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
    "curr_pot_name": "MLIP-2's --curr-pot-name: also write the potential being fitted here (.mtp) whenever the "
                     "checkpoint is written (every --checkpoint-every iterations)",
    "skip_preinit": "MLIP's --skip-preinit: no pre-fit before the main fit (lm: no multi-start, one start from the "
                    "initialisation; lbfgs/adam: no second scaling search at iteration 75)",
    "update_mindist": "MLIP-2's --update-mindist (MLIP-3 does it unless --no_mindist_update): set the potential's "
                      "min_dist to 0.99 x the training set's minimal interatomic distance before fitting",
}
PATHS = ("potential", "train", "valid_cfgs", "trained_pot_name", "checkpoint", "log", "plot", "curr_pot_name")


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
    curr_pot_name: Optional[str] = None
    skip_preinit: bool = False
    update_mindist: bool = False
    resume: bool = False

    def outputs(self) -> dict:
        """option → path of the files training writes (the potential, and checkpoint, log and the current
        potential when given)."""
        return {k: Path(getattr(self, k)) for k in ("trained_pot_name", "checkpoint", "log", "curr_pot_name")
                if getattr(self, k)}

    def check_files(self, names: dict) -> None:
        """The input files exist; every output file can be written (not a folder; no file where its folder
        must be): checked before the potential is read or any training starts. ``names``: how each option is
        shown."""
        for k in ("potential", "train", "valid_cfgs"):
            if getattr(self, k):
                require_file(Path(getattr(self, k)), names.get(k, k))
        for k, p in self.outputs().items():
            if p.is_dir():
                raise ConfigurationError(f"{names.get(k, k)}: {p} is a folder, not a file name")
            blocker = next((a for a in p.parents if a.exists() and not a.is_dir()), None)
            if blocker is not None:
                raise ConfigurationError(f"{names.get(k, k)}: {blocker} is a file, so the folder of {p.name} "
                                         "cannot be made")

    def make_output_folders(self) -> None:
        """Create the missing folders of the output files (as every writer of mtpjax does), so that a finished
        fit is not lost for want of one."""
        for p in self.outputs().values():
            p.parent.mkdir(parents=True, exist_ok=True)


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


def option_name(key: str, flag: bool) -> str:
    """How an error names option ``key``: its command-line flag (``--max-iter``; the positional arguments
    ``potential`` and ``train``) when it was given there, else its key in the TOML file (``train_cfgs``)."""
    if flag:
        return {"potential": "potential", "train": "training set"}.get(key, "--" + key.replace("_", "-"))
    return "train_cfgs" if key == "train" else key


def train_options(flags: dict, toml: str | None = None) -> TrainOptions:
    """Defaults < the TOML file ``toml`` < ``flags`` (the command line's given options), validated; the
    input files exist and the output files can be written (:meth:`TrainOptions.check_files`; their missing
    folders are then created). Errors name the flag, or the TOML file and key, that set the option."""
    d = read_train_toml(toml) if toml else {}
    given = {k: v for k, v in flags.items() if v is not None}
    names = {k: option_name(k, k in given) for k in {*d, *given}}
    d.update(given)
    if not d.get("potential") or not d.get("train"):
        raise ConfigurationError("train: give the initial potential and the training set (or --config FILE)")
    source = toml or "train"
    opts = parse(TrainOptions, d, source, names)
    try:
        opts.check_files(names)
    except ConfigurationError as e:
        raise ConfigurationError(f"{source}: {e}") from None
    opts.make_output_folders()
    return opts
