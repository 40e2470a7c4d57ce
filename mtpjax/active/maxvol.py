"""MaxVol (Goreinov–Tyrtyshnikov) active set and extrapolation grades.

The active set is an n×n matrix ``A`` of selection-matrix rows (n = number of
MTP parameters, ``docs/spec/mtp.md`` §8) kept with its inverse. For
candidate rows ``B`` (m, n), ``C = B A⁻¹`` expresses each candidate in the
basis of the active rows; the **grade** of a row is ``max_j |C_ij|`` (≤ 1 means
interpolation). Selection swaps the candidate row ``i`` into slot ``j`` of the
largest ``|C_ij|`` while that exceeds ``threshold_swap``; each swap multiplies
``|det A|`` by ``|C_ij|`` > 1, so the volume grows monotonically and the loop
terminates in a local maximum where every candidate's grade is ≤ the
threshold (Podryabinkin & Shapeev 2017, Comput. Mater. Sci. 140, 171).

Rank-one (Sherman–Morrison) updates of ``A⁻¹`` and ``C`` are done on device in
a ``lax.while_loop``. Swap ``(i, j)``: ``A' = A + e_j (b_i − a_j)ᵀ``,
``A'⁻¹ = A⁻¹ − A⁻¹e_j (C_i − e_j)ᵀ / C_ij`` and ``C' = C − C_{:,j} (C_i − e_j)ᵀ / C_ij``.
Numerical stability: the state starts from ``init·I`` (regularised; rows never
replaced keep that value — MLIP's behaviour), only swaps with ``|C_ij| > 1``
are made (bounded growth), and :meth:`ActiveSet.check` verifies the residual ``max|A·A⁻¹ − I|``
after every selection, recomputing ``A⁻¹`` by LU when it has drifted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import MTPJaxError
import scipy.linalg

__all__ = ["ActiveSet", "grades", "row_grades", "maxvol_swaps", "select", "pivoted_start", "ActiveSetError"]


class ActiveSetError(MTPJaxError, ValueError):
    """An empty, singular or inconsistent active set."""


@dataclass
class ActiveSet:
    """MaxVol state (host numpy, float64).

    ``A`` (n, n) active rows; ``inv`` (n, n) = A⁻¹; ``owner`` (n, 2) int: for
    each row (configuration index, equation index) in the selection pool it
    came from, ``(-1, -1)`` for rows still at ``init·I``; ``init`` the initial
    diagonal value; ``mode`` 'cfg' or 'nbh'; ``weight_scaling`` p (energy rows
    divided by N^{p/2}); ``configs`` the configurations owning active rows
    (indexed by ``owner[:, 0]``), kept so that the set can be saved and
    rebuilt; ``swap_threshold`` the |C| above which the set was swapped (None:
    not known, e.g. an MLIP-2 ``.als`` file).
    """

    A: np.ndarray
    inv: np.ndarray
    owner: np.ndarray
    init: float = 1e-5
    mode: str = "cfg"
    weight_scaling: float = 2.0
    configs: list = field(default_factory=list)
    swap_threshold: float | None = None

    @classmethod
    def empty(cls, n: int, init: float = 1e-5, mode: str = "cfg", weight_scaling: float = 2.0) -> "ActiveSet":
        """The regularised start ``A = init·I`` (no row selected)."""
        if init <= 0:
            raise ActiveSetError(f"init must be > 0, got {init}")
        return cls(
            A=np.eye(n) * init,
            inv=np.eye(n) / init,
            owner=np.full((n, 2), -1, dtype=np.int64),
            init=float(init),
            mode=mode,
            weight_scaling=float(weight_scaling),
        )

    @classmethod
    def regularised(cls, rows, scale: float = 0.1, floor: float = 1e-10, mode: str = "cfg",
                    weight_scaling: float = 2.0) -> "ActiveSet":
        """Start from ``A = diag(d)``, ``d_j = scale · max_i |rows_ij|`` (floored):
        a ridge-like prior for small training sets. A parameter direction that the
        training rows excite is then graded relative to the largest value seen
        (γ ≈ 1 instead of ~1/init), a direction they never excite (d_j at the floor)
        still gives a huge grade. MaxVol swaps the prior rows out as real rows come in.
        """
        rows = np.asarray(rows, dtype=float)
        d = scale * np.max(np.abs(rows), axis=0) if len(rows) else np.zeros(rows.shape[1])
        d = np.maximum(d, floor)
        st = cls.empty(len(d), init=float(np.median(d)), mode=mode, weight_scaling=weight_scaling)
        st.A = np.diag(d)
        st.inv = np.diag(1.0 / d)
        return st

    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @property
    def n_selected(self) -> int:
        """Rows that hold a selected equation (not the initial value)."""
        return int(np.sum(self.owner[:, 0] >= 0))

    def grades(self, rows) -> np.ndarray:
        """Grade of each row of ``rows`` (m, n) → (m,)."""
        return np.asarray(row_grades(jnp.asarray(self.inv), jnp.asarray(rows)))

    def residual(self) -> float:
        """``max |A·A⁻¹ − I|`` (self-check)."""
        return float(np.abs(self.A @ self.inv - np.eye(self.n)).max())

    def check(self, refresh_above: float = 1e-8, fail_above: float = 1e-3) -> float:
        """Check that ``A⁻¹`` (kept by rank-one updates) still inverts ``A``.

        If ``max|A·A⁻¹ − I|`` exceeds ``refresh_above`` the inverse is
        recomputed by LU (kept if better); :class:`ActiveSetError` if the
        residual is still above ``fail_above`` or not finite (singular A).
        Returns the final residual.
        """
        res = self.residual()
        if not np.isfinite(res) or res > refresh_above:
            try:
                inv = np.linalg.inv(self.A)
                res2 = float(np.abs(self.A @ inv - np.eye(self.n)).max())
            except np.linalg.LinAlgError:
                res2 = np.inf
            if np.isfinite(res2) and (res2 < res or not np.isfinite(res)):
                self.inv, res = inv, res2
        if not np.isfinite(res) or res > fail_above:
            raise ActiveSetError(f"active-set matrix is singular or ill-conditioned (|A·A⁻¹ − I| = {res:.3g})")
        return res

    def self_check(self, eps: float = 1e-6) -> float:
        """Max grade of the active rows themselves (must be ≤ 1 + eps)."""
        g = float(np.max(self.grades(self.A)))
        if g > 1 + eps:
            raise ActiveSetError(f"active-set self-check failed: an active row has grade {g:.12g} > 1")
        return g


@jax.jit
def row_grades(inv, rows):
    """``max_j |(rows · A⁻¹)_ij|`` for rows (m, n) → (m,)."""
    return jnp.max(jnp.abs(rows @ inv), axis=-1)


def grades(state: ActiveSet, rows_per_config) -> tuple[np.ndarray, list]:
    """Grades of configurations: (max over each configuration's rows (K,),
    list of per-row grades) for a list of (m_k, n) row blocks."""
    if not rows_per_config:
        return np.zeros(0), []
    allrows = np.concatenate(rows_per_config, axis=0)
    g = state.grades(allrows)
    out, k = [], 0
    for r in rows_per_config:
        out.append(g[k : k + len(r)])
        k += len(r)
    return np.asarray([x.max() if x.size else 0.0 for x in out]), out


def _swap_rows(state: ActiveSet, rows, threshold: float) -> np.ndarray:
    """Candidate rows as a float (m, n) array, checked with the swap threshold (> 1)."""
    if threshold <= 1.0:
        raise ActiveSetError(f"swap threshold must be > 1 (volume must grow), got {threshold}")
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2 or rows.shape[1] != state.n:
        raise ActiveSetError(f"rows must have shape (m, {state.n}), got {rows.shape}")
    if not np.all(np.isfinite(rows)):
        raise ActiveSetError("non-finite selection rows (NaN/inf in the potential's derivatives)")
    return rows


@partial(jax.jit, static_argnames=("keep_swapped_out",))
def _swap_loop(A, inv, C, rows, owner, cand_owner, threshold, max_swaps, keep_swapped_out=True):
    """Greedy MaxVol swaps on device; returns (A, inv, C, owner, n_swaps, rows, cand_owner) — the last
    two: the candidate pool after the swaps (displaced active rows in the slots of those that entered).

    Each swap takes the globally largest |C_ij| (first in row-major order on ties, as ``argmax``): the row
    ``i`` with the largest row maximum (``row_max``, carried and recomputed in the same pass as the rank-one
    update of C), then its largest column — two small argmaxes instead of one over all of C."""

    def cond(s):
        row_max, k = s[-2], s[-1]
        return (jnp.max(row_max) > threshold) & (k < max_swaps)

    def body(s):
        A, inv, C, owner, rows, cand_owner, _, k = s
        i = jnp.argmax(s[-2])
        j = jnp.argmax(jnp.abs(C[i]))
        cij = C[i, j]
        ej = jax.nn.one_hot(j, C.shape[1], dtype=C.dtype)
        u = C[i] - ej  # (b_i − a_j)ᵀ A⁻¹
        inv = inv - jnp.outer(inv[:, j], u) / cij
        C = C - jnp.outer(C[:, j], u) / cij
        old_row, old_owner = A[j], owner[j]
        A = A.at[j].set(rows[i])
        owner = owner.at[j].set(cand_owner[i])
        if keep_swapped_out:  # the displaced row becomes candidate i: C_i' = e_j − u / C_ij
            C = C.at[i].set(ej - u / cij)
            rows = rows.at[i].set(old_row)
            cand_owner = cand_owner.at[i].set(old_owner)
        return A, inv, C, owner, rows, cand_owner, jnp.max(jnp.abs(C), axis=1), k + 1

    A, inv, C, owner, rows, cand_owner, _, k = jax.lax.while_loop(
        cond, body, (A, inv, C, owner, rows, cand_owner, jnp.max(jnp.abs(C), axis=1), jnp.asarray(0))
    )
    return A, inv, C, owner, k, rows, cand_owner


def maxvol_swaps(
    state: ActiveSet,
    rows,
    row_owner,
    threshold: float = 1.0000001,
    max_swaps: int | None = None,
    keep_swapped_out: bool = True,
) -> int:
    """Swap rows of ``rows`` (m, n) into ``state`` (in place) while the largest
    ``|C_ij|`` exceeds ``threshold`` (> 1); return the number of swaps.

    ``row_owner`` (m, 2) int: (configuration index, equation index) of each
    candidate row, stored in ``state.owner`` when it enters.
    ``keep_swapped_out=True`` (default; classic MaxVol on the union of the
    active and candidate rows, which reproduces MLIP's states exactly, init
    rows included) lets a displaced active row compete again as a candidate;
    ``False`` drops it.
    """
    rows = _swap_rows(state, rows, threshold)
    if len(rows) == 0:
        return 0
    max_swaps = 50 * (state.n + len(rows)) if max_swaps is None else int(max_swaps)
    inv = jnp.asarray(state.inv)
    C = jnp.asarray(rows) @ inv
    A, inv, C, owner, k, _, _ = _swap_loop(
        jnp.asarray(state.A), inv, C, jnp.asarray(rows), jnp.asarray(state.owner),
        jnp.asarray(row_owner, dtype=jnp.int64), float(threshold), int(max_swaps),
        keep_swapped_out=bool(keep_swapped_out),
    )
    state.A = np.array(A)
    state.inv = np.array(inv)
    state.owner = np.array(owner)
    state.check()
    return int(k)


def maxvol_swaps_blocked(
    state: ActiveSet,
    rows,
    row_owner,
    threshold: float = 1.0000001,
    max_swaps: int | None = None,
    block: int | None = None,
) -> int:
    """:func:`maxvol_swaps` for many candidate rows (nbh mode: one per atom of the training set):
    the same stopping rule — every candidate's ``|C_ij|`` ≤ ``threshold`` afterwards, so the
    result is a MaxVol local optimum on the union of active and candidate rows — but the swaps
    run on the ``block`` candidates with the largest ``max_j |C_ij|`` (default max(2n, 512)),
    and C of all candidates is recomputed (one (m, n) × (n, n) product) only between blocks.

    Each swap then costs O(block·n) instead of O(m·n). The swap order differs from the
    classic loop's global-argmax order, so the active set may be a different local optimum
    (MLIP's exact states need :func:`maxvol_swaps`). Returns the number of swaps.
    """
    rows = _swap_rows(state, rows, threshold).copy()  # its blocks are rewritten in place
    owner = np.array(row_owner, dtype=np.int64).reshape(-1, 2)
    max_swaps = 50 * (state.n + len(rows)) if max_swaps is None else int(max_swaps)
    size = min(len(rows), int(block) if block else max(2 * state.n, 512))
    total = 0
    while len(rows) and total < max_swaps:
        C = rows @ state.inv
        top = np.abs(C).max(axis=1)
        if top.max() <= threshold:
            break
        sub = np.argpartition(-top, size - 1)[:size] if size < len(rows) else np.arange(len(rows))
        A, inv, _, own, k, r_sub, o_sub = _swap_loop(
            jnp.asarray(state.A), jnp.asarray(state.inv), jnp.asarray(C[sub]), jnp.asarray(rows[sub]),
            jnp.asarray(state.owner), jnp.asarray(owner[sub]), float(threshold), int(max_swaps - total),
            keep_swapped_out=True,
        )
        state.A, state.inv, state.owner = np.array(A), np.array(inv), np.array(own)
        rows[sub], owner[sub] = np.asarray(r_sub), np.asarray(o_sub)
        total += int(k)
        state.check()
    return total


def pivoted_start(rows: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` linearly independent rows chosen by QR with
    column pivoting of ``rowsᵀ`` (a good MaxVol starting point, Goreinov–
    Tyrtyshnikov): the greedy max-volume choice, row by row."""
    rows = np.asarray(rows, dtype=float)
    if len(rows) == 0:
        return np.zeros(0, dtype=int)
    _, r, piv = scipy.linalg.qr(rows.T, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    keep = d > d[0] * 1e-12 if d.size and d[0] > 0 else np.zeros(0, bool)
    return piv[: min(n, int(keep.sum()))]


def select(
    state: ActiveSet,
    rows_per_config,
    threshold_select: float = 1.1,
    threshold_swap: float = 1.0000001,
    config_offset: int = 0,
    max_swaps: int | None = None,
    pivoted: bool = False,
    method: str = "classic",
) -> dict:
    """D-optimal selection of configurations into ``state`` (in place).

    ``rows_per_config``: list of (m_k, n) row blocks (one row per
    configuration in cfg mode, one per atom in nbh mode); configuration k gets
    the index ``config_offset + k`` in ``state.owner``. If the largest grade
    exceeds ``threshold_select``, rows are swapped in while the largest
    ``|C_ij|`` exceeds ``threshold_swap`` (MLIP's rule). ``pivoted=True``
    first places a QR-pivoted set of independent rows into the slots that
    still hold ``init·I`` (faster convergence on a fresh set; the final set
    is still a MaxVol local optimum). ``method``: ``"classic"`` (global-argmax
    swaps, MLIP's states) or ``"blocked"`` (:func:`maxvol_swaps_blocked`: the
    same criterion, much faster on tens of thousands of rows). Returns ``{'grades': per-config grades
    before selection, 'selected': sorted config indices (local) now owning
    active rows, 'swaps': int}``.
    """
    if method not in ("classic", "blocked"):
        raise ActiveSetError(f"unknown MaxVol method {method!r} (use classic or blocked)")
    if not rows_per_config:
        return {"grades": np.zeros(0), "selected": [], "swaps": 0}
    g, _ = grades(state, rows_per_config)
    rows = np.concatenate(rows_per_config, axis=0)
    owner = np.concatenate(
        [np.stack([np.full(len(r), config_offset + k), np.arange(len(r))], axis=1) for k, r in enumerate(rows_per_config)]
    ).astype(np.int64)
    swaps = 0
    if g.size and g.max() > threshold_select:
        if pivoted and state.n_selected == 0:
            free = np.flatnonzero(state.owner[:, 0] < 0)
            piv = pivoted_start(rows, len(free))
            sub = rows[piv]
            # place into the free slots via the ordinary swap rule on the pivoted subset
            swaps += maxvol_swaps(state, sub, owner[piv], threshold_swap, max_swaps)
        if method == "blocked":
            swaps += maxvol_swaps_blocked(state, rows, owner, threshold_swap, max_swaps)
        else:
            swaps += maxvol_swaps(state, rows, owner, threshold_swap, max_swaps)
    sel = sorted({int(o) - config_offset for o in state.owner[:, 0] if config_offset <= o < config_offset + len(rows_per_config)})
    return {"grades": g, "selected": sel, "swaps": swaps}
