"""Exact Jacobian of energies, forces and PlusStress with respect to all MTP
coefficients, from hand-derived, structure-aware formulas (no forward-mode
sweep over the parameters).

The basic moments are *linear* in the radial coefficients c[a, b, μ, β]:

    M_k(i) = Σ_{b,β} c[z_i, b, μ_k, β] G[i, k, b, β],
    G[i, k, b, β] = Σ_{j: z_j = b} s·T_β(ξ_ij)(R − r_ij)² · û_ij^{(k)}

(û^{(k)} the monomial of moment k), and the site energy
V_i = ξ_{z_i} + Σ_α m_α B_α(M(i)) is a polynomial in M(i). With
A(i) = ∂V_i/∂M (n_basic,), H(i) = ∂²V_i/∂M² (n_basic, n_basic) and
∂B/∂M (S, n_basic) per atom, the pair gradients g_ij = ∂E/∂r_ij — from
which forces and PlusStress follow linearly — have the derivatives

* moment coefficients: ∂g_ij/∂m_α = Σ_k ∂B_α/∂M_k(i) · ∂M_k(i)/∂r_ij;
* radial coefficients of row z_i: through A(i) (H(i) times ∂M(i)/∂c, i.e.
  G) plus the direct term A(i)·∂(∂M(i)/∂r_ij)/∂c, which is nonzero only in
  the column block b = z_j;

so the cost per pair is O(n_basic · C·K·N_Q) instead of one forward-mode
pass of the whole model per parameter. Used by the Levenberg–Marquardt
trainer (:mod:`mtpjax.train.lm`); checked against ``jax.jacfwd`` of
:func:`mtpjax.potential.model.efs_batch` in the tests.

Parameter order (columns): MLIP's (docs/spec/mtp.md §4.5) — radial coefficients
in file order (a, b, μ, β), then the C species coefficients, then the S
moment coefficients.

Geometry arguments are those of ``efs_batch`` (a padded :class:`Batch`).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.potential.model import MTP
from mtpjax.potential.angular import monomials_and_gradients
from mtpjax.potential.program import contract
from mtpjax.potential.radial import radial_basis_and_derivative

from mtpjax.units import VOIGT  # xx yy zz yz xz xy (MLIP and ASE order)


class _Pairs(NamedTuple):
    """Per-pair data of a padded batch, (N, M, ...), zero on masked pairs."""

    j: jax.Array  # (N, M) index of the second atom (0 where masked)
    rvec: jax.Array  # (N, M, 3) r_ij = r_j − r_i (Å)
    r: jax.Array  # (N, M) |r_ij| (Å; 1 where masked)
    u: jax.Array  # (N, M, 3) unit vector û_ij
    q: jax.Array  # (N, M, NQ) radial basis s·T_β(ξ_ij)(R − r_ij)²
    dq: jax.Array  # (N, M, NQ) its r-derivative
    zj: jax.Array  # (N, M) species of j
    ozj: jax.Array  # (N, M, C) one-hot species of j


def _pair_geometry(model: MTP, positions, cells, config_of_atom, nbrs_idx, nbrs_shifts):
    """Pairs within the cutoff: mask, index of j, r_ij (Å), |r_ij| and û_ij, each (N, M, ...)."""
    n = positions.shape[0]
    valid = nbrs_idx < n
    j = jnp.where(valid, nbrs_idx, 0)
    cell_i = cells[config_of_atom]
    rvec = positions[j] + jnp.einsum("nms,nsc->nmc", nbrs_shifts.astype(positions.dtype), cell_i)
    rvec = jnp.where(valid[..., None], rvec - positions[:, None, :], 0.0)
    r2 = jnp.sum(rvec * rvec, -1)
    cut = model.max_dist
    mask = valid & (r2 > 0) & (r2 < cut * cut)
    safe = jnp.where(mask[..., None], rvec, jnp.asarray([1.0, 0.0, 0.0], rvec.dtype))
    r = jnp.sqrt(jnp.sum(safe * safe, -1))
    return mask, j, jnp.where(mask[..., None], rvec, 0.0), r, safe / r[..., None]


def _pairs(model: MTP, positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts) -> _Pairs:
    """Pair geometry, the radial basis with its derivative, and the species of j (masked)."""
    dtype = model.moment_coeffs.dtype
    c, _, _, nq = model.radial_coeffs.shape
    mask, jidx, rvec, r, u = _pair_geometry(model, positions, cells, config_of_atom, nbrs_idx, nbrs_shifts)
    maskf = mask.astype(dtype)
    q, dq = radial_basis_and_derivative(r, model.min_dist, model.max_dist, nq, model.scaling)
    q = q * maskf[..., None]
    dq = dq * maskf[..., None]
    zj = species_idx[jidx]
    ozj = jax.nn.one_hot(zj, c, dtype=dtype) * maskf[..., None]  # (N, M, C)
    return _Pairs(jidx, rvec, r, u, q, dq, zj, ozj)


def _basic_moments(model: MTP, zi, pr: _Pairs):
    """Basic moments and their derivatives with respect to r_ij and to c.

    Returns M(i) ``basic`` (N, nb); the monomials û^{(k)} ``mono`` (N, M, nb) and
    their gradients ``dmono`` (N, M, nb, 3); ``dmdr`` = ∂M_k(i)/∂r_ij (N, M, nb, 3);
    ``gtab`` = G[i, k, b, β] = ∂M_k(i)/∂c[z_i, b, μ_k, β] (N, nb, C, NQ).
    """
    prog = model.program
    c, _, k, nq = model.radial_coeffs.shape
    mu = np.asarray(prog.basic_mu)
    pm = np.asarray(prog.basic_mono)
    wc = model.radial_coeffs.reshape(c * c, k, nq)[zi[:, None] * c + pr.zj]  # (N, M, K, NQ)
    f = jnp.einsum("nmkb,nmb->nmk", wc, pr.q)
    fd = jnp.einsum("nmkb,nmb->nmk", wc, pr.dq)
    mono_all, dmono_all = monomials_and_gradients(prog, pr.u, pr.r)
    mono = mono_all[..., pm]  # (N, M, nb)
    dmono = dmono_all[..., pm, :]  # (N, M, nb, 3)
    fk, fdk = f[..., mu], fd[..., mu]  # (N, M, nb)
    basic = jnp.sum(fk * mono, axis=1)  # (N, nb)
    dmdr = fdk[..., None] * mono[..., None] * pr.u[:, :, None, :] + fk[..., None] * dmono  # (N, M, nb, 3)
    gtab = jnp.einsum("nmb,nmk,nmq->nkbq", pr.ozj, mono, pr.q)  # G (N, nb, C, NQ)
    return basic, mono, dmono, dmdr, gtab


def _basis_functions(model: MTP, basic, zi, amask):
    """The contraction of the basic moments into the basis functions, and the site energies.

    Returns B(M(i)) ``bfun`` (N, S), ∂B/∂M ``bk`` (N, S, nb), A(i) = ∂V_i/∂M ``a_vec``
    (N, nb), H(i) = ∂²V_i/∂M² ``hess`` (N, nb, nb) and V_i ``site`` (N,) (eV);
    padded atoms give zeros (``bfun`` excepted).
    """
    prog = model.program

    def basis_one(x):
        return contract(prog, x[:, None])[:, 0]

    bfun = contract(prog, basic.T).T  # (N, S)
    bk = jax.vmap(jax.jacfwd(basis_one))(basic)  # (N, S, nb)
    m = model.moment_coeffs
    hess = jax.vmap(jax.hessian(lambda x: m @ basis_one(x)))(basic)  # (N, nb, nb)
    a_vec = jnp.einsum("s,nsk->nk", m, bk) * amask[:, None]  # ∂V/∂M (N, nb)
    bk = bk * amask[:, None, None]
    hess = hess * amask[:, None, None]
    site = (model.species_coeffs[zi] + bfun @ m) * amask
    return bfun, bk, a_vec, hess, site


def _forces_of(gp, jidx):
    """Σ_m gp[i, m] − Σ over the pairs whose second atom is i; gp (N, M, 3, ...) → (N, 3, ...)."""
    tail = gp.shape[3:]
    gj = jax.ops.segment_sum(gp.reshape((-1, 3) + tail), jidx.reshape(-1), num_segments=gp.shape[0])
    return jnp.sum(gp, axis=1) - gj


def _stress_atom(gp, rvec):
    """−Σ_m gp ⊗ r per atom, Voigt: (N, M, 3, ...) → (N, 6, ...)."""
    w = jnp.einsum("nma...,nmb->nab...", gp, rvec)
    return -jnp.stack([w[:, a, b] for a, b in VOIGT], axis=1)


def _energy_jacobian(bfun, a_vec, gtab, onehot_mu, ozi, amask, config_of_atom, nb_cfg):
    """∂E/∂θ (B, n): radial A(i)·G in row z_i, species one-hot(z_i), moment Σ_i B(M(i))."""
    n, c = ozi.shape
    cl = c * onehot_mu.shape[1] * gtab.shape[3]  # C·K·NQ, one row a of the radial coefficients
    de_m = jax.ops.segment_sum(bfun * amask[:, None], config_of_atom, nb_cfg)
    de_s = jax.ops.segment_sum(ozi, config_of_atom, nb_cfg)
    # radial coefficients, local block (b, μ, β) of row z_i
    de_local = jnp.einsum("nk,ku,nkbq->nbuq", a_vec, onehot_mu, gtab).reshape(n, cl)
    de_r = jax.ops.segment_sum(jnp.einsum("nc,nz->nzc", de_local, ozi).reshape(n, c * cl), config_of_atom, nb_cfg)
    return jnp.concatenate([de_r, de_s, de_m], axis=1)


def _radial_pair_gradient_jacobian(pr: _Pairs, a_vec, hess, gtab, onehot_mu, mono, dmono, dmdr):
    """∂g_ij/∂c[z_i, (b, μ, β)] (N, M, 3, C·K·NQ): Σ_k dmdr·W through A(i), W = H(i)·G, plus
    the direct term A(i)·∂(∂M(i)/∂r_ij)/∂c, nonzero only for b = z_j."""
    n = a_vec.shape[0]
    cl = gtab.shape[2] * onehot_mu.shape[1] * gtab.shape[3]
    wtab = jnp.einsum("nkl,lu,nlbq->nkbuq", hess, onehot_mu, gtab).reshape(n, -1, cl)  # (N, nb, CL)
    a_mu = a_vec[:, :, None] * onehot_mu[None]  # (N, nb, K)
    am = jnp.einsum("nku,nmk->nmu", a_mu, mono)  # (N, M, K)
    adm = jnp.einsum("nku,nmka->nmua", a_mu, dmono)  # (N, M, K, 3)
    inner = (pr.dq[:, :, None, None, :] * pr.u[:, :, None, :, None] * am[:, :, :, None, None]
             + pr.q[:, :, None, None, :] * adm[..., None])  # (N, M, K, 3, NQ)
    # ∂g_im/∂c[z_i, (b, μ, β)] = Σ_k dmdr[i,m,k]·W[i,k] (through A(i)) + δ(b = z_j)·inner (direct)
    return (jnp.einsum("nmka,nkc->nmac", dmdr, wtab)
            + jnp.einsum("nmb,nmuaq->nmabuq", pr.ozj, inner).reshape(n, -1, 3, cl))  # (N, M, 3, CL)


def _radial_force_stress_jacobian(dg_r, pr: _Pairs, zi, ozi, config_of_atom, nb_cfg):
    """∂F/∂c (N, 3, C·CL) and ∂S/∂c (B, 6, C·CL) from ∂g/∂c of row z_i: +dg_r on i, −dg_r on j."""
    n, _, _, cl = dg_r.shape
    c = ozi.shape[1]
    f_i = jnp.einsum("nac,nz->nazc", jnp.sum(dg_r, axis=1), ozi)  # (N, 3, C, CL): row z_i
    # j-side: −dg_r scattered onto (j, row z_i)
    seg = (pr.j * c + zi[:, None]).reshape(-1)
    f_j = jnp.transpose(jax.ops.segment_sum(dg_r.reshape(-1, 3, cl), seg, num_segments=n * c).reshape(
        n, c, 3, cl), (0, 2, 1, 3))
    df_r = (f_i - f_j).reshape(n, 3, c * cl)
    ds_r = jax.ops.segment_sum(jnp.einsum("nvc,nz->nvzc", _stress_atom(dg_r, pr.rvec), ozi).reshape(n, 6, c * cl),
                               config_of_atom, nb_cfg)
    return df_r, ds_r


def efs_jacobian(model: MTP, positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts, atom_mask):
    """Energies, forces, PlusStress and their parameter Jacobians for one padded batch.

    Returns ``(e (B,), f (Nt, 3), s (B, 6), de (B, n), df (Nt, 3, n), ds (B, 6, n))``
    with n = ``model.n_params`` columns in MLIP order (see module docstring);
    eV, eV/Å and eV per unit of each coefficient. Padded atoms give zeros.
    """
    dtype = model.moment_coeffs.dtype
    n = positions.shape[0]
    nb_cfg = cells.shape[0]
    c, _, k, _ = model.radial_coeffs.shape
    pr = _pairs(model, positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts)
    zi = species_idx
    amask = atom_mask.astype(dtype)
    ozi = jax.nn.one_hot(zi, c, dtype=dtype) * amask[:, None]  # (N, C)
    onehot_mu = jnp.asarray(np.eye(k)[np.asarray(model.program.basic_mu)], dtype)  # (nb, K)

    # forward pass
    basic, mono, dmono, dmdr, gtab = _basic_moments(model, zi, pr)
    bfun, bk, a_vec, hess, site = _basis_functions(model, basic, zi, amask)
    g = jnp.einsum("nk,nmka->nma", a_vec, dmdr)  # ∂E/∂r_ij (N, M, 3)
    forces = _forces_of(g, pr.j) * amask[:, None]
    energies = jax.ops.segment_sum(site, config_of_atom, nb_cfg)
    plus_stress = jax.ops.segment_sum(_stress_atom(g, pr.rvec), config_of_atom, nb_cfg)

    # --- Jacobian: energies (radial, species, moment columns)
    de = _energy_jacobian(bfun, a_vec, gtab, onehot_mu, ozi, amask, config_of_atom, nb_cfg)
    # --- forces and stresses: moment coefficients
    dg_m = jnp.einsum("nsk,nmka->nmas", bk, dmdr)  # (N, M, 3, S)
    df_m = _forces_of(dg_m, pr.j)
    ds_m = jax.ops.segment_sum(_stress_atom(dg_m, pr.rvec), config_of_atom, nb_cfg)
    # --- radial coefficients (species coefficients enter the energy only)
    dg_r = _radial_pair_gradient_jacobian(pr, a_vec, hess, gtab, onehot_mu, mono, dmono, dmdr)
    df_r, ds_r = _radial_force_stress_jacobian(dg_r, pr, zi, ozi, config_of_atom, nb_cfg)

    df = jnp.concatenate([df_r, jnp.zeros((n, 3, c), dtype), df_m], axis=2) * amask[:, None, None]
    ds = jnp.concatenate([ds_r, jnp.zeros((nb_cfg, 6, c), dtype), ds_m], axis=2)
    return energies, forces, plus_stress, de, df, ds
