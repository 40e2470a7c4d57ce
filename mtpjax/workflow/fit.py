"""Stage 3 of the workflow: one consolidated potential on every label the learning gathered.

The labels are split (seeded) into a training and a validation set (``fit.valid_fraction``); ``pot_validated``
is fitted on the training set — continued from the learned potential (``fit.init = "keep"``; its validation
errors are then optimistic, it has seen those labels) or from scratch (held out) — and the production potential
``pot.mtp`` continues on all labels (``fit.final_on_all``). Its active set (``pot.almtp``) grades the production
MD in the analysis.
"""
from __future__ import annotations

import numpy as np

from mtpjax.active.grade import build_active_set
from mtpjax.active.learn import weight_anchors
from mtpjax.active.state import write_state
from mtpjax.io.atomic import atomic_write_json
from mtpjax.io.store import TrainingStore
from mtpjax.potential.model import MTP
from mtpjax.train.data import Weights, prepare_training_set
from mtpjax.train.plots import learning_curve, parity_plot
from mtpjax.train.trainer import TrainConfig, train


def _scalars(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if np.isscalar(v)}


def fit(wf) -> dict:
    """Stage 3 (see the module docstring); returns its record (sizes, errors, times, the active set)."""
    f = wf.cfg.fit
    d = wf.workdir / "fit"
    d.mkdir(exist_ok=True)
    learned = wf.done("learn")["potential"]
    store = TrainingStore(wf.workdir / "learn" / "train.h5")
    aw = f.anchor_weight if f.anchor_weight is not None else wf.cfg.learn.train.anchor_weight
    confs = weight_anchors(store, store.configurations(order="key"), float(aw))
    rng = np.random.default_rng(int(wf.cfg.seed) + 7)
    perm = rng.permutation(len(confs))
    nv = int(round(float(f.valid_fraction) * len(confs)))
    valid = [confs[i] for i in sorted(perm[:nv])]
    trn = [confs[i] for i in sorted(perm[nv:])]
    w = Weights(energy=float(f.energy_weight), force=float(f.force_weight), stress=float(f.stress_weight),
                weighting="vibrations")
    model = MTP.from_file(learned)
    res = train(model, trn, valid or None, TrainConfig(max_iter=int(f.max_iter), weights=w, init=f.init,
                                                      seed=int(wf.cfg.seed), log=str(d / "train_log.jsonl")))
    res.model.save(d / "pot_validated.mtp")
    info = {"potential": str(d / "pot.mtp"), "init": f.init, "n_train": len(trn), "n_valid": len(valid),
            "iterations": res.iterations, "stop_reason": res.stop_reason, "train_wall_s": res.wall_time,
            "train_metrics": _scalars(res.train_metrics), "valid_metrics": _scalars(res.valid_metrics or {})}
    final = res.model
    if valid and f.final_on_all:
        # the validation set is labelled data the production potential should not miss (every configuration was
        # selected as informative): continue on all of it; the validation errors above are those of
        # pot_validated.mtp, which never saw it
        n_all = max(2, int(f.max_iter) // 4)
        r2 = train(res.model, confs, None, TrainConfig(max_iter=n_all, weights=w, init="keep", seed=int(wf.cfg.seed),
                                                       log=str(d / "train_all_log.jsonl")))
        final = r2.model
        info["final_on_all"] = {"n_configs": len(confs), "iterations": r2.iterations, "wall_s": r2.wall_time,
                                "metrics": _scalars(r2.train_metrics)}
    final.save(d / "pot.mtp")
    # the consolidated potential's active set (as the learning builds it): the analysis grades the production
    # MD with it, and `mtpjax calc-grade`/LAMMPS-style users get it beside the potential
    ast = build_active_set(final, confs, "nbh", wf.cfg.learn.active_init)
    ast.self_check()
    write_state(d / "pot.almtp", final, ast)
    info["active_set"] = {"path": str(d / "pot.almtp"), "rows": int(ast.n_selected), "n": int(ast.n)}
    try:
        sets = {"train": prepare_training_set(res.model, trn, w)}
        if valid:
            sets["valid"] = prepare_training_set(res.model, valid, w)
        parity_plot(res.model, sets, d / "parity.png")
        learning_curve(res.history, d / "learning_curve.png")
    except Exception as e:  # noqa: BLE001 - plots are optional (matplotlib extra)
        wf.log(f"[fit] no plots ({e})")
    atomic_write_json(d / "metrics.json", info)
    m = info["valid_metrics"] or info["train_metrics"]
    wf.log(f"[fit] {len(trn)} train / {len(valid)} valid configurations; "
           f"E RMSE {1e3 * m.get('energy_rmse', float('nan')):.2f} meV/atom, "
           f"F RMSE {m.get('force_rmse', float('nan')):.3f} eV/Å")
    return info
