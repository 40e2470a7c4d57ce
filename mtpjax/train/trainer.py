"""Training orchestration (``mlp train``-like, docs/spec/mtp.md §7.2). Host-side loop
around one jitted optimiser step.

Schedule (iteration = one optimiser step):

1. initialisation (untrained potential or ``init != "keep"``): radial
   coefficients (:mod:`mtpjax.train.init`), species energies by regression,
   exact linear solve for species + moment coefficients, MLIP's ``scaling``
   search (Rescale);
2. Levenberg–Marquardt with the exact Jacobian (:mod:`mtpjax.train.lm`; the
   default: tens of iterations instead of MLIP's thousand BFGS steps), or
   L-BFGS (optax, zoom line search) on all coefficients with ``scaling````
   held fixed, or Adam; at iteration ``pretrain_iter`` another Rescale and
   every ``linear_every`` iterations an exact linear solve (the optimiser
   state is then restarted, as MLIP resets its Hessian);
3. stop at ``max_iter``, when the gradient norm < ``gtol``, or when the loss
   decreased by less than ``conv_tol`` (relative) over the last
   ``conv_window`` iterations (MLIP's ``--bfgs-conv-tol``);
4. a final linear solve; the result is a standard ``.mtp``.

A checkpoint (:mod:`mtpjax.train.checkpoint`) is written every
``checkpoint_every`` iterations; ``resume=True`` continues from it and gives
the same parameters as an uninterrupted run.
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from mtpjax.errors import MTPJaxError
from mtpjax.potential.model import MTP
from mtpjax.train.checkpoint import load_checkpoint, save_checkpoint
from mtpjax.train.data import TrainingSet, Weights, prepare_training_set
from mtpjax.train.init import INIT_METHODS, init_radial
from mtpjax.train.linear import fit_species_energies, linear_solve, rescale
from mtpjax.train.jacobian import flat_params, unflat_params
from mtpjax.train.lm import lm_step, solve_linear_block
from mtpjax.train.loss import error_metrics, gauss_newton_matrix, get_params, loss_terms, set_params, total_loss

OPTIMIZERS = ("lm", "lbfgs", "adam")


@dataclass
class TrainConfig:
    """Options of :func:`train` (CLI flag in brackets).

    max_iter [--max-iter]: optimiser iterations (MLIP default 1000; an LM
    iteration is worth tens of BFGS steps, LM runs stop much earlier).
    optimizer: ``lm`` (Levenberg–Marquardt, exact Jacobian; default),
    ``lbfgs`` (optax L-BFGS + zoom line search) or ``adam``.
    lm_lambda: initial LM damping (relative to diag JᵀJ). lm_atom_budget:
    atoms per Jacobian batch (0 = from the memory estimate).
    lm_conv_window: window (iterations) of the ``conv_tol`` criterion for LM.
    n_starts, start_iter: from-scratch fits (``init`` not ``keep``) with
    LM first run ``start_iter`` iterations from each of ``n_starts``
    seeded initialisations (seed, seed+1, …) and continue the one with the
    lowest loss (the loss surface of an MTP has many poor local minima).
    The starts' iterations come out of ``max_iter``'s budget
    (``min(start_iter, max_iter)`` each); ``max_iter = 0`` only initialises.
    learning_rate: Adam's step size. memory_size: L-BFGS history length.
    gtol: stop when ‖∇L‖ < gtol. conv_tol [--bfgs-conv-tol], conv_window:
    MLIP's relative-decrease criterion (0 disables).
    init [--init-params]: ``keep`` | ``orth`` | ``mlip3`` | ``same`` | ``random``;
    ``None`` = ``keep`` for a trained potential, otherwise ``orth`` with LM
    and ``mlip3`` with the other optimisers.
    The following apply to L-BFGS/Adam only: precondition: ``gauss-newton`` optimises in coordinates x with
    θ = P·x, PᵀJᵀJP = I (J the Jacobian of the weighted residuals, damped by
    ``precond_damping``·mean eigenvalue), recomputed every ``precond_every``
    iterations (multiple of linear_every); ``none`` for plain θ.
    precond_max_configs: J is computed on at most this many configurations
    (evenly spaced over the set; the loss is a mean over configurations, so
    no rescaling): its cost grows as data × parameters and it only has to
    condition the problem (0 = all). precond_start: (P, P⁻¹) to start with
    instead of computing one (e.g. :attr:`TrainResult.precond` of an
    earlier training; note that a stale one can make a warm-started fit
    worse, which is why the learning loop does not use it).
    seed: for ``random`` init. linear_every: exact linear solve period (0 = off).
    pretrain_iter: iteration of the second Rescale (0 = off). rescale: do the
    scaling search at all. final_linear: linear solve after the last step.
    eval_every: validation/training metrics period (0 = only at the end).
    checkpoint, checkpoint_every, resume: see module docstring.
    log: JSON-lines log file (one line per iteration). progress: tqdm bar.
    """

    max_iter: int = 1000
    optimizer: str = "lm"
    lm_lambda: float = 1e-2
    lm_atom_budget: int = 0
    lm_conv_window: int = 10
    n_starts: int = 4
    start_iter: int = 8
    learning_rate: float = 1e-3
    memory_size: int = 20
    max_linesearch_steps: int = 20
    gtol: float = 1e-10
    conv_tol: float = 1e-3
    conv_window: int = 50
    init: str | None = None
    seed: int = 0
    linear_every: int = 50
    precondition: str = "gauss-newton"
    precond_every: int = 50
    precond_damping: float = 1e-6
    precond_max_configs: int = 0
    precond_start: tuple | None = None
    pretrain_iter: int = 75
    rescale: bool = True
    final_linear: bool = True
    eval_every: int = 10
    checkpoint: str | None = None
    checkpoint_every: int = 10
    resume: bool = False
    log: str | None = None
    progress: bool = False
    weights: Weights = field(default_factory=Weights)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise MTPJaxError(f"unknown optimizer '{self.optimizer}' (use {', '.join(OPTIMIZERS)})")
        if self.init is not None and self.init not in INIT_METHODS:
            raise MTPJaxError(f"unknown init '{self.init}' (use {', '.join(INIT_METHODS)})")
        if self.max_iter < 0:
            raise MTPJaxError(f"max_iter must be ≥ 0, got {self.max_iter}")
        if self.n_starts < 1 or self.start_iter < 0:
            raise MTPJaxError(f"n_starts must be ≥ 1 and start_iter ≥ 0, got {self.n_starts}, {self.start_iter}")
        if not (self.lm_lambda > 0 and np.isfinite(self.lm_lambda)):
            raise MTPJaxError(f"lm_lambda must be a positive number, got {self.lm_lambda}")


@dataclass
class TrainResult:
    """``model`` (trained MTP), ``history`` (list of per-iteration dicts: iter,
    loss, grad_norm, time, and train_*/valid_* metrics where evaluated),
    ``train_metrics``/``valid_metrics`` (final, see :func:`error_metrics`),
    ``iterations``, ``stop_reason``, ``wall_time`` (s), ``precond``: the last
    (P, P⁻¹) as numpy arrays (None without preconditioning)."""

    model: MTP
    history: list
    train_metrics: dict
    valid_metrics: dict | None
    iterations: int
    stop_reason: str
    wall_time: float
    precond: tuple | None = None


def make_optimizer(cfg: TrainConfig):
    return _optimizer(cfg.optimizer, cfg.learning_rate, cfg.memory_size, cfg.max_linesearch_steps)


@functools.lru_cache(maxsize=8)
def _optimizer(name: str, learning_rate: float, memory_size: int, max_linesearch_steps: int):
    """Cached, so that repeated :func:`train` calls reuse compiled steps."""
    if name == "adam":
        return optax.adam(learning_rate)
    return optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps),
    )


@functools.lru_cache(maxsize=8)
def _unravel_for(shapes: tuple, dtype: str):
    """``unravel`` of the parameter dict with these (name, shape) entries (cached)."""
    return ravel_pytree({k: jnp.zeros(sh, dtype) for k, sh in shapes})[1]


@functools.lru_cache(maxsize=8)
def _cached_step(opt, unravel, lbfgs: bool, penalty: float):
    return _make_step(opt, unravel, lbfgs, penalty)


def _make_step(opt, unravel, lbfgs: bool, penalty: float):
    """One jitted optimiser step in preconditioned coordinates x (θ = P·x);
    model (holding ``scaling``), P and the data are arguments, so rescaling
    and new preconditioners do not recompile."""

    @eqx.filter_jit
    def step(x, state, precond, model, data):
        def f(x_):
            return total_loss(unravel(precond @ x_), model, data, penalty)

        if lbfgs:
            value, grad = optax.value_and_grad_from_state(f)(x, state=state)
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        else:
            value, grad = jax.value_and_grad(f)(x)
            updates, state = opt.update(grad, state, x)
        return optax.apply_updates(x, updates), state, value, optax.tree.norm(grad)

    return step


def preconditioner(model: MTP, data, unravel, damping: float = 1e-6):
    """(P, P⁻¹) with Pᵀ(JᵀJ + λ)P = I from the Gauss–Newton matrix at ``model``."""
    flat = ravel_pytree(get_params(model))[0]
    h = np.asarray(gauss_newton_matrix(flat, unravel, model, data), dtype=float)
    h = 0.5 * (h + h.T)
    lam = damping * max(np.trace(h) / len(h), 1e-300)
    w, v = np.linalg.eigh(h + lam * np.eye(len(h)))
    w = np.maximum(w, lam)
    return jnp.asarray(v / np.sqrt(w)), jnp.asarray((v * np.sqrt(w)).T)


def _prefixed(metrics: dict, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in metrics.items() if k != "n_configs"}


def train(
    model: MTP,
    train_configs,
    valid_configs=None,
    config: TrainConfig | None = None,
    callback=None,
    train_source: str | None = None,
    valid_source: str | None = None,
) -> TrainResult:
    """Fit ``model`` to labelled configurations (see module docstring).

    ``train_configs``/``valid_configs``: lists of Configuration or prepared
    :class:`TrainingSet` objects. ``callback(record: dict)`` is called after
    every iteration (return True to stop). Returns a :class:`TrainResult`.
    """
    cfg = config or TrainConfig()
    t_start = time.perf_counter()
    w = cfg.weights
    tset = train_configs if isinstance(train_configs, TrainingSet) else prepare_training_set(
        model, train_configs, w, source=train_source)
    vset = None
    if valid_configs is not None:
        vset = valid_configs if isinstance(valid_configs, TrainingSet) else prepare_training_set(
            model, valid_configs, w, source=valid_source)
    if cfg.optimizer == "lm":
        return _train_lm(model, tset, vset, cfg, callback, t_start)
    data = tset.device_args()

    opt = make_optimizer(cfg)
    lbfgs = cfg.optimizer == "lbfgs"
    params0 = get_params(model)
    flat0 = ravel_pytree(params0)[0]
    unravel = _unravel_for(tuple((k, tuple(v.shape)) for k, v in sorted(params0.items())), str(flat0.dtype))
    n = int(flat0.size)
    step = _cached_step(opt, unravel, lbfgs, float(w.penalty))
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
    gn = cfg.precondition == "gauss-newton"
    if cfg.precondition not in ("gauss-newton", "none"):
        raise MTPJaxError(f"unknown precondition '{cfg.precondition}' (use gauss-newton or none)")
    eye = jnp.eye(n, dtype=flat0.dtype)
    nc = len(tset.configs)
    if gn and cfg.precond_max_configs and nc > cfg.precond_max_configs:
        sub = np.unique(np.linspace(0, nc - 1, int(cfg.precond_max_configs)).round().astype(int))
        pdata = prepare_training_set(model, [tset.configs[i] for i in sub], w).device_args()
    else:
        pdata = data

    def precond(model):
        return preconditioner(model, pdata, unravel, cfg.precond_damping)

    def restart(model):
        """New preconditioner (if due) handled by the caller; fresh optimiser state."""
        return opt.init(jnp.zeros(n, flat0.dtype))

    losses: list[float] = []
    it0 = 0
    if cfg.resume and ckpt is not None and ckpt.exists():
        st = load_checkpoint(ckpt, opt.init(jnp.zeros(n, flat0.dtype)), n)
        model = eqx.tree_at(lambda m: m.scaling, model, st["scaling"])
        p, pinv = st["precond"], st["precond_inv"]
        x = st["flat"]
        model = set_params(model, unravel(p @ x))
        state, it0, losses = st["opt_state"], st["iteration"], st["losses"]
    else:
        init = cfg.init or ("keep" if _looks_trained(model) else "mlip3")
        if init != "keep":
            model = init_radial(model, init, cfg.seed)
            model = fit_species_energies(model, tset.configs)
            model = rescale(model, data)[0] if cfg.rescale else linear_solve(model, data)[0]
        if gn and cfg.precond_start is not None and np.shape(cfg.precond_start[0]) == (n, n):
            p, pinv = (jnp.asarray(a, flat0.dtype) for a in cfg.precond_start)
        else:
            p, pinv = precond(model) if gn else (eye, eye)
        x = pinv @ ravel_pytree(get_params(model))[0]
        state = restart(model)

    log = open(cfg.log, "a" if (cfg.resume and it0 > 0) else "w") if cfg.log else None
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_iter, initial=it0, desc="train", unit="it", dynamic_ncols=True)
    history: list[dict] = []
    stop_reason = "max_iter"
    t_train = t_eval = 0.0
    it = it0
    try:
        while it < cfg.max_iter:
            t0 = time.perf_counter()
            changed = False
            if it > 0 and it == cfg.pretrain_iter and cfg.rescale:
                model, changed = rescale(model, data)[0], True
            elif it > 0 and cfg.linear_every and it % cfg.linear_every == 0:
                model, changed = linear_solve(model, data)[0], True
            if it > 0 and gn and cfg.precond_every and it % cfg.precond_every == 0:
                p, pinv = precond(model)
                changed = True
            if changed:
                x = pinv @ ravel_pytree(get_params(model))[0]
                state = restart(model)
            x, state, value, gnorm = step(x, state, p, model, data)
            value, gnorm = float(value), float(gnorm)
            model = set_params(model, unravel(p @ x))
            t_train += time.perf_counter() - t0
            it += 1
            losses.append(value)
            rec = {"iter": it, "loss": value, "grad_norm": gnorm, "time": time.perf_counter() - t_start,
                   "train_time": t_train}
            if cfg.eval_every and it % cfg.eval_every == 0:
                te = time.perf_counter()
                rec.update(_prefixed(error_metrics(model, tset), "train"))
                if vset is not None:
                    rec.update(_prefixed(error_metrics(model, vset), "valid"))
                t_eval += time.perf_counter() - te
            rec["eval_time"] = t_eval
            history.append(rec)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if bar is not None:
                post = {"loss": f"{value:.3e}"}
                if "valid_force_rmse" in rec:
                    post["vF"] = f"{rec['valid_force_rmse']:.4f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if ckpt is not None and cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
                save_checkpoint(ckpt, flat=x, scaling=model.scaling, opt_state=state, iteration=it,
                                losses=losses, seed=cfg.seed, n_params=n, precond=p, precond_inv=pinv)
            if not np.isfinite(value):
                raise MTPJaxError(f"training diverged at iteration {it} (loss {value})")
            if gnorm < cfg.gtol:
                stop_reason = "gtol"
                break
            win = cfg.conv_window
            if cfg.conv_tol > 0 and win and len(losses) > win:
                old = losses[-win - 1]
                if old > 0 and (old - value) / old < cfg.conv_tol:
                    stop_reason = "conv_tol"
                    break
            if callback is not None and callback(rec):
                stop_reason = "callback"
                break
    finally:
        if bar is not None:
            bar.close()
        if log:
            log.close()
    if cfg.final_linear and it > 0:
        model = linear_solve(model, data)[0]
    train_m = error_metrics(model, tset)
    valid_m = error_metrics(model, vset) if vset is not None else None
    return TrainResult(model, history, train_m, valid_m, it, stop_reason, time.perf_counter() - t_start,
                       (np.asarray(p), np.asarray(pinv)) if gn else None)


def _lm_atom_budget(model: MTP, tset: TrainingSet, cfg: TrainConfig) -> int:
    """Atoms per Jacobian batch: ~256 MB of per-pair Jacobian blocks (a few
    (N, M, 3, C·K·N_Q) arrays) and of the batch's (3N, n_params) Jacobian."""
    if cfg.lm_atom_budget:
        return int(cfg.lm_atom_budget)
    m = max(b.idx.shape[1] for b in tset.batches)
    c, _, k, nq = model.radial_coeffs.shape
    per_atom = 8 * (4 * m * 3 * c * k * nq + 4 * 3 * model.n_params)
    return int(np.clip(2**28 // per_atom, 32, 1024))


def _lm_init(model: MTP, init: str, seed: int, tset: TrainingSet, jdata, penalty: float) -> MTP:
    model = init_radial(model, init, seed)
    model = fit_species_energies(model, tset.configs)
    return solve_linear_block(model, jdata, penalty)


def _train_lm(model: MTP, tset: TrainingSet, vset, cfg: TrainConfig, callback, t_start: float) -> TrainResult:
    """The Levenberg–Marquardt branch of :func:`train` (same contract)."""
    w = cfg.weights
    pen = float(w.penalty)
    data = tset.device_args()
    jset = prepare_training_set(model, tset.configs, w, source=tset.source, min_distance=None,
                                atom_budget=_lm_atom_budget(model, tset, cfg), group_neighbors=True)
    jdata = jset.device_args()
    n = int(model.n_params)
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
    template = {"lam": jnp.zeros(()), "nu": jnp.zeros(())}
    losses: list[float] = []
    history: list[dict] = []
    it = 0
    lam, nu = float(cfg.lm_lambda), 2.0
    if cfg.resume and ckpt is not None and ckpt.exists():
        st = load_checkpoint(ckpt, template, n)
        model = eqx.tree_at(lambda m: m.scaling, model, st["scaling"])
        model = set_params(model, unflat_params(model, st["flat"]))
        lam, nu = float(st["opt_state"]["lam"]), float(st["opt_state"]["nu"])
        it, losses = st["iteration"], st["losses"]
    else:
        init = cfg.init or ("keep" if _looks_trained(model) else "orth")
        if init != "keep":
            # the starts' iterations count in max_iter's budget: max_iter = 0 only initialises
            start_iter = min(int(cfg.start_iter), int(cfg.max_iter))
            n_starts = max(1, int(cfg.n_starts)) if init in ("orth", "random") and start_iter > 0 else 1
            best = None
            for k in range(n_starts):
                m = _lm_init(model, init, cfg.seed + k, tset, jdata, pen)
                lk, nk, loss = float(cfg.lm_lambda), 2.0, float("inf")
                for _ in range(start_iter if n_starts > 1 else 0):
                    m, loss, _, lk, nk, ok = lm_step(m, jdata, data, pen, lk, nk)
                    if not ok:
                        break
                history.append({"start": k, "seed": cfg.seed + k, "loss": loss,
                                "time": time.perf_counter() - t_start})
                if best is None or loss < best[1]:
                    best = (m, loss, lk, nk)
            model, _, lam, nu = best
            if n_starts > 1:
                lam, nu = best[2], best[3]
    log = open(cfg.log, "a" if (cfg.resume and it > 0) else "w") if cfg.log else None
    if log:
        for rec in history:
            log.write(json.dumps(rec) + "\n")
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_iter, initial=it, desc="train (LM)", unit="it", dynamic_ncols=True)
    stop_reason = "max_iter"
    t_train = t_eval = 0.0
    try:
        while it < cfg.max_iter:
            t0 = time.perf_counter()
            model, value, gnorm, lam, nu, accepted = lm_step(model, jdata, data, pen, lam, nu)
            t_train += time.perf_counter() - t0
            it += 1
            losses.append(value)
            rec = {"iter": it, "loss": value, "grad_norm": gnorm, "lambda": float(lam),
                   "time": time.perf_counter() - t_start, "train_time": t_train}
            if cfg.eval_every and it % cfg.eval_every == 0:
                te = time.perf_counter()
                rec.update(_prefixed(error_metrics(model, tset), "train"))
                if vset is not None:
                    rec.update(_prefixed(error_metrics(model, vset), "valid"))
                t_eval += time.perf_counter() - te
            rec["eval_time"] = t_eval
            history.append(rec)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if bar is not None:
                post = {"loss": f"{value:.3e}"}
                if "valid_force_rmse" in rec:
                    post["vF"] = f"{rec['valid_force_rmse']:.4f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if ckpt is not None and cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
                save_checkpoint(ckpt, flat=flat_params(model), scaling=model.scaling,
                                opt_state={"lam": jnp.asarray(lam), "nu": jnp.asarray(nu)}, iteration=it,
                                losses=losses, seed=cfg.seed, n_params=n, precond=np.zeros(0),
                                precond_inv=np.zeros(0))
            if not np.isfinite(value):
                raise MTPJaxError(f"training diverged at iteration {it} (loss {value})")
            if not accepted:
                stop_reason = "no_progress"
                break
            if gnorm < cfg.gtol:
                stop_reason = "gtol"
                break
            win = cfg.lm_conv_window
            if cfg.conv_tol > 0 and win and len(losses) > win:
                old = losses[-win - 1]
                if old > 0 and (old - value) / old < cfg.conv_tol:
                    stop_reason = "conv_tol"
                    break
            if callback is not None and callback(rec):
                stop_reason = "callback"
                break
    finally:
        if bar is not None:
            bar.close()
        if log:
            log.close()
    train_m = error_metrics(model, tset)
    valid_m = error_metrics(model, vset) if vset is not None else None
    return TrainResult(model, history, train_m, valid_m, it, stop_reason, time.perf_counter() - t_start, None)


def _looks_trained(model: MTP) -> bool:
    """Heuristic: MLIP-3's untrained defaults have every linear coefficient 1e-3."""
    return not (np.allclose(np.asarray(model.moment_coeffs), 1e-3) and np.allclose(np.asarray(model.species_coeffs), 1e-3))


def loss_value(model: MTP, tset: TrainingSet, weights: Weights | None = None) -> dict:
    """Loss parts of ``model`` on a prepared set (floats)."""
    pen = (weights or Weights()).penalty
    t = loss_terms(get_params(model), model, tset.device_args(), pen)
    return {k: float(v) for k, v in t.items()}
