"""Force-field adapters for the MD engine: ``efs_fn(positions, cell, nbrs, species)``.

Every adapter returns ``(E eV, F (N, 3) eV/Å, virial (3, 3) eV)`` with ``virial = −∂E/∂ε`` (the tensor whose
Voigt form is MLIP's PlusStress; ASE stress = −(virial)/V). Any JAX energy works through
:func:`efs_from_energy` (autodiff in positions and a homogeneous strain). An adapter may return a fourth,
auxiliary scalar (see :mod:`mtpjax.md.integrators`).

:class:`MTPForces` is an equinox module holding the potential: the MD engine's compiled blocks
(:func:`mtpjax.md.block.run_block`) take its arrays as arguments and its structure (basis, species, radial
range) as static, so a retrained potential of the same structure reuses the compiled block.
"""
from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from mtpjax.geometry.neighbors import pair_vectors
from mtpjax.potential.model import MTP, block_size, energy_forces_stress_blocks_above
from mtpjax.units import voigt_to_matrix


def md_model(model: MTP) -> MTP:
    """``model`` without what does not enter its energy (name, tag): the MD blocks of two potentials that
    differ only there are the same compiled code."""
    return dataclasses.replace(model, name=None, tag="")


def efs_from_energy(energy_fn):
    """Wrap ``energy_fn(positions, cell, nbrs, species) -> E`` into an efs_fn."""

    def efs(positions, cell, nbrs, species):
        eye = jnp.eye(3, dtype=positions.dtype)

        def e(pos, eps):
            d = eye + eps
            return energy_fn(pos @ d.T, cell @ d.T, nbrs, species)

        energy, (g, geps) = jax.value_and_grad(e, argnums=(0, 1))(positions, jnp.zeros((3, 3), positions.dtype))
        w = -0.5 * (geps + geps.T)
        return energy, -g, w

    return efs


def efs_from_pair_energy(pair_fn):
    """Pair potential ``pair_fn(r, si, sj) -> φ`` (0 beyond its cutoff) over a full list.

    E = ½ Σ_i Σ_(j,S) φ(r_ij); forces and virial from one VJP in the pair vectors.
    """

    def efs(positions, cell, nbrs, species):
        rvec, mask = pair_vectors(positions, cell, nbrs.idx, nbrs.shifts)
        n = positions.shape[0]
        j = jnp.where(mask, nbrs.idx, 0)
        si = jnp.broadcast_to(species[:, None], mask.shape)
        sj = species[j]

        def e_of_r(rv):
            r2 = jnp.sum(rv * rv, -1)
            safe = jnp.where(mask, r2, 1.0)
            r = jnp.sqrt(safe)
            return 0.5 * jnp.sum(jnp.where(mask, pair_fn(r, si, sj), 0.0))

        energy, g = jax.value_and_grad(e_of_r)(rvec)
        g = jnp.where(mask[..., None], g, 0.0)
        forces = jnp.sum(g, axis=1) - jax.ops.segment_sum(
            g.reshape(-1, 3), nbrs.idx.reshape(-1), num_segments=n + 1
        )[:n]
        w = -jnp.einsum("nma,nmb->ab", g, rvec)
        return energy, forces, 0.5 * (w + w.T)

    return efs


def lennard_jones(epsilon: float = 0.0104, sigma: float = 3.4, cutoff: float | None = None):
    """Shifted-force Lennard-Jones (energy and force continuous at the cutoff).

    Defaults: argon (ε = 0.0104 eV, σ = 3.4 Å, cutoff 2.5 σ). Returns
    ``(efs_fn, cutoff)``.
    """
    rc = 2.5 * sigma if cutoff is None else float(cutoff)

    def phi(r):
        sr6 = (sigma / r) ** 6
        return 4.0 * epsilon * (sr6 * sr6 - sr6)

    def dphi(r):
        sr6 = (sigma / r) ** 6
        return 4.0 * epsilon * (-12.0 * sr6 * sr6 + 6.0 * sr6) / r

    prc, dprc = phi(rc), dphi(rc)

    def pair(r, si, sj):
        return jnp.where(r < rc, phi(r) - prc - (r - rc) * dprc, 0.0)

    return efs_from_pair_energy(pair), rc


def morse(D: float = 0.3429, alpha: float = 1.3588, r0: float = 2.866, cutoff: float = 6.0):
    """Shifted-force Morse potential (defaults: Cu, Girifalco–Weizer). Returns ``(efs_fn, cutoff)``."""
    rc = float(cutoff)

    def phi(r):
        x = jnp.exp(-alpha * (r - r0))
        return D * (x * x - 2.0 * x)

    def dphi(r):
        x = jnp.exp(-alpha * (r - r0))
        return D * (-2.0 * alpha * x * x + 2.0 * alpha * x)

    prc, dprc = phi(rc), dphi(rc)

    def pair(r, si, sj):
        return jnp.where(r < rc, phi(r) - prc - (r - rc) * dprc, 0.0)

    return efs_from_pair_energy(pair), rc


class MTPForces(eqx.Module):
    """efs_fn of an :class:`~mtpjax.potential.MTP` (``species`` = species indices).

    ``chunk_atoms``: systems with more atoms than this are evaluated in blocks of that many atoms
    (:func:`~mtpjax.potential.model.energy_forces_stress_chunked`: same numbers, memory ∝ the block instead
    of the system)."""

    model: MTP
    chunk_atoms: int | None = eqx.field(static=True, default=None)

    def __call__(self, positions, cell, nbrs, species):
        e, f, s, _ = energy_forces_stress_blocks_above(self.model, positions, cell, species, nbrs.idx,
                                                       nbrs.shifts, self.chunk_atoms)
        return e, f, voigt_to_matrix(s)


def mtp_efs(model: MTP, chunk_atoms: int | None = None) -> MTPForces:
    """The MD force field of ``model`` (see :class:`MTPForces`)."""
    return MTPForces(md_model(model), None if chunk_atoms is None else block_size(chunk_atoms))
