"""The MTP as a jax-md energy (mtpjax.potential.jaxmd): energy, forces and stress equal the ASE calculator's on
a triclinic cell; jax-md's NVT Nosé–Hoover conserves its invariant; NPT (the box passed at call time) and FIRE
run; cells that jax-md's minimum-image neighbour list cannot represent are refused."""
import numpy as np
import pytest
from ase.build import bulk

import mtpjax  # noqa: F401  (float64)
from mtpjax.errors import ConfigurationError
from mtpjax.potential import MTP, MTPCalculator, read_cfg
from mtpjax.potential.jaxmd import mtp_neighbor_list, perpendicular_widths
from mtpjax.units import FS, KB
from refdata import REF

jax_md = pytest.importorskip("jax_md")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax_md import minimize, partition, quantity, simulate, space  # noqa: E402

# jax-md's own neighbour list scatters int64 candidates into int32 under float64
pytestmark = pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")

SYMBOLS = ["Cu", "Ag", "Au"]  # species 0, 1, 2 of the potential (MLIP types 0, 1, 2)


@pytest.fixture(scope="module")
def mtp():
    return MTP.from_file(REF / "potentials/m2_l08_trained.mtp")


def species_of(atoms):
    return np.searchsorted([29, 47, 79], atoms.numbers).astype(np.int32)


def jaxmd_system(atoms):
    """(box with the lattice vectors as columns, fractional positions) of an ASE cell in standard form."""
    return jnp.asarray(atoms.cell[:].T), jnp.asarray(atoms.get_scaled_positions())


@pytest.fixture(scope="module")
def triclinic():
    """A skewed triclinic Cu/Ag/Au cell from MLIP's reference inputs (lower-triangular rows), doubled so that
    every width (≈ 18 Å) exceeds 2 × (cutoff + skin) = 11 Å, then rattled: 384 atoms."""
    atoms = read_cfg(REF / "inputs/test_in.cfg")[1].to_atoms(SYMBOLS).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    return atoms


@pytest.fixture(scope="module")
def alloy():
    """A random fcc Cu/Ag/Au alloy in a triclinic (primitive fcc, 6×6×6) cell near equilibrium: 216 atoms."""
    atoms = bulk("Ag", "fcc", a=4.08)
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms = atoms.repeat(6)
    atoms.numbers = np.random.default_rng(0).choice([29, 47, 79], size=len(atoms), p=[0.1, 0.45, 0.45])
    atoms.rattle(0.05, seed=1)
    return atoms


def observables(energy_fn, R, nbrs, box):
    """Energy (eV), forces (eV/Å), jax-md's stress and pressure (eV/Å³), in one compiled call."""
    def f(R, nbrs, box):
        return (energy_fn(R, nbrs), quantity.force(energy_fn)(R, neighbor=nbrs),
                quantity.stress(energy_fn, R, box, neighbor=nbrs), quantity.pressure(energy_fn, R, box, neighbor=nbrs))
    return jax.jit(f)(R, nbrs, box)


def test_energy_forces_stress_equal_the_calculator(mtp, triclinic):
    atoms = triclinic.copy()
    atoms.calc = MTPCalculator(mtp, symbols=SYMBOLS)
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
    s_ref = atoms.get_stress(voigt=False)
    box, R = jaxmd_system(atoms)
    displacement, _ = space.periodic_general(box)
    neighbor_fn, energy_fn = mtp_neighbor_list(displacement, box, mtp, species_of(atoms))
    nbrs = neighbor_fn.allocate(R)
    assert not nbrs.did_buffer_overflow
    e, f, stress, pressure = observables(energy_fn, R, nbrs, box)
    assert abs(float(e) - e_ref) < 1e-10
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-10)
    # jax-md's stress is −(1/V) ∂E/∂ε (minus ASE's), its pressure −tr(σ_ASE)/3; both pass box= at call time
    np.testing.assert_allclose(stress, -s_ref, rtol=0, atol=1e-8)
    assert abs(float(pressure) + np.trace(s_ref) / 3) < 1e-8

    # positions in Å (fractional_coordinates=False)
    displacement_real, _ = space.periodic_general(box, fractional_coordinates=False)
    nf, ef = mtp_neighbor_list(displacement_real, box, mtp, species_of(atoms), fractional_coordinates=False)
    Rr = jnp.asarray(atoms.positions)
    e, f = jax.jit(lambda R, nb: (ef(R, nb), quantity.force(ef)(R, neighbor=nb)))(Rr, nf.allocate(Rr))
    assert abs(float(e) - e_ref) < 1e-10
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-10)
    # a box instead of a displacement: space.periodic_general(box)
    nf2, ef2 = mtp_neighbor_list(box, box, mtp, species_of(atoms))
    assert abs(float(jax.jit(ef2)(R, nf2.allocate(R))) - e_ref) < 1e-10


def test_nvt_nose_hoover_conserves_its_invariant(mtp, alloy):
    box, R = jaxmd_system(alloy)
    mass = jnp.asarray(alloy.get_masses())[:, None]  # amu: time in Å·√(amu/eV), FS of it per fs
    displacement, shift = space.periodic_general(box)
    neighbor_fn, energy_fn = mtp_neighbor_list(displacement, box, mtp, species_of(alloy))
    nbrs = neighbor_fn.allocate(R)
    kT, dt = 300 * KB, 2.0 * FS
    init, apply = simulate.nvt_nose_hoover(energy_fn, shift, dt, kT, tau=100 * FS)
    state = init(jax.random.PRNGKey(0), R, mass=mass, neighbor=nbrs)

    @jax.jit
    def run(state, nbrs):
        def body(_, carry):
            s, nb = carry
            nb = nb.update(s.position)
            return apply(s, neighbor=nb), nb
        return jax.lax.fori_loop(0, 80, body, (state, nbrs))

    def invariant(s, nb):
        return float(simulate.nvt_nose_hoover_invariant(energy_fn, s, kT, neighbor=nb))

    h0 = invariant(state, nbrs)
    state2, nbrs2 = run(state, nbrs)
    assert not nbrs2.did_buffer_overflow
    drift = abs(invariant(state2, nbrs2) - h0) / len(R)
    assert drift < 1e-5, drift  # eV/atom over 160 fs (≈ 1e-6 seen)
    t = float(quantity.temperature(momentum=state2.momentum, mass=mass)) / KB
    assert 100 < t < 600, t
    assert not np.allclose(state2.position, R)


def test_npt_nose_hoover_takes_the_box_at_call_time(mtp, alloy):
    """jax-md's NPT moves the box and passes it to the energy: after the run, the energy in the new box equals
    the calculator's on the same cell (cell = box.T), and the volume moved."""
    box, R = jaxmd_system(alloy)
    mass = jnp.asarray(alloy.get_masses())[:, None]
    displacement, shift = space.periodic_general(box)
    neighbor_fn, energy_fn = mtp_neighbor_list(displacement, box, mtp, species_of(alloy))
    nbrs = neighbor_fn.allocate(R)
    kT, dt = 300 * KB, 2.0 * FS
    init, apply = simulate.npt_nose_hoover(energy_fn, shift, dt, 0.0, kT, barostat_kwargs={"tau": 500 * FS},
                                           thermostat_kwargs={"tau": 100 * FS})
    state = init(jax.random.PRNGKey(1), R, box, mass=mass, neighbor=nbrs)

    @jax.jit
    def run(state, nbrs):
        def body(_, carry):
            s, nb = carry
            nb = nb.update(s.position, box=simulate.npt_box(s))
            return apply(s, neighbor=nb), nb
        return jax.lax.fori_loop(0, 30, body, (state, nbrs))

    state2, nbrs2 = run(state, nbrs)
    assert not nbrs2.did_buffer_overflow
    box2 = simulate.npt_box(state2)
    v0, v1 = float(jnp.linalg.det(box)), float(jnp.linalg.det(box2))
    assert v1 != pytest.approx(v0, rel=1e-4)  # under −6 GPa at P = 0 the cell shrinks
    atoms = alloy.copy()
    atoms.set_cell(np.asarray(box2).T)
    atoms.set_scaled_positions(np.asarray(state2.position))
    atoms.calc = MTPCalculator(mtp, symbols=SYMBOLS)
    assert abs(float(energy_fn(state2.position, nbrs2, box=box2)) - atoms.get_potential_energy()) < 1e-10


def test_fire_descent_relaxes(mtp, alloy):
    box, R = jaxmd_system(alloy)
    displacement, shift = space.periodic_general(box)
    neighbor_fn, energy_fn = mtp_neighbor_list(displacement, box, mtp, species_of(alloy))
    nbrs = neighbor_fn.allocate(R)
    init, apply = minimize.fire_descent(energy_fn, shift, dt_start=5 * FS, dt_max=20 * FS)
    state = init(R, mass=jnp.asarray(alloy.get_masses())[:, None], neighbor=nbrs)

    @jax.jit
    def run(state, nbrs):
        def body(_, carry):
            s, nb = carry
            nb = nb.update(s.position)
            return apply(s, neighbor=nb), nb
        return jax.lax.fori_loop(0, 30, body, (state, nbrs))

    state2, nbrs2 = run(state, nbrs)
    assert float(energy_fn(state2.position, nbrs2)) < float(energy_fn(R, nbrs)) - 1.0
    assert float(jnp.abs(state2.force).max()) < 0.5 * float(jnp.abs(state.force).max())


def test_cells_narrower_than_twice_the_cutoff_are_refused(mtp, triclinic):
    small = read_cfg(REF / "inputs/test_in.cfg")[1].to_atoms(SYMBOLS)  # widths ≈ 9 Å < 2 × 5.5 Å
    box, R = jaxmd_system(small)
    displacement, _ = space.periodic_general(box)
    with pytest.raises(ConfigurationError, match="minimum-image.*mtpjax.md.simulate"):
        mtp_neighbor_list(displacement, box, mtp, species_of(small))
    # the allocation checks the box it is given
    box2, R2 = jaxmd_system(triclinic)
    displacement2, _ = space.periodic_general(box2)
    neighbor_fn, energy_fn = mtp_neighbor_list(displacement2, box2, mtp, species_of(triclinic))
    with pytest.raises(ConfigurationError, match="neighbor_fn.allocate"):
        neighbor_fn.allocate(R2, box=0.5 * box2)
    # inside jit (NPT shrinking the box) the energy turns NaN instead of missing periodic images
    nbrs = neighbor_fn.allocate(R2)
    assert float(np.min(perpendicular_widths(0.5 * box2))) < 2 * mtp.cutoff
    assert np.isnan(float(jax.jit(lambda b: energy_fn(R2, nbrs, box=b))(0.5 * box2)))
    assert np.isfinite(float(jax.jit(lambda b: energy_fn(R2, nbrs, box=b))(box2)))
    # free space (space.free) has no periodic width to check
    _, ef = mtp_neighbor_list(space.free()[0], 8.0, mtp, np.zeros(4, np.int32), fractional_coordinates=False)
    assert ef is not None


def test_bad_input_is_refused(mtp, triclinic):
    box, R = jaxmd_system(triclinic)
    displacement, _ = space.periodic_general(box)
    with pytest.raises(ConfigurationError, match="Dense"):
        mtp_neighbor_list(displacement, box, mtp, species_of(triclinic), format=partition.Sparse)
    with pytest.raises(ConfigurationError, match="species"):
        mtp_neighbor_list(displacement, box, mtp, None)  # three species: indices needed
    with pytest.raises(ConfigurationError, match="0..2"):
        mtp_neighbor_list(displacement, box, mtp, np.full(len(R), 3))
    neighbor_fn, _ = mtp_neighbor_list(displacement, box, mtp, species_of(triclinic)[:-1])
    with pytest.raises(ConfigurationError, match="atoms"):
        neighbor_fn.allocate(R)
