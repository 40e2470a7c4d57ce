"""The LOTF loop: TOML validation, on-device MD grades and the MD hook, kill -9
during labelling + resume (no label lost, no duplicates), thresholds changed on
resume, and end-to-end runs (EMT: slow; tblite Li3PS4: slow)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mtpjax.active.bootstrap import reference_trajectory, system_structure
from mtpjax.active.learn import Learner
from mtpjax.config.learn import load_learn as load_config
from mtpjax.io.store import TrainingStore
from mtpjax.errors import ConfigurationError, MTPJaxError

from refdata import REF

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

BASE = """
workdir = "out"
species = ["Cu"]
max_iterations = 3
[potential]
level = 4
cutoff = 4.5
min_dist = 1.9
[reference]
kind = "emt"
[labels]
executor = "inline"
[train]
max_iter = 40
[active]
mode = "nbh"
[md]
steps = 100
[bootstrap]
method = "rattle"
n_configs = 4
[[system]]
name = "cu"
structure = {symbols = "Cu4", cell = [[3.61, 0, 0], [0, 3.61, 0], [0, 0, 3.61]], scaled_positions = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]}
"""


def _write(tmp_path, text, name="learn.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace('species = ["Cu"]\n', ""), "missing key 'species'"),
        (lambda t: t.replace("[md]\n", "[md]\nensemble = \"nph\"\n"), r"md.ensemble = 'nph' \(allowed: nvt, npt, langevin, nve\)"),
        (lambda t: t.replace("[md]\n", "[md]\ntemprature_K = 900\n"), r"unknown key 'temprature_K' \(allowed: .*temperature_K"),
        (lambda t: t.replace('mode = "nbh"', 'mode = "atoms"'), r"active.mode = 'atoms' \(allowed: cfg, nbh\)"),
        (lambda t: t.replace('mode = "nbh"', 'mode = "nbh"\nselect_threshold = 20.0'), "break_threshold > select_threshold"),
        (lambda t: t.replace('kind = "emt"', 'kind = "gaussian"'), r"allowed: tblite, vasp, emt, ase"),
        (lambda t: t.replace('kind = "emt"', 'kind = "ase"\nfactory = "not_installed_pkg:Calc"'), "cannot be imported"),
        (lambda t: t.replace('kind = "emt"', 'kind = "vasp"\ncommand = "/no/vasp"'), "not found"),
        (lambda t: t.replace('executor = "inline"', 'executor = "slurm"'), r"allowed: process, submitit"),
        (lambda t: t.replace("[[system]]\nname = \"cu\"\n", "[[system]]\n"), "missing key 'name'"),
        (lambda t: t.split("[[system]]")[0], r"missing \[\[system\]\]"),
        (lambda t: t.replace('species = ["Cu"]', 'species = ["Cx"]'), "unknown chemical symbol 'Cx'"),
        (lambda t: t.replace('mode = "nbh"', 'mode = "nbh"\ndone_when = "never"'),
         r"active.done_when = 'never' \(allowed: no-candidates, no-break\)"),
        (lambda t: t.replace('mode = "nbh"', 'mode = "nbh"\nmin_distance_factor = 1.5'), r"min_distance_factor must be in \[0, 1\)"),
        (lambda t: t.replace("[md]\n", "[md]\nwalkers = 0\n"), r"md.walkers must be an integer ≥ 1, got 0"),
        (lambda t: t.replace('mode = "nbh"', 'mode = "nbh"\nanchors_per_stage = -1'),
         r"active.anchors_per_stage must be an integer ≥ 0, got -1"),
        (lambda t: t.replace('method = "rattle"', 'method = "relaxed"'), r"bootstrap.method = 'relaxed' \(allowed: rattle, relax, md, none\)"),
        (lambda t: t.replace("[md]\n", '[md]\nschedule = [{ensemble = "nvt", temperature_K = 300.0}]\n'),
         r"md.schedule\[1\]: give 'steps' or 'time_ps'"),
    ],
)
def test_bad_toml(tmp_path, edit, match):
    p = _write(tmp_path, edit(BASE))
    with pytest.raises(MTPJaxError, match=match):
        load_config(p)


def test_closest_pair_uses_covalent_radii_and_periodic_images():
    """Frames are 'unphysical' (never labelled) only when a pair is closer than factor × (r_cov,i + r_cov,j):
    B–O at 0.70 Å is (0.5 × (0.84 + 0.66) = 0.75), Li–Li at 1.30 Å is not (0.5 × 2.56 = 1.28);
    the close pair may be across the periodic boundary."""
    from mtpjax.active.explore import closest_pair as _closest_pair

    cell = np.eye(3) * 6.0
    assert _closest_pair([[0.1, 0, 0], [5.4, 0, 0]], cell, ["B", "O"], 0.5) == (0, 1, pytest.approx(0.7))
    assert _closest_pair([[0.1, 0, 0], [5.4, 0, 0]], cell, ["B", "O"], 0.45) is None  # 0.675 Å limit
    assert _closest_pair([[0, 0, 0], [1.3, 0, 0]], cell, ["Li", "Li"], 0.5) is None
    assert _closest_pair([[0, 0, 0], [1.2, 0, 0]], cell, ["Li", "Li"], 0.5)[2] == pytest.approx(1.2)
    assert _closest_pair([[0, 0, 0], [0.1, 0, 0]], cell, ["Li", "Li"], 0.0) is None  # factor 0: check off


def test_schedule_position():
    from mtpjax.md.stages import schedule_position as _schedule_position
    from mtpjax.md.stages import Stage

    st = [Stage("nvt", 10, temperature=1000.0, tdamp=1.0), Stage("nvt", 5, temperature=1000.0, tdamp=1.0)]
    assert _schedule_position(st, 0, 2.0) == (0, 0, 0.0)
    assert _schedule_position(st, 9, 2.0) == (0, 9, 0.0)
    assert _schedule_position(st, 10, 2.0) == (1, 0, 20.0)
    assert _schedule_position(st, 15, 2.0) == (2, 0, 30.0)


@pytest.mark.slow
def test_learning_along_a_schedule_continues_it_after_a_break(tmp_path):
    """md.schedule (with 2 walkers): the LOTF run follows a melt → quench schedule; after a break the next
    iteration continues the schedule at the restart frame's step and temperature (not from
    step 0); a system is done only when the schedule's end is reached without candidates."""
    sched = ('schedule = [{ensemble = "nvt", steps = 60, temperature_K = 1400.0, tdamp_fs = 50.0}, '
             '{ensemble = "nvt", steps = 90, temperature_K = 1400.0, temperature_end_K = 300.0, tdamp_fs = 50.0}]\n')
    text = BASE.replace("[md]\nsteps = 100\n", "[md]\nsteps = 100\ntimestep_fs = 2.0\nwalkers = 2\n" + sched)
    text = text.replace("max_iterations = 3", "max_iterations = 4").replace("[active]\n", "[active]\ncandidate_every = 5\n")
    st = Learner(load_config(_write(tmp_path, text)), log=lambda *a: None).run()
    runs = st["systems"]["cu"]["runs"]
    assert len(runs) >= 2
    prev_end = 0
    for r in runs:
        if r["restart"] is None:  # start_over (schedule completed with candidates) or exploded at once
            prev_end = 0
            continue
        z = np.load(tmp_path / "out" / r["restart"])
        k = int(z["step"])
        assert len(r["walkers"]) == 2 and r["n_candidates"] == sum(w["n_candidates"] for w in r["walkers"])
        assert r["steps"] == max(w["steps"] for w in r["walkers"])  # the furthest walker gives the restart
        # continued where the last run stopped (a break's step counts in ``steps``; the restart is the frame before)
        assert prev_end + r["steps"] - int(r["stopped"]) <= k <= prev_end + r["steps"], (k, prev_end, r)
        i, j = int(z["stage_index"]), int(z["stage_step"])
        assert (i, j) == ((0, k) if k < 60 else (1, k - 60) if k < 150 else (2, 0))
        assert float(z["time"]) == pytest.approx(k * 2.0 * 0.09822694788464063)  # fs in ASE time units
        prev_end = k
        if r["done"]:
            assert k == 150 and r["n_candidates"] == 0 and not r["stopped"]
    assert any(r["stopped"] for r in runs[:-1]), "the test needs at least one break to test the continuation"


def test_learning_schedule_nvt_then_npt(tmp_path):
    """A schedule whose NPT stage follows an NVT stage (the thermostat/barostat variables are sized per stage):
    the learner runs through it, also when an iteration continues inside the NPT stage."""
    sched = ('schedule = [{ensemble = "nvt", steps = 30, temperature_K = 600.0, tdamp_fs = 50.0}, '
             '{ensemble = "npt", steps = 60, temperature_K = 600.0, pressure_bar = 1.0, tdamp_fs = 50.0, '
             'pdamp_fs = 500.0}]\n')
    text = BASE.replace("[md]\nsteps = 100\n", "[md]\nsteps = 100\ntimestep_fs = 2.0\n" + sched)
    text = text.replace("[active]\n", "[active]\ncandidate_every = 5\n")
    st = Learner(load_config(_write(tmp_path, text)), log=lambda *a: None).run()
    runs = st["systems"]["cu"]["runs"]
    reached = [int(np.load(tmp_path / "out" / r["restart"])["stage_index"]) for r in runs if r["restart"]]
    assert runs[-1]["done"] or max(reached, default=0) >= 1, runs
    assert any(r["steps"] > 30 for r in runs), "no run got into the NPT stage"


def test_relax_bootstrap_labels_the_path_and_md_starts_relaxed(tmp_path):
    """bootstrap.method = "relax": every FIRE step is a label equal to an independent EMT single
    point of that geometry, energies go down, the relaxed cell is rattled and is where MD starts;
    a resumed bootstrap does not relax again."""
    from ase.calculators.emt import EMT
    from ase.io import read

    text = BASE.replace('method = "rattle"', 'method = "relax"\nrelax_steps = 6\nrelax_fmax = 0.01')
    text = text.replace("scaled_positions = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]",
                        "scaled_positions = [[0.03, 0, 0], [0, 0.5, 0.45], [0.5, 0.04, 0.5], [0.5, 0.5, 0]]")
    p = _write(tmp_path, text)
    Learner(load_config(p), log=lambda *a: None).run(stop_after="bootstrap")
    store = TrainingStore(tmp_path / "out" / "train.h5")
    keys = store.keys()
    path = sorted(k for k in keys if "/x" in k)
    assert len(path) == 7 and sum("/r" in k for k in keys) == 4  # steps 0..6, then 4 rattles
    confs = dict(zip(keys, store.configurations()))
    es = []
    for k in path:
        c = confs[k]
        at = c.to_atoms({0: "Cu"})
        at.calc = EMT()
        assert c.energy == pytest.approx(at.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(c.forces, at.get_forces(), atol=1e-10)
        np.testing.assert_allclose(c.plus_stress, -at.get_stress(voigt=True) * at.get_volume(), atol=1e-10)
        es.append(c.energy)
    assert es[-1] < es[0] - 0.05
    relaxed = read(tmp_path / "out" / "bootstrap" / "relaxed_cu.extxyz")
    np.testing.assert_allclose(relaxed.positions, confs[path[-1]].positions, atol=0.2)  # one FIRE step at most
    lr = Learner(load_config(p), log=lambda *a: None)  # a resumed bootstrap reads the relaxation back
    sysc = lr.cfg.system[0]
    again = reference_trajectory(lr.cfg, lr.store, lr.workdir, sysc, system_structure(lr.cfg, sysc), lambda *a: None)
    np.testing.assert_allclose(again.positions, relaxed.positions, atol=1e-6)
    assert len(TrainingStore(tmp_path / "out" / "train.h5")) == len(keys)


def test_bad_toml_cli_message(tmp_path):
    p = _write(tmp_path, BASE.replace("[md]\n", "[md]\nensemble = \"nph\"\n"))
    r = subprocess.run([sys.executable, "-m", "mtpjax.cli", "learn", str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and "md.ensemble = 'nph'" in r.stderr and "Traceback" not in r.stderr


def test_tblite_missing_is_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tblite", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "tblite.ase", None)
    p = _write(tmp_path, BASE.replace('kind = "emt"', 'kind = "tblite"'))
    with pytest.raises(MTPJaxError, match="pip install tblite"):
        load_config(p)


def test_examples_parse():
    for name in ("learn_cu_emt.toml", "learn_li3ps4_xtb.toml", "learn_li3ps4_xtb_48.toml"):
        if "xtb" in name:
            pytest.importorskip("tblite")
        cfg = load_config(EXAMPLES / name)
        assert cfg.system and cfg.species


# ------------------------------------------------------------ MD grades
def test_md_grade_matches_host_grade():
    """On-device grade of an MD box = calc-grade on the same configuration (cfg and
    nbh); the fused E+F+S+grade kernel agrees with efs and the grade."""
    from mtpjax.active.grade import build_active_set, grade_configs
    from mtpjax.active.md_grade import make_efs_grade_fn, make_grade_fn
    from mtpjax.potential import MTP, read_cfg
    from mtpjax.potential.evaluate import config_neighbors
    from mtpjax.potential.model import energy_forces_stress

    model = MTP.from_file(REF / "potentials/m2_l08_trained.mtp")
    train = read_cfg(REF / "inputs/train.cfg")[:6]
    conf = read_cfg(REF / "inputs/test_in.cfg")[0]
    nb = config_neighbors(conf, model.cutoff)
    sp = model.species_index(conf.types)
    for mode in ("cfg", "nbh"):
        st = build_active_set(model, train, mode)
        g_host, per = grade_configs(model, st, [conf])
        g = make_grade_fn(model, st, per_atom=(mode == "nbh"))(conf.positions, conf.cell, nb.idx, nb.shifts, sp)
        if mode == "nbh":
            g, ga = g
            np.testing.assert_allclose(np.asarray(ga), per[0], rtol=1e-10)
        np.testing.assert_allclose(float(g), g_host[0], rtol=1e-10)
        if mode == "cfg":
            e, f, s, gj = make_efs_grade_fn(model, st)(conf.positions, conf.cell, nb.idx, nb.shifts, sp)
            e0, f0, s0, _ = energy_forces_stress(model, conf.positions, conf.cell, sp, nb.idx, nb.shifts)
            np.testing.assert_allclose(float(gj), g_host[0], rtol=1e-10)
            np.testing.assert_allclose(np.asarray(f), np.asarray(f0), atol=1e-10)
            np.testing.assert_allclose(np.asarray(s), np.asarray(s0), rtol=1e-10, atol=1e-9)


@pytest.mark.slow
def test_md_hook_stops_at_break():
    """The MD hook stops a run at γ > break and returns a state graded below it."""
    import jax

    from mtpjax.active.grade import build_active_set
    from mtpjax.active.md_grade import make_grade_fn, make_hook
    from mtpjax.md.forcefields import mtp_efs
    from mtpjax.md.simulation import Simulation
    from mtpjax.md.stages import Stage
    from mtpjax.units import FS
    from mtpjax.potential import MTP, read_cfg

    model = MTP.from_file(REF / "potentials/m2_l08_trained.mtp")
    train = read_cfg(REF / "inputs/train.cfg")[:20]
    conf = read_cfg(REF / "inputs/test_in.cfg")[0]
    sp = model.species_index(conf.types)
    st = build_active_set(model, train, "nbh")
    sim = Simulation(mtp_efs(model), model.cutoff, 2.0 * FS, [Stage("nvt", 400, temperature=1500.0, tdamp=50 * FS)],
                     thermo_every=10, traj_every=10, hook=make_hook(model, st, 2.0, 1))
    masses = np.full(conf.natoms, 63.5)
    s0, nbrs = sim.init_state(conf.positions, masses, conf.cell, sp, 1500.0, seed=1)
    res = sim.run(s0, nbrs)
    assert res.stopped_by_hook and res.hook_value > 2.0
    gfn = make_grade_fn(model, st)
    nb2 = jax.jit(sim.neighbor_fns.build)(res.state.positions, res.state.cell)
    assert float(gfn(res.state.positions, res.state.cell, nb2.idx, nb2.shifts, res.state.species)) <= 2.0 + 1e-9


# ------------------------------------------------------------ kill -9 and resume
def slow_emt(delay=1.0):
    """EMT that takes ``delay`` s per call (imported by the learner under test)."""
    from ase.calculators.emt import EMT

    class Slow(EMT):
        def calculate(self, *a, **k):
            time.sleep(delay)
            super().calculate(*a, **k)

    return Slow()


def test_kill9_during_labelling_then_resume(tmp_path):
    """kill -9 the learner while it labels the bootstrap set; the store keeps every
    label finished before the kill; --resume labels only the rest (no duplicates,
    earlier labels untouched); changed thresholds are logged on resume."""
    text = BASE.replace('kind = "emt"', 'kind = "ase"\nfactory = "test_active_learn:slow_emt"\nkwargs = {delay = 0.7}')
    text = text.replace("n_configs = 4", "n_configs = 10")
    p = _write(tmp_path, text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "mtpjax.cli", "learn", str(p), "--stop-after", "bootstrap"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    h5 = tmp_path / "out" / "train.h5"
    t0 = time.time()
    n_before = 0
    while time.time() - t0 < 300 and proc.poll() is None:  # generous: spawning labellers is slow under load
        time.sleep(0.3)
        if h5.exists():
            try:
                n_before = len(TrainingStore(h5))
            except Exception:  # noqa: BLE001 - file being written
                continue
            if n_before >= 3:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= n_before < 10
    store = TrainingStore(h5)
    n_killed = len(store)
    assert n_killed >= n_before
    before = {k: v["time"] for k, v in store.provenance().items()}
    r = subprocess.run(cmd + ["--resume", "--set", "active.select_threshold=2.5"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    store = TrainingStore(h5)
    keys = store.keys()
    assert len(keys) == 10 and len(set(keys)) == 10
    after = store.provenance()
    assert all(after[k]["time"] == t for k, t in before.items())  # earlier labels not redone
    assert "thresholds changed on resume" in r.stdout
    state = json.loads((tmp_path / "out" / "learn_state.json").read_text())
    assert state["phase"] == "train" and state["events"][-1]["thresholds_changed"]["new"]["cu"]["select_threshold"] == 2.5
    # a second run without --resume refuses to overwrite
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--resume" in r.stderr


@pytest.mark.parametrize("phase", [pytest.param("train", marks=pytest.mark.slow), "md"])  # md and labelling: default
def test_kill9_during_training_or_md_then_resume(tmp_path, phase):
    """kill -9 while the learner trains (or runs MD, compiling its first block) in iteration 0;
    --resume redoes that phase and finishes the run: the labels stored before the kill are still
    there unchanged, no key twice, and every iteration's files exist."""
    text = BASE.replace("max_iterations = 3", "max_iterations = 2")
    p = _write(tmp_path, text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "mtpjax.cli", "learn", str(p)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sp = tmp_path / "out" / "learn_state.json"
    t0 = time.time()
    seen = False
    while time.time() - t0 < 300 and proc.poll() is None:
        time.sleep(0.05)
        try:
            st = json.loads(sp.read_text())  # written atomically
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        if st["iteration"] == 0 and st["phase"] == phase:
            seen = True
            time.sleep(1.0)  # well inside the phase: training and the first MD block compile for seconds
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert seen, "the learner never reached the phase"
    st = json.loads(sp.read_text())
    assert (st["iteration"], st["phase"]) == (0, phase), "killed after the phase had finished: nothing tested"
    out = tmp_path / "out"
    if phase == "md":
        assert not (out / "it000" / "md_cu.json").exists()
    store = TrainingStore(out / "train.h5")
    before = {k: v["time"] for k, v in store.provenance().items()}
    assert len(before) == 4  # the bootstrap labels
    r = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resuming at iteration 0, phase {phase}" in r.stdout
    st = json.loads(sp.read_text())
    assert st["done"]
    store = TrainingStore(out / "train.h5")
    keys = store.keys()
    assert len(keys) == len(set(keys)) > 4
    after = store.provenance()
    assert all(after[k]["time"] == t for k, t in before.items())
    for it in range(st["iteration"] + 1):
        assert (out / f"it{it:03d}" / "pot.mtp").exists() and (out / f"it{it:03d}" / "md_cu.json").exists()


# ------------------------------------------------------------ end to end
@pytest.mark.slow
def test_end_to_end_emt(tmp_path):
    """Cu (EMT labels): from no data to a potential that runs the target length
    without a break; every phase's files exist; the summary accounts for the time."""
    text = BASE.replace("max_iterations = 3", "max_iterations = 8").replace("steps = 100", "steps = 600\ntemperature_K = 1200.0\ntimestep_fs = 2.0")
    # a second structure (expanded, hotter) learns into the same training set
    text += """
[[system]]
name = "cu_hot"
structure = {symbols = "Cu4", cell = [[3.75, 0, 0], [0, 3.75, 0], [0, 0, 3.75]], scaled_positions = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], repeat = [2, 1, 1]}
md = {temperature_K = 1500.0}
active = {select_threshold = 2.0}
"""
    p = _write(tmp_path, text)
    st = Learner(load_config(p), log=lambda *a: None).run()
    assert st["done"] and "target length" in st["stop_reason"]
    sm = json.loads((tmp_path / "out" / "summary.json").read_text())
    for name in ("cu", "cu_hot"):
        last = sm["systems"][name]["runs"][-1]
        assert last["done"] and last["steps"] >= 600 and not last["stopped"]
    assert set(sm["timing_s"]) >= {"md", "label", "train"}
    store = TrainingStore(tmp_path / "out" / "train.h5")
    assert len(store) == len(set(store.keys())) >= 4


@pytest.mark.slow
def test_end_to_end_li3ps4_tblite(tmp_path):
    """Li3PS4 (8 atoms) with GFN1-xTB labels at 1000 K: no data → an MTP that runs
    the target length without extrapolation (test-sized settings of the example)."""
    pytest.importorskip("tblite")
    text = (EXAMPLES / "learn_li3ps4_xtb.toml").read_text().replace('workdir = "learn_li3ps4_xtb_out"', 'workdir = "out"')
    p = _write(tmp_path, text)
    st = Learner(load_config(p), log=print).run()
    assert st["done"] and "target length" in st["stop_reason"], st.get("stop_reason")
    runs = st["systems"]["li3ps4"]["runs"]
    assert runs[-1]["done"] and runs[-1]["steps"] >= 300


def test_resume_with_more_iterations_and_a_new_system_continues_without_relabelling(tmp_path):
    """A run that stopped at max_iterations continues when the config asks for more (and takes in a
    system added to the config): the store keeps every earlier label, the iteration count goes on."""
    text = BASE.replace("max_iterations = 3", "max_iterations = 1").replace("steps = 100", "steps = 30")
    p = _write(tmp_path, text)
    st = Learner(load_config(p), log=lambda *a: None).run()
    assert st["done"]
    store = tmp_path / "out" / "train.h5"
    keys0 = TrainingStore(store).keys()
    if st["stop_reason"].startswith("all systems"):
        pytest.skip("the first iteration already ran the target length")  # nothing to continue
    assert st["stop_reason"].startswith("max_iterations") and st["iteration"] == 0
    text2 = text.replace("max_iterations = 1", "max_iterations = 3") + """
[[system]]
name = "cu_hot"
structure = {symbols = "Cu4", cell = [[3.65, 0, 0], [0, 3.65, 0], [0, 0, 3.65]], scaled_positions = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]}
md = {temperature_K = 900.0}
"""
    p.write_text(text2)
    logs = []
    st2 = Learner(load_config(p), log=logs.append).run(resume=True)
    assert any("added on resume" in m for m in logs) and any("continuing after" in m for m in logs)
    assert st2["iteration"] >= 1 and "cu_hot" in st2["systems"] and st2["systems"]["cu_hot"]["runs"]
    keys1 = TrainingStore(store).keys()
    assert keys1[:len(keys0)] == keys0 and len(set(keys1)) == len(keys1)
    assert (tmp_path / "out" / "it001" / "pot.mtp").exists()


def test_resume_after_a_structure_file_changed_restarts_that_systems_md(tmp_path):
    """A system whose structure file changed since the state was written (a workflow rebuilt its cells,
    --from build) starts its MD over from the new structure on resume — the labels stay in the store —
    while a system with an unchanged file keeps its state."""
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "a.extxyz", bulk("Cu", "fcc", a=3.61, cubic=True))
    write(tmp_path / "b.extxyz", bulk("Cu", "fcc", a=3.62, cubic=True))
    text = BASE.replace("max_iterations = 3", "max_iterations = 1").replace("steps = 100", "steps = 30")
    text = text.split("[[system]]")[0] + """
[[system]]
name = "a"
structure = "a.extxyz"
[[system]]
name = "b"
structure = "b.extxyz"
"""
    p = _write(tmp_path, text)
    st = Learner(load_config(p), log=lambda *a: None).run()
    assert st["done"]
    before_state = json.loads(json.dumps(st))
    before = {k: dict(v) for k, v in st["systems"].items()}
    n_labels = len(TrainingStore(tmp_path / "out" / "train.h5"))
    write(tmp_path / "a.extxyz", bulk("Cu", "fcc", a=3.66, cubic=True))  # rebuilt
    logs = []
    lr = Learner(load_config(p), log=logs.append)
    lr.state = json.loads(lr.state_path.read_text())
    lr._reopen()
    sa, sb = lr.state["systems"]["a"], lr.state["systems"]["b"]
    assert any("structure of system a changed" in m for m in logs)
    assert not any("system b" in m for m in logs)
    assert sa["restart"] is None and not sa["done"] and sa["structure_sha256"] != before["a"]["structure_sha256"]
    assert sa["runs"] == before["a"]["runs"]  # its history is kept
    assert sb == before["b"]
    assert lr.state["events"][-1]["system_structure_changed"] == "a"
    assert len(TrainingStore(tmp_path / "out" / "train.h5")) == n_labels
    assert any("max_iterations (1) is used up" in m for m in logs)  # and says how to go on
    # the workflow (--from build) stops there, saying what to raise, rather than going on with a potential
    # that never saw the rebuilt cell
    assert lr.state["never_explored"] == ["a"]
    from mtpjax.workflow.learn import check_learned_every_cell

    with pytest.raises(MTPJaxError, match=r"used all of learn.max_iterations \(1\) and never ran on a .*"
                                          r"--set learn.max_iterations=5 --from learn"):
        check_learned_every_cell(lr.state, 1, "wf.toml")
    check_learned_every_cell(before_state, 1)  # the first run explored every cell: nothing to say
    # raised max_iterations: the learner reopens and the mark goes
    lr3 = Learner(load_config(_write(tmp_path, text.replace("max_iterations = 1", "max_iterations = 2"),
                                     "learn2.toml")), log=lambda *a: None)
    lr3.state = json.loads(json.dumps(lr.state))
    lr3._reopen()
    assert not lr3.state["done"] and "never_explored" not in lr3.state
    # the same structure again: nothing to do
    logs.clear()
    lr2 = Learner(load_config(p), log=logs.append)
    lr2.state = json.loads(json.dumps(lr.state))
    lr2._reopen()
    assert not any("changed" in m for m in logs)


def test_bootstrap_data_seeds_the_store_once_and_checks_types(tmp_path):
    """bootstrap.data: labelled configurations from a file go into the store (provenance: the file),
    once — a resumed bootstrap adds nothing; a file whose types exceed the species list is refused."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.io import write

    frames = []
    for k in range(3):
        at = bulk("Cu", "fcc", a=3.61, cubic=True)
        at.rattle(0.05, seed=k)
        at.calc = EMT()
        at.get_potential_energy()
        frames.append(at)
    write(tmp_path / "seed.extxyz", frames)
    text = BASE.replace("[bootstrap]\n", '[bootstrap]\ndata = ["seed.extxyz"]\n')
    p = _write(tmp_path, text)
    lr = Learner(load_config(p), log=lambda *a: None)
    lr.run(stop_after="bootstrap")
    store = TrainingStore(tmp_path / "out" / "train.h5")
    keys = store.keys()
    assert sum(k.startswith("data/seed/") for k in keys) == 3 and len(keys) == 3 + 4  # + 4 rattles
    confs = dict(zip(keys, store.configurations()))
    assert confs["data/seed/00001"].energy == pytest.approx(frames[1].get_potential_energy(), abs=1e-10)
    assert "seed.extxyz" in store.provenance()["data/seed/00001"]["source"]
    Learner(load_config(p), log=lambda *a: None).bootstrap()  # again: nothing new
    assert len(TrainingStore(tmp_path / "out" / "train.h5")) == len(keys)
    # types beyond the species list
    from mtpjax.io.cfg import write_cfg
    from mtpjax.io.cfg import Configuration

    c = Configuration.from_atoms(frames[0], symbol_to_type={"Cu": 1})
    write_cfg(tmp_path / "bad.cfg", [c])
    p2 = _write(tmp_path, BASE.replace("[bootstrap]\n", '[bootstrap]\ndata = ["bad.cfg"]\n').replace(
        'workdir = "out"', 'workdir = "out2"'), "learn2.toml")
    with pytest.raises(ConfigurationError, match=r"bad.cfg: configuration 1 has type 1, but species has 1"):
        Learner(load_config(p2), log=lambda *a: None).run()
    with pytest.raises(ConfigurationError, match="bootstrap.data must be a list"):
        load_config(_write(tmp_path, BASE.replace("[bootstrap]\n", '[bootstrap]\ndata = "seed.extxyz"\n'), "l3.toml"))


def test_init_potential_with_other_species_count_is_refused(tmp_path):
    from mtpjax.potential.model import MTP

    MTP.from_level(4, species=[0, 1], cutoff=4.5, min_dist=1.9).save(tmp_path / "two.mtp")
    text = BASE.replace("[potential]\n", '[potential]\ninit = "two.mtp"\n')
    p = _write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=r"two.mtp: the potential has 2 species, species lists 1 \(Cu\)"):
        Learner(load_config(p), log=lambda *a: None).run()


def test_anchor_frames_of_every_stage_are_labelled_whatever_their_grade(tmp_path):
    """active.anchors_per_stage = 1 on a two-stage schedule: the frame at the end of each stage
    (global steps 40 and 100) is labelled even with a break threshold no frame reaches, the labels
    are EMT single points of exactly those frames, and their provenance says so."""
    from ase.calculators.emt import EMT

    sched = ('schedule = [{ensemble = "nvt", steps = 40, temperature_K = 300.0, tdamp_fs = 50.0}, '
             '{ensemble = "nvt", steps = 60, temperature_K = 300.0, temperature_end_K = 100.0, tdamp_fs = 50.0}]\n')
    text = BASE.replace("[md]\nsteps = 100\n", "[md]\nsteps = 100\n" + sched)
    text = text.replace('[active]\nmode = "nbh"\n', '[active]\nmode = "nbh"\ncandidate_every = 5\nanchors_per_stage = 1\n'
                        'select_threshold = 1e29\nbreak_threshold = 1e30\n')
    p = _write(tmp_path, text)
    Learner(load_config(p), log=lambda *a: None).run(stop_after="label")
    out = tmp_path / "out"
    sel = json.loads((out / "it000" / "selected.json").read_text())
    anchors = [x for x in sel if x.get("anchor")]
    assert [x["key"] for x in anchors] == ["it000/cu/a000", "it000/cu/a001"] and len(sel) == 2  # no grade-based pick
    from mtpjax.io.cfg import read_cfg

    frames = read_cfg(out / "it000" / "anchors_cu.cfg")
    assert [int(c.features["anchor_step"]) for c in frames] == [40, 100]
    store = TrainingStore(out / "train.h5")
    confs = dict(zip(store.keys(), store.configurations()))
    prov = store.provenance()
    for x, f in zip(anchors, frames):
        c = confs[x["key"]]
        assert np.array_equal(c.positions, f.positions)
        at = c.to_atoms({0: "Cu"})
        at.calc = EMT()
        assert c.energy == pytest.approx(at.get_potential_energy(), abs=1e-10)
        assert prov[x["key"]]["anchor"] is True
