"""Forces = −∂E/∂r, PlusStress = −∂E/∂ε (finite differences), invariances,
and agreement of the single-VJP kernel with the autodiff-in-positions path."""
import jax.numpy as jnp
import numpy as np
import pytest

from mtpjax.geometry.neighbors import host_neighbors
from mtpjax.potential import Configuration, calc_efs
from mtpjax.potential.model import energy_forces_stress_autodiff

from _models import random_cell, random_model


def _energy(model, pos, cell, types):
    c = Configuration(positions=pos, types=types, cell=cell, pbc=np.ones(3, bool))
    return calc_efs(model, [c], min_distance=None)[0]


CASES = [(6, 1), (8, 2), (10, 3), (12, 4), (16, 2)]


@pytest.mark.parametrize("level,nsp", CASES, ids=[f"L{l}-C{c}" for l, c in CASES])
def test_forces_and_stress_finite_differences(templates, level, nsp):
    model = random_model(templates, level, nsp, seed=level + nsp)
    pos, cell, types = random_cell(14, nsp, seed=level)
    res = _energy(model, pos, cell, types)
    h = 1e-5
    rng = np.random.default_rng(1)
    for i in rng.choice(len(pos), 4, replace=False):
        for a in range(3):
            p1, p2 = pos.copy(), pos.copy()
            p1[i, a] += h
            p2[i, a] -= h
            fd = -(_energy(model, p1, cell, types).energy - _energy(model, p2, cell, types).energy) / (2 * h)
            assert abs(fd - res.forces[i, a]) < 1e-6 * max(1.0, abs(fd)), (i, a, fd, res.forces[i, a])
    # PlusStress_ab = -dE/d eps_ab with r -> (I + eps) r applied to positions and cell
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for k, (a, b) in enumerate(voigt):
        e = np.zeros((3, 3))
        e[a, b] = h
        def strained(s):
            d = np.eye(3) + s * e
            return _energy(model, pos @ d.T, cell @ d.T, types).energy
        fd = -(strained(1) - strained(-1)) / (2 * h)
        assert abs(fd - res.plus_stress[k]) < 1e-6 * max(1.0, abs(fd)), (k, fd, res.plus_stress[k])


def test_pair_vjp_equals_autodiff_path(templates):
    model = random_model(templates, 12, 3, seed=5)
    pos, cell, types = random_cell(20, 3, seed=3)
    idx, sh, _ = host_neighbors(pos, cell, [True] * 3, model.cutoff)
    sp = jnp.asarray(model.species_index(types))
    from mtpjax.potential.model import energy_forces_stress

    e1, f1, s1, _ = energy_forces_stress(model, jnp.asarray(pos), jnp.asarray(cell), sp, jnp.asarray(idx), jnp.asarray(sh))
    e2, f2, s2 = energy_forces_stress_autodiff(model, jnp.asarray(pos), jnp.asarray(cell), sp, jnp.asarray(idx), jnp.asarray(sh))
    assert abs(float(e1 - e2)) < 1e-10
    np.testing.assert_allclose(f1, f2, atol=1e-10)
    np.testing.assert_allclose(s1, s2, atol=1e-9)


def test_translation_rotation_permutation_invariance(templates):
    model = random_model(templates, 16, 3, seed=2)
    pos, cell, types = random_cell(16, 3, seed=7)
    base = _energy(model, pos, cell, types)
    # translation (also wraps atoms across the boundary)
    t = _energy(model, pos + np.array([3.3, -7.1, 12.0]), cell, types)
    assert abs(t.energy - base.energy) < 1e-10
    np.testing.assert_allclose(t.forces, base.forces, atol=1e-10)
    # rotation: energy invariant, forces rotate, stress rotates as a tensor
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    r = _energy(model, pos @ q.T, cell @ q.T, types)
    assert abs(r.energy - base.energy) < 1e-10
    np.testing.assert_allclose(r.forces, base.forces @ q.T, atol=1e-9)
    def full(s):
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    np.testing.assert_allclose(full(r.plus_stress), q @ full(base.plus_stress) @ q.T, atol=1e-8)
    # permutation of atoms
    perm = rng.permutation(len(pos))
    p = _energy(model, pos[perm], cell, types[perm])
    assert abs(p.energy - base.energy) < 1e-10
    np.testing.assert_allclose(p.forces, base.forces[perm], atol=1e-10)
    # equivalent cell (lattice reduction c -> c + a) changes nothing
    cell2 = cell.copy()
    cell2[2] += cell[0]
    s = _energy(model, pos, cell2, types)
    assert abs(s.energy - base.energy) < 1e-10
    np.testing.assert_allclose(s.forces, base.forces, atol=1e-10)
    # reflection (improper rotation): MTP basis is O(3) invariant
    m = _energy(model, pos * np.array([-1, 1, 1]), cell * np.array([-1, 1, 1]), types)
    assert abs(m.energy - base.energy) < 1e-10


def test_supercell_is_extensive(templates):
    """E(2×1×1 supercell) = 2 E(cell); forces repeat — tests the periodic images."""
    model = random_model(templates, 10, 2, seed=4)
    pos, cell, types = random_cell(6, 2, seed=11, density=0.08)  # a ~4 Å cell, smaller than the cutoff
    base = _energy(model, pos, cell, types)
    pos2 = np.concatenate([pos, pos + cell[0]])
    cell2 = cell.copy()
    cell2[0] *= 2
    sup = _energy(model, pos2, cell2, np.concatenate([types, types]))
    assert abs(sup.energy - 2 * base.energy) < 1e-9
    np.testing.assert_allclose(sup.forces, np.concatenate([base.forces, base.forces]), atol=1e-9)
    np.testing.assert_allclose(sup.plus_stress, 2 * base.plus_stress, atol=1e-8)


def test_float32_mode_close_to_float64(templates):
    model = random_model(templates, 12, 2, seed=9)
    pos, cell, types = random_cell(20, 2, seed=1)
    r64 = _energy(model, pos, cell, types)
    r32 = _energy(model.astype(jnp.float32), pos, cell, types)
    assert abs(r32.energy - r64.energy) / len(pos) < 1e-5
    assert np.abs(r32.forces - r64.forces).max() < 1e-4 * max(1, np.abs(r64.forces).max())
