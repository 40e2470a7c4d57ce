"""Fixed-geometry EFS kernel for training.

During a fit the atoms never move, so everything that depends only on the
geometry is computed once: for every pair (i, j) inside the cutoff (a compact,
padded list, no (N, M) padding) the distance r (Å), the unit vector û, the
unscaled Chebyshev radial basis T_β(ξ)(R − r)² and its r-derivative. An
evaluation is then an explicit forward pass (radial functions → basic moments
→ contraction program → site energies) followed by an explicit,
hand-written chain rule for the pair gradients ∂E/∂r_ij (from which forces
and PlusStress follow), so that the gradient of the loss with respect to the
coefficients needs only *first*-order reverse mode. Same results as
:func:`mtpjax.potential.model.efs_batch` (checked in the tests) at a fraction
of the cost.

Monomials x̂^a ŷ^b ẑ^c of degree ν and their gradients with respect to the
pair vector (∂mono/∂û − ν·mono·û)/r are computed on the fly (elementwise).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.potential.evaluate import Batch, bucket
from mtpjax.potential.model import MTP
from mtpjax.potential.angular import monomials_and_gradients
from mtpjax.potential.program import contract
from mtpjax.potential.radial import radial_basis_and_derivative


@dataclass
class PairBatch:
    """Geometry of one batch as a compact pair list (numpy; P pairs padded).

    pair_i, pair_j (P,) int atom indices (padding: 0 with zero basis), pair_type
    (P,) = C·z_i + z_j, pair_config (P,) configuration slot, r (P,) Å, u (P, 3)
    unit vectors, rvec (P, 3) Å, q (P, N_Q) unscaled basis T_β(ξ)(R−r)², dq
    (P, N_Q) its derivative in r (1/Å·Å²), species (Nt,), config_of_atom (Nt,),
    atom_mask (Nt,), n_configs (B slots).
    """

    pair_i: np.ndarray
    pair_j: np.ndarray
    pair_type: np.ndarray
    pair_config: np.ndarray
    r: np.ndarray
    u: np.ndarray
    rvec: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    species: np.ndarray
    config_of_atom: np.ndarray
    atom_mask: np.ndarray
    n_configs: int

    def device_args(self):
        return tuple(
            jnp.asarray(getattr(self, k))
            for k in ("pair_i", "pair_j", "pair_type", "pair_config", "r", "u", "rvec", "q", "dq",
                      "species", "config_of_atom", "atom_mask")
        )


def pair_batch(model: MTP, batch: Batch, pair_pad: int | None = None) -> PairBatch:
    """Compact pair list of a padded :class:`Batch` (host side, once per data set)."""
    n_pad = batch.positions.shape[0]
    idx = batch.idx
    valid = idx < n_pad
    ii, mm = np.nonzero(valid)
    jj = idx[ii, mm]
    cell = batch.cells[batch.config_of_atom[ii]]
    rvec = batch.positions[jj] + np.einsum("ps,psc->pc", batch.shifts[ii, mm].astype(float), cell) - batch.positions[ii]
    r = np.sqrt((rvec**2).sum(-1))
    keep = (r > 0) & (r < model.max_dist)
    ii, jj, rvec, r = ii[keep], jj[keep], rvec[keep], r[keep]
    p = len(r)
    pp = pair_pad or bucket(max(p, 1), base=64)
    c = model.n_species
    q, dq = radial_basis_and_derivative(r, model.min_dist, model.max_dist, model.radial_basis_size)

    def pad(a, fill=0):
        out = np.full((pp,) + a.shape[1:], fill, dtype=a.dtype)
        out[:p] = a
        return out

    u_pad = np.tile([1.0, 0.0, 0.0], (pp, 1))
    u_pad[:p] = rvec / r[:, None]
    sp = batch.species
    return PairBatch(
        pair_i=pad(ii.astype(np.int32)),
        pair_j=pad(jj.astype(np.int32)),
        pair_type=pad((sp[ii] * c + sp[jj]).astype(np.int32)),
        pair_config=pad(batch.config_of_atom[ii].astype(np.int32)),
        r=pad(r, 1.0),
        u=u_pad,
        rvec=pad(rvec),
        q=pad(q),
        dq=pad(dq),
        species=batch.species.astype(np.int32),
        config_of_atom=batch.config_of_atom.astype(np.int32),
        atom_mask=batch.atom_mask.copy(),
        n_configs=int(batch.cells.shape[0]),
    )


def efs_pairs(model: MTP, pair_i, pair_j, pair_type, pair_config, r, u, rvec, q, dq, species, config_of_atom,
              atom_mask, n_configs: int):
    """Energies (B,), forces (Nt, 3), PlusStress (B, 6) and site energies (Nt,)
    of a :class:`PairBatch` (same conventions as ``efs_batch``). Pure and
    differentiable in the model's coefficients (first-order only)."""
    prog = model.program
    dtype = model.moment_coeffs.dtype
    nt = species.shape[0]
    c = model.n_species
    k = model.radial_coeffs.shape[2]
    nq = model.radial_coeffs.shape[3]
    s = model.scaling
    w = model.radial_coeffs.reshape(c * c, k, nq)[pair_type]  # (P, K, NQ)
    f = s * jnp.einsum("pkb,pb->pk", w, q)
    fd = s * jnp.einsum("pkb,pb->pk", w, dq)
    mono, dmono = monomials_and_gradients(prog, u, r)
    mu, pm = prog.basic_mu, prog.basic_mono
    fm = f[:, mu] * mono[:, pm]  # (P, n_basic)
    basic = jax.ops.segment_sum(fm, pair_i, nt).T  # (n_basic, Nt)

    def site(basic_):
        bf = contract(prog, basic_)
        return model.species_coeffs[species] + model.moment_coeffs @ bf

    v, vjp = jax.vjp(site, basic)
    v = jnp.where(atom_mask, v, 0.0)
    (dv,) = vjp(atom_mask.astype(dtype))  # ∂E/∂M (n_basic, Nt)
    a = dv.T[pair_i]  # (P, n_basic)
    radial_part = jnp.sum(a * fd[:, mu] * mono[:, pm], axis=1)  # (P,)
    angular_part = jnp.einsum("pk,pkc->pc", a * f[:, mu], dmono[:, pm, :])  # (P, 3)
    g = radial_part[:, None] * u + angular_part  # ∂E/∂r_ij (P, 3)
    forces = jax.ops.segment_sum(g, pair_i, nt) - jax.ops.segment_sum(g, pair_j, nt)
    wv = jax.ops.segment_sum(g[:, :, None] * rvec[:, None, :], pair_config, n_configs)  # (B, 3, 3)
    plus_stress = -jnp.stack([wv[:, 0, 0], wv[:, 1, 1], wv[:, 2, 2], wv[:, 1, 2], wv[:, 0, 2], wv[:, 0, 1]], -1)
    energies = jax.ops.segment_sum(v, config_of_atom, n_configs)
    return energies, jnp.where(atom_mask[:, None], forces, 0.0), plus_stress, v
