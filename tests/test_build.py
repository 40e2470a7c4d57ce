"""Tests of mtpjax.builders; distances are checked with ASE's own neighbour list
(an implementation independent of ours)."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.neighborlist import neighbor_list

from mtpjax.builders import PRESETS, PS4, build_amorphous, build_preset, production_supercell, stack_interface
from mtpjax.builders.amorphous import cell_for_density, random_packing
from mtpjax.errors import ConfigurationError


def _mass_amu(symbols):
    return sum(atomic_masses[atomic_numbers[s]] for s in symbols)


def _check_min_distances(at, table, default=1.5):
    """Every pair of atoms in different units respects its minimum distance."""
    i, j, d = neighbor_list("ijd", at, 4.5)
    sym = np.array(at.get_chemical_symbols())
    uid = at.arrays["unit_id"]
    inter = uid[i] != uid[j]
    for (a, b), dmin in table.items():
        m = inter & (((sym[i] == a) & (sym[j] == b)) | ((sym[i] == b) & (sym[j] == a)))
        if m.any():
            assert d[m].min() >= dmin - 1e-9, (a, b, d[m].min(), dmin)
    return d[inter].min()


@pytest.mark.parametrize("name,n_atoms,comp", [("Li3PS4", 96, {"Li": 36, "P": 12, "S": 48}),
                                               ("Li3B11O18", 128, {"Li": 12, "B": 44, "O": 72})])
def test_presets_cell_density_composition_distances(name, n_atoms, comp):
    at = build_preset(name, seed=3)
    assert len(at) == n_atoms
    assert {s: at.get_chemical_symbols().count(s) for s in comp} == comp
    L = PRESETS[name]["cell"]
    np.testing.assert_allclose(at.cell.lengths(), L)
    rho = _mass_amu(at.get_chemical_symbols()) * 1.66053906660 / np.prod(L)
    assert at.info["density_g_cm3"] == pytest.approx(rho, rel=1e-12)
    # hand values: 12 Li3PS4 in 2141.28 Å^3 -> 1.675 g/cm3; 4 Li3B11O18 in 1532.16 Å^3 -> 1.854
    assert rho == pytest.approx({"Li3PS4": 1.675, "Li3B11O18": 1.854}[name], abs=2e-3)
    _check_min_distances(at, PRESETS[name]["min_distances"])
    assert np.all(at.pbc)


def test_ps4_units_intact_and_randomly_oriented():
    at = build_preset("Li3PS4", seed=11)
    sym = np.array(at.get_chemical_symbols())
    i, j, D = neighbor_list("ijD", at, 2.5)
    pmask = (sym[i] == "P") & (sym[j] == "S")
    counts = np.bincount(i[pmask], minlength=len(at))[sym == "P"]
    assert np.all(counts == 4)
    np.testing.assert_allclose(np.linalg.norm(D[pmask], axis=1), 2.05, atol=1e-9)
    # S-P-S angles tetrahedral (109.47°) and orientations differ between units
    normals = []
    for p in np.flatnonzero(sym == "P"):
        v = D[pmask & (i == p)]
        cosang = (v @ v.T)[np.triu_indices(4, 1)] / 2.05 ** 2
        np.testing.assert_allclose(cosang, -1 / 3, atol=1e-9)
        normals.append(v[0] / 2.05)
    normals = np.array(normals)
    assert np.abs(normals @ normals.T - np.eye(len(normals))).max() > 0.3
    # each P's unit_id is shared by exactly its 4 S
    uid = at.arrays["unit_id"]
    for p in np.flatnonzero(sym == "P"):
        assert sorted(sym[uid == uid[p]]) == ["P", "S", "S", "S", "S"]


def test_reproducible_per_seed():
    a, b, c = build_preset("Li3PS4", seed=5), build_preset("Li3PS4", seed=5), build_preset("Li3PS4", seed=6)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    assert np.abs(a.positions - c.positions).max() > 1.0


def test_target_density_is_exact():
    items = [(PS4, 12), ("Li", 36)]
    at = build_amorphous(items, density_g_cm3=1.5, seed=0, min_distances=PRESETS["Li3PS4"]["min_distances"])
    rho = _mass_amu(at.get_chemical_symbols()) * 1.66053906660 / at.get_volume()
    assert rho == pytest.approx(1.5, rel=1e-12)
    np.testing.assert_allclose(at.cell.lengths()[:2], [12.0, 12.0])
    c = cell_for_density([("Li", 10)], 0.534, a=5.0, b=5.0)
    assert 10 * 6.94 * 1.66054 / np.linalg.det(c) == pytest.approx(0.534, rel=1e-4)
    at = build_preset("Li3B11O18", seed=1, density_g_cm3=2.09)  # paper's relaxed density
    assert at.info["density_g_cm3"] == pytest.approx(2.09, rel=1e-12)


def test_impossible_packing_raises_clear_error():
    with pytest.raises(ConfigurationError, match="packing impossible"):
        random_packing(np.eye(3) * 5.0, [("Li", 50)], {("Li", "Li"): 2.5})
    # passes the hard-sphere pre-check but cannot be packed by insertion
    with pytest.raises(ConfigurationError, match="could not pack"):
        random_packing(np.eye(3) * 8.0, [("Li", 30)], {("Li", "Li"): 2.6}, max_batches=5, n_restarts=2)
    with pytest.raises(ConfigurationError, match="exactly one"):
        build_amorphous([("Li", 2)])
    with pytest.raises(ConfigurationError, match="unknown preset"):
        build_preset("LiPON")


def _slab_pair(z_bottom_li, z_top_li):
    """Two 10 Å cells with one Li each at given heights (plus far-away O)."""
    cell = np.diag([8.0, 8.0, 10.0])
    bot = Atoms("LiO", positions=[[1, 1, z_bottom_li], [5, 5, 5]], cell=cell, pbc=True)
    top = Atoms("LiO", positions=[[1, 1, z_top_li], [5, 5, 5]], cell=cell, pbc=True)
    return bot, top


def test_interface_gap_search_is_minimal_and_rule_holds():
    # cross distance = (10 − 9.5) + s + 0.66 = s + 1.16 ≥ 2.5  ->  s ≥ 1.34  ->  1.35
    bot, top = _slab_pair(9.5, 0.66)
    it = stack_interface(bot, top)
    assert it.info["gap_A"] == pytest.approx(1.35)
    assert it.info["min_cross_A"] == pytest.approx(1.35 + 1.16)
    np.testing.assert_allclose(it.cell.lengths(), [8, 8, 20 + 2 * 1.35])
    # independent check with ASE: no cross-interface Li-Li pair under 2.5 Å
    i, j, d = neighbor_list("ijd", it, 2.5)
    reg = it.arrays["region"]
    sym = np.array(it.get_chemical_symbols())
    assert not np.any((reg[i] != reg[j]) & (sym[i] == "Li") & (sym[j] == "Li"))
    # and the next smaller gap would have violated it
    with pytest.raises(ConfigurationError, match="no gap"):
        stack_interface(bot, top, gaps=[1.30], lateral_tries=0)
    # no vertical gap in range works -> a lateral shift is searched
    bot, top = _slab_pair(9.9, 0.05)
    with pytest.raises(ConfigurationError, match="best 1.65"):
        stack_interface(bot, top, lateral_tries=0)
    it = stack_interface(bot, top, seed=1)
    assert it.info["min_cross_A"] >= 2.5 and np.any(np.array(it.info["lateral_frac"]) != 0)
    with pytest.raises(ConfigurationError, match="in-plane"):
        stack_interface(bot, Atoms("Li", cell=[8, 9, 10], pbc=True))


def test_paper_interface_and_supercells():
    from mtpjax.analysis.structure import decompose_formula_units, molecular_units

    lps, lbo = build_preset("Li3PS4", seed=0), build_preset("Li3B11O18", seed=0)
    it = stack_interface(lps, lbo)
    assert len(it) == 224 and 1.2 <= it.info["gap_A"] <= 1.5 and it.info["min_cross_A"] >= 2.5
    assert decompose_formula_units(it, ["Li3PS4", "Li3B11O18"]) == [12, 4]
    assert molecular_units(it, "P", "S", 2.6) == {"PS4": 12}  # no unit cut by the stacking
    from mtpjax.builders import cross_interface_min_distance

    assert cross_interface_min_distance(it, None) >= 1.6
    big = production_supercell(lps, "bulk")
    assert len(big) == 768 and np.allclose(big.cell.lengths(), [24, 24, 29.74])
    assert len(np.unique(big.arrays["unit_id"])) == 8 * len(np.unique(lps.arrays["unit_id"]))
    assert molecular_units(big, "P", "S", 2.6) == {"PS4": 96}
    assert len(production_supercell(build_preset("Li3B11O18"), "bulk")) == 1024
    bi = production_supercell(it, "interface")
    assert len(bi) == 896 and np.sum(bi.arrays["region"] == 1) == 512
    with pytest.raises(ConfigurationError):
        production_supercell(lps, "slab")


# ---------------------------------------------------------------- borate network
def _bo_coordination(at, r=1.7):
    i, j = neighbor_list("ij", at, r)
    z = at.numbers
    nb = np.bincount(i[(z[i] == 5) & (z[j] == 8)], minlength=len(at))[z == 5]
    no = np.bincount(i[(z[i] == 8) & (z[j] == 5)], minlength=len(at))[z == 8]
    return nb, no


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_borate_network_li3b11o18_is_a_bridged_bo3_bo4_network(seed):
    from mtpjax.builders import borate_network

    md = PRESETS["Li3B11O18"]["min_distances"]
    at = borate_network(11, 18, [("Li", 3)], density_g_cm3=1.854, a=7.0, b=7.0, min_distances=md, seed=seed)
    assert at.get_chemical_formula() == "B11Li3O18"
    assert abs(_mass_amu(at.get_chemical_symbols()) * 1.66053906660 / at.get_volume() - 1.854) < 1e-9
    nb, no = _bo_coordination(at)
    # 18 O on 11 B: every O bridges two B (36 bond ends) → 8 BO3 + 3 BO4, as in the crystal
    assert sorted(nb.tolist()) == [3] * 8 + [4] * 3, nb
    assert np.all(no == 2), no
    assert at.info["bo_bridging"] == 18 and at.info["bo_bond_max_A"] < 1.6
    # Li packed around the network with the preset's minimum distances; no O–O or B–B clash
    _check_min_distances(at, {("Li", "Li"): md[("Li", "Li")], ("Li", "O"): md[("Li", "O")],
                              ("Li", "B"): md[("Li", "B")], ("O", "O"): 1.8, ("B", "B"): 2.0})
    again = borate_network(11, 18, [("Li", 3)], density_g_cm3=1.854, a=7.0, b=7.0, min_distances=md, seed=seed)
    np.testing.assert_array_equal(at.positions, again.positions)


def test_network_topology_degrees_and_errors():
    from mtpjax.builders import network_topology

    rng = np.random.default_rng(0)
    e = network_topology(11, 18, rng)
    deg = np.bincount(e.ravel(), minlength=11)
    assert len(e) == 18 and sorted(deg.tolist()) == [3] * 8 + [4] * 3
    assert np.all(e[:, 0] != e[:, 1]) and len({tuple(x) for x in e}) == 18
    e = network_topology(5, 8, rng)
    assert sorted(np.bincount(e.ravel(), minlength=5).tolist()) == [3, 3, 3, 3, 4]
    with pytest.raises(ConfigurationError, match="simple"):  # B3O6: 6 bridges between 3 B → double bridges
        network_topology(3, 6, rng)
    with pytest.raises(ConfigurationError, match="connected"):
        network_topology(5, 2, rng)
    with pytest.raises(ConfigurationError, match="too many"):
        network_topology(2, 5, rng)


def test_local_topology_bridges_nearest_borons():
    """Bridges by B–B distance: on a simple cubic B lattice (2.5 Å spacing, 2 × 2 × 2 in a 5 Å cell, three
    distinct nearest borons each) the 12 bridges of B8O12 without noise are exactly the 12 nearest-neighbour
    pairs; with the default noise the degrees are right and the bridges are much shorter than a random
    graph's on the same positions."""
    from mtpjax.builders import local_topology, network_topology

    g = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3) * 2.5
    cell = np.eye(3) * 5.0
    rng = np.random.default_rng(0)

    def lengths(e, x):
        d = x[e[:, 1]] - x[e[:, 0]]
        d -= np.rint(d / 5.0) * 5.0
        return np.linalg.norm(d, axis=1)

    e = local_topology(g, cell, 12, rng, noise=0.0)
    assert len(e) == 12 and sorted(np.bincount(e.ravel(), minlength=8).tolist()) == [3] * 8
    np.testing.assert_allclose(lengths(e, g), 2.5)
    x = rng.random((11, 3)) * 7.0
    loc, rnd = [], []
    for _ in range(20):
        e = local_topology(x, np.eye(3) * 7.0, 18, rng)
        assert sorted(np.bincount(e.ravel(), minlength=11).tolist()) == [3] * 8 + [4] * 3
        assert len({tuple(v) for v in e}) == 18 and np.all(e[:, 0] != e[:, 1])
        d = x[e[:, 1]] - x[e[:, 0]]
        loc.append(np.linalg.norm(d - np.rint(d / 7.0) * 7.0, axis=1).mean())
        e = network_topology(11, 18, rng)
        d = x[e[:, 1]] - x[e[:, 0]]
        rnd.append(np.linalg.norm(d - np.rint(d / 7.0) * 7.0, axis=1).mean())
    assert np.mean(loc) < 0.85 * np.mean(rnd), (np.mean(loc), np.mean(rnd))


def test_borate_network_paper_size_cell_is_embedded():
    """The paper's 128-atom Li3B11O18 cell (4 formula units): with local bridges every B–O bond of the
    network is embedded (< 1.6 Å; the random graph leaves bonds stretched past 2.5 Å), 32 BO3 + 12 BO4."""
    from mtpjax.builders import borate_network

    at = borate_network(44, 72, [("Li", 12)], density_g_cm3=1.854, a=11.0, b=11.0,
                        min_distances=PRESETS["Li3B11O18"]["min_distances"], seed=0)
    assert len(at) == 128 and at.info["bo_bond_max_A"] < 1.6
    nb, no = _bo_coordination(at)
    assert sorted(nb.tolist()) == [3] * 32 + [4] * 12 and np.all(no == 2)


def test_borate_network_random_topology_still_available():
    from mtpjax.builders import borate_network

    at = borate_network(11, 18, [("Li", 3)], density_g_cm3=1.854, a=7.0, b=7.0, seed=4, topology="random")
    nb, no = _bo_coordination(at)
    assert sorted(nb.tolist()) == [3] * 8 + [4] * 3 and np.all(no == 2)
    with pytest.raises(ConfigurationError, match="topology"):
        borate_network(11, 18, density_g_cm3=1.854, a=7.0, b=7.0, topology="crystal")


def test_borate_network_cut_plane_and_interface():
    from mtpjax.builders import borate_network, roll_fewest_cut_bonds

    lbo = borate_network(11, 18, [("Li", 3)], density_g_cm3=1.854, a=7.0, b=7.0, seed=3)
    rolled = roll_fewest_cut_bonds(lbo)
    # independent count: B–O bonds whose two ends are in different c-images after the roll
    i, j, S = neighbor_list("ijS", rolled, 2.0)
    z = rolled.numbers
    m = (z[i] == 5) & (z[j] == 8)
    fz = rolled.get_scaled_positions(wrap=True)[:, 2]
    crossing = int(np.sum(np.floor(fz[j][m] + S[m, 2]) != 0))
    assert crossing == rolled.info["cut_bonds"]
    assert rolled.info["cut_bonds"] <= 2  # 18 bridges in a 7 Å cell: a plane cutting ≤ 2 exists
    lps = build_amorphous([(PS4, 2), ("Li", 6)], density_g_cm3=1.677, a=7.0, b=7.0,
                          min_distances=PRESETS["Li3PS4"]["min_distances"], seed=1)
    it = stack_interface(lps, rolled, seed=1)
    nb, _ = _bo_coordination(it)
    assert nb.sum() == 36 - rolled.info["cut_bonds"]  # only the bonds of the cut plane are lost


def test_borate_network_bad_inputs():
    from mtpjax.builders import borate_network

    with pytest.raises(ConfigurationError, match="at least one B"):
        borate_network(0, 3, density_g_cm3=1.8)
    with pytest.raises(ConfigurationError, match="exactly one of"):
        borate_network(11, 18, density_g_cm3=1.8, cell=(7.0, 7.0, 7.0))
    with pytest.raises(ConfigurationError, match="too many oxygens"):
        borate_network(2, 5, cell=(7.0, 7.0, 7.0))
