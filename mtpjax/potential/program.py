"""The moment contraction program compiled into layers for vectorised evaluation.

MLIP's ``alpha_index_times`` rows ``{i, j, m, k}`` (``M_k += m·M_i·M_j``) are
grouped by *depth* (a slot's depth is one more than the deepest of its
sources), so that every layer is evaluated by one gather–multiply–segment-sum
over all atoms at once; slots are renumbered so that each layer appends a
contiguous block (no scatter into a growing array). See ``docs/spec/mtp.md``
§4 for the meaning of the tables.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import jax
import jax.numpy as jnp


@dataclass(frozen=True, eq=False)
class Layer:
    """One depth of the contraction program (new slot numbering).

    ``src_i``, ``src_j`` (R,) int sources, ``mult`` (R,) float multiplicities,
    ``seg`` (R,) int target index local to the layer (sorted), ``n_targets``.
    """

    src_i: np.ndarray
    src_j: np.ndarray
    mult: np.ndarray
    seg: np.ndarray
    n_targets: int


@dataclass(frozen=True, eq=False)
class ContractionProgram:
    """Static (hashable) description of a moment-tensor basis.

    Attributes
    ----------
    basic_mu : (n_basic,) radial function index μ of each basic moment.
    basic_mono : (n_basic,) index into ``monomials`` of each basic moment.
    monomials : (P, 3) distinct exponent triples (a, b, c).
    max_power : largest exponent occurring (ν_max).
    layers : tuple of :class:`Layer`.
    mapping : (S,) slot (new numbering) of each scalar basis function.
    radial_funcs_count : K.
    The original tables are kept in ``alpha_index_basic`` / ``alpha_index_times`` /
    ``alpha_moment_mapping`` / ``alpha_moments_count``.
    """

    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    alpha_moments_count: int
    radial_funcs_count: int
    basic_mu: np.ndarray
    basic_mono: np.ndarray
    monomials: np.ndarray
    max_power: int
    layers: tuple
    mapping: np.ndarray
    digest: str

    def __hash__(self):
        return hash(self.digest)

    def __eq__(self, other):
        return isinstance(other, ContractionProgram) and other.digest == self.digest

    @property
    def n_basic(self) -> int:
        return int(len(self.alpha_index_basic))

    @property
    def n_basis(self) -> int:
        return int(len(self.alpha_moment_mapping))

    @property
    def level(self) -> int:
        """Largest level of a basis function: lev(M_{μ,ν}) = 2 + 4μ + ν summed over factors."""
        lev = np.zeros(self.alpha_moments_count, dtype=np.int64)
        b = self.alpha_index_basic
        lev[: len(b)] = 2 + 4 * b[:, 0] + b[:, 1] + b[:, 2] + b[:, 3]
        for i, j, _, k in self.alpha_index_times:
            lev[k] = lev[i] + lev[j]
        return int(lev[self.alpha_moment_mapping].max()) if len(self.alpha_moment_mapping) else 0


def compile_program(
    alpha_index_basic,
    alpha_index_times,
    alpha_moment_mapping,
    alpha_moments_count: int,
    radial_funcs_count: int,
) -> ContractionProgram:
    """Compile MLIP's basis tables into a layered :class:`ContractionProgram`."""
    basic = np.asarray(alpha_index_basic, dtype=np.int64).reshape(-1, 4)
    times = np.asarray(alpha_index_times, dtype=np.int64).reshape(-1, 4)
    mapping = np.asarray(alpha_moment_mapping, dtype=np.int64).reshape(-1)
    nb = len(basic)
    n_slots = int(alpha_moments_count)
    if len(times) and (times[:, 3] < nb).any():
        raise ValueError("alpha_index_times writes into a basic moment slot")
    depth = np.full(n_slots, -1, dtype=np.int64)
    depth[:nb] = 0
    for i, j, _, k in times:
        if depth[i] < 0 or depth[j] < 0:
            raise ValueError(f"alpha_index_times uses slot {max(i, j)} before it is computed")
        depth[k] = max(depth[k], 1 + max(depth[i], depth[j]))
    # a target must be complete before it is used: all rows into k come before rows reading k
    # (guaranteed by MLIP's non-decreasing targets > sources; checked above via depth order)
    monos, basic_mono = np.unique(basic[:, 1:], axis=0, return_inverse=True)
    new_index = np.full(n_slots, -1, dtype=np.int64)
    new_index[:nb] = np.arange(nb)
    next_slot = nb
    layers = []
    max_depth = int(depth.max()) if n_slots else 0
    for d in range(1, max_depth + 1):
        targets = np.flatnonzero(depth == d)
        if not len(targets):
            continue
        new_index[targets] = next_slot + np.arange(len(targets))
        local = {int(t): n for n, t in enumerate(targets)}
        rows = times[np.isin(times[:, 3], targets)]
        order = np.argsort([local[int(k)] for k in rows[:, 3]], kind="stable")
        rows = rows[order]
        layers.append(
            Layer(
                src_i=new_index[rows[:, 0]],
                src_j=new_index[rows[:, 1]],
                mult=rows[:, 2].astype(np.float64),
                seg=np.asarray([local[int(k)] for k in rows[:, 3]], dtype=np.int64),
                n_targets=len(targets),
            )
        )
        next_slot += len(targets)
    unused = new_index < 0
    if unused[mapping].any():
        # a basis function mapped to a slot nobody writes is identically zero
        zslot = next_slot
        new_index[unused] = zslot
    h = hashlib.sha1()
    for a in (basic, times, mapping, np.asarray([n_slots, radial_funcs_count])):
        h.update(np.ascontiguousarray(a).tobytes())
    return ContractionProgram(
        alpha_index_basic=basic,
        alpha_index_times=times,
        alpha_moment_mapping=mapping,
        alpha_moments_count=n_slots,
        radial_funcs_count=int(radial_funcs_count),
        basic_mu=basic[:, 0].copy(),
        basic_mono=np.asarray(basic_mono).reshape(-1),
        monomials=monos,
        max_power=int(monos.max()) if len(monos) else 0,
        layers=tuple(layers),
        mapping=new_index[mapping],
        digest=h.hexdigest(),
    )


def contract(prog: ContractionProgram, basic):
    """Run the contraction program: scalar basis functions B (S, N) from the
    basic moments ``basic`` (n_basic, N) (JAX, differentiable, jit-friendly)."""
    dtype = basic.dtype
    vals = basic
    for layer in prog.layers:
        contrib = jnp.asarray(layer.mult, dtype)[:, None] * vals[layer.src_i] * vals[layer.src_j]
        new = jax.ops.segment_sum(contrib, layer.seg, layer.n_targets, indices_are_sorted=True)
        vals = jnp.concatenate([vals, new], axis=0)
    if prog.mapping.size and int(prog.mapping.max()) >= vals.shape[0]:
        vals = jnp.concatenate([vals, jnp.zeros((1, vals.shape[1]), dtype)], axis=0)
    return vals[prog.mapping]
