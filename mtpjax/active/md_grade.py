"""Extrapolation grades of an MD state on device (for the MD engine's hook).

:func:`make_grade_fn` returns a jittable ``grade(positions, cell, nbrs_idx,
nbrs_shifts, species) → γ`` for one periodic system (the whole box is one
configuration, as in MLIP's LAMMPS interface): configuration mode
``γ = max_j |(Σ_i ∂V_i/∂θ / N^{p/2}) A⁻¹|_j``, neighbourhood mode
``γ = max_i max_j |(∂V_i/∂θ A⁻¹)_j|``. :func:`make_hook` adapts it to
:class:`mtpjax.md.simulation.Simulation`'s ``hook = (hook_fn, every)`` with the
break threshold: the run stops at the first checked step with γ > break and
returns the last state checked below it.

Fused path (configuration mode): :func:`mtp_efs_grade` is an efs_fn that
returns the grade as a fourth value computed in the same backward pass as the
forces; the MD engine carries it in ``MDState.aux`` and :func:`aux_hook`
reads it, so checking the grade every step costs a few per cent of a step
instead of a second basis evaluation. :func:`md_grade_setup` picks the fused
path when it can (cfg mode) and the separate hook otherwise (nbh mode).

The force fields and hooks are equinox modules holding the model's arrays and
A⁻¹, so a retrained potential and a new active set of the same shapes reuse the
compiled MD block.
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from mtpjax.active.maxvol import ActiveSet
from mtpjax.active.rows import site_rows
from mtpjax.errors import ConfigurationError
from mtpjax.md.forcefields import md_model, mtp_efs
from mtpjax.potential.angular import basic_selector, monomials
from mtpjax.potential.model import MTP, pair_geometry
from mtpjax.potential.program import contract
from mtpjax.units import VOIGT, voigt_to_matrix

__all__ = ["make_grade_fn", "make_hook", "make_efs_grade_fn", "mtp_efs_grade", "aux_hook", "md_grade_setup"]


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


class GradeHook(eqx.Module):
    """MD hook ``(md_state, nbrs) → (γ, break_threshold)`` that recomputes the basis for the grade (cfg or
    nbh mode); the potential's arrays, A⁻¹ and the threshold are arrays of the module (a retrained potential
    or a new threshold reuses the compiled MD block)."""

    model: MTP
    inv: jax.Array
    threshold: jax.Array
    mode: str = eqx.field(static=True)
    weight_scaling: float = eqx.field(static=True)

    def __call__(self, st, nbrs):
        g = make_grade_fn(self.model, ActiveSet(A=None, inv=self.inv, owner=None, mode=self.mode,
                                                weight_scaling=self.weight_scaling))
        return g(st.positions, st.cell, nbrs.idx, nbrs.shifts, st.species), jnp.asarray(self.threshold, st.energy.dtype)


@eqx.filter_jit
def hook_grade(hook: GradeHook, positions, cell, idx, shifts, species):
    """γ of one configuration with the potential and active set of ``hook`` (compiled once per structure of
    the hook: reused across iterations and systems)."""
    g = make_grade_fn(hook.model, ActiveSet(A=None, inv=hook.inv, owner=None, mode=hook.mode,
                                            weight_scaling=hook.weight_scaling))
    return g(positions, cell, idx, shifts, species)


def make_hook(model: MTP, state: ActiveSet, break_threshold: float = 10.0, every: int = 1):
    """``(hook_fn, every)`` for :class:`~mtpjax.md.simulation.Simulation`: a :class:`GradeHook`."""
    dtype = model.moment_coeffs.dtype
    return GradeHook(md_model(model), jnp.asarray(state.inv, dtype=dtype), jnp.asarray(float(break_threshold), dtype),
                     state.mode, float(state.weight_scaling)), int(every)


def grade_jit(model: MTP, state: ActiveSet, per_atom: bool = False):
    """Jitted :func:`make_grade_fn` (host convenience)."""
    return jax.jit(make_grade_fn(model, state, per_atom))


def _energy_tapped(model: MTP, rvec, mask, species_i, species_j, tap):
    """Total energy as :meth:`MTP.energy_from_pairs` with ``tap`` (N, M, K)
    added to the radial functions f_μ(r_ij) (``tap = 0`` leaves it unchanged;
    ∂E/∂tap is then ∂E/∂f). Also returns the masked radial basis Q (N, M, N_Q).
    Also returns the basis sums Σ_i B(i) (S,) (= ∂E/∂moment_coeffs).
    Mirrors :meth:`MTP.basis_functions` (the fused-kernel test checks the
    energy, forces and grade against the model and the host grade)."""
    prog = model.program
    dtype = model.moment_coeffs.dtype
    mask, r, u = pair_geometry(rvec.astype(dtype), mask, model.max_dist)
    q = model.radial_basis(r) * mask[..., None]  # (N, M, NQ)
    c, _, k, nq = model.radial_coeffs.shape
    onehot = jax.nn.one_hot(species_i[:, None] * c + species_j, c * c, dtype=dtype)  # (N, M, C²)
    w = jnp.transpose(model.radial_coeffs, (3, 0, 1, 2)).reshape(nq, c * c * k)
    f_all = (q @ w).reshape(q.shape[:-1] + (c * c, k))
    f = jnp.einsum("nmp,nmpk->nmk", onehot, f_all) + tap  # (N, M, K)
    mono = monomials(prog, u)
    moments = jnp.einsum("nmk,nmp->kpn", f, mono).reshape(-1, u.shape[0])
    basis = contract(prog, basic_selector(prog, dtype) @ moments)  # (S, N)
    v = model.species_coeffs[species_i] + model.moment_coeffs @ basis
    return jnp.sum(v), (q, jax.lax.stop_gradient(jnp.sum(basis, axis=1)))


def _efs_grade_core(model: MTP, inv, p: float, positions, cell, idx, shifts, species):
    """(E, F, PlusStress (6,), cfg-mode γ) from one reverse pass.

    The backward sweep of the forces already yields ∂E/∂f_μ(r_ij) (the
    cotangent of the radial functions, taken through a zero ``tap``); the
    moment-coefficient gradient is Σ_i B(i) from the forward pass; the radial-coefficient gradient is
    contracted per atom from it, ∂E/∂c[a,b,μ,β] = Σ_i δ(z_i,a) Σ_j δ(z_j,b)
    Q_β(r_ij) ∂E/∂f_μ(r_ij) (cheaper than autodiff's transposed pair-level
    matmul), and ∂E/∂ξ_a is the count of species a.
    """
    rvec, valid, j = _pairs(positions, cell, idx, shifts)
    sj = species[j]
    c, _, kk, _ = model.radial_coeffs.shape
    dtype = model.moment_coeffs.dtype
    tap = jnp.zeros(rvec.shape[:2] + (kk,), dtype)

    def e_of(rv, tp):
        return _energy_tapped(model, rv, valid, species, sj, tp)

    (e, (q, gm)), (g, df) = jax.value_and_grad(e_of, argnums=(0, 1), has_aux=True)(rvec, tap)
    g = jnp.where(valid[..., None], g, 0.0)
    n = positions.shape[0]
    forces = jnp.sum(g, axis=1) - jax.ops.segment_sum(g.reshape(-1, 3), idx.reshape(-1), num_segments=n)
    w = jnp.einsum("nma,nmb->ab", g, rvec)
    ps = -jnp.stack([w[a, b] for a, b in VOIGT])
    oh_i = jax.nn.one_hot(species, c, dtype=dtype)  # (N, C)
    oh_j = jax.nn.one_hot(sj, c, dtype=dtype)  # (N, M, C) (Q is 0 for absent pairs)
    per_atom = jnp.einsum("nmq,nmbk->nbkq", q, oh_j[..., :, None] * df[..., None, :])  # (N, C, K, NQ)
    g_rad = jnp.einsum("na,nbkq->abkq", oh_i, per_atom)  # (C, C, K, NQ), MLIP order
    g_spc = jnp.sum(oh_i, axis=0)
    row = jnp.concatenate([g_rad.reshape(-1), g_spc, gm]) * n ** (-0.5 * p)
    return e, forces, ps, jnp.max(jnp.abs(row @ inv))


def _check_cfg(state: ActiveSet, who: str):
    if state.mode != "cfg":
        raise ValueError(f"{who}: configuration mode only (nbh grades need per-atom rows)")


def make_efs_grade_fn(model: MTP, state: ActiveSet):
    """Energy, forces, PlusStress **and** the configuration-mode grade from one
    reverse pass (the parameter gradient ∂E/∂θ is accumulated in the same
    backward sweep as the forces, so the grade adds only a few per cent to an
    MD step). ``f(positions, cell, idx, shifts, species) → (E eV, F (N,3) eV/Å,
    plus_stress (6,) eV, γ)``. Configuration mode only; the MD engine uses it
    through :func:`mtp_efs_grade`.
    """
    _check_cfg(state, "make_efs_grade_fn")
    inv = jnp.asarray(state.inv, dtype=model.moment_coeffs.dtype)
    p = float(state.weight_scaling)

    def f(positions, cell, idx, shifts, species):
        return _efs_grade_core(model, inv, p, positions, cell, idx, shifts, species)

    return f


class MTPForcesAndGrade(eqx.Module):
    """efs_fn returning ``(E, F, virial (3,3), γ)``: as :class:`mtpjax.md.forcefields.MTPForces` plus the
    configuration-mode grade of the same configuration as an auxiliary value (carried in ``MDState.aux``)."""

    model: MTP
    inv: jax.Array
    weight_scaling: float = eqx.field(static=True)

    def __call__(self, positions, cell, nbrs, species):
        e, f, ps, g = _efs_grade_core(self.model, self.inv, self.weight_scaling, positions, cell, nbrs.idx,
                                      nbrs.shifts, species)
        return e, f, voigt_to_matrix(ps), g


def mtp_efs_grade(model: MTP, state: ActiveSet) -> MTPForcesAndGrade:
    """The fused force field and grade of ``model`` against ``state`` (configuration mode)."""
    _check_cfg(state, "mtp_efs_grade")
    return MTPForcesAndGrade(md_model(model), jnp.asarray(state.inv, dtype=model.moment_coeffs.dtype),
                             float(state.weight_scaling))


class AuxHook(eqx.Module):
    """MD hook reading the grade the efs_fn computed with the forces (``MDState.aux``, e.g.
    :class:`MTPForcesAndGrade`): no extra work per check."""

    threshold: jax.Array

    def __call__(self, st, nbrs):
        if st.aux is None:
            raise ConfigurationError("AuxHook: the efs_fn returns no auxiliary grade (use mtp_efs_grade)")
        return st.aux, jnp.asarray(self.threshold, st.energy.dtype)


def aux_hook(break_threshold: float = 10.0, every: int = 1):
    """``(hook_fn, every)``: an :class:`AuxHook`."""
    return AuxHook(jnp.asarray(float(break_threshold))), int(every)


def md_grade_setup(model: MTP, state: ActiveSet, break_threshold: float = 10.0, every: int = 1,
                   fused: bool | None = None):
    """``(efs_fn, hook, fused)`` for an MD run graded against ``state``.

    cfg mode (default ``fused=None`` → fused when possible): the efs_fn returns
    the grade with the forces and the hook reads it; nbh mode (or
    ``fused=False``): :func:`~mtpjax.md.forcefields.mtp_efs` and the separate
    :func:`make_hook`.
    """
    if fused is None:
        fused = state.mode == "cfg"
    if fused:
        return mtp_efs_grade(model, state), aux_hook(break_threshold, every), True
    return mtp_efs(model), make_hook(model, state, break_threshold, every), False
