"""MD engine: integrators against ASE 3.29 and analytic results, engine features, I/O, CLI.

Fast tests use small LJ argon systems; statistical tests that need long runs are
``@pytest.mark.slow``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mtpjax  # noqa: F401  (float64)
from refdata import REF
import jax
import jax.numpy as jnp
import ase.units as u
from ase.calculators.calculator import Calculator, all_changes
from ase.lattice.cubic import FaceCenteredCubic

from mtpjax.errors import ConfigurationError
from mtpjax.md import forcefields as FF
from mtpjax.md import integrators as I
from mtpjax.geometry.neighbors import neighbor_list
from mtpjax.md.simulation import Simulation, SimulationError, stack_states, unstack
from mtpjax.md.stages import Stage
from mtpjax.units import BAR, FS, KB

POT = REF / "potentials/m2_l12_trained.mtp"
CFG = REF / "inputs/train.cfg"
LJ, RC = FF.lennard_jones()  # argon


def argon(size=(2, 2, 2), a=5.40, jitter=0.05, seed=0, tri=False):
    atoms = FaceCenteredCubic("Ar", size=size, latticeconstant=a)
    rng = np.random.default_rng(seed)
    if tri:
        frac = atoms.get_scaled_positions()
        atoms.cell = atoms.cell.array @ (np.eye(3) + np.array([[0, 0.04, 0.03], [0, 0, 0.02], [0, 0, 0]]))
        atoms.positions = frac @ atoms.cell.array
    atoms.positions += rng.normal(0, jitter, atoms.positions.shape)
    return atoms


class EFSCalculator(Calculator):
    """ASE calculator around an efs_fn with a fresh host-side neighbour list each call."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, efs, rc):
        super().__init__()
        self.efs, self.rc = jax.jit(efs), rc

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        _, nb = neighbor_list(atoms.positions, atoms.cell.array, True, self.rc, 0.0)
        e, f, w = self.efs(jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array), nb,
                           jnp.zeros(len(atoms), jnp.int32))
        s = -np.asarray(w) / atoms.get_volume()
        self.results = dict(energy=float(e), free_energy=float(e), forces=np.asarray(f),
                            stress=s.ravel()[[0, 4, 8, 5, 2, 1]])


_SCANS = {}


def run_scan(integ, state, nbrs, n, kT=0.0, P=0.0):
    """n steps in one jitted scan; returns final state, nbrs and per-step (H, E, K, V, P_inst, overflow)."""
    key = (integ, n, float(kT), float(P))
    go = _SCANS.get(key)
    if go is None:

        def body(c, _):
            st, nb = c
            st, nb = integ.step(st, nb, kT, P)
            out = (integ.conserved(st, kT, P), st.energy, I.kinetic_energy(st.momenta, st.masses),
                   I.volume(st.cell), I.pressure(st), nb.did_overflow)
            return (st, nb), out

        go = _SCANS[key] = jax.jit(lambda st, nb: jax.lax.scan(body, (st, nb), None, length=n))
    (st, nb), outs = go(state, nbrs)
    return st, nb, [np.asarray(o) for o in outs]


def setup(atoms, integ_fn, kT, seed=1, skin=1.0, **kw):
    fns, nb = neighbor_list(atoms.positions, atoms.cell.array, True, RC, skin)
    integ = integ_fn(fns)
    st = integ.init(jnp.asarray(atoms.positions), atoms.get_masses(), atoms.cell.array, nb, kT=kT,
                    key=jax.random.PRNGKey(seed), **kw)
    return integ, st, nb, fns


# ------------------------------------------------------- ASE cross-checks
@pytest.mark.parametrize("kind", ["nvt", "iso", "tri"])
def test_matches_ase_trajectory(kind):
    """Same initial state, same masses/damping → same trajectory as ASE 3.29 (NHC, IsotropicMTKNPT, MTKNPT)."""
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, MTKNPT, NoseHooverChainNVT

    atoms = argon(tri=(kind == "tri"))
    n = len(atoms)
    T, dt, P0 = 90.0, 2 * u.fs, 500 * u.bar
    kT = u.kB * T
    p0 = np.asarray(I.maxwell_boltzmann(jax.random.PRNGKey(4), jnp.asarray(atoms.get_masses()), kT))
    a = atoms.copy()
    a.calc = EFSCalculator(LJ, RC)
    a.set_momenta(p0)
    if kind == "nvt":
        md = NoseHooverChainNVT(a, dt, T, 50 * u.fs)
        mk = lambda f: I.nvt_nose_hoover(LJ, f, dt, 50 * u.fs, dof=3 * n)  # noqa: E731
    elif kind == "iso":
        md = IsotropicMTKNPT(a, dt, T, P0, 50 * u.fs, 300 * u.fs)
        mk = lambda f: I.npt_mtk(LJ, f, dt, 50 * u.fs, 300 * u.fs, "iso", dof=3 * n)  # noqa: E731
    else:
        md = MTKNPT(a, dt, T, P0, 50 * u.fs, 300 * u.fs)
        mk = lambda f: I.npt_mtk(LJ, f, dt, 50 * u.fs, 300 * u.fs, "tri", dof=3 * n, cell_dof=9)  # noqa: E731
    integ, st, nb, _ = setup(atoms, mk, kT, momenta=p0)
    nsteps = 60
    st, nb, (H, *_rest, ov) = run_scan(integ, st, nb, nsteps, kT, P0)
    Hase = []
    for _ in range(nsteps):
        md.run(1)
        Hase.append(md.get_conserved_energy())
    assert not ov.any()
    np.testing.assert_allclose(np.asarray(st.positions), a.positions, atol=1e-9)
    np.testing.assert_allclose(np.asarray(st.cell), a.cell.array, atol=1e-9)
    np.testing.assert_allclose(np.asarray(st.momenta), a.get_momenta(), atol=1e-9)
    np.testing.assert_allclose(H, Hase, atol=1e-9)


# -------------------------------------------------------------------- NVE
def _drift_per_atom_ps(H, dt_fs, n):
    t_ps = np.arange(len(H)) * dt_fs / 1000.0
    return abs(np.polyfit(t_ps, H, 1)[0]) / n


def test_nve_drift_lj_liquid():
    """LJ argon liquid (T≈140 K, ρ≈1.2 g/cm³), dt = 1 fs, 2 ps: drift < 1e-5 eV/atom/ps."""
    atoms = argon(size=(3, 3, 3), a=5.75, jitter=0.2)
    n = len(atoms)
    integ, st, nb, _ = setup(atoms, lambda f: I.nve(LJ, f, 1 * u.fs), u.kB * 220)
    st, nb, (H, E, K, *_r, ov) = run_scan(integ, st, nb, 2000)  # melt / equilibrate
    st, nb, (H, E, K, *_r, ov) = run_scan(integ, st, nb, 2000)
    T = 2 * K.mean() / (3 * n - 3) / u.kB
    drift = _drift_per_atom_ps(H, 1.0, n)
    print(f"LJ NVE: T={T:.1f} K, drift {drift:.2e} eV/atom/ps, std(H)/atom {H.std() / n:.1e}")
    assert not ov.any()
    assert T > 84  # liquid argon
    assert drift < 1e-5


def test_nve_drift_mtp():
    """Level-12 MTP (Cu/Ag/Au), 32-atom cell at ~600 K, dt = 1 fs: drift < 1e-5 eV/atom/ps."""
    from mtpjax.potential import MTP, read_cfg

    model = MTP.from_file(POT)
    c = read_cfg(CFG)[0]
    from ase.data import atomic_masses, atomic_numbers

    masses = atomic_masses[[atomic_numbers[("Cu", "Ag", "Au")[t]] for t in c.types]]
    sp = model.species_index(c.types)
    efs = FF.mtp_efs(model)
    fns, nb = neighbor_list(c.positions, c.cell, True, model.cutoff, 1.0)
    integ = I.nve(efs, fns, 1 * u.fs)
    st = integ.init(jnp.asarray(c.positions), masses, c.cell, nb, sp, kT=u.kB * 600, key=jax.random.PRNGKey(0))
    st, nb, (H, E, K, *_r, ov) = run_scan(integ, st, nb, 600)
    n = len(masses)
    drift = _drift_per_atom_ps(H, 1.0, n)
    print(f"MTP NVE: T={2 * K.mean() / (3 * n - 3) / u.kB:.0f} K, drift {drift:.2e} eV/atom/ps")
    assert not ov.any()
    assert drift < 1e-5


def test_mtp_md_in_atom_blocks_follows_the_same_trajectory():
    """``mtp_efs(model, chunk_atoms=5)`` (E+F+S in blocks of 5 atoms, for huge cells) drives
    NVE MD along the same trajectory as the one-shot kernel: 100 steps of 32 atoms at ~600 K."""
    from ase.data import atomic_masses, atomic_numbers

    from mtpjax.potential import MTP, read_cfg

    model = MTP.from_file(POT)
    c = read_cfg(CFG)[0]
    masses = atomic_masses[[atomic_numbers[("Cu", "Ag", "Au")[t]] for t in c.types]]
    sp = model.species_index(c.types)
    out = []
    for efs in (FF.mtp_efs(model), FF.mtp_efs(model, chunk_atoms=5)):
        fns, nb = neighbor_list(c.positions, c.cell, True, model.cutoff, 1.0)
        integ = I.nve(efs, fns, 1 * u.fs)
        st = integ.init(jnp.asarray(c.positions), masses, c.cell, nb, sp, kT=u.kB * 600, key=jax.random.PRNGKey(0))
        st, nb, (H, *_r) = run_scan(integ, st, nb, 100)
        out.append((np.asarray(st.positions), np.asarray(H)))
    assert np.abs(out[0][0] - out[1][0]).max() < 1e-9
    assert np.abs(out[0][1] - out[1][1]).max() < 1e-8
    assert np.abs(out[0][0] - c.positions).max() > 0.05  # the atoms did move


def test_nve_time_reversible():
    """Forward 500 steps, flip momenta, 500 steps back: the initial positions return."""
    atoms = argon(size=(2, 2, 2), a=5.6, jitter=0.1)
    integ, st0, nb, _ = setup(atoms, lambda f: I.nve(LJ, f, 2 * u.fs), u.kB * 100)
    st, nb, _ = run_scan(integ, st0, nb, 500)
    moved = np.abs(np.asarray(st.positions - st0.positions)).max()
    st = st._replace(momenta=-st.momenta)
    st, nb, _ = run_scan(integ, st, nb, 500)
    err = np.abs(np.asarray(st.positions - st0.positions)).max()
    print(f"reversibility: moved {moved:.2f} Å, returned within {err:.1e} Å")
    assert moved > 0.5
    assert err < 1e-7
    np.testing.assert_allclose(np.asarray(-st.momenta), np.asarray(st0.momenta), atol=1e-7)


# -------------------------------------------------------------------- NVT
def _block_se(x, nblocks=20):
    b = np.asarray(x)[: len(x) // nblocks * nblocks].reshape(nblocks, -1).mean(1)
    return b.mean(), b.std(ddof=1) / np.sqrt(nblocks)


@pytest.mark.parametrize("thermostat", ["nhc", pytest.param("langevin", marks=pytest.mark.slow)])
def test_nvt_kinetic_energy_distribution_small(thermostat):
    """32-atom LJ, 24000 steps of 4 fs: ⟨K⟩ and Var K match Gamma(N_f/2, kT) (block-averaged errors)."""
    atoms = argon(size=(2, 2, 2), a=5.6, jitter=0.1)
    n = len(atoms)
    kT = u.kB * 100.0
    if thermostat == "nhc":
        mk = lambda f: I.nvt_nose_hoover(LJ, f, 4 * u.fs, 100 * u.fs)  # noqa: E731
    else:
        mk = lambda f: I.nvt_langevin(LJ, f, 4 * u.fs, 200 * u.fs)  # noqa: E731
    integ, st, nb, _ = setup(atoms, mk, kT, skin=1.5)
    dof = integ.dof(n)
    st, nb, _ = run_scan(integ, st, nb, 1000, kT)
    st, nb, (H, E, K, *_r, ov) = run_scan(integ, st, nb, 24000, kT)
    assert not ov.any()
    mean_ref, var_ref = dof * kT / 2, dof * kT**2 / 2
    m, se_m = _block_se(K, 24)
    blocks = K.reshape(24, -1)
    bv = blocks.var(1)
    v, se_v = bv.mean(), bv.std(ddof=1) / np.sqrt(24)
    print(f"{thermostat}: <K> {m:.5f} ± {se_m:.5f} (ref {mean_ref:.5f}); Var K {v:.3e} ± {se_v:.1e} (ref {var_ref:.3e})")
    assert abs(m - mean_ref) < 4 * se_m
    assert abs(v - var_ref) < 4 * se_v + 0.05 * var_ref


@pytest.mark.slow
@pytest.mark.parametrize("thermostat", ["nhc", "langevin"])
def test_nvt_kinetic_energy_distribution(thermostat):
    """8 replicas (vmap) of a 108-atom LJ system: ⟨K⟩ and Var K match the canonical Gamma(N_f/2, kT)."""
    atoms = argon(size=(3, 3, 3), a=5.6, jitter=0.1)
    n = len(atoms)
    T = 100.0
    kT = u.kB * T
    R = 8
    if thermostat == "nhc":
        mk = lambda f: I.nvt_nose_hoover(LJ, f, 4 * u.fs, 100 * u.fs)  # noqa: E731
    else:
        mk = lambda f: I.nvt_langevin(LJ, f, 4 * u.fs, 200 * u.fs)  # noqa: E731
    fns, nb = neighbor_list(atoms.positions, atoms.cell.array, True, RC, 2.0)
    integ = mk(fns.for_replicas("r"))
    dof = integ.dof(n)
    sts = [integ.init(jnp.asarray(atoms.positions), atoms.get_masses(), atoms.cell.array, nb, kT=kT,
                      key=jax.random.PRNGKey(10 + r)) for r in range(R)]
    st, nbs = stack_states(sts), stack_states([nb] * R)

    def body(c, _):
        s, b = c
        s, b = jax.vmap(lambda s_, b_: integ.step(s_, b_, kT), axis_name="r")(s, b)
        return (s, b), (jax.vmap(lambda s_: I.kinetic_energy(s_.momenta, s_.masses))(s),
                        jax.vmap(lambda s_: integ.conserved(s_, kT))(s), b.did_overflow)

    go = jax.jit(lambda s, b, n: jax.lax.scan(body, (s, b), None, length=n), static_argnums=2)
    (st, nbs), _ = go(st, nbs, 500)
    (st, nbs), (K, H, ov) = go(st, nbs, 5000)
    assert not np.asarray(ov).any()
    K = np.asarray(K)[::10]  # (samples, R), ~decorrelated every 40 fs
    mean_ref, var_ref = dof * kT / 2, dof * kT**2 / 2
    rep_mean = K.mean(0)
    rep_var = K.var(0)
    m, se_m = rep_mean.mean(), rep_mean.std(ddof=1) / np.sqrt(R)
    v, se_v = rep_var.mean(), rep_var.std(ddof=1) / np.sqrt(R)
    print(f"{thermostat}: <K> {m:.5f} ± {se_m:.5f} (ref {mean_ref:.5f}); Var K {v:.3e} ± {se_v:.1e} (ref {var_ref:.3e})")
    assert abs(m - mean_ref) < 4 * se_m + 1e-3 * mean_ref
    # finite run length biases the variance low by ~ τ_K / T_run; allow 4 σ + 5 %
    assert abs(v - var_ref) < 4 * se_v + 0.05 * var_ref
    H = np.asarray(H)
    assert np.abs(H[-1] - H[0]).max() / n < 2e-3


def test_nvt_conserved_and_ramp():
    """NHC: extended energy drifts < 2e-5 eV/atom/ps at constant T; T follows a linear ramp 60 → 160 K."""
    atoms = argon(size=(3, 3, 3), a=5.6, jitter=0.1)
    n = len(atoms)
    sim = Simulation(LJ, RC, 2 * FS, [Stage("nvt", 1500, 60.0, None, tdamp=100 * FS),
                                      Stage("nvt", 5000, 60.0, 160.0, tdamp=100 * FS)],
                     thermo_every=10, traj_every=500)
    st, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 60.0, seed=2)
    rows = []
    sim.run(st, nb, on_block=lambda r, k, s: rows.append(np.asarray(r)[: int(k)]))
    rows = np.concatenate(rows)
    step, T, H = rows[:, 0], rows[:, 2], rows[:, 6]
    c1 = (step > 300) & (step <= 1500)
    drift = _drift_per_atom_ps(H[c1], 20.0, n)
    ramp = step > 1500
    target = 60 + 100 * (step[ramp] - 1500) / 5000
    resid = (T[ramp] - target).reshape(10, -1).mean(1)
    print(f"NHC drift {drift:.1e} eV/atom/ps; ramp residuals per 500 steps {np.round(resid, 1)} K")
    assert drift < 2e-5
    assert np.abs(resid).max() < 12.0  # T fluctuations of 108 atoms: σ_T ≈ 0.14 T
    assert abs(np.polyfit(step[ramp], T[ramp], 1)[0] * 5000 - 100) < 20


# -------------------------------------------------------------------- NPT
@pytest.mark.parametrize("mode", ["iso", "aniso", "tri"])
def test_npt_conserved_quantity(mode):
    """MTK NPT at 100 K / 200 bar: extended Hamiltonian drift < 5e-5 eV/atom/ps."""
    atoms = argon(size=(3, 3, 3), a=5.5, jitter=0.1, tri=(mode == "tri"))
    n = len(atoms)
    kT, P = u.kB * 100, 200 * u.bar
    integ, st, nb, _ = setup(atoms, lambda f: I.npt_mtk(LJ, f, 2 * u.fs, 100 * u.fs, 500 * u.fs, mode), kT)
    st, nb, (H, E, K, V, Pi, ov) = run_scan(integ, st, nb, 1500, kT, P)
    drift = _drift_per_atom_ps(H, 2.0, n)
    print(f"NPT {mode}: V {V[0]:.0f} → {V.mean():.0f} ± {V.std():.0f} Å³, drift {drift:.1e} eV/atom/ps")
    assert not ov.any()
    assert V.std() > 0
    assert drift < 5e-5
    cell = np.asarray(st.cell)
    if mode == "aniso":
        assert np.abs(cell - np.diag(np.diag(cell))).max() < 1e-12
    if mode == "tri":  # symmetric cell momenta: no rotation of the box
        assert np.abs(np.asarray(st.p_cell) - np.asarray(st.p_cell).T).max() < 1e-12


def test_neighbor_list_exact_under_10pct_compression():
    """Compress a triclinic box by 10 % in steps of 0.5 %; the updated list gives the forces of a fresh list."""
    atoms = argon(size=(3, 3, 3), a=5.4, jitter=0.15, tri=True)
    pos0, cell0 = atoms.positions, atoms.cell.array
    fns, nb = neighbor_list(pos0, cell0, True, RC, 1.0, capacity_multiplier=1.6)
    upd = jax.jit(fns.update)
    efs = jax.jit(LJ)
    sp = jnp.zeros(len(pos0), jnp.int32)
    rng = np.random.default_rng(1)
    for k in range(1, 21):
        s = 1 - 0.005 * k
        cell = cell0 * s
        pos = pos0 * s + rng.normal(0, 0.05, pos0.shape)
        nb = upd(jnp.asarray(pos), jnp.asarray(cell), nb)
        assert not bool(nb.did_overflow)
        _, f, w = efs(jnp.asarray(pos), jnp.asarray(cell), nb, sp)
        _, nb_ref = neighbor_list(pos, cell, True, RC, 0.0)
        _, f_ref, w_ref = efs(jnp.asarray(pos), jnp.asarray(cell), nb_ref, sp)
        np.testing.assert_allclose(np.asarray(f), np.asarray(f_ref), atol=1e-10)
        np.testing.assert_allclose(np.asarray(w), np.asarray(w_ref), atol=1e-9)


@pytest.mark.slow
def test_npt_compression_run_keeps_exact_forces():
    """An NPT run under 5 kbar shrinks the box by > 10 %; final forces equal a from-scratch list's."""
    atoms = argon(size=(3, 3, 3), a=6.2, jitter=0.1, tri=True)
    sim = Simulation(LJ, RC, 2 * FS, [Stage("npt", 2000, 60.0, pressure=8000 * BAR, tdamp=100 * FS,
                                            pdamp=300 * FS, barostat="tri")], thermo_every=10, traj_every=500)
    st0, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 60.0, seed=1)
    res = sim.run(st0, nb)
    v0, v1 = abs(np.linalg.det(atoms.cell.array)), abs(np.linalg.det(np.asarray(res.state.cell)))
    _, nb_ref = neighbor_list(np.asarray(res.state.positions), np.asarray(res.state.cell), True, RC, 0.0)
    _, f_ref, _ = LJ(res.state.positions, res.state.cell, nb_ref, res.state.species)
    print(f"volume {v0:.0f} → {v1:.0f} Å³ ({(1 - v1 / v0) * 100:.1f} % smaller)")
    assert v1 < 0.9 * v0
    np.testing.assert_allclose(np.asarray(res.state.forces), np.asarray(f_ref), atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["iso", "tri"])
def test_npt_statistics_vs_ase(mode):
    """⟨P⟩ = target within error, and ⟨V⟩, σ_V agree with ASE's MTK NPT on the same LJ system."""
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, MTKNPT

    atoms = argon(size=(2, 2, 2), a=5.7, jitter=0.1, tri=(mode == "tri"))
    n = len(atoms)
    T, P = 100.0, 300 * u.bar
    kT = u.kB * T
    dt, td, pd = 4 * u.fs, 100 * u.fs, 400 * u.fs
    nsteps, neq = 50_000, 5000
    integ, st, nb, _ = setup(atoms, lambda f: I.npt_mtk(LJ, f, dt, td, pd, mode, dof=3 * n,
                                                         cell_dof=None if mode == "iso" else 9), kT)
    st, nb, _ = run_scan(integ, st, nb, neq, kT, P)
    st, nb, (H, E, K, V, Pi, ov) = run_scan(integ, st, nb, nsteps, kT, P)
    a = atoms.copy()
    a.calc = EFSCalculator(LJ, RC)
    a.set_momenta(np.asarray(I.maxwell_boltzmann(jax.random.PRNGKey(3), jnp.asarray(a.get_masses()), kT)))
    md = (IsotropicMTKNPT if mode == "iso" else MTKNPT)(a, dt, T, P, td, pd)
    md.run(neq)
    Va = []
    for _ in range(nsteps // 10 // 4):
        md.run(10)
        Va.append(a.get_volume())
    Va = np.array(Va)
    pm, pse = _block_se(Pi)
    vm, vse = _block_se(V)
    vam, vase = _block_se(Va)
    print(f"{mode}: <P> {pm / u.bar:.0f} ± {pse / u.bar:.0f} bar (target 300); <V> {vm:.1f} ± {vse:.1f} vs ASE "
          f"{vam:.1f} ± {vase:.1f}; σ_V {V.std():.1f} vs ASE {Va.std():.1f}")
    assert abs(pm - P) < 4 * pse
    assert abs(vm - vam) < 4 * np.hypot(vse, vase)
    assert abs(V.std() / Va.std() - 1) < 0.25


@pytest.mark.slow
def test_npt_volume_and_fluctuations_match_nvt_equation_of_state():
    """Independent of ASE's sampling: MTK NPT (iso) ⟨V⟩ at P₀ equals the volume where the NVT equation
    of state ⟨P⟩(V) crosses P₀, and Var V = kT·V·κ_T with κ_T = −(1/V) dV/dP from the same NVT runs."""
    atoms = argon(size=(3, 3, 3), a=5.7, jitter=0.1)
    n = len(atoms)
    T, P0 = 100.0, 300 * u.bar
    kT = u.kB * T
    dt, td, pd = 4 * u.fs, 100 * u.fs, 400 * u.fs
    integ, st, nb, _ = setup(atoms, lambda f: I.npt_mtk(LJ, f, dt, td, pd, "iso", dof=3 * n), kT)
    st, nb, _ = run_scan(integ, st, nb, 5000, kT, P0)
    V = np.concatenate([run_scan(integ, st, nb, 60_000, kT, P0)[2][3]])
    vm, vse = _block_se(V)
    pts = []
    for f in (0.985, 1.0, 1.015):
        a = atoms.copy()
        a.set_cell(atoms.cell.array * (f * vm / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
        ig, s2, nb2, _ = setup(a, lambda fn: I.nvt_nose_hoover(LJ, fn, dt, td, dof=3 * n), kT, seed=2)
        s2, nb2, _ = run_scan(ig, s2, nb2, 5000, kT)
        pm, pse = _block_se(run_scan(ig, s2, nb2, 40_000, kT)[2][4])
        pts.append((a.get_volume(), pm, pse))
    v, p, pe = map(np.asarray, zip(*pts))
    (slope, icpt), cov = np.polyfit(v, p, 1, w=1 / pe, cov="unscaled")
    v_star = (P0 - icpt) / slope
    # error of the crossing from the fit covariance (linear propagation)
    g = np.array([-(P0 - icpt) / slope**2, -1 / slope])
    v_star_se = float(np.sqrt(g @ cov @ g))
    kappa = -1.0 / (v_star * slope)
    var_expected = kT * v_star * kappa
    print(f"NPT <V> {vm:.2f} ± {vse:.2f} Å³; NVT EOS crossing {v_star:.2f} ± {v_star_se:.2f} Å³; "
          f"Var V {V.var():.2f} vs kT V κ {var_expected:.2f} Å⁶ (κ = {kappa * u.bar * 1e4:.2f}e-4 /bar)")
    assert abs(vm - v_star) < 4 * np.hypot(vse, v_star_se)
    assert abs(V.var() / var_expected - 1) < 0.25


@pytest.mark.slow
def test_nvt_matches_ase_statistics():
    """NHC NVT ⟨E_pot⟩ and σ(E_pot) agree with ASE's NoseHooverChainNVT over long runs."""
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    atoms = argon(size=(2, 2, 2), a=5.6, jitter=0.1)
    n = len(atoms)
    kT = u.kB * 100
    integ, st, nb, _ = setup(atoms, lambda f: I.nvt_nose_hoover(LJ, f, 4 * u.fs, 100 * u.fs, dof=3 * n), kT)
    st, nb, (H, E, *_r) = run_scan(integ, st, nb, 40_000, kT)
    a = atoms.copy()
    a.calc = EFSCalculator(LJ, RC)
    a.set_momenta(np.asarray(I.maxwell_boltzmann(jax.random.PRNGKey(5), jnp.asarray(a.get_masses()), kT)))
    md = NoseHooverChainNVT(a, 4 * u.fs, 100, 100 * u.fs)
    Ea = []
    for _ in range(1000):
        md.run(10)
        Ea.append(a.get_potential_energy())
    m, se = _block_se(E)
    ma, sea = _block_se(np.array(Ea))
    print(f"<E_pot> {m:.4f} ± {se:.4f} vs ASE {ma:.4f} ± {sea:.4f}; σ {E.std():.4f} vs {np.std(Ea):.4f}")
    assert abs(m - ma) < 4 * np.hypot(se, sea)
    assert abs(E.std() / np.std(Ea) - 1) < 0.2


# ---------------------------------------------------------------- engine
def test_maxwell_boltzmann_seeded_zero_momentum():
    m = jnp.asarray(np.random.default_rng(0).uniform(1, 200, 500))
    p1 = I.maxwell_boltzmann(jax.random.PRNGKey(7), m, u.kB * 300)
    p2 = I.maxwell_boltzmann(jax.random.PRNGKey(7), m, u.kB * 300)
    assert np.array_equal(np.asarray(p1), np.asarray(p2))
    assert np.abs(np.asarray(p1.sum(0))).max() < 1e-10
    T = float(2 * I.kinetic_energy(p1, m) / (3 * 500 - 3) / u.kB)
    assert abs(T - 300) < 1e-9


def test_replicas_equal_individual_runs():
    """vmap over 3 replicas (different seeds and temperatures) == three separate runs, bit for bit."""
    atoms = argon()
    stage = [Stage("nvt", 100, 80.0, tdamp=100 * FS)]
    temps = [60.0, 80.0, 120.0]
    simR = Simulation(LJ, RC, 2 * FS, stage, thermo_every=10, traj_every=100, replicas=3, replica_temperatures=temps)
    pos = np.stack([atoms.positions] * 3)
    cells = np.stack([atoms.cell.array] * 3)
    stR, nbR = simR.init_state(pos, atoms.get_masses(), cells, np.zeros(len(atoms), int), None, seed=[1, 2, 3])
    resR = simR.run(stR, nbR)
    for r in range(3):
        stg = [Stage("nvt", 100, temps[r], tdamp=100 * FS)]
        sim = Simulation(LJ, RC, 2 * FS, stg, thermo_every=10, traj_every=100, neighbor_fns=simR.neighbor_fns)
        st = sim.integrator(stg[0]).init(jnp.asarray(atoms.positions), atoms.get_masses(), atoms.cell.array,
                                         unstack(nbR, r), None, kT=KB * temps[r], key=jax.random.PRNGKey(r + 1))
        res = sim.run(st, unstack(nbR, r))
        np.testing.assert_allclose(np.asarray(res.state.positions), np.asarray(resR.state.positions[r]), atol=1e-12)


def test_hook_early_stop_returns_last_frame_below_threshold():
    """A hook (max displacement from the start) stops the block; the state returned is the last one below it."""
    atoms = argon()
    x0 = jnp.asarray(atoms.positions)
    thr = 0.3

    def hook(st, nb):
        return jnp.max(jnp.linalg.norm(st.positions - x0, axis=-1)), thr

    sim = Simulation(LJ, RC, 2 * FS, [Stage("nvt", 2000, 150.0, tdamp=100 * FS)], thermo_every=5,
                     traj_every=1000, hook=(hook, 5))
    st, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 150.0, seed=1)
    rows = []
    res = sim.run(st, nb, on_block=lambda r, k, s: rows.append(np.asarray(r)[: int(k)]))
    assert res.stopped_by_hook and res.hook_value > thr
    d = float(np.max(np.linalg.norm(np.asarray(res.state.positions) - atoms.positions, axis=-1)))
    assert d <= thr and int(res.state.step) % 5 == 0 and int(res.state.step) < 2000
    # one more hook interval from the returned state crosses the threshold
    rows = np.concatenate(rows)
    assert rows[-1, 0] == int(res.state.step) and rows[-1, -1] <= thr


def test_overflow_reallocates_and_redoes_block():
    """Too-small capacity: the first block overflows, is re-allocated and redone; same result as a big list."""
    from dataclasses import replace

    atoms = argon(size=(3, 3, 3), a=5.6)
    stage = [Stage("nvt", 200, 80.0, tdamp=100 * FS)]
    ref = Simulation(LJ, RC, 2 * FS, stage, thermo_every=10, traj_every=100)
    st, nb = ref.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 80.0, seed=1)
    res_ref = ref.run(st, nb)
    sim = Simulation(LJ, RC, 2 * FS, stage, thermo_every=10, traj_every=100)
    sim.allocate(atoms.positions, atoms.cell.array)
    small = replace(sim.neighbor_fns, capacity=sim.neighbor_fns.capacity // 2)
    sim.neighbor_fns = small
    nb_small = jax.jit(small.build)(st.positions, st.cell)
    assert bool(nb_small.did_overflow)
    res = sim.run(st, nb_small)
    assert sim.neighbor_fns.capacity > small.capacity
    np.testing.assert_allclose(np.asarray(res.state.positions), np.asarray(res_ref.state.positions), atol=1e-9)
    _, nb_ref = neighbor_list(np.asarray(res.state.positions), np.asarray(res.state.cell), True, RC, 0.0)
    _, f_ref, _ = LJ(res.state.positions, res.state.cell, nb_ref, res.state.species)
    np.testing.assert_allclose(np.asarray(res.state.forces), np.asarray(f_ref), atol=1e-10)


def test_morse_and_generic_energy_adapter():
    """Any JAX energy works: autodiff adapter == pair adapter (forces, virial); Morse NVE conserves energy."""
    efs_pair, rc = FF.morse()
    atoms = FaceCenteredCubic("Cu", size=(3, 3, 3), latticeconstant=3.61)
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)
    fns, nb = neighbor_list(atoms.positions, atoms.cell.array, True, rc, 0.5)

    def energy(pos, cell, nbrs, species):
        return efs_pair(pos, cell, nbrs, species)[0]

    efs_ad = FF.efs_from_energy(energy)
    sp = jnp.zeros(len(atoms), jnp.int32)
    a = jax.jit(efs_pair)(jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array), nb, sp)
    b = jax.jit(efs_ad)(jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array), nb, sp)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-10)
    integ = I.nve(efs_ad, fns, 1 * u.fs)
    st = integ.init(jnp.asarray(atoms.positions), atoms.get_masses(), atoms.cell.array, nb, kT=u.kB * 300,
                    key=jax.random.PRNGKey(0))
    st, nb, (H, *_r, ov) = run_scan(integ, st, nb, 1000)
    assert _drift_per_atom_ps(H, 1.0, len(atoms)) < 1e-5


def _attractive_only(depth=0.3, width=2.0, cutoff=4.0):
    """A pair energy with no repulsive core (−D·exp(−r²/w²), shifted): everything collapses."""

    def pair(r, si, sj):
        return jnp.where(r < cutoff, -depth * (jnp.exp(-(r / width) ** 2) - np.exp(-(cutoff / width) ** 2)), 0.0)

    return FF.efs_from_pair_energy(pair), cutoff


def test_fused_atoms_stop_the_run_with_a_clear_message():
    """Atoms that come closer than Simulation.min_distance (a potential without a repulsive core) stop
    the run as exploded instead of integrating fused atoms."""
    efs, rc = _attractive_only()
    atoms = argon(size=(2, 2, 2), a=5.4)
    sim = Simulation(efs, rc, 2 * FS, [Stage("nvt", 20_000, 300.0, tdamp=100 * FS)], thermo_every=10,
                     traj_every=100, min_distance=0.7)
    st, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 300.0, seed=1)
    with pytest.raises(SimulationError, match="closer than 0.7"):
        sim.run(st, nb)


def test_collapsing_box_stops_instead_of_growing_the_neighbour_list():
    """NPT with an attractive-only potential: the box collapses, the neighbour capacity would grow
    without bound; the run stops with a clear message once it passes max_capacity_growth × the first."""
    efs, rc = _attractive_only(depth=0.05, width=3.0)
    atoms = argon(size=(2, 2, 2), a=6.5)
    sim = Simulation(efs, rc, 2 * FS, [Stage("npt", 50_000, 100.0, pressure=1000 * BAR, tdamp=100 * FS,
                                             pdamp=300 * FS)],
                     thermo_every=10, traj_every=200, min_distance=0.0, max_capacity_growth=2.0)
    st, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 100.0, seed=1)
    with pytest.raises(SimulationError, match="collapsed"):
        sim.run(st, nb)


def test_explosion_stops_with_clear_message():
    atoms = argon(a=5.3)
    atoms.positions[1] = atoms.positions[0] + [2.3, 0.0, 0.0]  # a violent start
    sim = Simulation(LJ, RC, 10 * FS, [Stage("nve", 2000)], thermo_every=10, traj_every=100, max_temperature=500)
    st, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 300.0, seed=1)
    with pytest.raises(SimulationError, match="exploded"):
        sim.run(st, nb)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(ensemble="nvx"), "unknown ensemble"),
        (dict(ensemble="nvt", temperature=100.0, tdamp=0.0), "tdamp"),
        (dict(ensemble="npt", temperature=100.0, tdamp=1.0, pdamp=-1.0), "pdamp"),
        (dict(ensemble="npt", temperature=100.0, tdamp=1.0, pdamp=1.0, barostat="xyz"), "barostat"),
        (dict(ensemble="nvt", temperature=None, tdamp=1.0), "temperature"),
    ],
)
def test_bad_stage_parameters(kw, match):
    with pytest.raises(ConfigurationError, match=match):
        Stage(steps=10, **kw).validate()


def test_bad_timestep():
    for dt in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigurationError, match="timestep"):
            I.nve(LJ, None, dt)
        with pytest.raises(ConfigurationError, match="timestep"):
            Simulation(LJ, RC, dt, [Stage("nve", 10)])


# -------------------------------------------------------- stage changes
ENSEMBLE_STAGES = {
    "nve": dict(ensemble="nve"),
    "nvt": dict(ensemble="nvt", temperature=60.0, tdamp=100 * FS),
    "langevin": dict(ensemble="langevin", temperature=60.0, tdamp=100 * FS),
    "npt-iso": dict(ensemble="npt", temperature=60.0, tdamp=100 * FS, pressure=100 * BAR, pdamp=500 * FS,
                    barostat="iso"),
    "npt-aniso": dict(ensemble="npt", temperature=60.0, tdamp=100 * FS, pressure=100 * BAR, pdamp=500 * FS,
                      barostat="aniso"),
    "npt-tri": dict(ensemble="npt", temperature=60.0, tdamp=100 * FS, pressure=100 * BAR, pdamp=500 * FS,
                    barostat="tri"),
}


@pytest.mark.parametrize("first", list(ENSEMBLE_STAGES))
def test_every_order_of_two_ensembles_runs_and_conserves_per_stage(first):
    """Any ensemble followed by any other (NVT→NPT included: the extended variables are sized per stage by
    ``enter_stage``): both stages run, the conserved quantity of each stage is conserved within it (drift
    < 5e-4 eV/atom over 300 steps of 2 fs) and the new stage starts from the last positions and momenta."""
    from mtpjax.md.stages import enter_stage  # noqa: F811

    atoms = argon(tri=True)
    n = len(atoms)
    stage0 = Stage(steps=300, name="a", **ENSEMBLE_STAGES[first])
    sim = Simulation(LJ, RC, 2 * FS, [stage0], thermo_every=10, traj_every=300)
    st0, nb0 = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 60.0, seed=3)
    for second in ENSEMBLE_STAGES:  # one Simulation: its compiled blocks serve every pair
        stages = [stage0, Stage(steps=300, name="b", **ENSEMBLE_STAGES[second])]
        sim.stages = stages
        rows, ends = [], []
        sim.run(st0, nb0, on_block=lambda r, k, s: rows.append(np.asarray(r)[: int(k)]),
                on_frame=lambda s, pos: ends.append(s))
        rows = np.concatenate(rows)
        step, H = rows[:, 0], rows[:, 6]
        assert step[-1] == 600 and np.all(np.isfinite(rows[:, :14])), (first, second)
        for lo, hi in ((0, 300), (310, 600)):  # Langevin's conserved quantity includes the bath's heat
            h = H[(step >= lo) & (step <= hi)]
            assert np.ptp(h) / n < 5e-4, (first, second, np.ptp(h) / n)
        # the extended variables start at rest exactly where the two stages disagree
        s1 = enter_stage(ends[0], stages[0], stages[1])
        assert s1.thermostat.eta.shape[-1] == (3 if stages[1].ensemble in ("nvt", "npt") else 1)
        np.testing.assert_array_equal(np.asarray(s1.positions), np.asarray(ends[0].positions))
        np.testing.assert_array_equal(np.asarray(s1.momenta), np.asarray(ends[0].momenta))
        same_barostat = stages[0].ensemble == stages[1].ensemble == "npt" and stages[0].barostat == stages[1].barostat
        if same_barostat:
            np.testing.assert_array_equal(np.asarray(s1.p_cell), np.asarray(ends[0].p_cell))
        else:
            assert not np.any(np.asarray(s1.p_cell))
