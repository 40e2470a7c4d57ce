"""Tests of the moment-tensor basis generator (``mtpjax.potential.basis``).

The reference is MLIP's level templates (MLIP-3 ``MTP_templates/LL.almtp``, BSD data, in
``tests/data/mlip_templates``); the counts are also checked against the table of
``tests/data/mlip_ref/README.md`` (hard-coded below, so those checks need no data).
"""
from __future__ import annotations

import functools
import itertools
import re
import time

import numpy as np
import pytest

from mtpjax.potential import basis as basis_module
from mtpjax.potential.basis import (
    MomentBasis,
    evaluate_moments,
    generate_basis,
    moment_level,
)

LEVELS = list(range(2, 30, 2))

# level: (alpha_moments_count, alpha_index_basic_count, alpha_index_times_count,
#         alpha_scalar_moments, radial_funcs_count)   -- mlip_ref/README.md
MLIP_COUNTS = {
    2: (1, 1, 0, 1, 1),
    4: (2, 1, 1, 2, 1),
    6: (8, 5, 5, 5, 2),
    8: (18, 11, 14, 9, 2),
    10: (41, 25, 42, 16, 3),
    12: (84, 46, 117, 29, 3),
    14: (174, 81, 348, 52, 4),
    16: (350, 130, 969, 92, 4),
    18: (718, 201, 2634, 163, 5),
    20: (1352, 295, 6349, 288, 5),
    22: (2621, 421, 15431, 500, 6),
    24: (4991, 581, 36170, 864, 6),
    26: (9396, 706, 82520, 1464, 6),
    28: (17366, 866, 180069, 2445, 6),
}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _parse_template_tables(path) -> dict:
    """Read the basis tables of an MLIP ``.mtp``/``.almtp`` template (``<<<`` comments stripped).

    Returns a dict with ``radial_funcs_count``, ``alpha_moments_count``, ``alpha_index_basic``
    ``(n, 4)``, ``alpha_index_times`` ``(m, 4)`` and ``alpha_moment_mapping`` ``(S,)``; the
    declared ``*_count`` lines are checked against the array sizes.
    """
    fields = {}
    with open(path) as fh:
        for line in fh:
            line = line.split("<<<", 1)[0].strip()
            if "=" in line:
                key, value = line.split("=", 1)
                fields[key.strip()] = value.strip()

    def ints(text):
        return np.array([int(x) for x in re.findall(r"-?\d+", text)], dtype=np.int64)

    out = {
        "radial_funcs_count": int(fields["radial_funcs_count"]),
        "alpha_moments_count": int(fields["alpha_moments_count"]),
        "alpha_index_basic": ints(fields["alpha_index_basic"]).reshape(-1, 4),
        "alpha_index_times": ints(fields["alpha_index_times"]).reshape(-1, 4),
        "alpha_moment_mapping": ints(fields["alpha_moment_mapping"]),
    }
    assert out["alpha_index_basic"].shape[0] == int(fields["alpha_index_basic_count"])
    assert out["alpha_index_times"].shape[0] == int(fields["alpha_index_times_count"])
    assert out["alpha_moment_mapping"].shape[0] == int(fields["alpha_scalar_moments"])
    return out


def _template_file(templates, level):
    name = f"depreciated-{level:02d}.almtp" if level < 6 else f"{level:02d}.almtp"
    path = templates / name
    assert path.is_file(), f"template {path} missing from tests/data"
    return path


@functools.lru_cache(maxsize=None)
def _template(path) -> MomentBasis:
    t = _parse_template_tables(path)
    return MomentBasis(
        level=-1,
        radial_funcs_count=t["radial_funcs_count"],
        alpha_index_basic=t["alpha_index_basic"],
        alpha_index_times=t["alpha_index_times"],
        alpha_moment_mapping=t["alpha_moment_mapping"],
        alpha_moments_count=t["alpha_moments_count"],
    )


def _neighbourhoods(n_samples=3, n_neigh=6, n_radial=6, seed=1234):
    """Random unit vectors (s, n, 3) and radial values f_mu(r_j) (s, K, n), |f| in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_samples, n_neigh, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    f = rng.uniform(0.5, 1.5, size=(n_samples, n_radial, n_neigh))
    f *= rng.choice([-1.0, 1.0], size=f.shape)
    return u, f


def _basis_values(basis: MomentBasis, u, f):
    """Values of the scalar basis functions, (S, n_samples)."""
    k = basis.radial_funcs_count
    return evaluate_moments(basis, f[:, :k], u)[:, basis.alpha_moment_mapping].T


def _assert_same_function_sets(a, b, what):
    """``a``, ``b``: (S, n_samples) values of two sets of functions; equal up to a permutation."""
    assert a.shape == b.shape, f"{what}: {a.shape[0]} vs {b.shape[0]} functions"
    scale = max(np.abs(a).max(), np.abs(b).max(), 1.0)
    ia = np.lexsort(a.T[::-1])
    ib = np.lexsort(b.T[::-1])
    close = np.isclose(a[ia], b[ib], rtol=1e-9, atol=1e-11 * scale).all(axis=1)
    assert close.all(), f"{what}: {np.count_nonzero(~close)} of {len(close)} functions differ"
    # the functions of one set are pairwise distinct (no function appears twice)
    s = a[ia]
    dup = np.isclose(s[1:], s[:-1], rtol=1e-9, atol=1e-11 * scale).all(axis=1)
    assert not dup.any(), f"{what}: {np.count_nonzero(dup)} duplicated functions"


# --- an independent, brute-force description of the basis: all contraction graphs ------------
def _contraction_graphs(level, max_factors=4, max_mu=5, max_nu=10):
    """All scalar contractions (loopless multigraphs of basic tensors) of level <= ``level``.

    Returns a list of ``(labels, edges)``: labels ``(mu, nu)`` per node and a dict
    ``{(a, b): multiplicity}``; one representative per isomorphism class.
    """
    types = [
        (mu, nu)
        for mu in range(max_mu + 1)
        for nu in range(max_nu + 1)
        if moment_level(mu, nu) <= level
    ]
    result = []
    for p in range(1, max_factors + 1):
        pairs = list(itertools.combinations(range(p), 2))
        perms = list(itertools.permutations(range(p)))
        for labels in itertools.combinations_with_replacement(types, p):
            if sum(moment_level(*t) for t in labels) > level:
                continue
            seen = set()

            def rec(k, rem, cur):
                if k == len(pairs):
                    if any(rem):
                        return
                    e = dict(zip(pairs, cur))
                    e.update({(b, a): m for (a, b), m in zip(pairs, cur)})
                    canon = min(
                        tuple(e[(q[a], q[b])] for a, b in pairs)
                        for q in perms
                        if all(labels[q[i]] == labels[i] for i in range(p))
                    )
                    if canon not in seen:
                        seen.add(canon)
                        result.append((labels, dict(zip(pairs, canon))))
                    return
                a, b = pairs[k]
                for m in range(min(rem[a], rem[b]) + 1):
                    r = list(rem)
                    r[a] -= m
                    r[b] -= m
                    rec(k + 1, r, cur + (m,))

            if p == 1:
                if labels[0][1] == 0:
                    result.append((labels, {}))
            else:
                rec(0, [nu for _, nu in labels], ())
    return result


def _graph_values(graphs, u, f):
    """Contraction of each graph computed directly as a sum over neighbour tuples, (S, s)."""
    gram = np.einsum("sik,sjk->sij", u, u)
    letters = "abcd"
    out = []
    for labels, edges in graphs:
        ops, subs = [], []
        for a, (mu, _) in enumerate(labels):
            ops.append(f[:, mu])
            subs.append("z" + letters[a])
        for (a, b), m in edges.items():
            if m:
                ops.append(gram**m)
                subs.append("z" + letters[a] + letters[b])
        out.append(np.einsum(",".join(subs) + "->z", *ops, optimize=True))
    return np.array(out)


@functools.lru_cache(maxsize=None)
def _graphs_and_values_28():
    graphs = _contraction_graphs(28)
    u, f = _neighbourhoods()
    levels = np.array([sum(moment_level(*t) for t in labels) for labels, _ in graphs])
    return levels, _graph_values(graphs, u, f)


# ----------------------------------------------------------------------------------------------
# counts
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_counts_match_mlip_templates(level):
    b = generate_basis(level)
    assert (
        b.alpha_moments_count,
        b.alpha_index_basic.shape[0],
        b.alpha_index_times.shape[0],
        b.alpha_moment_mapping.shape[0],
        b.radial_funcs_count,
    ) == MLIP_COUNTS[level]
    assert b.level == level
    assert b.alpha_index_basic_count == MLIP_COUNTS[level][1]
    assert b.alpha_index_times_count == MLIP_COUNTS[level][2]
    assert b.alpha_scalar_moments == MLIP_COUNTS[level][3]


# ----------------------------------------------------------------------------------------------
# comparison with the templates
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_tables_identical_to_template(level, templates):
    """The generator reproduces MLIP's tables exactly (same slots, rows and order)."""
    t = _template(_template_file(templates, level))
    b = generate_basis(level)
    assert b.radial_funcs_count == t.radial_funcs_count
    assert b.alpha_moments_count == t.alpha_moments_count
    np.testing.assert_array_equal(b.alpha_index_basic, t.alpha_index_basic)
    np.testing.assert_array_equal(b.alpha_index_times, t.alpha_index_times)
    np.testing.assert_array_equal(b.alpha_moment_mapping, t.alpha_moment_mapping)


@pytest.mark.parametrize("level", LEVELS)
def test_same_basis_functions_as_template(level, templates):
    """Same set of basis functions as the template, whatever their order/program.

    Canonical form of a basis function = its values on random neighbourhoods with random
    radial-function values per mu.
    """
    t = _template(_template_file(templates, level))
    b = generate_basis(level)
    u, f = _neighbourhoods()
    _assert_same_function_sets(_basis_values(b, u, f), _basis_values(t, u, f), f"level {level}")


# ----------------------------------------------------------------------------------------------
# the rule, independently of the templates
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_basis_is_all_contractions_up_to_level(level):
    """Basis = all contractions of <= 4 basic tensors (mu <= 5, nu <= 10) of level <= L.

    The expected functions are computed directly as sums over neighbour tuples of products of
    f_mu and powers of cos(angle), independently of the contraction program.
    """
    levels, values = _graphs_and_values_28()
    expected = values[levels <= level]
    u, f = _neighbourhoods()
    _assert_same_function_sets(
        _basis_values(generate_basis(level), u, f), expected, f"level {level}"
    )


def test_scalar_counts_sequence():
    assert [generate_basis(level).alpha_moment_mapping.shape[0] for level in LEVELS] == [
        1, 2, 5, 9, 16, 29, 52, 92, 163, 288, 500, 864, 1464, 2445,
    ]


@pytest.mark.parametrize("level", LEVELS)
def test_rotation_and_permutation_invariance(level):
    b = generate_basis(level)
    u, f = _neighbourhoods(seed=7)
    ref = _basis_values(b, u, f)
    rng = np.random.default_rng(level)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1  # proper rotation
    rotated = _basis_values(b, u @ q.T, f)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(rotated, ref, rtol=1e-9, atol=1e-11 * scale)
    # also inversion (the contractions only involve dot products) and neighbour permutation
    perm = rng.permutation(u.shape[1])
    other = _basis_values(b, -u[:, perm], f[:, :, perm])
    np.testing.assert_allclose(other, ref, rtol=1e-9, atol=1e-11 * scale)
    # the basis functions are not (trivially) constant: a rotation of one neighbour changes them
    u2 = u.copy()
    u2[:, 0] = u2[:, 0] @ q.T
    if level >= 6:
        assert not np.allclose(_basis_values(b, u2, f), ref, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# structure of the program
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_program_structure(level):
    b = generate_basis(level)
    basic, times, mapping = b.alpha_index_basic, b.alpha_index_times, b.alpha_moment_mapping
    for a, ncol in ((basic, 4), (times, 4)):
        assert a.dtype == np.int64 and a.ndim == 2 and a.shape[1] == ncol
    assert mapping.dtype == np.int64 and mapping.ndim == 1
    nb = basic.shape[0]
    # basic rows: mu ascending, nu ascending, x power descending, then y power descending
    mu, nu = basic[:, 0], basic[:, 1:].sum(axis=1)
    keys = list(zip(mu, nu, -basic[:, 1], -basic[:, 2]))
    assert keys == sorted(keys) and len(set(keys)) == nb
    assert mu.max() + 1 == b.radial_funcs_count and set(mu) == set(range(b.radial_funcs_count))
    assert (mu <= 5).all() and (nu <= 10).all()
    assert all(moment_level(int(m), int(n)) <= level for m, n in zip(mu, nu))
    if times.size:
        i, j, m, k = times.T
        assert (k >= nb).all() and (k < b.alpha_moments_count).all()
        assert (np.diff(k) >= 0).all()
        assert (i <= j).all() and (j < k).all() and (m >= 1).all()
        assert set(k) == set(range(nb, b.alpha_moments_count))  # every derived slot written
    assert len(set(mapping.tolist())) == mapping.size
    assert (mapping >= 0).all() and (mapping < b.alpha_moments_count).all()
    # levels / number of factors of every slot, propagated through the program
    lev = np.zeros(b.alpha_moments_count, dtype=np.int64)
    nfac = np.zeros(b.alpha_moments_count, dtype=np.int64)
    lev[:nb] = 2 + 4 * mu + nu
    nfac[:nb] = 1
    for i, j, _, k in times.tolist():
        if nfac[k]:
            assert (lev[k], nfac[k]) == (lev[i] + lev[j], nfac[i] + nfac[j])
        lev[k], nfac[k] = lev[i] + lev[j], nfac[i] + nfac[j]
    assert (lev[mapping] <= level).all() and (lev[mapping] % 2 == 0).all()
    assert (nfac[mapping] <= 4).all()
    assert lev[mapping].max() == level


def test_evaluate_moments_matches_sequential_program():
    b = generate_basis(12)
    u, f = _neighbourhoods(n_samples=1)
    out = evaluate_moments(b, f[0, : b.radial_funcs_count], u[0])
    m = np.zeros(b.alpha_moments_count)
    for s, (mu, x, y, z) in enumerate(b.alpha_index_basic.tolist()):
        m[s] = np.sum(f[0, mu] * u[0, :, 0] ** x * u[0, :, 1] ** y * u[0, :, 2] ** z)
    for i, j, mult, k in b.alpha_index_times.tolist():
        m[k] += mult * m[i] * m[j]
    np.testing.assert_allclose(out, m, rtol=1e-12, atol=1e-12)


def test_level8_example():
    """The level-8 basis of mtp.md section 4.4 (M00, M10, M00^2, M01.M01, M02:M02, ...)."""
    b = generate_basis(8)
    assert b.alpha_index_basic.tolist() == [
        [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 2, 0, 0], [0, 1, 1, 0],
        [0, 1, 0, 1], [0, 0, 2, 0], [0, 0, 1, 1], [0, 0, 0, 2], [1, 0, 0, 0],
    ]
    assert b.alpha_index_times.tolist() == [
        [0, 0, 1, 11], [1, 1, 1, 12], [2, 2, 1, 12], [3, 3, 1, 12], [4, 4, 1, 13],
        [5, 5, 2, 13], [6, 6, 2, 13], [7, 7, 1, 13], [8, 8, 2, 13], [9, 9, 1, 13],
        [0, 10, 1, 14], [0, 11, 1, 15], [0, 12, 1, 16], [0, 15, 1, 17],
    ]
    assert b.alpha_moment_mapping.tolist() == [0, 10, 11, 12, 13, 14, 15, 16, 17]
    assert b.alpha_moments_count == 18 and b.radial_funcs_count == 2


# ----------------------------------------------------------------------------------------------
# API details
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, 1, 3, 7, 29, 30, -2, 2.5, 16.0, "8", None, True])
def test_invalid_levels(bad):
    with pytest.raises(ValueError, match="level"):
        generate_basis(bad)


def test_numpy_integer_level_and_cache():
    b = generate_basis(16)
    assert generate_basis(np.int64(16)).alpha_moments_count == b.alpha_moments_count
    assert generate_basis(16) is b
    for a in (b.alpha_index_basic, b.alpha_index_times, b.alpha_moment_mapping):
        assert not a.flags.writeable
    with pytest.raises(Exception):
        b.level = 3  # frozen


def test_level28_generation_time():
    t0 = time.perf_counter()
    b = basis_module._generate(28)  # bypass the cache
    dt = time.perf_counter() - t0
    assert b.alpha_moments_count == 17366
    assert dt < 30.0, f"level 28 took {dt:.1f} s"
