"""The linear part of the fit: species and moment coefficients by least squares.

Energies, forces and PlusStress are linear in ``θ = (species_coeffs (C,),
moment_coeffs (S,))`` for fixed radial coefficients and ``scaling``:
``E_k = Σ_c n_kc ξ_c + Σ_α θ_α Σ_{i∈k} B_α(i)`` and F, S are the matching
derivatives of the second sum. The design columns of the moment part are
obtained in one jitted call by evaluating :func:`efs_batch` with unit moment
vectors (``vmap``: the basis is computed once, only the reverse pass is
batched). The weighted normal equations of the MLIP loss are accumulated over
batches on the device and solved on the host (MLIP's "linear solve",
docs/spec/mtp.md §7.2). Also here: species energies by regression on the
training energies and MLIP's discrete ``scaling`` search ("Rescale").
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.potential.model import MTP, efs_batch


def _batch_normal_equations(model: MTP, geom, labels):
    """(AᵀWA (p,p), AᵀWy (p,), yᵀWy) of one batch, p = C + S."""
    e_ref, e_w, _, f_ref, f_w, _, s_ref, s_w, _, _ = labels
    positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts, atom_mask = geom
    c = model.n_species
    s = model.n_basis
    nb = cells.shape[0]
    zero_species = jnp.zeros_like(model.species_coeffs)

    def efs_unit(theta):
        m = eqx.tree_at(lambda t: (t.species_coeffs, t.moment_coeffs), model, (zero_species, theta))
        e, f, st, _ = efs_batch(m, *geom)
        return e, f, st

    eye = jnp.eye(s, dtype=model.moment_coeffs.dtype)
    de, df, ds = jax.vmap(efs_unit)(eye)  # (S, B), (S, Nt, 3), (S, B, 6)
    counts = jax.ops.segment_sum(
        jax.nn.one_hot(species_idx, c, dtype=de.dtype) * atom_mask[:, None], config_of_atom, num_segments=nb
    )  # (B, C)
    a_e = jnp.concatenate([counts, de.T], axis=1)  # (B, p)
    a_f = jnp.concatenate([jnp.zeros(df.shape[1:] + (c,), de.dtype), jnp.moveaxis(df, 0, -1)], axis=-1)  # (Nt,3,p)
    a_s = jnp.concatenate([jnp.zeros(ds.shape[1:] + (c,), de.dtype), jnp.moveaxis(ds, 0, -1)], axis=-1)  # (B,6,p)
    ata = (
        jnp.einsum("b,bp,bq->pq", e_w, a_e, a_e)
        + jnp.einsum("n,nap,naq->pq", f_w, a_f, a_f)
        + jnp.einsum("ba,bap,baq->pq", s_w, a_s, a_s)
    )
    aty = (
        jnp.einsum("b,bp,b->p", e_w, a_e, e_ref)
        + jnp.einsum("n,nap,na->p", f_w, a_f, f_ref)
        + jnp.einsum("ba,bap,ba->p", s_w, a_s, s_ref)
    )
    yty = jnp.sum(e_w * e_ref**2) + jnp.sum(f_w[:, None] * f_ref**2) + jnp.sum(s_w * s_ref**2)
    return ata, aty, yty


@eqx.filter_jit
def normal_equations(model: MTP, data):
    """Weighted normal equations of the loss in θ = (species, moment) over all batches."""
    ata = aty = yty = 0.0
    for geom, labels in data:
        a, b, c = _batch_normal_equations(model, geom, labels)
        ata, aty, yty = ata + a, aty + b, yty + c
    return ata, aty, yty


def solve_normal_equations(ata, aty, ridge: float = 1e-12):
    """Solve (AᵀWA + ridge·D) θ = AᵀWy with Jacobi scaling (D = diag); columns
    that never occur (zero diagonal, e.g. a species absent from the data) get 0."""
    ata = np.asarray(ata, dtype=float)
    aty = np.asarray(aty, dtype=float)
    d = np.diag(ata).copy()
    used = d > 0
    theta = np.zeros(len(d))
    if not used.any():
        return theta
    a = ata[np.ix_(used, used)]
    sc = 1.0 / np.sqrt(d[used])
    a = a * sc[:, None] * sc[None, :]
    a[np.diag_indices_from(a)] += ridge
    x, *_ = np.linalg.lstsq(a, aty[used] * sc, rcond=1e-15)
    theta[used] = x * sc
    return theta


def linear_solve(model: MTP, data, ridge: float = 1e-12) -> tuple[MTP, float]:
    """``model`` with species and moment coefficients replaced by the exact
    weighted least-squares solution for its current radial part; also returns
    the data part of the loss at the solution."""
    ata, aty, yty = normal_equations(model, data)
    theta = solve_normal_equations(ata, aty, ridge)
    c = model.n_species
    ata, aty = np.asarray(ata), np.asarray(aty)
    loss = float(theta @ ata @ theta - 2 * theta @ aty + float(yty))
    return eqx.tree_at(lambda m: (m.species_coeffs, m.moment_coeffs), model,
                       (jnp.asarray(theta[:c], model.species_coeffs.dtype),
                        jnp.asarray(theta[c:], model.moment_coeffs.dtype))), loss


def fit_species_energies(model: MTP, configs) -> MTP:
    """Species coefficients ξ by linear regression of the energy labels on the
    species counts (E_k ≈ Σ_c n_kc ξ_c; minimum-norm for collinear counts)."""
    rows, y = [], []
    for c in configs:
        if c.energy is None:
            continue
        idx = model.species_index(c.types)
        rows.append(np.bincount(idx, minlength=model.n_species))
        y.append(c.energy)
    if not rows:
        return model
    xi, *_ = np.linalg.lstsq(np.asarray(rows, float), np.asarray(y, float), rcond=None)
    return eqx.tree_at(lambda m: m.species_coeffs, model, jnp.asarray(xi, model.species_coeffs.dtype))


def coefficient_spread(model: MTP) -> float:
    """MLIP's rescaling criterion ‖θ‖₂ / median|θ| of the moment coefficients."""
    t = np.abs(np.asarray(model.moment_coeffs))
    med = np.median(t)
    return float(np.linalg.norm(t) / med) if med > 0 else np.inf


def rescale(model: MTP, data, factors=(1 / 1.2, 1 / 1.1, 1.0, 1.1, 1.2), max_rounds: int = 20, ridge: float = 1e-12):
    """MLIP's discrete search for ``scaling``: try scaling × factors, linear
    solve for each, keep the one with the smallest :func:`coefficient_spread`;
    repeat until the unchanged value wins. Returns (model, loss)."""
    best, loss = linear_solve(model, data, ridge)
    for _ in range(max_rounds):
        cands = []
        for f in factors:
            m = eqx.tree_at(lambda t: t.scaling, best, best.scaling * f) if f != 1.0 else best
            m, l = (best, loss) if f == 1.0 else linear_solve(m, data, ridge)
            cands.append((coefficient_spread(m), f == 1.0, m, l))
        spread, unchanged, m, l = min(cands, key=lambda t: (t[0], not t[1]))
        if unchanged:
            break
        best, loss = m, l
    return best, loss
