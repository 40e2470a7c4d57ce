"""MD integrators as pure functions (jax-md style ``init``/``step`` pairs).

Every integrator is an :class:`Integrator` of three pure, jit-compatible
functions::

    state = integ.init(positions, masses, cell, nbrs, species, kT=..., key=..., momenta=None)
    state, nbrs = integ.step(state, nbrs, kT, pressure)
    H = integ.conserved(state, kT, pressure)     # extended Hamiltonian (eV)

``kT`` (eV) and ``pressure`` (eV/Å³) are dynamic arguments so that ramps do not
recompile. The force field is ``efs_fn(positions, cell, nbrs, species) ->
(E eV, F (N, 3) eV/Å, virial (3, 3) eV)`` with ``virial = −∂E/∂ε`` (MLIP's
PlusStress as a matrix, = Σ r⊗F for pair potentials). An efs_fn may return a
fourth, auxiliary value computed together with the forces (e.g. the
extrapolation grade of the configuration, :func:`mtpjax.active.md_grade.mtp_efs_grade`):
it is carried in ``MDState.aux`` (``None`` for a three-value efs_fn, so plain
force fields carry nothing extra). ``neighbor_fns`` is a
:class:`~mtpjax.geometry.neighbors.NeighborListFns` (or ``None`` when the energy
needs no list), updated inside ``step`` after the positions/cell move.

Units: Å, amu, eV, ASE time (``ase.units.fs`` = 0.0982…). Momenta are amu·Å/ASE-time.

Schemes (all symmetric Trotter splittings with one force call per step):

* :func:`nve` — velocity Verlet.
* :func:`nvt_nose_hoover` — Nosé–Hoover chains (Martyna–Klein–Tuckerman 1992),
  chain integrated with 4th-order Suzuki–Yoshida, masses as LAMMPS ``fix nvt``
  and ASE ``NoseHooverChainNVT``: Q₀ = N_f kT τ², Qⱼ = kT τ² with τ = Tdamp.
* :func:`nvt_langevin` — BAOAB Langevin (Leimkuhler–Matthews), friction 1/τ;
  its conserved quantity adds the heat given to the bath.
* :func:`npt_mtk` — Martyna–Tobias–Klein (1994) barostat with NHC thermostats on
  particles and cell, ``mode='iso'`` (ASE ``IsotropicMTKNPT``), ``'aniso'``
  (diagonal cell momenta, orthogonal axes fluctuate independently) or ``'tri'``
  (fully flexible triclinic cell, symmetric cell momenta so the box does not
  rotate). The factorisation is the one of ASE 3.29's ``MTKNPT``; with
  ``dof=3N`` and ``cell_dof=9`` the trajectories agree with ASE's to rounding.

``N_f`` (``dof``) defaults to 3N − 3 (total momentum is zero and conserved by
every scheme except Langevin, whose default is 3N).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import ConfigurationError

SY4 = (
    1.0 / (2.0 - 2.0 ** (1.0 / 3.0)),
    -(2.0 ** (1.0 / 3.0)) / (2.0 - 2.0 ** (1.0 / 3.0)),
    1.0 / (2.0 - 2.0 ** (1.0 / 3.0)),
)


class ChainState(NamedTuple):
    """Nosé–Hoover chain coordinates ``eta`` (M,) and momenta ``p_eta`` (M,)."""

    eta: jax.Array
    p_eta: jax.Array


class MDState(NamedTuple):
    """The full dynamical state (a pytree; add a leading axis for replicas).

    positions (N, 3) Å (unwrapped), momenta (N, 3), masses (N,) amu, species
    (N,) int, cell (3, 3) lattice rows Å, forces (N, 3) eV/Å, energy () eV,
    virial (3, 3) eV (= −∂E/∂ε), thermostat / barostat :class:`ChainState`,
    p_cell (3, 3) cell momenta (``iso``: p_ε in [0, 0]), bath () eV (heat
    removed by a Langevin bath), step () int, time () ASE units, key PRNG key,
    aux: the auxiliary value returned by a four-value efs_fn at these
    positions (e.g. the extrapolation grade), ``None`` (no leaf) otherwise.
    """

    positions: jax.Array
    momenta: jax.Array
    masses: jax.Array
    species: jax.Array
    cell: jax.Array
    forces: jax.Array
    energy: jax.Array
    virial: jax.Array
    thermostat: ChainState
    barostat: ChainState
    p_cell: jax.Array
    bath: jax.Array
    step: jax.Array
    time: jax.Array
    key: jax.Array
    aux: jax.Array | None = None


class Integrator(NamedTuple):
    """``init``/``step``/``conserved`` plus static metadata."""

    init: Callable
    step: Callable
    conserved: Callable
    name: str
    dt: float
    dof: Callable  # n_atoms -> degrees of freedom
    variable_cell: bool


EFSFn = Callable  # (positions, cell, nbrs, species) -> (E, F, virial) or (E, F, virial, aux)


# ----------------------------------------------------------------- helpers
def kinetic_energy(momenta, masses):
    return 0.5 * jnp.sum(momenta**2 / masses[..., None])


def kinetic_tensor(momenta, masses):
    """Σ p⊗p/m (3, 3) eV."""
    return jnp.einsum("na,nb->ab", momenta / masses[:, None], momenta)


def volume(cell):
    return jnp.abs(jnp.linalg.det(cell))


def pressure_tensor(state: MDState):
    """Instantaneous pressure tensor (Σ p⊗p/m + W)/V, eV/Å³."""
    return (kinetic_tensor(state.momenta, state.masses) + state.virial) / volume(state.cell)


def pressure(state: MDState):
    return jnp.trace(pressure_tensor(state)) / 3.0


def temperature(state: MDState, dof):
    """Kinetic temperature in eV (kT) for ``dof`` degrees of freedom."""
    return 2.0 * kinetic_energy(state.momenta, state.masses) / dof


def exprel(x):
    """(eˣ − 1)/x, accurate near 0."""
    small = jnp.abs(x) < 1e-6
    xs = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 + x / 2.0 + x * x / 6.0, jnp.expm1(xs) / xs)


def maxwell_boltzmann(key, masses, kT, zero_momentum: bool = True):
    """Momenta (N, 3) drawn at temperature kT with zero total momentum.

    After removing the centre-of-mass motion the momenta are rescaled so that
    the kinetic temperature over 3N − 3 degrees of freedom equals kT exactly.
    """
    masses = jnp.asarray(masses)
    n = masses.shape[0]
    p = jax.random.normal(key, (n, 3), dtype=masses.dtype) * jnp.sqrt(masses * kT)[:, None]
    if zero_momentum and n > 1:
        p = p - masses[:, None] * (jnp.sum(p, axis=0) / jnp.sum(masses))[None, :]
        dof = 3 * n - 3
        k2 = jnp.sum(p**2 / masses[:, None])
        p = p * jnp.sqrt(dof * kT / jnp.maximum(k2, 1e-300))
    return p


def _vec_to_mat(v6):
    """Voigt (xx yy zz yz xz xy) → symmetric (3, 3)."""
    xx, yy, zz, yz, xz, xy = (v6[..., k] for k in range(6))
    return jnp.stack(
        [jnp.stack([xx, xy, xz], -1), jnp.stack([xy, yy, yz], -1), jnp.stack([xz, yz, zz], -1)], -2
    )


def _chain_masses(kT, tau, m, first_dof):
    q = jnp.full((m,), 1.0) * kT * tau**2
    return q.at[0].set(first_dof * kT * tau**2)


def _nhc_half(chain: ChainState, k2, ndof, kT, Q, delta, loop: int):
    """Propagate a NHC by ``delta`` (Suzuki–Yoshida 4th order, ``loop`` sub-steps).

    ``k2`` = Σ p²/m of the coupled momenta. Returns the new chain and the
    factor by which the coupled momenta are scaled.
    """
    eta, p_eta = chain
    m = Q.shape[0]
    scale = jnp.ones_like(k2)

    def pj(p_eta, j, d2, d4, k2s):
        if j < m - 1:
            p_eta = p_eta.at[j].multiply(jnp.exp(-d4 * p_eta[j + 1] / Q[j + 1]))
        g = (k2s - ndof * kT) if j == 0 else (p_eta[j - 1] ** 2 / Q[j - 1] - kT)
        p_eta = p_eta.at[j].add(d2 * g)
        if j < m - 1:
            p_eta = p_eta.at[j].multiply(jnp.exp(-d4 * p_eta[j + 1] / Q[j + 1]))
        return p_eta

    for _ in range(loop):
        for w in SY4:
            d = w * delta / loop
            for j in reversed(range(m)):
                p_eta = pj(p_eta, j, d / 2, d / 4, k2 * scale**2)
            eta = eta + d * p_eta / Q
            scale = scale * jnp.exp(-d * p_eta[0] / Q[0])
            for j in range(m):
                p_eta = pj(p_eta, j, d / 2, d / 4, k2 * scale**2)
    return ChainState(eta, p_eta), scale


def _chain_energy(chain: ChainState, Q, kT, first_dof):
    return first_dof * kT * chain.eta[0] + kT * jnp.sum(chain.eta[1:]) + jnp.sum(0.5 * chain.p_eta**2 / Q)


def _check_positive(name, value):
    if value is None or not np.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")


def _efs(efs_fn, positions, cell, nbrs, species):
    """(E, F, W, aux) from a three- or four-value efs_fn (aux None for three)."""
    out = efs_fn(positions, cell, nbrs, species)
    if len(out) == 4:
        return out
    e, f, w = out
    return e, f, w, None


def _forces(efs_fn, neighbor_fns, positions, cell, nbrs, species):
    if neighbor_fns is not None:
        nbrs = neighbor_fns.update(positions, cell, nbrs)
    e, f, w, aux = _efs(efs_fn, positions, cell, nbrs, species)
    return e, f, w, aux, nbrs


def _with_aux(state, aux):
    return state if aux is None else state._replace(aux=aux)


def _make_init(efs_fn, neighbor_fns, m_t: int, m_b: int, default_dof, momentum_fn=maxwell_boltzmann):
    def init(positions, masses, cell, nbrs, species=None, kT=None, key=None, momenta=None):
        positions = jnp.asarray(positions)
        dtype = positions.dtype
        n = positions.shape[0]
        masses = jnp.asarray(masses, dtype=dtype)
        cell = jnp.asarray(cell, dtype=dtype)
        species = jnp.zeros(n, jnp.int32) if species is None else jnp.asarray(species, jnp.int32)
        key = jax.random.PRNGKey(0) if key is None else key
        key, sub = jax.random.split(key)
        if momenta is None:
            momenta = (
                jnp.zeros_like(positions) if kT is None else momentum_fn(sub, masses, jnp.asarray(kT, dtype))
            )
        e, f, w, aux = _efs(efs_fn, positions, cell, nbrs, species)
        z = jnp.zeros((), dtype)
        return MDState(
            positions,
            jnp.asarray(momenta, dtype),
            masses,
            species,
            cell,
            f,
            e,
            w,
            ChainState(jnp.zeros(m_t, dtype), jnp.zeros(m_t, dtype)),
            ChainState(jnp.zeros(m_b, dtype), jnp.zeros(m_b, dtype)),
            jnp.zeros((3, 3), dtype),
            z,
            jnp.zeros((), jnp.int64),
            z,
            key,
            None if aux is None else jnp.asarray(aux),
        )

    return init


def _advance_clock(state, dt):
    return state._replace(step=state.step + 1, time=state.time + dt)


# ---------------------------------------------------------------------- NVE
def nve(efs_fn: EFSFn, neighbor_fns, dt: float) -> Integrator:
    """Velocity Verlet; conserved quantity E_pot + E_kin."""
    _check_positive("timestep", dt)

    def step(state: MDState, nbrs, kT=None, pressure=None):
        p = state.momenta + 0.5 * dt * state.forces
        q = state.positions + dt * p / state.masses[:, None]
        e, f, w, aux, nbrs = _forces(efs_fn, neighbor_fns, q, state.cell, nbrs, state.species)
        p = p + 0.5 * dt * f
        st = _with_aux(state._replace(positions=q, momenta=p, forces=f, energy=e, virial=w), aux)
        return _advance_clock(st, dt), nbrs

    def conserved(state, kT=None, pressure=None):
        return state.energy + kinetic_energy(state.momenta, state.masses)

    return Integrator(
        _make_init(efs_fn, neighbor_fns, 1, 1, None), step, conserved, "nve", dt, lambda n: 3 * n - 3, False
    )


# -------------------------------------------------------------- NVT (NHC)
def nvt_nose_hoover(
    efs_fn: EFSFn, neighbor_fns, dt: float, tdamp: float, chain: int = 3, loop: int = 1, dof: int | None = None
) -> Integrator:
    """Nosé–Hoover chain NVT (ASE ``NoseHooverChainNVT`` / LAMMPS ``fix nvt``).

    ``tdamp`` is the thermostat period τ in ASE time (LAMMPS' Tdamp; ~100 dt).
    """
    _check_positive("timestep", dt)
    _check_positive("tdamp (thermostat damping time)", tdamp)
    if int(chain) < 1:
        raise ConfigurationError(f"thermostat chain length must be ≥ 1, got {chain}")

    def ndof(n):
        return 3 * n - 3 if dof is None else dof

    def half(state, kT, d):
        n = state.positions.shape[0]
        Q = _chain_masses(kT, tdamp, chain, ndof(n))
        k2 = jnp.sum(state.momenta**2 / state.masses[:, None])
        th, s = _nhc_half(state.thermostat, k2, ndof(n), kT, Q, d, loop)
        return state._replace(thermostat=th, momenta=state.momenta * s)

    def step(state, nbrs, kT, pressure=None):
        state = half(state, kT, 0.5 * dt)
        p = state.momenta + 0.5 * dt * state.forces
        q = state.positions + dt * p / state.masses[:, None]
        e, f, w, aux, nbrs = _forces(efs_fn, neighbor_fns, q, state.cell, nbrs, state.species)
        p = p + 0.5 * dt * f
        state = _with_aux(state._replace(positions=q, momenta=p, forces=f, energy=e, virial=w), aux)
        state = half(state, kT, 0.5 * dt)
        return _advance_clock(state, dt), nbrs

    def conserved(state, kT, pressure=None):
        n = state.positions.shape[0]
        Q = _chain_masses(kT, tdamp, chain, ndof(n))
        return (
            state.energy
            + kinetic_energy(state.momenta, state.masses)
            + _chain_energy(state.thermostat, Q, kT, ndof(n))
        )

    return Integrator(_make_init(efs_fn, neighbor_fns, chain, 1, None), step, conserved, "nvt", dt, ndof, False)


# --------------------------------------------------------- NVT (Langevin)
def nvt_langevin(efs_fn: EFSFn, neighbor_fns, dt: float, tdamp: float, dof: int | None = None) -> Integrator:
    """BAOAB Langevin dynamics with friction γ = 1/tdamp (ASE time).

    Conserved quantity: E_pot + E_kin + (heat removed by the bath).
    """
    _check_positive("timestep", dt)
    _check_positive("tdamp (Langevin damping time)", tdamp)
    gamma = 1.0 / tdamp
    c1 = float(np.exp(-gamma * dt))

    def ndof(n):
        return 3 * n if dof is None else dof

    def step(state, nbrs, kT, pressure=None):
        m = state.masses[:, None]
        key, sub = jax.random.split(state.key)
        p = state.momenta + 0.5 * dt * state.forces
        q = state.positions + 0.5 * dt * p / m
        k_before = 0.5 * jnp.sum(p**2 / m)
        noise = jax.random.normal(sub, p.shape, dtype=p.dtype)
        p = c1 * p + jnp.sqrt((1.0 - c1**2) * m * kT) * noise
        k_after = 0.5 * jnp.sum(p**2 / m)
        q = q + 0.5 * dt * p / m
        e, f, w, aux, nbrs = _forces(efs_fn, neighbor_fns, q, state.cell, nbrs, state.species)
        p = p + 0.5 * dt * f
        state = _with_aux(state._replace(
            positions=q, momenta=p, forces=f, energy=e, virial=w, key=key, bath=state.bath - (k_after - k_before)
        ), aux)
        return _advance_clock(state, dt), nbrs

    def conserved(state, kT=None, pressure=None):
        return state.energy + kinetic_energy(state.momenta, state.masses) + state.bath

    return Integrator(
        _make_init(efs_fn, neighbor_fns, 1, 1, None), step, conserved, "langevin", dt, ndof, False
    )


# ---------------------------------------------------------------- NPT (MTK)
def _mtk_masses(kT, nf, tdamp, pdamp, tchain, pchain, iso, cell_dof):
    """Masses of the MTK extended system (ASE 3.29): thermostat chain Q (tchain,),
    barostat W and barostat chain R (pchain,).

    Q = N_f kT τ_T², kT τ_T², …; W = (N_f + 3) kT τ_P² (iso) or (N_f/3 + 1) kT τ_P²
    (aniso/tri); R₀ = 9 kT τ_P² (iso, as ASE) or ``cell_dof`` kT τ_P², Rⱼ = kT τ_P².
    """
    Q = _chain_masses(kT, tdamp, tchain, nf)
    if iso:
        W = (nf + 3) * kT * pdamp**2
        R = _chain_masses(kT, pdamp, pchain, 9.0)
    else:
        W = (nf / 3.0 + 1.0) * kT * pdamp**2
        R = _chain_masses(kT, pdamp, pchain, cell_dof)
    return Q, W, R


def _thermostat_half(state, kT, Q, nf, d, loop):
    """Particle NHC propagated by ``d``; the momenta scaled by the chain's factor."""
    k2 = jnp.sum(state.momenta**2 / state.masses[:, None])
    th, s = _nhc_half(state.thermostat, k2, nf, kT, Q, d, loop)
    return state._replace(thermostat=th, momenta=state.momenta * s)


def _barostat_half(state, kT, W, R, first, d, loop):
    """Cell NHC propagated by ``d``; the cell momenta scaled by the chain's factor.

    The chain's g₀ = Σ p_cell²/W − ``first``·kT (iso: one degree of freedom, p_ε).
    """
    k2 = jnp.sum(state.p_cell**2) / W
    ba, s = _nhc_half(state.barostat, k2, first, kT, R, d, loop)
    return state._replace(barostat=ba, p_cell=state.p_cell * s)


def _cell_kick(state, P0, nf, d, iso, cmask):
    """Cell momenta kicked by ``d`` × the pressure imbalance.

    iso: p_ε += d (Tr(K + W_vir) − 3 V P₀ + 3 Σp²/m / N_f); aniso/tri: p_g += d sym(K + W_vir −
    V P₀ 1 + Σp²/m / N_f 1) (masked to the diagonal for aniso). K is the kinetic tensor.
    """
    k2 = jnp.sum(state.momenta**2 / state.masses[:, None])
    V = volume(state.cell)
    ptens = kinetic_tensor(state.momenta, state.masses) + state.virial
    if iso:
        G = jnp.trace(ptens) - 3.0 * V * P0 + 3.0 * k2 / nf
        return state._replace(p_cell=state.p_cell.at[0, 0].add(d * G))
    G = ptens - V * P0 * jnp.eye(3) + (k2 / nf) * jnp.eye(3)
    G = 0.5 * (G + G.T) * cmask
    return state._replace(p_cell=state.p_cell + d * G)


def _iso_flow(p_cell, W, nf, dt):
    """The exact flows at fixed p_ε (iso): ``kick(p, f)`` (half step of the momenta,
    p e^{−x} + (dt/2) f exprel(−x), x = (1 + 3/N_f) p_ε dt/2W) and ``drift(q, p, cell, m)``
    (full step of positions and cell, scaled by e^{dt p_ε/W})."""
    h = 0.5 * dt
    pe = p_cell[0, 0]

    def kick(p, f):
        x = (1.0 + 3.0 / nf) * pe * h / W
        return p * jnp.exp(-x) + h * f * exprel(-x)

    def drift(q, p, cell, m):
        x = dt * pe / W
        return q * jnp.exp(x) + p * dt / m * exprel(x), cell * jnp.exp(x)

    return kick, drift


def _matrix_flow(p_cell, W, nf, dt):
    """As :func:`_iso_flow` for a (3, 3) symmetric p_cell (aniso/tri), in its eigenbasis
    p_cell = U diag(λ) Uᵀ: the momenta decay with κ = λ + Tr(p_cell)/N_f, positions and
    cell grow with λ."""
    h = 0.5 * dt
    lam, U = jnp.linalg.eigh(p_cell)
    kap = lam + jnp.trace(p_cell) / nf

    def kick(p, f):
        y = p @ U
        xk = -kap * h / W
        return (y * jnp.exp(xk) + h * (f @ U) * exprel(xk)) @ U.T

    def drift(q, p, cell, m):
        xl = lam * dt / W
        return ((q @ U) * jnp.exp(xl) + dt * (p @ U) / m * exprel(xl)) @ U.T, ((cell @ U) * jnp.exp(xl)) @ U.T

    return kick, drift


def _mtk_conserved(state, kT, P0, Q, W, R, nf, first):
    """E_pot + E_kin + both chains' energies + p_cell²/2W + P₀V (eV)."""
    return (
        state.energy
        + kinetic_energy(state.momenta, state.masses)
        + _chain_energy(state.thermostat, Q, kT, nf)
        + _chain_energy(state.barostat, R, kT, first)
        + jnp.sum(state.p_cell**2) / (2.0 * W)
        + P0 * volume(state.cell)
    )


def npt_mtk(
    efs_fn: EFSFn,
    neighbor_fns,
    dt: float,
    tdamp: float,
    pdamp: float,
    mode: str = "iso",
    tchain: int = 3,
    pchain: int = 3,
    tloop: int = 1,
    ploop: int = 1,
    dof: int | None = None,
    cell_dof: int | None = None,
) -> Integrator:
    """Nosé–Hoover NPT with the Martyna–Tobias–Klein barostat.

    ``mode``: ``'iso'`` (cell scaled uniformly), ``'aniso'`` (the three
    Cartesian diagonal components independently; for orthorhombic boxes) or
    ``'tri'`` (all six components of a triclinic cell). ``tdamp``/``pdamp``
    are the thermostat/barostat periods in ASE time (LAMMPS Tdamp/Pdamp).
    Barostat masses as ASE 3.29: W = (N_f + 3) kT τ_P² (iso), W = (N_f/3 + 1)
    kT τ_P² (aniso/tri). ``cell_dof`` — degrees of freedom of the cell
    momenta seen by their thermostat: 1 (iso), 3 (aniso), 6 (tri; ASE uses 9).
    Target pressure is hydrostatic (eV/Å³).

    One step is the symmetric Trotter splitting barostat chain ½ · thermostat
    chain ½ · cell kick ½ · particle kick ½ · drift of positions and cell · forces ·
    particle kick ½ · cell kick ½ · thermostat chain ½ · barostat chain ½.
    """
    _check_positive("timestep", dt)
    _check_positive("tdamp (thermostat damping time)", tdamp)
    _check_positive("pdamp (barostat damping time)", pdamp)
    if mode not in ("iso", "aniso", "tri"):
        raise ConfigurationError(f"unknown barostat mode {mode!r} (use 'iso', 'aniso' or 'tri')")
    if tchain < 1 or pchain < 1:
        raise ConfigurationError("chain lengths must be ≥ 1")
    if cell_dof is None:
        cell_dof = {"iso": 1, "aniso": 3, "tri": 6}[mode]
    iso = mode == "iso"
    cmask = np.eye(3) if mode == "aniso" else np.ones((3, 3))
    first = 1.0 if iso else cell_dof  # the barostat chain's first degrees of freedom
    flow = _iso_flow if iso else _matrix_flow

    def ndof(n):
        return 3 * n - 3 if dof is None else dof

    def masses(state, kT):
        nf = ndof(state.positions.shape[0])
        return (nf, *_mtk_masses(kT, nf, tdamp, pdamp, tchain, pchain, iso, cell_dof))

    def step(state, nbrs, kT, P0):
        nf, Q, W, R = masses(state, kT)
        h = 0.5 * dt
        state = _barostat_half(state, kT, W, R, first, h, ploop)
        state = _thermostat_half(state, kT, Q, nf, h, tloop)
        state = _cell_kick(state, P0, nf, h, iso, cmask)
        kick, drift = flow(state.p_cell, W, nf, dt)
        p = kick(state.momenta, state.forces)
        q, cell = drift(state.positions, p, state.cell, state.masses[:, None])
        e, f, w, aux, nbrs = _forces(efs_fn, neighbor_fns, q, cell, nbrs, state.species)
        p = kick(p, f)
        state = _with_aux(state._replace(positions=q, momenta=p, cell=cell, forces=f, energy=e, virial=w), aux)
        state = _cell_kick(state, P0, nf, h, iso, cmask)
        state = _thermostat_half(state, kT, Q, nf, h, tloop)
        state = _barostat_half(state, kT, W, R, first, h, ploop)
        return _advance_clock(state, dt), nbrs

    def conserved(state, kT, P0):
        nf, Q, W, R = masses(state, kT)
        return _mtk_conserved(state, kT, P0, Q, W, R, nf, first)

    return Integrator(
        _make_init(efs_fn, neighbor_fns, tchain, pchain, None), step, conserved, f"npt_{mode}", dt, ndof, True
    )
