"""Fused extrapolation grade in MD (efs_fn returning the grade with the forces,
carried in ``MDState.aux``) and reuse of compiled MD blocks across retrained
potentials (parameters as arguments of the jitted block)."""
from __future__ import annotations

import pytest
import jax
import numpy as np

from refdata import REF
from mtpjax.md import forcefields as FF
from mtpjax.md import block as S
from mtpjax.potential.params import params, with_params
from mtpjax.md.simulation import Simulation
from mtpjax.md.stages import Stage
from mtpjax.units import FS


def _setup(n_train=6):
    from mtpjax.active.grade import build_active_set
    from mtpjax.potential import MTP, read_cfg

    model = MTP.from_file(REF / "potentials/m2_l08_trained.mtp")
    train = read_cfg(REF / "inputs/train.cfg")[:n_train]
    conf = read_cfg(REF / "inputs/test_in.cfg")[0]
    ast = build_active_set(model, train, "cfg")
    return model, ast, conf


def _sim(efs, hook, model, steps, temp=1500.0, thermo_every=1, traj_every=10):
    return Simulation(efs, model.cutoff, 2.0 * FS, [Stage("nvt", steps, temperature=temp, tdamp=50 * FS)],
                      thermo_every=thermo_every, traj_every=traj_every, hook=hook)


def _start(sim, model, conf, temp=1500.0, seed=1):
    sp = model.species_index(conf.types)
    return sim.init_state(conf.positions, np.full(conf.natoms, 63.5), conf.cell, sp, temp, seed=seed)


def test_aux_efs_is_carried_and_plain_state_has_no_aux():
    """A four-value efs_fn: its aux is in MDState.aux after init and every step,
    the dynamics are the three-value ones; a three-value efs_fn carries no aux leaf."""
    from ase.build import bulk

    lj, rc = FF.lennard_jones()

    def lj_aux(pos, cell, nbrs, sp):
        e, f, w = lj(pos, cell, nbrs, sp)
        return e, f, w, 2.0 * e

    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat((2, 2, 2))
    out = []
    for efs in (lj, lj_aux):
        sim = Simulation(efs, rc, 2 * FS, [Stage("nvt", 30, 100.0, tdamp=100 * FS)], thermo_every=10, traj_every=10)
        st, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, None, 100.0, seed=3)
        out.append(sim.run(st, nb).state)
    plain, aux = out
    assert plain.aux is None and len(jax.tree_util.tree_leaves(plain)) + 1 == len(jax.tree_util.tree_leaves(aux))
    np.testing.assert_allclose(np.asarray(aux.positions), np.asarray(plain.positions), atol=1e-12)
    np.testing.assert_allclose(float(aux.aux), 2.0 * float(aux.energy), rtol=1e-14)


def test_fused_grade_equals_separate_grade_on_md_frames():
    """γ carried by the MD state (fused E+F+S+γ) = calc-grade of the frame
    (mtpjax.active.grade.grade_configs) and the separate on-device grade;
    forces of the fused efs = mtp_efs forces."""
    from mtpjax.active.grade import grade_configs
    from mtpjax.active.md_grade import aux_hook, make_grade_fn, mtp_efs_grade
    from mtpjax.io.cfg import Configuration

    model, ast, conf = _setup()
    sim = _sim(mtp_efs_grade(model, ast), aux_hook(1e30, 1), model, 40)
    frames = []
    s0, nb = _start(sim, model, conf)
    res = sim.run(s0, nb, on_frame=lambda st, pos: frames.append(st))
    assert not res.stopped_by_hook and len(frames) == 4
    gfn = jax.jit(make_grade_fn(model, ast))
    efs = FF.mtp_efs(model)
    build = jax.jit(sim.neighbor_fns.build)
    confs = [Configuration(positions=np.asarray(f.positions), types=np.asarray(conf.types), cell=np.asarray(f.cell),
                           pbc=np.ones(3, bool)) for f in [s0] + frames]
    g_host, _ = grade_configs(model, ast, confs)
    for k, f in enumerate([s0] + frames):
        nb2 = build(f.positions, f.cell)
        g_dev = float(gfn(f.positions, f.cell, nb2.idx, nb2.shifts, f.species))
        np.testing.assert_allclose(float(f.aux), g_host[k], rtol=1e-9)
        np.testing.assert_allclose(float(f.aux), g_dev, rtol=1e-9)
        e, fo, w = efs(f.positions, f.cell, nb2, f.species)
        np.testing.assert_allclose(np.asarray(f.forces), np.asarray(fo), atol=1e-10)
        np.testing.assert_allclose(float(f.energy), float(e), rtol=1e-12)
    assert len({round(float(f.aux), 12) for f in frames}) == len(frames)  # the grade does change along the run


def test_fused_hook_stops_at_same_step_as_separate_hook():
    """A break threshold crossed during the run: the fused hook (grade from the
    force call) and the old hook (separate grade) stop at the same step, with
    the same break grade and the same returned state."""
    from mtpjax.active.md_grade import md_grade_setup

    model, ast, conf = _setup()
    # grade every step of a free run, to put a threshold where the grade clearly rises past its history
    efs, hook, fused = md_grade_setup(model, ast, 1e30, 1)
    assert fused
    sim = _sim(efs, hook, model, 150)
    rows = []
    s0, nb = _start(sim, model, conf)
    sim.run(s0, nb, on_block=lambda r, k, s: rows.append(np.asarray(r)[: int(k)]))
    g = np.concatenate(rows)[:, -1]
    run_max = np.maximum.accumulate(g)
    k = 20 + int(np.argmax((g[21:] - run_max[20:-1]) / run_max[20:-1]))  # largest relative rise above the history
    k += 1
    thr = 0.5 * (run_max[k - 1] + g[k])
    assert g[k] > thr > run_max[k - 1]
    results = []
    for use_fused in (True, False):
        efs, hook, f = md_grade_setup(model, ast, thr, 1, fused=use_fused)
        assert f == use_fused
        sim = _sim(efs, hook, model, 150, thermo_every=10, traj_every=50)
        s0, nb = _start(sim, model, conf)
        results.append(sim.run(s0, nb))
    a, b = results
    assert a.stopped_by_hook and b.stopped_by_hook
    assert int(a.state.step) == int(b.state.step) == k  # record k is step k+1; last good is step k
    assert a.steps == b.steps
    np.testing.assert_allclose(a.hook_value, b.hook_value, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(a.state.positions), np.asarray(b.state.positions), atol=1e-8)
    assert b.state.aux is None and float(a.state.aux) <= thr


@pytest.mark.slow
def test_retrained_model_reuses_compiled_block():
    """A second Simulation with a retrained potential (same structure, new
    arrays) and a new active set reuses the compiled block: no new trace, and
    the results are those of the new parameters."""
    from mtpjax.active.grade import build_active_set
    from mtpjax.active.md_grade import md_grade_setup

    model, ast, conf = _setup()
    rng = np.random.default_rng(0)
    theta = params(model)
    model2 = with_params(model, theta * (1.0 + 0.01 * rng.standard_normal(theta.shape)))
    from mtpjax.potential import read_cfg

    ast2 = build_active_set(model2, read_cfg(REF / "inputs/train.cfg")[6:12], "cfg")
    for use_fused in (True, False):
        out = []
        for m, a in ((model, ast), (model2, ast2)):
            efs, hook, _ = md_grade_setup(m, a, 1e30, 5, fused=use_fused)
            sim = _sim(efs, hook, m, 20, thermo_every=10, traj_every=10)
            s0, nb = _start(sim, m, conf)
            t0 = S.block_traces()
            res = sim.run(s0, nb)
            out.append((S.block_traces() - t0, res, sim))
        assert out[1][0] == 0, "the retrained potential recompiled the MD block"
        assert not np.allclose(np.asarray(out[0][1].state.positions), np.asarray(out[1][1].state.positions))
        # reference for model2: the same run with a closure efs (block compiled for this Simulation only)
        efs2, hook2, _ = md_grade_setup(model2, ast2, 1e30, 5, fused=use_fused)
        def closure(f):
            return lambda *args: f(*args)

        sim = _sim(closure(efs2), (closure(hook2[0]), 5), model2, 20, thermo_every=10, traj_every=10)
        s0, nb = _start(sim, model2, conf)
        t0 = S.block_traces()
        ref = sim.run(s0, nb)
        assert S.block_traces() - t0 == 1
        np.testing.assert_allclose(np.asarray(ref.state.positions), np.asarray(out[1][1].state.positions), atol=1e-10)
        if use_fused:
            np.testing.assert_allclose(float(ref.state.aux), float(out[1][1].state.aux), rtol=1e-10)
