"""The Moment Tensor Potential as an equinox Module (a pytree of arrays).

Formalism (Shapeev 2016; Novikov et al. 2021; ``docs/spec/mtp.md`` §2–5):

* radial basis ``Q_β(r) = s · T_β(ξ) · (R − r)²``, ``ξ = (2r − (r_min + R)) / (R − r_min)``,
  no clamping below ``r_min``; ``s`` is the file's ``scaling``;
* radial functions ``f_μ(r; z_i, z_j) = Σ_β c[z_i, z_j, μ, β] Q_β(r)``;
* basic moments ``M_k(i) = Σ_j f_μk(r_ij) x̂^a ŷ^b ẑ^c`` (one monomial component
  of ``Σ_j f_μ r̂^{⊗ν}``), contracted by MLIP's program into scalars ``B_α(i)``;
* site energy ``V_i = ξ[z_i] + Σ_α θ_α B_α(i)``, ``E = Σ_i V_i``;
* forces ``−∂E/∂x`` and MLIP's ``PlusStress = −∂E/∂ε`` (eV) from one
  reverse-mode pass through the pair vectors.

All arrays are float64 unless the model is cast with :meth:`MTP.astype`.
Units: Å, eV.
"""
from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.geometry.neighbors import pair_vectors
from mtpjax.potential.angular import basic_selector, monomials
from mtpjax.potential.program import ContractionProgram, compile_program, contract
from mtpjax.potential.radial import radial_basis

from mtpjax.units import VOIGT  # xx yy zz yz xz xy (MLIP and ASE order)
from mtpjax.io.mtp import MTPFile
from mtpjax.io.mtp import read_mtp
from mtpjax.io.mtp import write_mtp
from mtpjax.potential.basis import generate_basis


class MTP(eqx.Module):
    """A Moment Tensor Potential.

    Array leaves (trainable): ``radial_coeffs`` (C, C, K, N_Q),
    ``species_coeffs`` (C,), ``moment_coeffs`` (S,), ``scaling`` ().
    Static: ``program`` (the basis), ``min_dist``/``max_dist`` (Å),
    ``species`` (type labels, index = species index), ``name``, ``tag``.
    """

    radial_coeffs: jax.Array
    species_coeffs: jax.Array
    moment_coeffs: jax.Array
    scaling: jax.Array
    program: ContractionProgram = eqx.field(static=True)
    min_dist: float = eqx.field(static=True)
    max_dist: float = eqx.field(static=True)
    species: tuple = eqx.field(static=True)
    name: str | None = eqx.field(static=True, default=None)
    tag: str = eqx.field(static=True, default="")

    # ------------------------------------------------------------------ sizes
    @property
    def cutoff(self) -> float:
        return self.max_dist

    @property
    def n_species(self) -> int:
        return int(self.species_coeffs.shape[0])

    @property
    def radial_basis_size(self) -> int:
        return int(self.radial_coeffs.shape[-1])

    @property
    def radial_funcs_count(self) -> int:
        return int(self.radial_coeffs.shape[2])

    @property
    def n_basis(self) -> int:
        return self.program.n_basis

    @property
    def n_params(self) -> int:
        """MLIP's parameter count: C²·K·N_Q + C + S."""
        return int(self.radial_coeffs.size + self.species_coeffs.size + self.moment_coeffs.size)

    @property
    def level(self) -> int:
        return self.program.level

    @property
    def dtype(self):
        return self.moment_coeffs.dtype

    def astype(self, dtype) -> "MTP":
        """Cast every array leaf (e.g. ``jnp.float32`` for a fast GPU mode)."""
        return jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_array(a) else a, self)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path) -> "MTP":
        return cls.from_mtpfile(read_mtp(path))

    @classmethod
    def from_mtpfile(cls, f, dtype=jnp.float64) -> "MTP":
        """Build from an :class:`~mtpjax.io.mtp.MTPFile`.

        An untrained file gets MLIP-3's deterministic initial coefficients
        (radial 1e-6, and 1e-3·(pair index + 1) at β = μ; linear ones 1e-3).
        """
        prog = compile_program(
            f.alpha_index_basic,
            f.alpha_index_times,
            f.alpha_moment_mapping,
            f.alpha_moments_count,
            f.radial_funcs_count,
        )
        if f.radial_coeffs is not None:
            rc = np.asarray(f.radial_coeffs, dtype=float)
            c = rc.shape[0]
        else:
            c = int(f.species_count or 1)
            rc = initial_radial_coeffs(c, f.radial_funcs_count, f.radial_basis_size)
        species = tuple(f.species) if f.species is not None else tuple(range(c))
        sc = np.asarray(f.species_coeffs, dtype=float) if f.species_coeffs is not None else np.full(c, 1e-3)
        mc = (
            np.asarray(f.moment_coeffs, dtype=float)
            if f.moment_coeffs is not None
            else np.full(prog.n_basis, 1e-3)
        )
        return cls(
            radial_coeffs=jnp.asarray(rc, dtype=dtype),
            species_coeffs=jnp.asarray(sc, dtype=dtype),
            moment_coeffs=jnp.asarray(mc, dtype=dtype),
            scaling=jnp.asarray(f.scaling, dtype=dtype),
            program=prog,
            min_dist=float(f.min_dist),
            max_dist=float(f.max_dist),
            species=species,
            name=f.potential_name,
            tag=f.potential_tag or "",
        )

    @classmethod
    def from_level(
        cls,
        level: int,
        species=(0,),
        cutoff: float = 5.0,
        min_dist: float = 2.0,
        radial_basis_size: int = 8,
        dtype=jnp.float64,
    ) -> "MTP":
        """An untrained MTP of ``level`` (2–28, even) for ``species`` type labels.

        ``species`` is the ordered list of MLIP type labels (e.g. ``[0, 1, 2]``,
        or atomic numbers ``[3, 15, 16]``); an int ``C`` means ``range(C)``.
        The basis is generated by :func:`mtpjax.potential.basis.generate_basis`;
        no template file is needed.
        """
        if isinstance(species, int):
            species = list(range(species))
        species = [int(s) for s in species]
        if len(set(species)) != len(species) or not species:
            raise ValueError(f"species must be a non-empty list of distinct labels, got {species}")
        b = generate_basis(int(level))
        f = MTPFile(
            alpha_index_basic=b.alpha_index_basic,
            alpha_index_times=b.alpha_index_times,
            alpha_moment_mapping=b.alpha_moment_mapping,
            alpha_moments_count=b.alpha_moments_count,
            radial_funcs_count=b.radial_funcs_count,
            min_dist=float(min_dist),
            max_dist=float(cutoff),
            radial_basis_size=int(radial_basis_size),
            species_count=len(species),
            species=species,
            potential_name=f"mtpjax_l{int(level):02d}",
        )
        return cls.from_mtpfile(f, dtype=dtype)

    def to_mtpfile(self, trained: bool = True):
        """The :class:`MTPFile` record of this potential (for writing)."""
        p = self.program
        return MTPFile(
            alpha_index_basic=p.alpha_index_basic,
            alpha_index_times=p.alpha_index_times,
            alpha_moment_mapping=p.alpha_moment_mapping,
            alpha_moments_count=p.alpha_moments_count,
            radial_funcs_count=p.radial_funcs_count,
            min_dist=self.min_dist,
            max_dist=self.max_dist,
            radial_basis_size=self.radial_basis_size,
            scaling=float(self.scaling),
            species_count=self.n_species,
            potential_name=self.name,
            potential_tag=self.tag,
            radial_coeffs=np.asarray(self.radial_coeffs, dtype=float) if trained else None,
            species=list(self.species) if trained else None,
            species_coeffs=np.asarray(self.species_coeffs, dtype=float) if trained else None,
            moment_coeffs=np.asarray(self.moment_coeffs, dtype=float) if trained else None,
        )

    def save(self, path, trained: bool = True) -> None:
        """Write an MLIP ``.mtp`` file."""
        write_mtp(self.to_mtpfile(trained=trained), Path(path))

    # ------------------------------------------------------------ species map
    def species_index(self, types, where: str = "") -> np.ndarray:
        """Map MLIP type labels (N,) to species indices 0..C−1 (host side)."""
        types = np.asarray(types, dtype=np.int64).reshape(-1)
        lut = {int(t): n for n, t in enumerate(self.species)}
        try:
            return np.fromiter((lut[int(t)] for t in types), dtype=np.int32, count=len(types))
        except KeyError as e:
            raise ConfigurationError(
                f"{where}atom type {e.args[0]} is not a species of this potential "
                f"(species: {list(self.species)})"
            ) from None

    # --------------------------------------------------------------- physics
    def radial_basis(self, r):
        """Chebyshev radial basis Q (..., N_Q) at distances ``r`` (...) in Å (:mod:`mtpjax.potential.radial`)."""
        return radial_basis(r, self.min_dist, self.max_dist, self.radial_coeffs.shape[-1], self.scaling)

    def site_energies_from_pairs(self, rvec, mask, species_i, species_j):
        """Site energies V (N,) from pair vectors.

        rvec (N, M, 3) Å, mask (N, M) bool (pair present and 0 < r < R),
        species_i (N,) and species_j (N, M) int species indices.
        """
        basis = self.basis_functions(rvec, mask, species_i, species_j)  # (S, N)
        return self.species_coeffs[species_i] + self.moment_coeffs @ basis

    def basis_functions(self, rvec, mask, species_i, species_j):
        """Scalar basis functions B (S, N) of every atom (without the constant)."""
        prog = self.program
        dtype = self.moment_coeffs.dtype
        mask, r, u = pair_geometry(rvec.astype(dtype), mask, self.max_dist)
        q = self.radial_basis(r) * mask[..., None]  # (N, M, NQ)
        c = self.radial_coeffs.shape[0]
        k = self.radial_coeffs.shape[2]
        nq = self.radial_coeffs.shape[3]
        # Pair-level indexing is written as one-hot contractions instead of
        # gathers: their transposes are matmuls, not scatter-adds (which are
        # slow on CPU and dominate the backward pass otherwise).
        pair = species_i[:, None] * c + species_j  # (N, M)
        onehot = jax.nn.one_hot(pair, c * c, dtype=dtype)  # (N, M, C²)
        w = jnp.transpose(self.radial_coeffs, (3, 0, 1, 2)).reshape(nq, c * c * k)
        f_all = (q @ w).reshape(q.shape[:-1] + (c * c, k))  # every pair type's functions
        f = jnp.einsum("nmp,nmpk->nmk", onehot, f_all)  # radial functions (N, M, K)
        mono = monomials(prog, u)  # (N, M, n_mono)
        moments = jnp.einsum("nmk,nmp->kpn", f, mono).reshape(-1, u.shape[0])  # (K·n_mono, N)
        return contract(prog, basic_selector(prog, dtype) @ moments)

    def energy_from_pairs(self, rvec, mask, species_i, species_j, atom_mask=None):
        v = self.site_energies_from_pairs(rvec, mask, species_i, species_j)
        if atom_mask is not None:
            v = jnp.where(atom_mask, v, 0.0)
        return jnp.sum(v), v

    def __call__(self, positions, cell, species_idx, nbrs_idx, nbrs_shifts, atom_mask=None):
        """Energy (eV) of one system; differentiable in positions and cell."""
        rvec, mask = pair_vectors(positions, cell, nbrs_idx, nbrs_shifts)
        sj = species_idx[jnp.where(mask, nbrs_idx, 0)]
        return self.energy_from_pairs(rvec, mask, species_idx, sj, atom_mask)[0]


def pair_geometry(rvec, mask, cutoff: float):
    """Pair mask (0 < r < cutoff), distances r and unit vectors û, safe for autodiff.

    rvec (N, M, 3) Å, mask (N, M) bool → (mask, r (N, M), û (N, M, 3));
    masked pairs get r = 1, û = x̂ so no NaN reaches the gradients.
    """
    r2 = jnp.sum(rvec * rvec, axis=-1)
    mask = mask & (r2 > 0) & (r2 < cutoff * cutoff)
    safe = jnp.where(mask[..., None], rvec, jnp.asarray([1.0, 0.0, 0.0], rvec.dtype))
    r = jnp.sqrt(jnp.sum(safe * safe, axis=-1))
    return mask, r, safe / r[..., None]


def initial_radial_coeffs(n_species: int, k: int, nq: int) -> np.ndarray:
    """MLIP-3's deterministic initial radial coefficients (docs/spec/mtp.md §7.2)."""
    rc = np.full((n_species, n_species, k, nq), 1e-6)
    for a in range(n_species):
        for b in range(n_species):
            p = a * n_species + b
            for mu in range(min(k, nq)):
                rc[a, b, mu, mu] = 1e-3 * (p + 1)
    return rc


def _sites_and_pair_grads(model: MTP, rvec, valid, species_i, species_j, atom_mask):
    """Site energies V (N,) and ∂E/∂r_ij (N, M, 3) (zero on absent pairs) by one VJP."""

    def e_of_r(rv):
        return model.energy_from_pairs(rv, valid, species_i, species_j, atom_mask)

    (_, site), g = jax.value_and_grad(e_of_r, has_aux=True)(rvec)
    return site, jnp.where(valid[..., None], g, 0.0)


@jax.jit
def efs_batch(model: MTP, positions, cells, config_of_atom, species_idx, nbrs_idx, nbrs_shifts, atom_mask):
    """Energies, forces, PlusStress and site energies of a *batch* of systems.

    The batch is a flat, padded set of atoms (graph batching): positions
    (Nt, 3) Å, cells (B, 3, 3) lattice rows Å, config_of_atom (Nt,) int in
    0..B−1, species_idx (Nt,), nbrs_idx (Nt, M) int (global atom indices,
    padded with Nt), nbrs_shifts (Nt, M, 3) int lattice translations,
    atom_mask (Nt,) bool. Returns ``(E (B,) eV, F (Nt, 3) eV/Å,
    plus_stress (B, 6) eV in xx yy zz yz xz xy, V (Nt,) eV)``.

    One VJP of the total energy with respect to the pair vectors r_ij gives
    everything: F_i = Σ_j g_ij − Σ_{k: j(k)=i} g_k and
    PlusStress_ab = −Σ g_a r_b summed over the pairs of each system.
    """
    n = positions.shape[0]
    nb = cells.shape[0]
    valid = nbrs_idx < n
    j = jnp.where(valid, nbrs_idx, 0)
    cell_i = cells[config_of_atom]  # (Nt, 3, 3)
    rvec = positions[j] + jnp.einsum("nms,nsc->nmc", nbrs_shifts.astype(positions.dtype), cell_i)
    rvec = jnp.where(valid[..., None], rvec - positions[:, None, :], 0.0)
    sj = species_idx[j]

    site, g = _sites_and_pair_grads(model, rvec, valid, species_idx, sj, atom_mask)
    forces = jnp.sum(g, axis=1) - jax.ops.segment_sum(g.reshape(-1, 3), nbrs_idx.reshape(-1), num_segments=n)
    w_atom = jnp.einsum("nma,nmb->nab", g, rvec)
    w = jax.ops.segment_sum(w_atom, config_of_atom, num_segments=nb)
    plus_stress = -jnp.stack([w[:, a, b] for a, b in VOIGT], axis=-1)
    energies = jax.ops.segment_sum(site, config_of_atom, num_segments=nb)
    return energies, jnp.where(atom_mask[:, None], forces, 0.0), plus_stress, site


@jax.jit
def energy_forces_stress(model: MTP, positions, cell, species_idx, nbrs_idx, nbrs_shifts, atom_mask=None):
    """Energy, forces, PlusStress and site energies of one system.

    positions (N, 3) Å, cell (3, 3) rows Å, species_idx (N,) int, nbrs_idx
    (N, M) int padded with N, nbrs_shifts (N, M, 3) int, atom_mask (N,) bool
    or None. Returns ``(E eV, F (N, 3) eV/Å, plus_stress (6,) eV, V (N,) eV)``.
    """
    n = positions.shape[0]
    mask = jnp.ones(n, bool) if atom_mask is None else atom_mask
    e, f, s, v = efs_batch(
        model, positions, cell[None], jnp.zeros(n, jnp.int32), species_idx, nbrs_idx, nbrs_shifts, mask
    )
    return e[0], f, s[0], v


def energy_forces_stress_chunked(model: MTP, positions, cell, species_idx, nbrs_idx, nbrs_shifts,
                                 chunk: int = 16384):
    """Energy, forces, PlusStress and site energies of one large system, in
    blocks of ``chunk`` atoms (memory ∝ chunk instead of N).

    Same arguments and results as :func:`energy_forces_stress` (no
    ``atom_mask``). The atoms' rows are processed by a ``lax.scan``: each
    block's pair vectors, site energies and the VJP with respect to its pair
    vectors are computed, and its pair gradients are added to the force and
    virial accumulators, so only one block's temporaries (∝ chunk · M ·
    basis size) are alive at a time. For 10⁶ atoms at level 8 the unchunked
    call needs ~20 GB of temporaries; blocks of 16384 atoms need a few
    hundred MB on top of the O(N · M) neighbour list.
    """
    return _efs_chunked(model, positions, cell, species_idx, nbrs_idx, nbrs_shifts, chunk=block_size(chunk, "chunk"))


def block_size(value, name: str = "chunk_atoms") -> int:
    """``value`` as a positive number of atoms per block, or a ConfigurationError naming ``name``."""
    if int(value) < 1:
        raise ConfigurationError(f"{name} must be a positive number of atoms, got {value!r}")
    return int(value)


def energy_forces_stress_blocks_above(model: MTP, positions, cell, species_idx, nbrs_idx, nbrs_shifts,
                                      chunk_atoms: int | None = None):
    """:func:`energy_forces_stress` (without ``atom_mask``), or its block-wise twin
    :func:`energy_forces_stress_chunked` in blocks of ``chunk_atoms`` when the system has
    more atoms than that (``chunk_atoms=None``: always one-shot). Same results either way."""
    if chunk_atoms is not None and positions.shape[0] > chunk_atoms:
        return _efs_chunked(model, positions, cell, species_idx, nbrs_idx, nbrs_shifts, chunk=int(chunk_atoms))
    return energy_forces_stress(model, positions, cell, species_idx, nbrs_idx, nbrs_shifts)


@eqx.filter_jit
def _efs_chunked(model, positions, cell, species_idx, nbrs_idx, nbrs_shifts, *, chunk):
    n, m = nbrs_idx.shape
    nc = -(-n // chunk)
    nt = nc * chunk
    pad = nt - n
    dtype = positions.dtype
    idx = jnp.pad(nbrs_idx, ((0, pad), (0, 0)), constant_values=n).reshape(nc, chunk, m)
    shifts = jnp.pad(nbrs_shifts, ((0, pad), (0, 0), (0, 0))).reshape(nc, chunk, m, 3)
    pos_rows = jnp.pad(positions, ((0, pad), (0, 0)))
    spec_rows = jnp.pad(species_idx, (0, pad))
    starts = jnp.arange(nc) * chunk

    def block(carry, xs):
        forces, w = carry
        idx_c, sh_c, start = xs
        rows = start + jnp.arange(chunk)
        atom_mask = rows < n
        valid = idx_c < n
        j = jnp.where(valid, idx_c, 0)
        xi = jax.lax.dynamic_slice_in_dim(pos_rows, start, chunk)
        si = jax.lax.dynamic_slice_in_dim(spec_rows, start, chunk)
        rvec = positions[j] + sh_c.astype(dtype) @ cell - xi[:, None, :]
        rvec = jnp.where(valid[..., None], rvec, 0.0)
        site, g = _sites_and_pair_grads(model, rvec, valid, si, species_idx[j], atom_mask)
        own = jax.lax.dynamic_slice_in_dim(forces, start, chunk) + jnp.sum(g, axis=1)
        forces = jax.lax.dynamic_update_slice_in_dim(forces, own, start, axis=0)
        forces = forces.at[idx_c.reshape(-1)].add(-g.reshape(-1, 3), mode="drop")
        w = w + jnp.einsum("nma,nmb->ab", g, rvec)
        return (forces, w), site

    init = (jnp.zeros((nt, 3), dtype), jnp.zeros((3, 3), dtype))
    (forces, w), site = jax.lax.scan(block, init, (idx, shifts, starts))
    site = site.reshape(-1)[:n]
    plus_stress = -jnp.stack([w[a, b] for a, b in VOIGT])
    return jnp.sum(site), forces[:n], plus_stress, site


@jax.jit
def energy_forces_stress_autodiff(model: MTP, positions, cell, species_idx, nbrs_idx, nbrs_shifts):
    """Reference path: forces and PlusStress by autodiff in positions and a strain.

    Same results as :func:`energy_forces_stress`; kept for cross-checks and
    timing (``benchmarks/efs_speed.py``).
    """
    eye = jnp.eye(3, dtype=positions.dtype)

    def e(pos, eps):
        d = eye + eps
        return model(pos @ d.T, cell @ d.T, species_idx, nbrs_idx, nbrs_shifts)

    energy, (gpos, geps) = jax.value_and_grad(e, argnums=(0, 1))(positions, jnp.zeros((3, 3), positions.dtype))
    plus_stress = -jnp.stack([geps[a, b] for a, b in VOIGT])
    return energy, -gpos, plus_stress
