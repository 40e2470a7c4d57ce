"""Rows of the D-optimality (MaxVol) selection matrix.

The MTP is linearised in *all* its parameters θ, in MLIP's order
(``docs/spec/mtp.md`` §4.5): radial coefficients c[a, b, μ, β] flattened in
file order (a, b, μ, β), then the C species coefficients, then the S moment
coefficients; ``n_params = C²·K·N_Q + C + S``.

* neighbourhood rows: ``b_i = ∂V_i/∂θ`` (one per atom, unscaled);
* configuration rows: ``b = ∂E/∂θ · w / N^{p/2}`` (``E = Σ_i V_i``; MLIP-2
  energy rows and MLIP-3 ``weight_scaling = 2`` give ``/N``).

``V_i = ξ[z_i] + Σ_α θ_α B_α(i)`` is linear in the species and moment
coefficients (their derivatives are the one-hot species vector and the basis
values ``B(i)``). Only the radial part needs a derivative through the moments;
it is computed exactly and cheaply from one reverse pass ``∂V_i/∂M_k(i)``
(separable per atom) and the chain rule
``∂V_i/∂c[a,b,μ,β] = δ(z_i,a) Σ_{k: μ_k=μ} ∂V_i/∂M_k · Σ_{j: z_j=b} Q_β(r_ij)·m_k(r̂_ij)``,
so the cost is about one extra forward pass, with no Jacobian over C²·K·N_Q
tangent directions. Everything here is jitted over the flat padded batches of
:mod:`mtpjax.potential.evaluate`.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.potential.evaluate import DEFAULT_MIN_DISTANCE, prepare_batches
from mtpjax.potential.angular import basic_selector, monomials
from mtpjax.potential.model import MTP
from mtpjax.potential.program import contract

__all__ = [
    "site_rows",
    "site_rows_batch",
    "config_rows_batch",
    "selection_rows",
]


def site_rows(model: MTP, rvec, mask, species_i, species_j):
    """Neighbourhood rows ``∂V_i/∂θ`` (N, n_params) and site energies V (N,).

    rvec (N, M, 3) Å pair vectors, mask (N, M) bool, species_i (N,) and
    species_j (N, M) int species indices (as in
    :meth:`MTP.site_energies_from_pairs`). Padded atoms give rows that are
    only as meaningful as their (masked) neighbourhoods; mask them afterwards.
    """
    prog = model.program
    dtype = model.moment_coeffs.dtype
    n = rvec.shape[0]
    c, _, k, nq = model.radial_coeffs.shape
    rvec = rvec.astype(dtype)
    r2 = jnp.sum(rvec * rvec, axis=-1)
    rc = model.max_dist
    mask = mask & (r2 > 0) & (r2 < rc * rc)
    safe = jnp.where(mask[..., None], rvec, jnp.asarray([1.0, 0.0, 0.0], dtype))
    r = jnp.sqrt(jnp.sum(safe * safe, axis=-1))
    u = safe / r[..., None]
    q = model.radial_basis(r) * mask[..., None]  # (N, M, NQ)
    onehot_j = jax.nn.one_hot(species_j, c, dtype=dtype) * mask[..., None]  # (N, M, C)
    onehot_i = jax.nn.one_hot(species_i, c, dtype=dtype)  # (N, C)
    # radial functions of every pair with its own (z_i, z_j) coefficients
    coef = model.radial_coeffs[species_i]  # (N, C, K, NQ)
    f = jnp.einsum("nmb,nmq,nbkq->nmk", onehot_j, q, coef)  # (N, M, K)
    mono = monomials(prog, u)  # (N, M, P)
    sel = basic_selector(prog, dtype)  # (n_basic, K·P)
    moments = jnp.einsum("nmk,nmp->kpn", f, mono).reshape(-1, n)  # (K·P, N)
    basic = sel @ moments  # (n_basic, N)

    def energy_sum(bm):
        return jnp.sum(model.moment_coeffs @ contract(model.program, bm))

    basis = contract(model.program, basic)  # (S, N)
    g_basic = jax.grad(energy_sum)(basic)  # (n_basic, N): ∂V_i/∂M_k(i), separable per atom
    h = (sel.T @ g_basic).reshape(k, -1, n)  # (K, P, N)
    w = jnp.einsum("kpn,nmp->nmk", h, mono)  # (N, M, K)
    rad = jnp.einsum("nmk,nmb,nmq->nbkq", w, onehot_j, q)  # (N, C_b, K, NQ)
    rad_rows = onehot_i[:, :, None, None, None] * rad[:, None]  # (N, C_a, C_b, K, NQ)
    rows = jnp.concatenate([rad_rows.reshape(n, -1), onehot_i, basis.T], axis=1)
    site = model.species_coeffs[species_i] + model.moment_coeffs @ basis
    return rows, site


def _batch_pairs(positions, cells, config_of_atom, nbrs_idx, nbrs_shifts):
    n = positions.shape[0]
    valid = nbrs_idx < n
    j = jnp.where(valid, nbrs_idx, 0)
    cell_i = cells[config_of_atom]
    rvec = positions[j] + jnp.einsum("nms,nsc->nmc", nbrs_shifts.astype(positions.dtype), cell_i)
    rvec = jnp.where(valid[..., None], rvec - positions[:, None, :], 0.0)
    return rvec, valid, j


@jax.jit
def site_rows_batch(model: MTP, positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts, atom_mask):
    """Neighbourhood rows (Nt, n_params) of a flat padded batch (zero for padding).

    Arguments as :func:`mtpjax.potential.model.efs_batch`.
    """
    rvec, valid, j = _batch_pairs(positions, cells, config_of_atom, nbrs_idx, nbrs_shifts)
    rows, _ = site_rows(model, rvec, valid, species_idx, species_idx[j])
    return jnp.where(atom_mask[:, None], rows, 0.0)


@partial(jax.jit, static_argnames=("weight_scaling",))
def config_rows_batch(
    model: MTP, positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts, atom_mask, weight_scaling=2.0
):
    """Configuration rows ``∂E/∂θ / N^{p/2}`` (B, n_params), p = ``weight_scaling``.

    N is the atom count of each configuration; empty (padding) slots give 0.
    """
    rows = site_rows_batch(model, positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts, atom_mask)
    nb = cells.shape[0]
    de = jax.ops.segment_sum(rows, config_of_atom, num_segments=nb)
    natoms = jax.ops.segment_sum(atom_mask.astype(rows.dtype), config_of_atom, num_segments=nb)
    scale = jnp.where(natoms > 0, jnp.maximum(natoms, 1.0) ** (-0.5 * weight_scaling), 0.0)
    return de * scale[:, None]


def selection_rows(
    model: MTP,
    configs,
    mode: str = "cfg",
    weight_scaling: float = 2.0,
    min_distance: float | None = DEFAULT_MIN_DISTANCE,
    source: str | None = None,
    atom_budget: int = 2048,
) -> list[np.ndarray]:
    """Selection-matrix rows of each configuration (host numpy).

    ``mode='cfg'``: one row (1, n_params) per configuration (energy rows / N^{p/2});
    ``mode='nbh'``: one row per atom (N, n_params). Returns a list aligned with
    ``configs``.
    """
    if mode not in ("cfg", "nbh"):
        raise ValueError(f"mode must be 'cfg' or 'nbh', got {mode!r}")
    configs = list(configs)
    out: list = [None] * len(configs)
    for batch in prepare_batches(model, configs, min_distance, source, atom_budget):
        args = batch.device_args()
        if mode == "cfg":
            r = np.asarray(config_rows_batch(model, *args, weight_scaling=float(weight_scaling)))
            for b, k in enumerate(batch.members):
                out[k] = r[b : b + 1]
        else:
            r = np.asarray(site_rows_batch(model, *args))
            for k, o, n in zip(batch.members, batch.offsets, batch.sizes):
                out[k] = r[o : o + n]
    return out
