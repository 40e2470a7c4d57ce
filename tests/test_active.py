"""MaxVol active sets and extrapolation grades against analytic facts and MLIP.

Reference numbers: ``tests/data/mlip_ref`` (MLIP-2 ``calc-grade``/``select-add``
with al_pool.cfg, init 1e-5, select 1.1, swap 1.0000001, energy rows /N;
MLIP-3 ``calculate_grade``/``select_add`` with its stored states).
"""
import itertools
import subprocess
import sys

import equinox as eqx
import jax
import numpy as np
import pytest

from mtpjax.active.grade import build_active_set, grade_configs, select_add
from mtpjax.active.maxvol import ActiveSet, ActiveSetError, grades, maxvol_swaps, maxvol_swaps_blocked, select
from mtpjax.active.rows import selection_rows
from mtpjax.potential.params import params as param_vector
from mtpjax.active.state import format_state, parse_state, read_state, write_state
from mtpjax.potential import MTP, read_cfg, read_mtp
from mtpjax.potential.evaluate import prepare_batches
from mtpjax.potential.model import efs_batch

from refdata import REF


def _mv(path):
    return np.array([float(c.features["MV_grade"]) for c in read_cfg(path)])


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))


# 6-decimal printing (%f) of MV_grade: |error| ≤ 5e-7 absolute (plus float64 noise of big grades)
def _assert_mv(g, ref):
    np.testing.assert_array_less(np.abs(g - ref), 5.01e-7 + 2e-8 * np.abs(ref))


@pytest.fixture(scope="module")
def test_in():
    return read_cfg(REF / "inputs/test_in.cfg")


@pytest.fixture(scope="module")
def pool():
    return read_cfg(REF / "inputs/al_pool.cfg")


# ---------------------------------------------------------------- rows
def test_rows_equal_autodiff_jacobian(test_in):
    """Configuration rows = ∂E/∂θ / N (jacrev of efs_batch), nbh rows sum to ∂E/∂θ,
    parameter order radial (a,b,μ,β), species, moment."""
    m = MTP.from_file(REF / "potentials/synth_l08_s3.mtp")
    confs = [test_in[0], test_in[2], test_in[5]]
    b = prepare_batches(m, confs, None)[0]
    nr, ns = m.radial_coeffs.size, m.n_species

    def energies(p):
        mm = eqx.tree_at(
            lambda t: (t.radial_coeffs, t.species_coeffs, t.moment_coeffs),
            m,
            (p[:nr].reshape(m.radial_coeffs.shape), p[nr : nr + ns], p[nr + ns :]),
        )
        return efs_batch(mm, *b.device_args())[0][: len(confs)]

    J = np.asarray(jax.jacrev(energies)(param_vector(m)))
    rows = np.concatenate(selection_rows(m, confs, "cfg"))
    sizes = np.array([c.natoms for c in confs])
    np.testing.assert_allclose(rows, J / sizes[:, None], rtol=1e-11, atol=1e-12 * np.abs(J).max())
    nbh = selection_rows(m, confs, "nbh")
    np.testing.assert_allclose(np.stack([r.sum(0) for r in nbh]), J, rtol=1e-11, atol=1e-12 * np.abs(J).max())
    # the species block of a neighbourhood row is the one-hot species vector
    sp = nbh[0][:, nr : nr + ns]
    np.testing.assert_array_equal(sp, np.eye(ns)[m.species_index(confs[0].types)])


# ---------------------------------------------------------------- MaxVol facts
@pytest.mark.parametrize("seed", range(6))
def test_maxvol_volume_bound_brute_force(seed):
    """Final submatrix is dominant (|C| ≤ τ) and |det A| ≥ |det A_max| / (τ√n)^n
    (Hadamard bound for dominant submatrices), checked against all C(m, n) subsets."""
    rng = np.random.default_rng(seed)
    m, n = 9, 3 + seed % 3
    B = rng.normal(size=(m, n)) * rng.uniform(0.1, 3, size=(m, 1))
    st = ActiveSet.empty(n, init=1e-8)
    tau = 1.0000001
    maxvol_swaps(st, B, np.stack([np.arange(m), np.zeros(m, int)], 1), tau)
    assert np.all(st.owner[:, 0] >= 0)
    vol = abs(np.linalg.det(st.A))
    best = max(abs(np.linalg.det(B[list(s)])) for s in itertools.combinations(range(m), n))
    assert vol >= best / (tau * np.sqrt(n)) ** n * (1 - 1e-12)
    assert vol <= best * (1 + 1e-10)
    assert np.max(st.grades(B)) <= tau + 1e-10
    assert np.max(st.grades(st.A)) <= 1 + 1e-8


@pytest.mark.parametrize("seed", range(4))
def test_blocked_maxvol_volume_bound_brute_force(seed):
    """The blocked swaps (blocks of 4 of 12 candidate rows, so several rounds) end in a dominant
    submatrix of the same quality as the classic loop's: |C| ≤ τ for every row, the Hadamard
    bound against all C(m, n) subsets, and the owner of every active row is the row it holds."""
    rng = np.random.default_rng(100 + seed)
    m, n = 12, 3 + seed % 2
    B = rng.normal(size=(m, n)) * rng.uniform(0.1, 3, size=(m, 1))
    st = ActiveSet.empty(n, init=1e-8)
    tau = 1.0000001
    owners = np.stack([np.arange(m), np.zeros(m, int)], 1)
    swaps = maxvol_swaps_blocked(st, B, owners, tau, block=4)
    assert swaps >= n and np.all(st.owner[:, 0] >= 0)
    np.testing.assert_array_equal(st.A, B[st.owner[:, 0]])
    vol = abs(np.linalg.det(st.A))
    best = max(abs(np.linalg.det(B[list(s)])) for s in itertools.combinations(range(m), n))
    assert best / (tau * np.sqrt(n)) ** n * (1 - 1e-12) <= vol <= best * (1 + 1e-10)
    assert np.max(st.grades(B)) <= tau + 1e-10


def test_blocked_nbh_active_set_on_a_training_set(test_in):
    """The learner's per-atom active set built with blocked swaps (MLIP-3's nbh setting): every
    training atom's grade ≤ the threshold, the active rows are the rows of the atoms recorded as
    their owners, and the volume is within a few per cent (in log|det|) of the classic loop's."""
    model, _ = read_state(REF / "potentials/m3_l08_nbh.almtp")
    train = read_cfg(REF / "inputs/train.cfg")
    classic = build_active_set(model, train, "nbh", init=1e-6, threshold=1.001)
    blocked = build_active_set(model, train, "nbh", init=1e-6, threshold=1.001, method="blocked")
    rows = selection_rows(model, train, "nbh", blocked.weight_scaling)
    assert grades(blocked, rows)[0].max() <= 1.001 + 1e-9
    assert (blocked.owner[:, 0] >= 0).sum() == (classic.owner[:, 0] >= 0).sum() > 0  # the same rank is covered
    for j, (c, q) in enumerate(blocked.owner):
        if c < 0:  # a slot still holding init·e_j (the data do not span every parameter)
            continue
        conf = next(k for k, t in enumerate(train) if t is blocked.configs[c])
        np.testing.assert_allclose(blocked.A[j], rows[conf][q], rtol=0, atol=1e-12 * np.abs(blocked.A[j]).max())
    ld_c, ld_b = np.linalg.slogdet(classic.A)[1], np.linalg.slogdet(blocked.A)[1]
    assert abs(ld_b - ld_c) <= 0.05 * abs(ld_c)
    with pytest.raises(ActiveSetError, match="MaxVol method"):
        build_active_set(model, train, "nbh", init=1e-6, threshold=1.001, method="fast")


def test_maxvol_regularised_small_set_and_errors():
    """Fewer rows than parameters: the rest stay at init·I, members grade ≤ 1,
    bad thresholds and NaN rows are refused."""
    rng = np.random.default_rng(1)
    B = rng.normal(size=(4, 10))
    st = ActiveSet.empty(10, init=1e-5)
    r = select(st, [B[k : k + 1] for k in range(4)], 1.1, 1.0000001)
    assert r["selected"] == [0, 1, 2, 3] and st.n_selected == 4
    assert np.max(st.grades(B)) <= 1 + 1e-8
    assert st.residual() < 1e-8
    with pytest.raises(ActiveSetError):
        maxvol_swaps(st, B, np.zeros((4, 2), int), threshold=1.0)
    with pytest.raises(ActiveSetError):
        maxvol_swaps(st, B * np.nan, np.zeros((4, 2), int))
    with pytest.raises(ActiveSetError):
        ActiveSet.empty(3, init=0.0)
    with pytest.raises(ActiveSetError, match="empty training set"):
        build_active_set(MTP.from_file(REF / "potentials/synth_l08_s3.mtp"), [])


def test_regularised_start_small_training_set():
    """init='auto': members grade ≤ 1, a direction seen in training is graded O(1/scale),
    a direction never excited keeps a huge grade."""
    rng = np.random.default_rng(2)
    B = rng.normal(size=(6, 15))
    B[:, -1] = 0.0  # parameter never excited by the training rows
    st = ActiveSet.regularised(B, scale=0.1)
    select(st, [B[k : k + 1] for k in range(6)], 1.0000001, 1.0000001)
    assert st.n_selected == 6 and st.self_check(1e-8) <= 1 + 1e-8
    x = rng.normal(size=15)
    x[-1] = 0.0
    assert st.grades(x[None])[0] < 100
    x[-1] = 1e-3
    assert st.grades(x[None])[0] > 1e5


# ---------------------------------------------------------------- MLIP: stored states
@pytest.mark.parametrize("lv", ["08", "12"])
def test_grades_from_mlip2_als(lv, test_in):
    model, st = read_state(REF / f"mlip2_out/m2_l{lv}_trained.calc-grade.state.als")
    g, _ = grade_configs(model, st, test_in)
    _assert_mv(g, _mv(REF / f"mlip2_out/m2_l{lv}_trained.calc-grade.graded.cfg"))


@pytest.mark.parametrize("name", ["m3_l08_cfg_pool", "m3_l12_cfg_pool", "m3_l08_cfg", "m3_l08_nbh"])
def test_grades_from_mlip3_almtp(name, test_in):
    model, st = read_state(REF / f"potentials/{name}.almtp")
    g, per = grade_configs(model, st, test_in)
    ref = read_cfg(REF / f"mlip3_out/{name}.calculate_grade.cfg")
    rg = np.array([float(c.features["MV_grade"]) for c in ref])
    if name == "m3_l08_cfg":  # degenerate state: grades 1e4..1e10, compare relatively
        assert np.max(_rel(g, rg)) < 1e-6
    else:
        _assert_mv(g, rg)
    if st.mode == "nbh":
        for p, c in zip(per, ref):  # nbh_grades printed with 5 decimals
            np.testing.assert_array_less(np.abs(p - c.atom_data["nbh_grades"]), 5.01e-6 + 1e-8 * p)


def test_state_roundtrip_byte_exact():
    """MLIP-3 states re-serialise byte for byte; .als and .almtp written by us read back."""
    for name in ["m3_l08_nbh", "m3_l08_cfg_pool"]:
        f = read_mtp(REF / f"potentials/{name}.almtp")
        assert format_state(parse_state(f)) == f.extra


def test_state_write_read(tmp_path, test_in):
    model, st = read_state(REF / "mlip2_out/m2_l08_trained.calc-grade.state.als")
    for fn in ["s.als", "s.almtp"]:
        write_state(tmp_path / fn, model, st)
        m2, st2 = read_state(tmp_path / fn)
        np.testing.assert_array_equal(st2.A, st.A)
        np.testing.assert_array_equal(st2.inv, st.inv)
        assert st2.mode == "cfg" and st2.n_selected == st.n_selected
        np.testing.assert_array_equal(np.asarray(param_vector(m2)), np.asarray(param_vector(model)))
    with pytest.raises(Exception, match="no active-learning state"):
        parse_state(read_mtp(REF / "potentials/m2_l08_trained.mtp"))


# ---------------------------------------------------------------- MLIP: our own active sets
def test_build_from_pool_matches_mlip2_calc_grade_l08(pool, test_in):
    model = MTP.from_file(REF / "potentials/m2_l08_trained.mtp")
    st = build_active_set(model, pool)  # init 1e-5, swap 1.0000001, /N
    assert st.self_check(1e-8) <= 1 + 1e-8
    g, _ = grade_configs(model, st, test_in)
    _assert_mv(g, _mv(REF / "mlip2_out/m2_l08_trained.calc-grade.graded.cfg"))
    # same active rows as MLIP's state
    _, ref = read_state(REF / "mlip2_out/m2_l08_trained.calc-grade.state.als")
    np.testing.assert_allclose(st.A, ref.A, atol=1e-12)
    # select-add: the same 7 of 8 test configurations as mlp select-add
    res = select_add(model, st, test_in)
    names = {test_in[k].features["name"] for k in res["selected"]}
    assert names == {c.features["name"] for c in read_cfg(REF / "mlip2_out/m2_l08_trained.select-add.diff.cfg")}
    assert st.self_check(1e-8) <= 1 + 1e-8


@pytest.mark.slow
def test_build_from_pool_matches_mlip2_calc_grade_l12(pool, test_in):
    model = MTP.from_file(REF / "potentials/m2_l12_trained.mtp")
    st = build_active_set(model, pool)
    g, _ = grade_configs(model, st, test_in)
    _assert_mv(g, _mv(REF / "mlip2_out/m2_l12_trained.calc-grade.graded.cfg"))
    res = select_add(model, st, test_in)
    names = {test_in[k].features["name"] for k in res["selected"]}
    assert names == {c.features["name"] for c in read_cfg(REF / "mlip2_out/m2_l12_trained.select-add.diff.cfg")}


def test_build_nbh_matches_mlip3(test_in):
    """MLIP-3 nbh state rebuilt from train.cfg (init 1e-6, threshold 1.001): same A
    (init rows included), same per-atom grades, same select_add equations."""
    model, ref = read_state(REF / "potentials/m3_l08_nbh.almtp")
    st = build_active_set(model, read_cfg(REF / "inputs/train.cfg"), "nbh", init=1e-6, threshold=1.001)
    np.testing.assert_allclose(st.A, ref.A, atol=1e-11)
    assert st.self_check(1e-8) <= 1 + 1e-8
    g, per = grade_configs(model, st, test_in)
    out = read_cfg(REF / "mlip3_out/m3_l08_nbh.calculate_grade.cfg")
    _assert_mv(g, np.array([float(c.features["MV_grade"]) for c in out]))
    for p, c in zip(per, out):
        np.testing.assert_array_less(np.abs(p - c.atom_data["nbh_grades"]), 5.01e-6 + 1e-8 * p)
    res = select_add(model, st, test_in, 1.001, 1.001)
    want = {c.features["name"]: c.features["selected_eqn_inds"]
            for c in read_cfg(REF / "mlip3_out/m3_l08_nbh.select_add.new.cfg")}
    got = {test_in[k].features["name"]: ",".join(str(q + 1 + 3 * test_in[k].natoms + 9) for q in sorted(res["eqns"][k]))
           for k in res["selected"]}
    assert got == want


# ---------------------------------------------------------------- CLI
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mtpjax.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _main(capsys, *args):
    """The CLI in this process (compiled functions are reused; the subprocess entry point is tested elsewhere)."""
    import types

    from mtpjax.cli import main

    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        rc = e.code
    cap = capsys.readouterr()
    return types.SimpleNamespace(returncode=rc, stderr=cap.err, stdout=cap.out)


def test_cli_calc_grade_and_select_add(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # calc-grade writes MLIP-2's state.als in the working folder

    def _cli(*a):
        return _main(capsys, *a)

    pot = tmp_path / "pot.mtp"
    pot.write_bytes((REF / "potentials/synth_l08_s3.mtp").read_bytes())
    from mtpjax.potential import write_cfg

    train = tmp_path / "train.cfg"
    write_cfg(train, read_cfg(REF / "inputs/train.cfg")[:8])
    r = _cli("calc-grade", pot, train, REF / "inputs/test_in.cfg", tmp_path / "out.cfg", "--mode", "nbh", "-q")
    assert r.returncode == 0, r.stderr
    out = read_cfg(tmp_path / "out.cfg")
    assert all("MV_grade" in c.features and "nbh_grades" in c.atom_data for c in out)
    assert (tmp_path / "pot.almtp").exists()
    # grades of the training configurations w.r.t. their own active set are ≤ 1
    r = _cli("calc-grade", tmp_path / "pot.almtp", train, tmp_path / "tr.cfg", "-q")
    assert r.returncode == 0, r.stderr
    assert max(float(c.features["MV_grade"]) for c in read_cfg(tmp_path / "tr.cfg")) <= 1 + 1e-6
    r = _cli("select-add", pot, train, REF / "inputs/test_in.cfg", tmp_path / "diff.cfg", "--mode", "nbh",
             "--selection-limit", "2", "--als-filename", tmp_path / "s.als", "-q")
    assert r.returncode == 0, r.stderr
    assert len(read_cfg(tmp_path / "diff.cfg")) == 2
    # bad input: no state stored, wrong argument count
    r = _cli("calc-grade", pot, REF / "inputs/test_in.cfg", tmp_path / "x.cfg")
    assert r.returncode == 2 and "no active-learning state" in r.stderr
    r = _cli("calc-grade", pot, tmp_path / "x.cfg")
    assert r.returncode == 2 and "calc-grade: give" in r.stderr


def test_state_records_its_settings_and_moved_initial_rows_are_recognised(tmp_path, test_in):
    """A set built here records init and swap threshold (MLIP-3 reads past them); reading it back gives them.
    A state whose initial row was moved to another slot by a swap (init·e_j in row k ≠ j) is still recognised
    as an initial row, and its init value recovered (MLIP-3 .almtp without the record, MLIP-2 .als)."""
    from mtpjax.active.grade import build_active_set, rebuild_active_set
    from mtpjax.active.state import init_rows, init_value

    model = MTP.from_file(REF / "potentials/m2_l08_trained.mtp")
    st = build_active_set(model, test_in[:3], "nbh", init=1e-6, threshold=1.001)
    write_state(tmp_path / "s.almtp", model, st)
    text = (tmp_path / "s.almtp").read_bytes()
    assert b"weight_scaling 2\ninit_value 1e-06\nthreshold 1.001\n#" in text
    _, back = read_state(tmp_path / "s.almtp")
    assert back.init == 1e-6 and back.swap_threshold == pytest.approx(1.001)
    # move an initial row: A row k holds init·e_j with j ≠ k
    A = np.diag(np.full(6, 1e-6))
    A[[1, 2]] = A[[2, 1]]
    A[4] = np.arange(6) + 1.0
    free = init_rows(A)
    assert free.tolist() == [True, True, True, True, False, True]
    assert init_value(A, free) == 1e-6
    # rebuilding from a state read back without the record works (init recovered, not 0)
    back.init = init_value(back.A, back.owner[:, 0] < 0)
    assert back.init == pytest.approx(1e-6)
    rebuild_active_set(model, back, test_in[3:4])
