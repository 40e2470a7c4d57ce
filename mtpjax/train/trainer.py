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

from mtpjax.errors import MTPJaxError
from mtpjax.potential.model import MTP
from mtpjax.potential.params import params, with_params
from mtpjax.progress import Progress
from mtpjax.train.checkpoint import load_checkpoint, save_checkpoint
from mtpjax.train.data import TrainingSet, Weights, prepare_training_set
from mtpjax.train.init import INIT_METHODS, init_radial
from mtpjax.train.linear import fit_species_energies, linear_solve, rescale
from mtpjax.train.lm import lm_step, solve_linear_block
from mtpjax.train.loss import error_metrics, gauss_newton_matrix, loss_terms, total_loss

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
    log: JSON-lines log file (one line per iteration). progress: a bar on a terminal, a one-line summary
    with ETA elsewhere (:class:`mtpjax.progress.Progress`, through ``progress_log``).
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
    progress_log: object = None
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
    """The optax transformation of ``cfg.optimizer`` (``lbfgs`` or ``adam``)."""
    return _optimizer(cfg.optimizer, cfg.learning_rate, cfg.memory_size, cfg.max_linesearch_steps)


def _optimizer(name: str, learning_rate: float, memory_size: int, max_linesearch_steps: int):
    if name == "adam":
        return optax.adam(learning_rate)
    return optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps),
    )


@functools.lru_cache(maxsize=8)
def _gradient_step(name: str, learning_rate: float, memory_size: int, max_linesearch_steps: int, penalty: float):
    """(optax transformation, one jitted step in preconditioned coordinates x, θ = P·x). The model (holding
    ``scaling``), P and the data are arguments, so rescaling and new preconditioners do not recompile; cached,
    so that repeated :func:`train` calls reuse the compiled step."""
    opt = _optimizer(name, learning_rate, memory_size, max_linesearch_steps)
    lbfgs = name == "lbfgs"

    @eqx.filter_jit
    def step(x, state, precond, model, data):
        def f(x_):
            return total_loss(precond @ x_, model, data, penalty)

        if lbfgs:
            value, grad = optax.value_and_grad_from_state(f)(x, state=state)
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        else:
            value, grad = jax.value_and_grad(f)(x)
            updates, state = opt.update(grad, state, x)
        return optax.apply_updates(x, updates), state, value, optax.tree.norm(grad)

    return opt, step


def preconditioner(model: MTP, data, damping: float = 1e-6):
    """(P, P⁻¹) with Pᵀ(JᵀJ + λ)P = I from the Gauss–Newton matrix at ``model``."""
    h = np.asarray(gauss_newton_matrix(params(model), model, data), dtype=float)
    h = 0.5 * (h + h.T)
    lam = damping * max(np.trace(h) / len(h), 1e-300)
    w, v = np.linalg.eigh(h + lam * np.eye(len(h)))
    w = np.maximum(w, lam)
    return jnp.asarray(v / np.sqrt(w)), jnp.asarray((v * np.sqrt(w)).T)


def _prefixed(metrics: dict, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def _looks_trained(model: MTP) -> bool:
    """Heuristic: MLIP-3's untrained defaults have every linear coefficient 1e-3."""
    return not (np.allclose(np.asarray(model.moment_coeffs), 1e-3) and np.allclose(np.asarray(model.species_coeffs), 1e-3))


# ------------------------------------------------------------------ optimisers as step objects
class _LevenbergMarquardt:
    """LM iterations (:func:`mtpjax.train.lm.lm_step`): the Jacobian on batches grouped by neighbour count,
    trial losses on the training batches; from scratch, ``n_starts`` seeded starts of ``start_iter`` steps."""

    name = "LM"

    def __init__(self, model: MTP, tset: TrainingSet, cfg: TrainConfig, history: list, t_start: float):
        self.cfg, self.pen = cfg, float(cfg.weights.penalty)
        self.data = tset.device_args()
        self.jdata = prepare_training_set(model, tset.configs, cfg.weights, source=tset.source, min_distance=None,
                                          atom_budget=_lm_atom_budget(model, tset, cfg),
                                          group_neighbors=True).device_args()
        self.lam, self.nu = float(cfg.lm_lambda), 2.0
        self.conv_window = cfg.lm_conv_window
        self.tset, self.history, self.t_start = tset, history, t_start

    def template(self):
        return {"lam": jnp.zeros(()), "nu": jnp.zeros(())}

    def restore(self, model: MTP, st: dict) -> MTP:
        self.lam, self.nu = float(st["opt_state"]["lam"]), float(st["opt_state"]["nu"])
        return with_params(model, st["flat"])

    def start(self, model: MTP) -> MTP:
        cfg = self.cfg
        init = cfg.init or ("keep" if _looks_trained(model) else "orth")
        if init == "keep":
            return model
        # the starts' iterations count in max_iter's budget: max_iter = 0 only initialises
        start_iter = min(int(cfg.start_iter), int(cfg.max_iter))
        n_starts = max(1, int(cfg.n_starts)) if init in ("orth", "random") and start_iter > 0 else 1
        best = None
        for k in range(n_starts):
            m = _lm_init(model, init, cfg.seed + k, self.tset, self.jdata, self.pen)
            lk, nk, loss = float(cfg.lm_lambda), 2.0, float("inf")
            for _ in range(start_iter if n_starts > 1 else 0):
                m, loss, _, lk, nk, ok = lm_step(m, self.jdata, self.data, self.pen, lk, nk)
                if not ok:
                    break
            self.history.append({"start": k, "seed": cfg.seed + k, "loss": loss,
                                 "time": time.perf_counter() - self.t_start})
            if best is None or loss < best[1]:
                best = (m, loss, lk, nk)
        if n_starts > 1:
            self.lam, self.nu = best[2], best[3]
        return best[0]

    def iterate(self, model: MTP, it: int):
        model, value, gnorm, self.lam, self.nu, accepted = lm_step(model, self.jdata, self.data, self.pen,
                                                                   self.lam, self.nu)
        return model, value, gnorm, {"lambda": float(self.lam)}, accepted

    def checkpoint(self, model: MTP) -> dict:
        return dict(flat=params(model), opt_state={"lam": jnp.asarray(self.lam), "nu": jnp.asarray(self.nu)},
                    precond=np.zeros(0), precond_inv=np.zeros(0))

    def finish(self, model: MTP, it: int) -> MTP:
        return model

    def precond(self):
        return None


class _Gradient:
    """L-BFGS (optax, zoom line search) or Adam on θ = P·x with ``scaling`` held fixed; a second Rescale at
    ``pretrain_iter``, an exact linear solve every ``linear_every`` iterations and a new Gauss–Newton
    preconditioner every ``precond_every`` (the optimiser state then restarts, as MLIP resets its Hessian)."""

    name = "train"

    def __init__(self, model: MTP, tset: TrainingSet, cfg: TrainConfig, history: list, t_start: float):
        if cfg.precondition not in ("gauss-newton", "none"):
            raise MTPJaxError(f"unknown precondition '{cfg.precondition}' (use gauss-newton or none)")
        self.cfg, self.tset = cfg, tset
        self.data = tset.device_args()
        self.opt, self.step = _gradient_step(cfg.optimizer, cfg.learning_rate, cfg.memory_size,
                                             cfg.max_linesearch_steps, float(cfg.weights.penalty))
        self.n = int(model.n_params)
        self.dtype = model.moment_coeffs.dtype
        self.gn = cfg.precondition == "gauss-newton"
        self.conv_window = cfg.conv_window
        nc = len(tset.configs)
        self.pdata = self.data
        if self.gn and cfg.precond_max_configs and nc > cfg.precond_max_configs:
            sub = np.unique(np.linspace(0, nc - 1, int(cfg.precond_max_configs)).round().astype(int))
            self.pdata = prepare_training_set(model, [tset.configs[i] for i in sub], cfg.weights).device_args()
        eye = jnp.eye(self.n, dtype=self.dtype)
        self.p, self.pinv = eye, eye

    def template(self):
        return self.opt.init(jnp.zeros(self.n, self.dtype))

    def _precondition(self, model: MTP):
        if self.gn:
            self.p, self.pinv = preconditioner(model, self.pdata, self.cfg.precond_damping)

    def _restart(self, model: MTP):
        self.x = self.pinv @ params(model)
        self.state = self.opt.init(jnp.zeros(self.n, self.dtype))

    def restore(self, model: MTP, st: dict) -> MTP:
        model = eqx.tree_at(lambda m: m.scaling, model, st["scaling"])
        self.p, self.pinv = st["precond"], st["precond_inv"]
        self.x, self.state = st["flat"], st["opt_state"]
        return with_params(model, self.p @ self.x)

    def start(self, model: MTP) -> MTP:
        cfg = self.cfg
        init = cfg.init or ("keep" if _looks_trained(model) else "mlip3")
        if init != "keep":
            model = init_radial(model, init, cfg.seed)
            model = fit_species_energies(model, self.tset.configs)
            model = rescale(model, self.data)[0] if cfg.rescale else linear_solve(model, self.data)[0]
        if self.gn and cfg.precond_start is not None and np.shape(cfg.precond_start[0]) == (self.n, self.n):
            self.p, self.pinv = (jnp.asarray(a, self.dtype) for a in cfg.precond_start)
        else:
            self._precondition(model)
        self._restart(model)
        return model

    def iterate(self, model: MTP, it: int):
        cfg = self.cfg
        changed = False
        if it > 0 and it == cfg.pretrain_iter and cfg.rescale:
            model, changed = rescale(model, self.data)[0], True
        elif it > 0 and cfg.linear_every and it % cfg.linear_every == 0:
            model, changed = linear_solve(model, self.data)[0], True
        if it > 0 and self.gn and cfg.precond_every and it % cfg.precond_every == 0:
            self._precondition(model)
            changed = True
        if changed:
            self._restart(model)
        self.x, self.state, value, gnorm = self.step(self.x, self.state, self.p, model, self.data)
        return with_params(model, self.p @ self.x), float(value), float(gnorm), {}, True

    def checkpoint(self, model: MTP) -> dict:
        return dict(flat=self.x, opt_state=self.state, precond=self.p, precond_inv=self.pinv)

    def finish(self, model: MTP, it: int) -> MTP:
        return linear_solve(model, self.data)[0] if self.cfg.final_linear and it > 0 else model

    def precond(self):
        return (np.asarray(self.p), np.asarray(self.pinv)) if self.gn else None


def _stop_reason(cfg: TrainConfig, losses: list, value: float, gnorm: float, accepted: bool, window: int):
    """Why training stops after this iteration (None: go on): MLIP's criteria and LM's."""
    if not accepted:
        return "no_progress"
    if gnorm < cfg.gtol:
        return "gtol"
    if cfg.conv_tol > 0 and window and len(losses) > window:
        old = losses[-window - 1]
        if old > 0 and (old - value) / old < cfg.conv_tol:
            return "conv_tol"
    return None


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
    if cfg.progress:  # the minutes before the first iteration (rows, compilation, multi-start) are not silent
        (cfg.progress_log or print)(
            f"train: {len(getattr(train_configs, 'configs', train_configs))} configurations, {int(model.n_params)} "
            f"parameters, optimizer {cfg.optimizer}; preparing the data and compiling (the first iteration follows)")
    tset = train_configs if isinstance(train_configs, TrainingSet) else prepare_training_set(
        model, train_configs, w, source=train_source)
    vset = None
    if valid_configs is not None:
        vset = valid_configs if isinstance(valid_configs, TrainingSet) else prepare_training_set(
            model, valid_configs, w, source=valid_source)
    history: list[dict] = []
    opt = (_LevenbergMarquardt if cfg.optimizer == "lm" else _Gradient)(model, tset, cfg, history, t_start)
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
    losses: list[float] = []
    it = 0
    if cfg.resume and ckpt is not None and ckpt.exists():
        st = load_checkpoint(ckpt, opt.template(), int(model.n_params))
        model = opt.restore(eqx.tree_at(lambda m: m.scaling, model, st["scaling"]), st)
        it, losses = st["iteration"], st["losses"]
    else:
        model = opt.start(model)
    log = open(cfg.log, "a" if (cfg.resume and it > 0) else "w") if cfg.log else None
    if log:
        for rec in history:  # the starts of a from-scratch LM fit
            log.write(json.dumps(rec) + "\n")
    bar = Progress(cfg.max_iter, "it", "train (LM)" if cfg.optimizer == "lm" else "train", enabled=cfg.progress,
                   log=cfg.progress_log, initial=it)
    stop_reason = "max_iter"
    t_train = t_eval = 0.0
    try:
        while it < cfg.max_iter:
            t0 = time.perf_counter()
            model, value, gnorm, extra, accepted = opt.iterate(model, it)
            t_train += time.perf_counter() - t0
            it += 1
            losses.append(value)
            rec = {"iter": it, "loss": value, "grad_norm": gnorm, **extra, "time": time.perf_counter() - t_start,
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
            post = f"loss {value:.3e}" + (f", valid F RMSE {rec['valid_force_rmse']:.4f} eV/Å"
                                           if "valid_force_rmse" in rec else "")
            bar.update(1, post)
            if ckpt is not None and cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
                save_checkpoint(ckpt, scaling=model.scaling, iteration=it, losses=losses, seed=cfg.seed,
                                n_params=int(model.n_params), **opt.checkpoint(model))
            if not np.isfinite(value):
                raise MTPJaxError(f"training diverged at iteration {it} (loss {value})")
            reason = _stop_reason(cfg, losses, value, gnorm, accepted, opt.conv_window)
            if reason is None and callback is not None and callback(rec):
                reason = "callback"
            if reason is not None:
                stop_reason = reason
                break
    finally:
        bar.close()
        if log:
            log.close()
    model = opt.finish(model, it)
    train_m = error_metrics(model, tset)
    valid_m = error_metrics(model, vset) if vset is not None else None
    return TrainResult(model, history, train_m, valid_m, it, stop_reason, time.perf_counter() - t_start,
                       opt.precond())


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


def loss_value(model: MTP, tset: TrainingSet, weights: Weights | None = None) -> dict:
    """Loss parts of ``model`` on a prepared set (floats)."""
    pen = (weights or Weights()).penalty
    t = loss_terms(params(model), model, tset.device_args(), pen)
    return {k: float(v) for k, v in t.items()}
