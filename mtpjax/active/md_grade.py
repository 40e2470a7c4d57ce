"""Extrapolation grades of an MD state on device (for the MD engine's hook).

:func:`make_grade_fn` returns a jittable ``grade(positions, cell, nbrs_idx,
nbrs_shifts, species) → γ`` for one periodic system (the whole box is one
configuration, as in MLIP's LAMMPS interface): configuration mode
``γ = max_j |(Σ_i ∂V_i/∂θ / N^{p/2}) A⁻¹|_j``, neighbourhood mode
``γ = max_i max_j |(∂V_i/∂θ A⁻¹)_j|``. :func:`make_hook` adapts it to
:class:`mtpjax.md.simulate.Simulation`'s ``hook = (hook_fn, every)`` with the
break threshold: the run stops at the first checked step with γ > break and
returns the last state checked below it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..potential.model import MTP
from .maxvol import ActiveSet
from .rows import site_rows

__all__ = ["make_grade_fn", "make_hook"]


def _pairs(positions, cell, idx, shifts):
    n = positions.shape[0]
    valid = idx < n
    j = jnp.where(valid, idx, 0)
    r = positions[j] + shifts.astype(positions.dtype) @ cell - positions[:, None, :]
    return jnp.where(valid[..., None], r, 0.0), valid, j


def make_grade_fn(model: MTP, state: ActiveSet, per_atom: bool = False):
    """``grade(positions (N,3) Å, cell (3,3) Å, idx (N,M), shifts (N,M,3), species (N,))``
    → γ () (and, with ``per_atom=True`` in nbh mode, also the (N,) atom grades).
    The active set's A⁻¹ is captured as a device constant."""
    inv = jnp.asarray(state.inv, dtype=model.moment_coeffs.dtype)
    mode = state.mode
    p = float(state.weight_scaling)

    def grade(positions, cell, idx, shifts, species):
        rvec, valid, j = _pairs(positions, cell, idx, shifts)
        rows, _ = site_rows(model, rvec, valid, species, species[j])
        if mode == "cfg":
            n = positions.shape[0]
            b = jnp.sum(rows, axis=0) * n ** (-0.5 * p)
            return jnp.max(jnp.abs(b @ inv))
        g = jnp.max(jnp.abs(rows @ inv), axis=1)
        return (jnp.max(g), g) if per_atom else jnp.max(g)

    return grade


def make_hook(model: MTP, state: ActiveSet, break_threshold: float = 10.0, every: int = 1):
    """``(hook_fn, every)`` for :class:`~mtpjax.md.simulate.Simulation`
    (``hook_fn(md_state, nbrs) → (γ, break_threshold)``)."""
    g = make_grade_fn(model, state)
    thr = float(break_threshold)

    def hook_fn(st, nbrs):
        return g(st.positions, st.cell, nbrs.idx, nbrs.shifts, st.species), jnp.asarray(thr, st.energy.dtype)

    return hook_fn, int(every)


def grade_jit(model: MTP, state: ActiveSet, per_atom: bool = False):
    """Jitted :func:`make_grade_fn` (host convenience)."""
    return jax.jit(make_grade_fn(model, state, per_atom))


def make_efs_grade_fn(model: MTP, state: ActiveSet):
    """Energy, forces, PlusStress **and** the configuration-mode grade from one
    reverse pass (the parameter gradient ∂E/∂θ is accumulated in the same
    backward sweep as the forces, so the grade adds only a few per cent to an
    MD step). ``f(positions, cell, idx, shifts, species) → (E eV, F (N,3) eV/Å,
    plus_stress (6,) eV, γ)``. For an MD engine whose force callback can return
    an auxiliary value; configuration mode only.
    """
    import equinox as eqx

    from ..potential.model import VOIGT

    if state.mode != "cfg":
        raise ValueError("make_efs_grade_fn: configuration mode only (nbh grades need per-atom rows)")
    inv = jnp.asarray(state.inv, dtype=model.moment_coeffs.dtype)
    p = float(state.weight_scaling)

    def f(positions, cell, idx, shifts, species):
        rvec, valid, j = _pairs(positions, cell, idx, shifts)
        params = (model.radial_coeffs, model.species_coeffs, model.moment_coeffs)

        def e_of(rv, prm):
            m = eqx.tree_at(lambda t: (t.radial_coeffs, t.species_coeffs, t.moment_coeffs), model, prm)
            return m.energy_from_pairs(rv, valid, species, species[j])[0]

        e, (g, gp) = jax.value_and_grad(e_of, argnums=(0, 1))(rvec, params)
        g = jnp.where(valid[..., None], g, 0.0)
        n = positions.shape[0]
        forces = jnp.sum(g, axis=1) - jax.ops.segment_sum(g.reshape(-1, 3), idx.reshape(-1), num_segments=n)
        w = jnp.einsum("nma,nmb->ab", g, rvec)
        ps = -jnp.stack([w[a, b] for a, b in VOIGT])
        row = jnp.concatenate([gp[0].reshape(-1), gp[1], gp[2]]) * n ** (-0.5 * p)
        return e, forces, ps, jnp.max(jnp.abs(row @ inv))

    return f
