"""MTPCalculator travels to process pools, Dask and Parsl workers: a used calculator pickles and deep-copies
without its compiled functions or neighbour list, and the copy computes the same energy, forces and stress, in
this process and in spawned workers."""
import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from ase.calculators.calculator import all_changes

from mtpjax.potential import MTP, MTPCalculator, read_cfg
from refdata import REF

SYMBOLS = ["Cu", "Ag", "Au"]  # MLIP types 0, 1, 2 of the potential


def potential_energy(calc, atoms):
    """What a worker does with a shipped calculator (imported by the spawned workers)."""
    atoms.calc = calc
    return atoms.get_potential_energy()


@pytest.fixture(scope="module")
def used():
    """(calculator after one get_forces, its atoms): a periodic 32-atom Cu/Ag/Au cell of MLIP's test set."""
    atoms = read_cfg(REF / "inputs/test_in.cfg")[0].to_atoms(SYMBOLS)
    calc = MTPCalculator(MTP.from_file(REF / "potentials/m2_l08_trained.mtp"), symbols=SYMBOLS)
    atoms.calc = calc
    atoms.get_forces()
    assert calc._nbrs is not None  # it holds a neighbour list and compiled functions now
    return calc, atoms


def efs(calc, atoms):
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy(), a.get_forces(), a.get_stress()


@pytest.mark.parametrize("clone", ["pickle", "deepcopy"])
def test_a_used_calculator_clones_and_computes_the_same(used, clone):
    calc, atoms = used
    e0, f0, s0 = efs(calc, atoms)
    state = calc.__getstate__()
    assert not set(state) & {"_fns", "_update", "_nbrs", "_key"}
    assert all(isinstance(x, np.ndarray) for x in (state["model"].radial_coeffs, state["model"].moment_coeffs))
    twin = pickle.loads(pickle.dumps(calc)) if clone == "pickle" else copy.deepcopy(calc)
    assert twin._nbrs is None and twin._fns is None
    # ASE's last results travel with it...
    assert twin.results["energy"] == calc.results["energy"]
    np.testing.assert_array_equal(twin.results["forces"], calc.results["forces"])
    # ...and computed afresh they are the same
    twin.reset()
    e1, f1, s1 = efs(twin, atoms)
    assert abs(e1 - e0) <= 1e-12
    np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-12)
    # the twin keeps working across moves (neighbour list reused, then rebuilt), like the original
    moved = atoms.copy()
    moved.positions[0] += [0.05, -0.03, 0.02]
    for c in (calc, twin):
        c.calculate(moved, ["energy", "forces", "stress"], all_changes)
    assert abs(twin.results["energy"] - calc.results["energy"]) <= 1e-12
    np.testing.assert_allclose(twin.results["forces"], calc.results["forces"], rtol=0, atol=1e-12)
    # the original is untouched by the cloning: still its neighbour list, still the same numbers
    assert calc._nbrs is not None
    e2, f2, _ = efs(calc, atoms)
    assert abs(e2 - e0) <= 1e-12


def test_calculator_in_a_spawned_process_pool(used):
    calc, atoms = used
    cells = []
    for seed in range(3):
        a = atoms.copy()
        a.rattle(0.03, seed=seed)
        cells.append(a)
    here = [efs(calc, a)[0] for a in cells]
    efs(calc, atoms)  # the calculator's last atoms are none of the cells: every worker computes
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = list(pool.map(potential_energy, [calc] * len(cells), cells))
    np.testing.assert_allclose(there, here, rtol=0, atol=1e-10)
