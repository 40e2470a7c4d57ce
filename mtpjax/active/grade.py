"""High-level active-set operations (host orchestration): build an active set
from a training set, grade configurations, D-optimal ``select-add``.

Defaults are those of the MLIP generation whose state files each mode is used with
(:func:`mlip_settings`; ``docs/spec/mtp.md`` §8.2–8.3):

- configuration mode (MLIP-2's ``calc-grade``/``select-add``, ``.als`` states): initial diagonal 1e-5, swap
  while max |C| > 1.0000001, select above 1.1;
- neighbourhood mode (MLIP-3's ``train --al_mode=nbh``/``calculate_grade``/``select_add``, ``.almtp``
  states): initial diagonal 1e-6, select and swap above 1.001, all rows in one batch, configuration-then-atom
  order (MLIP-3's ``cfg_selection.h``/``cpp``, read from its BSD source).

On a rank-deficient set of rows (near-duplicate frames: more rows than parameters, rank below n_params)
the initial diagonal decides which near-null directions enter, so only the MLIP generation's own settings
reproduce its grades (``tests/test_active_mlip3_sets.py``). Energy rows are divided by N
(``weight_scaling`` 2) in both.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from mtpjax.potential.model import MTP
from mtpjax.active.maxvol import ActiveSet, ActiveSetError, grades, select
from mtpjax.active.rows import selection_rows

__all__ = ["mlip_settings", "build_active_set", "grade_configs", "attach_grades", "select_add", "rebuild_active_set"]

MLIP2_INIT = 1e-5
MLIP3_INIT = 1e-6
THRESHOLD_SELECT = 1.1        # MLIP-2 select-add
THRESHOLD_SWAP = 1.0000001    # MLIP-2
MLIP3_THRESHOLD = 1.001       # MLIP-3: select and swap


def mlip_settings(mode: str) -> dict:
    """MaxVol settings of the MLIP generation each mode follows: ``{"init", "threshold_swap",
    "threshold_select"}`` — MLIP-3's for ``"nbh"``, MLIP-2's for ``"cfg"``."""
    if mode == "nbh":
        return {"init": MLIP3_INIT, "threshold_swap": MLIP3_THRESHOLD, "threshold_select": MLIP3_THRESHOLD}
    return {"init": MLIP2_INIT, "threshold_swap": THRESHOLD_SWAP, "threshold_select": THRESHOLD_SELECT}


def build_active_set(
    model: MTP,
    configs,
    mode: str = "cfg",
    init: float | str | None = None,
    threshold: float | None = None,
    weight_scaling: float = 2.0,
    min_distance: float | None = None,
    source: str | None = None,
    method: str = "classic",
) -> ActiveSet:
    """MaxVol active set of ``configs`` (the training set) for ``model``.

    Starts from ``init·I`` (MLIP; ``None``: :func:`mlip_settings` of ``mode``) or, with ``init="auto[:scale]"``, from the
    regularised diagonal of :meth:`ActiveSet.regularised` (small training
    sets), and swaps rows in while ``max |C| > threshold`` (``None``: the mode's MLIP setting). ``method``:
    ``"classic"`` (MLIP's swap order and states; the learner and the workflow use it) or ``"blocked"``
    (the same criterion on blocks of candidates, :func:`~mtpjax.active.maxvol.maxvol_swaps_blocked`: faster
    on 10⁵ rows, but another local optimum, so other grades than MLIP's on a rank-deficient set).
    Raises :class:`ActiveSetError` for an empty training set.
    """
    configs = list(configs)
    if not configs:
        raise ActiveSetError(f"{source + ': ' if source else ''}empty training set: cannot build an active set")
    rows = selection_rows(model, configs, mode, weight_scaling, min_distance=min_distance, source=source)
    init = mlip_settings(mode)["init"] if init is None else init
    threshold = mlip_settings(mode)["threshold_swap"] if threshold is None else threshold
    if isinstance(init, str):  # "auto" or "auto:<scale>": regularised start for small training sets
        scale = float(init.partition(":")[2] or 0.1)
        state = ActiveSet.regularised(np.concatenate(rows), scale, mode=mode, weight_scaling=weight_scaling)
    else:
        state = ActiveSet.empty(model.n_params, init=init, mode=mode, weight_scaling=weight_scaling)
    select(state, rows, threshold_select=threshold, threshold_swap=threshold, method=method)
    state.configs = configs
    state.swap_threshold = float(threshold)
    _compact(state)
    return state


def _compact(state: ActiveSet) -> None:
    """Keep only configurations that own active rows (renumber ``owner``)."""
    used = sorted({int(c) for c in state.owner[:, 0] if c >= 0})
    remap = {c: k for k, c in enumerate(used)}
    state.configs = [state.configs[c] for c in used]
    state.owner = np.array([[remap[int(c)], q] if c >= 0 else [-1, -1] for c, q in state.owner], dtype=np.int64).reshape(-1, 2)


def rebuild_active_set(model: MTP, state: ActiveSet, extra_configs=(), threshold: float | None = None) -> ActiveSet:
    """Rebuild a state for a new (retrained) ``model`` from the configurations
    it holds plus ``extra_configs`` (e.g. the whole training set); same mode,
    init, swap threshold (when the state records one) and weight scaling."""
    thr = state.swap_threshold if threshold is None else threshold
    return build_active_set(model, list(state.configs) + list(extra_configs), state.mode, state.init, thr,
                            state.weight_scaling)


def grade_configs(model: MTP, state: ActiveSet, configs, min_distance: float | None = None, source=None):
    """Grades of ``configs`` w.r.t. ``state``: (γ per configuration (K,),
    per-row grades list — per atom in nbh mode)."""
    if state.n != model.n_params:
        raise ActiveSetError(f"active set has {state.n} rows but the potential has {model.n_params} parameters")
    rows = selection_rows(model, configs, state.mode, state.weight_scaling, min_distance=min_distance, source=source)
    return grades(state, rows)


def attach_grades(configs, g, per_row=None, mode: str = "cfg"):
    """Copies of ``configs`` with feature ``MV_grade`` (MLIP's ``%f``, features
    sorted by key as MLIP writes them) and, in nbh mode, the per-atom column
    ``nbh_grades``."""
    out = []
    for k, c in enumerate(configs):
        feats = dict(c.features)
        feats["MV_grade"] = f"{float(g[k]):f}"
        feats = {key: feats[key] for key in sorted(feats)}
        ad = dict(c.atom_data)
        if mode == "nbh" and per_row is not None:
            ad["nbh_grades"] = np.asarray(per_row[k], dtype=float)
        out.append(replace(c, features=feats, atom_data=ad))
    return out


def select_add(
    model: MTP,
    state: ActiveSet,
    new_configs,
    threshold_select: float | None = None,
    threshold_swap: float | None = None,
    selection_limit: int | None = None,
    min_distance: float | None = None,
    source: str | None = None,
) -> dict:
    """D-optimal selection of ``new_configs`` into ``state`` (in place).

    Returns ``{'selected': sorted indices into new_configs that entered the
    active set, 'grades': their grades before selection (K,), 'eqns': {index:
    local equation indices}, 'swaps': int}``. ``selection_limit`` keeps at
    most that many new configurations (highest grade first; the state is then
    re-selected from the training configurations plus the kept ones). Thresholds ``None``: the state's
    swap threshold where it records one, else :func:`mlip_settings` of its mode.
    """
    new_configs = list(new_configs)
    defaults = mlip_settings(state.mode)
    threshold_select = defaults["threshold_select"] if threshold_select is None else threshold_select
    threshold_swap = (state.swap_threshold or defaults["threshold_swap"]) if threshold_swap is None else threshold_swap
    if state.n != model.n_params:
        raise ActiveSetError(f"active set has {state.n} rows but the potential has {model.n_params} parameters")
    if not new_configs:
        return {"selected": [], "grades": np.zeros(0), "eqns": {}, "swaps": 0}
    rows = selection_rows(model, new_configs, state.mode, state.weight_scaling, min_distance=min_distance, source=source)
    backup = (state.A.copy(), state.inv.copy(), state.owner.copy())
    g_before = grades(ActiveSet(*backup), rows)[0]
    off = len(state.configs)
    res = select(state, rows, threshold_select, threshold_swap, config_offset=off)
    if selection_limit is not None and len(res["selected"]) > int(selection_limit):
        keep = sorted(sorted(res["selected"], key=lambda k: -g_before[k])[: int(selection_limit)])
        state.A, state.inv, state.owner = (a.copy() for a in backup)
        res = select(state, [rows[k] for k in keep], threshold_select, threshold_swap, config_offset=off)
        m = state.owner[:, 0] >= off
        state.owner[m, 0] = [off + keep[int(c) - off] for c in state.owner[m, 0]]
    eqns: dict = {}
    for c, q in state.owner:
        if c >= off:
            eqns.setdefault(int(c) - off, []).append(int(q))
    state.configs = list(state.configs) + new_configs
    _compact(state)
    return {"selected": sorted(eqns), "grades": g_before, "eqns": eqns, "swaps": res["swaps"]}
