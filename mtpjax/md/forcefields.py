"""Force-field adapters for the MD engine: ``efs_fn(positions, cell, nbrs, species)``.

Every adapter returns ``(E eV, F (N, 3) eV/Å, virial (3, 3) eV)`` with
``virial = −∂E/∂ε`` (the tensor whose Voigt form is MLIP's PlusStress; ASE
stress = −(virial)/V). Any JAX energy works through :func:`efs_from_energy`
(autodiff in positions and a homogeneous strain). An adapter may return a
fourth, auxiliary scalar (see :mod:`mtpjax.md.integrators`).

Parametric adapters (:class:`Parametric`, e.g. :func:`mtp_efs`) split the
function into a static, hashable ``key``, a ``params`` pytree of arrays and
``apply(params, *args)``: the MD engine passes the parameters as an argument
of its jitted block, so a retrained potential of the same structure (same
``key``: basis, species, radial basis) reuses the compiled block.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .neighbors import pair_vectors

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


class Parametric:
    """A function of ``(params, *args)`` bound to ``params``: ``self(*args) = apply(params, *args)``.

    ``key`` must be hashable and identify ``apply`` up to ``params`` (two
    Parametric objects with equal keys compute the same function of their
    params); shapes and dtypes of ``params`` need not be part of it. Used for
    efs_fns and MD hooks so that jitted MD blocks take the parameters as
    arguments instead of closing over them.
    """

    __slots__ = ("apply", "params", "key")

    def __init__(self, apply, params, key):
        self.apply = apply
        self.params = params
        self.key = key
        hash(key)  # fail early on an unhashable key

    def __call__(self, *args):
        return self.apply(self.params, *args)

    def bind(self, params):
        """The plain function ``apply(params, ·)`` (params may be tracers)."""
        apply = self.apply
        return lambda *args: apply(params, *args)

    def __repr__(self):
        return f"Parametric(key={self.key!r})"


def is_parametric(fn) -> bool:
    return isinstance(fn, Parametric)


def mtp_static_key(model):
    """Hashable identity of an MTP up to its trainable arrays (basis program,
    radial range, species); equal keys → same energy function of the arrays."""
    return ("mtp", model.program, float(model.min_dist), float(model.max_dist), tuple(model.species))


def mtp_params(model):
    """The arrays of an MTP (what changes when it is retrained)."""
    return (model.radial_coeffs, model.species_coeffs, model.moment_coeffs, model.scaling)


def mtp_with_params(model, params):
    """``model`` with its arrays replaced by ``params`` (see :func:`mtp_params`)."""
    import equinox as eqx

    return eqx.tree_at(lambda t: (t.radial_coeffs, t.species_coeffs, t.moment_coeffs, t.scaling), model, tuple(params))


def voigt_to_matrix(v):
    xx, yy, zz, yz, xz, xy = (v[k] for k in range(6))
    return jnp.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def matrix_to_voigt(m):
    return jnp.stack([m[a, b] for a, b in _VOIGT])


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


def mtp_efs(model, chunk_atoms: int | None = None):
    """efs_fn for an :class:`~mtpjax.potential.MTP` (species = species indices).

    A :class:`Parametric` over the model's arrays: MD blocks are compiled once
    per model structure, not once per model. ``chunk_atoms``: systems with
    more atoms than this are evaluated in blocks of that many atoms
    (:func:`~mtpjax.potential.model.energy_forces_stress_chunked`: same
    numbers, memory ∝ the block instead of the system).
    """
    from ..potential.model import block_size, energy_forces_stress_blocks_above

    template = model
    chunk = None if chunk_atoms is None else block_size(chunk_atoms)

    def apply(params, positions, cell, nbrs, species):
        m = mtp_with_params(template, params)
        e, f, s, _ = energy_forces_stress_blocks_above(m, positions, cell, species, nbrs.idx, nbrs.shifts, chunk)
        return e, f, voigt_to_matrix(s)

    return Parametric(apply, mtp_params(model), mtp_static_key(model) + (("chunk_atoms", chunk),))
