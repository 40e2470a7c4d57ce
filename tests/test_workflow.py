"""`mtpjax run WORKFLOW.toml`: a reduced workflow end to end (toy Morse labels), skipping and --from, resume after kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mtpjax.errors import ConfigurationError
from mtpjax.workflow import STAGES, Workflow, load_workflow
from mtpjax.workflow.build import build_cells
from mtpjax.workflow.fit import fit as fit_stage
from mtpjax.workflow.learn import learn_config
from mtpjax.workflow.production import learn_schedule, minimized, production_md, quench_stages

TESTS = Path(__file__).parent

CI_TOML = """
workdir = "out"
seed = 1
n_structures = 1
species = ["Li", "B", "O", "P", "S"]

[build]
a_A = 7.0
lps_formula_units = 2
lbo_formula_units = 1
lbo_builder = "random"   # the default; the toy Morse labels know no B–O chemistry (network cells: test below)

[potential]
level = 4
cutoff = 4.5
min_dist = 1.2
radial_basis_size = 6

[reference]
kind = "ase"
factory = "_toy_reference:toy_calculator"
kwargs = {cutoff = 4.5}

[labels]
executor = "inline"

[learn]
max_iterations = 1
ensembles = ["nvt"]
structures_per_composition = 1
timestep_fs = 1.0
steps = 40
tdamp_fs = 50
candidate_every = 10

[learn.bootstrap]
method = "rattle"
n_configs = 4

[learn.train]
max_iter = 20
init_max_iter = 40

[fit]
max_iter = 20

[production]
supercell = false
timestep_fs = 1.0
melt_ps = 0.06
quench_ps = 0.06
relax_ps = 0.08
tdamp_fs = 50
pdamp_fs = 5000   # the random cells start far from the toy's equilibrium density: a soft barostat keeps the
                  # box near what one learning iteration has seen (a 500 fs one collapses it in 0.2 ps)
thermo_every = 10
traj_every = 20
minimize_steps = 0  # the toy Morse pair potential's minimum pulls a fifth S onto P (test_minimized_... below)

[sweep]
temperatures_K = [1200, 900]
time_ps = 0.3
timestep_fs = 1.0
thermo_every = 10
traj_every = 10
hop_msd_A2 = 0.5

[analysis]
site_distance_A = 1.0
reference_check = true
"""


def _setup(tmp_path, text=CI_TOML):
    p = tmp_path / "wf.toml"
    p.write_text(text)
    return p


def _numbers(path):
    """results.json without wall times (the part that must not depend on interruptions)."""
    r = json.loads(Path(path).read_text())
    r.pop("wall_s", None)
    return r


@pytest.fixture(autouse=True)
def _toy_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def test_learning_along_the_production_protocol_is_written_for_the_learner(tmp_path):
    """learn.ensembles = ["production"]: each structure learns along melt → quench → relax (NPT at the
    production timestep) + NVT at the hottest sweep T (hotter than the melt), with walkers, from a
    relaxed bootstrap; the learner accepts the file it is given (running it: test_active_learn)."""
    from mtpjax.active.explore import system_stages as _schedule

    text = CI_TOML.replace('ensembles = ["nvt"]', 'ensembles = ["production"]\nhot_ps = 0.03\nwalkers = 2')
    text = text.replace('method = "rattle"', 'method = "relax"')
    wf = Workflow(load_workflow(_setup(tmp_path, text)), log=lambda *a: None)
    build_cells(wf)
    lc = learn_config(wf)
    assert [s.name for s in lc.system] == ["lps0_production", "lbo0_production", "int0_production"]
    assert lc.bootstrap.method == "relax"
    for s in lc.system:
        md = s.md
        assert md.walkers == 2 and md.timestep_fs == 1.0
        st = _schedule(md, s.name)
        assert [x.name for x in st] == ["melt", "quench", "relax", "hot"]
        assert [x.steps for x in st] == [60, 60, 80, 30]
        assert st[1].temperature == 1000.0 and st[1].temperature_end == 300.0 and st[1].ensemble == "npt"
        assert st[3].ensemble == "nvt" and st[3].temperature == 1200.0
    # no hot stage when the sweep stays below the melt temperature
    text2 = text.replace("temperatures_K = [1200, 900]", "temperatures_K = [900, 800]")
    wf2 = Workflow(load_workflow(_setup(tmp_path, text2)), log=lambda *a: None)
    assert [x["name"] for x in learn_schedule(wf2.cfg)] == ["melt", "quench", "relax"]


@pytest.mark.first(0)
def test_reduced_workflow_end_to_end(tmp_path):
    """Every stage runs, the report has every figure and number; a re-run skips; --from analyze reproduces."""
    cfg = load_workflow(_setup(tmp_path))
    logs = []
    wf = Workflow(cfg, log=logs.append)
    wf.run()
    out = tmp_path / "out"
    for s in STAGES:
        assert (out / "stages" / f"{s}.json").exists(), s
    rep = (out / "report" / "report.md").read_text()
    for fig in ("fig3b_parity.png", "fig4_rdf.png", "fig5_density_bo4.png", "fig6_arrhenius.png",
                "fig7_interface_diffusion.png", "fig8_gii_energy.png", "fig9_displacement.png"):
        assert (out / "report" / fig).stat().st_size > 1000, fig
        assert fig in rep
    fit = json.loads((out / "stages" / "fit.json").read_text())
    assert fit["n_valid"] > 0 and fit["final_on_all"]["n_configs"] == fit["n_train"] + fit["n_valid"]
    # the stage's wall time (the report's table) covers its training runs, not the other way round
    assert fit["wall_s"] > fit["train_wall_s"] + fit["final_on_all"]["wall_s"]
    assert f"| fit | {fit['wall_s']:.1f} |" in rep
    assert (out / "fit" / "pot_validated.mtp").exists() and "pot_validated.mtp" in rep
    res = json.loads((out / "analyze" / "results.json").read_text())
    assert set(res["compositions"]) == {"lps", "lbo", "int"}
    for comp, r in res["compositions"].items():
        # densities from the thermo log agree with the cell and the masses of the last frame's structure
        assert r["density_g_cm3"]["mean"] > 0
        assert len(r["per_structure"][0]["gii"]["per_frame"]) == r["per_structure"][0]["n_frames"]
    # the PS4 units survive the toy potential's MD: 4 S within 2.6 Å of P
    assert abs(res["compositions"]["lps"]["cn"]["P-S"]["cutoff"]["mean"] - 4.0) < 0.5
    assert res["energetics"]["interface"]["gamma_mJ_m2"]["mean"] is not None
    checks = {c["check"]: c for c in res["sanity"]}
    assert {"interface energy positive (MTP, 300 K average)", "γ of the MTP agrees with the reference (300 K frames)",
            "D increases with T (lps)"} <= set(checks)
    # toy-sized interface cells: the sign of γ is not a check there (and the report says why)
    assert checks["interface energy positive (MTP, 300 K average)"]["passed"] is None
    assert "not checked: at this scale" in rep and "### Fidelity" in rep
    # the reference on the final quench frames: an independent toy single point of each frame, and γ from
    # those energies (the interface cell holds exactly the bulk cells' atoms: 2 Li3PS4 + 1 Li3B11O18)
    from ase.io import read

    from _toy_reference import toy_calculator

    rc = res["reference_check"]
    assert set(rc["frames"]) == {"lps/r00", "lbo/r00", "int/r00"} and not rc["failed"]
    E = {}
    for k, v in rc["frames"].items():
        at = read(out / "quench" / k.split("/")[0] / "md" / k.split("/")[1] / "final.extxyz")
        at.calc = toy_calculator(cutoff=4.5)
        E[k] = at.get_potential_energy()
        assert v["E_ref_eV"] == pytest.approx(E[k], rel=1e-10)
        assert v["dE_meV_atom"] == pytest.approx(1e3 * (v["E_mtp_eV"] - E[k]) / len(at), rel=1e-9)
        if k == "int/r00":
            area = np.linalg.norm(np.cross(at.cell[0], at.cell[1]))
    gamma = (E["int/r00"] - E["lps/r00"] - E["lbo/r00"]) / (2 * area) * 16.0217663e3  # eV/Å² → mJ/m²
    assert rc["interface_gamma_mJ_m2"]["ref"]["mean"] == pytest.approx(gamma, rel=1e-6)
    assert "How far to trust the numbers" in rep
    # inherent structures: each final frame relaxed with the MTP in the mean cell of its averaging window
    # (energy down, forces at the threshold when converged), graded, γ from their energies (those within the
    # trained domain), and the reference's single points on them
    from mtpjax.active.grade import grade_configs
    from mtpjax.active.state import read_state
    from mtpjax.potential.calculator import MTPCalculator
    from mtpjax.io.cfg import Configuration

    model, ast = read_state(out / "fit" / "pot.almtp")
    to_type = {s: k for k, s in enumerate(["Li", "B", "O", "P", "S"])}
    inh = res["inherent"]
    assert set(inh) == {"lps/r00", "lbo/r00", "int/r00"}
    calc = MTPCalculator(str(out / "fit" / "pot.mtp"), symbols=["Li", "B", "O", "P", "S"])
    brk = res["extrapolation"]["break_threshold"]
    inside = {k for k, v in inh.items() if v["grade"] <= brk}
    assert set(rc["inherent"]["frames"]) == inside  # the reference labels only the trustworthy ones
    E_is, E_ref_is, frames = {}, {}, {}
    for k, v in inh.items():
        at = read(v["path"])
        at.calc = calc
        assert at.get_potential_energy() == pytest.approx(v["E_eV"], rel=1e-9)
        comp = k.split("/")[0]
        np.testing.assert_allclose(at.cell[:], res["compositions"][comp]["per_structure"][0]["cell_A"], atol=1e-6)
        g, _ = grade_configs(model, ast, [Configuration.from_atoms(at, symbol_to_type=to_type)])
        assert v["grade"] == pytest.approx(float(g[0]), rel=1e-9)
        if v["converged"]:
            assert np.abs(at.get_forces()).max() <= 0.02 + 1e-9
        E_is[k], frames[k] = v["E_eV"], at
        at.calc = toy_calculator(cutoff=4.5)
        E_ref_is[k] = at.get_potential_energy()
        if k in inside:
            assert rc["inherent"]["frames"][k]["E_ref_eV"] == pytest.approx(E_ref_is[k], rel=1e-10)
        else:  # named in the report as left out
            assert f"{k}: extrapolation grade" in rep
    from mtpjax.workflow.analyze import _gamma_of

    area = np.linalg.norm(np.cross(frames["int/r00"].cell[0], frames["int/r00"].cell[1]))
    for E in (E_is, E_ref_is):
        want = (E["int/r00"] - E["lps/r00"] - E["lbo/r00"]) / (2 * area) * 16.02176634e3  # eV/Å² → mJ/m²
        assert _gamma_of(E, frames)[0]["gamma_mJ_m2"] == pytest.approx(want, rel=1e-10)
    if inside == set(inh):
        assert res["energetics"]["interface_inherent"]["gamma_mJ_m2"]["mean"] == pytest.approx(
            _gamma_of(E_is, frames)[0]["gamma_mJ_m2"], rel=1e-10)
        assert rc["inherent"]["interface_gamma_mJ_m2"]["ref"]["mean"] == pytest.approx(
            _gamma_of(E_ref_is, frames)[0]["gamma_mJ_m2"], rel=1e-10)
        assert "inherent structures" in rep
    else:  # γ only from structures the potential was trained for
        assert "interface_inherent" not in res["energetics"]
        assert "interface_gamma_mJ_m2" not in rc["inherent"]
    # cached for this potential (its sha256), so a re-analysis does not label again
    import hashlib

    cached = json.loads((out / "analyze" / "reference_check.json").read_text())
    assert cached["potential_sha256"] == hashlib.sha256((out / "fit" / "pot.mtp").read_bytes()).hexdigest()
    assert cached["result"] == rc
    # production MD graded against the consolidated potential's active set, saved beside it: MaxVol over
    # the training set leaves every training configuration interpolating (γ ≤ 1 + the swap tolerance)
    from mtpjax.active.grade import grade_configs
    from mtpjax.active.state import read_state
    from mtpjax.io.store import TrainingStore

    ex = res["extrapolation"]
    assert ex["quench"]["n_frames"] > 0 and ex["sweep"]["n_frames"] > 0 and ex["mode"] == "nbh"
    assert any(c["check"] == "sweep MD within the trained domain" for c in res["sanity"])
    model, ast = read_state(out / "fit" / "pot.almtp")
    g, _ = grade_configs(model, ast, TrainingStore(out / "learn" / "train.h5").configurations())
    assert np.max(g) <= 1 + 1e-6
    # replicas of the sweep are the product structures × temperatures, each with its own trajectory
    reps = json.loads((out / "sweep" / "lps" / "round0" / "replicas.json").read_text())
    assert sorted(r["T_K"] for r in reps) == [900.0, 1200.0]
    # re-running skips every stage
    logs.clear()
    Workflow(cfg, log=logs.append).run()
    assert sum("done already" in m for m in logs) == len(STAGES)
    # --from analyze redoes analysis and report with the same numbers
    before = _numbers(out / "analyze" / "results.json")
    Workflow(cfg, log=logs.append).run(from_stage="analyze")
    assert _numbers(out / "analyze" / "results.json") == before
    # fit.init = "mlip3": pot_validated is fitted from scratch on the training split (held-out validation
    # errors; the default continues from the learned potential and the report calls its errors optimistic)
    from mtpjax.potential.model import MTP
    from mtpjax.workflow.report import write_report

    assert "errors are optimistic" in rep
    cfg2 = cfg.replace(fit=cfg.fit.replace(init="mlip3"))
    wf2 = Workflow(cfg2, log=lambda *a: None)
    info = fit_stage(wf2)
    assert info["init"] == "mlip3" and info["n_valid"] == fit["n_valid"]
    learned = MTP.from_file(json.loads((out / "stages" / "learn.json").read_text())["potential"])
    scratch = MTP.from_file(out / "fit" / "pot_validated.mtp")
    assert not np.allclose(np.asarray(scratch.radial_coeffs), np.asarray(learned.radial_coeffs), rtol=0.5)
    wf2._mark("fit", info, fit["wall_s"])
    write_report(wf2)
    assert "from scratch (`fit.init = \"mlip3\"`): held-out errors" in (out / "report" / "report.md").read_text()


def test_minimized_start_is_redone_when_its_source_or_potential_changes(tmp_path):
    """A minimised starting cell is kept on resume only if it was minimised from the same source bytes
    with the same potential (after --from build the learning must not start from the old cells)."""
    from ase.io import read, write

    seed = TESTS.parent / "examples" / "data" / "quick_seed_l8.mtp"
    wf = Workflow(load_workflow(_setup(tmp_path, CI_TOML.replace("minimize_steps = 0", "minimize_steps = 5"))),
                  log=lambda *a: None)
    build_cells(wf)
    src, dst = wf.structures("lps")[0], tmp_path / "start.extxyz"
    minimized(wf, src, dst, seed)
    first, first_pos = dst.read_bytes(), read(dst).positions
    assert read(dst).info["minimized_from_sha256"]
    minimized(wf, src, dst, seed)
    assert dst.read_bytes() == first  # kept
    at = read(src)
    at.rattle(0.05, seed=3)
    write(src, at)  # rebuilt cell
    minimized(wf, src, dst, seed)
    redo = read(dst)
    assert dst.read_bytes() != first
    assert not np.allclose(redo.positions, first_pos, atol=1e-3)  # minimised from the new cell
    other = tmp_path / "other.mtp"
    other.write_bytes(seed.read_bytes() + b"\n")
    minimized(wf, src, dst, other)
    assert read(dst).info["minimized_with_sha256"] != redo.info["minimized_with_sha256"]


def test_production_barostat_reaches_every_npt_run(tmp_path):
    """production.barostat (LAMMPS iso / aniso / tri) is the barostat of the quench runs and of the
    learning's NPT runs (production protocol and plain NPT), so the potential learns the cell shapes
    production visits; iso by default."""
    from mtpjax.active.explore import system_stages as _schedule

    assert {s["barostat"] for s in quench_stages(load_workflow(_setup(tmp_path)))} == {"iso"}
    text = CI_TOML.replace("[production]\n", "[production]\nbarostat = \"aniso\"\n").replace(
        'ensembles = ["nvt"]', 'ensembles = ["production", "npt"]')
    wf = Workflow(load_workflow(_setup(tmp_path, text)), log=lambda *a: None)
    assert {s["barostat"] for s in quench_stages(wf.cfg)} == {"aniso"}
    build_cells(wf)
    lc = learn_config(wf)
    for s in lc.system:
        npt = [x for x in _schedule(s.md, s.name) if x.ensemble == "npt"]
        assert npt and {x.barostat for x in npt} == {"aniso"}, s.name


@pytest.mark.parametrize("text,match", [
    (CI_TOML.replace("[fit]\n", "[fit]\nfoo = 1\n"), "fit: unknown key 'foo'"),
    (CI_TOML.replace("n_structures = 1\n", "n_structures = 0\n"), "n_structures"),
    (CI_TOML.replace('ensembles = ["nvt"]', 'ensembles = ["nxt"]'), "learn.ensembles"),
    (CI_TOML.replace("temperatures_K = [1200, 900]", "temperatures_K = []"), "sweep.temperatures_K"),
    (CI_TOML.replace('species = ["Li", "B", "O", "P", "S"]', 'species = ["Li", "B", "O", "P"]'), "species must"),
    (CI_TOML.replace("[analysis]\n", "[analysis]\ncrystals = {Li3PS4 = \"nope.cif\"}\n"), "not found"),
    (CI_TOML.replace('kind = "ase"', 'kind = "dft"'), "reference.kind"),
    (CI_TOML.replace('lbo_builder = "random"', 'lbo_builder = "crystal"'), "build.lbo_builder"),
    (CI_TOML.replace("minimize_steps = 0", "minimize_steps = -5"), "production.minimize_steps"),
    (CI_TOML.replace("[fit]\n", "[fit]\nanchor_weight = -2\n"), "fit.anchor_weight must be a number ≥ 0"),
    (CI_TOML.replace("[fit]\n", "[fit]\ninit = \"scratch\"\n"), "fit.init = 'scratch'"),
    (CI_TOML.replace("reference_check = true", "reference_check = true\nreference_check_inherent = 1"),
     "analysis.reference_check_inherent must be true or false"),
    (CI_TOML.replace("[learn.train]\n", "[learn.train]\nanchor_weight = \"10\"\n"), "learn.train.anchor_weight"),
    (CI_TOML.replace("minimize_steps = 0", "minimize_steps = 10\nminimize_fmax = 0"), "production.minimize_fmax"),
    (CI_TOML.replace("[production]\n", "[production]\nbarostat = \"z\"\n"), "production.barostat = 'z'"),
])
def test_workflow_config_errors(tmp_path, text, match):
    from mtpjax.errors import MTPJaxError

    with pytest.raises(MTPJaxError, match=match):
        load_workflow(_setup(tmp_path, text))


def test_build_stage_makes_borate_network_cells(tmp_path):
    """build.lbo_builder = "network": 8 BO3 + 3 BO4 per Li3B11O18 in the bulk cells; the interface cell
    loses only the B–O bonds of the cut plane (≤ 2 per 11 B in a 7 Å cell)."""
    from ase.io import read
    from ase.neighborlist import neighbor_list

    text = CI_TOML.replace('lbo_builder = "random"', 'lbo_builder = "network"').replace("n_structures = 1",
                                                                                      "n_structures = 2")
    wf = Workflow(load_workflow(_setup(tmp_path, text)))
    wf.run(until="build")
    for k in range(2):
        for comp, lo in (("lbo", 36), ("int", 34)):
            at = read(tmp_path / "out" / "build" / f"{comp}_{k}.extxyz")
            i, j = neighbor_list("ij", at, 1.7)
            z = at.numbers
            nbonds = int(np.sum((z[i] == 5) & (z[j] == 8)))
            assert lo <= nbonds <= 36, (comp, k, nbonds)


def test_minimized_starting_cells(tmp_path):
    """production.minimize_steps: a B–O network cell (spring embedding) relaxed with the shipped level-8
    xTB-fitted MTP drops in energy and pressure, ends below fmax (forces recomputed by a fresh calculator
    from the written file) with the cell unchanged; the file is kept (a resumed run starts from the same
    cell); learn_toml starts the learner from cells minimised with potential.init; 0 turns it off."""
    from ase.io import read
    from ase.units import GPa

    from mtpjax.potential import MTPCalculator

    pot = TESTS.parent / "examples" / "data" / "quick_seed_l8.mtp"
    text = CI_TOML.replace('lbo_builder = "random"', 'lbo_builder = "network"').replace(
        "minimize_steps = 0", "minimize_steps = 400").replace("radial_basis_size = 6", f'init = "{pot}"')
    logs = []
    wf = Workflow(load_workflow(_setup(tmp_path, text)), log=logs.append)
    wf.run(until="build")
    src = tmp_path / "out" / "build" / "lbo_0.extxyz"
    dst = minimized(wf, src, tmp_path / "m.extxyz", pot)
    assert dst == tmp_path / "m.extxyz" and any("minimised lbo_0.extxyz" in m for m in logs)
    a0, a1 = read(src), read(dst)
    np.testing.assert_array_equal(a0.cell[:], a1.cell[:])
    for a in (a0, a1):
        a.calc = MTPCalculator(str(pot), symbols=["Li", "B", "O", "P", "S"])
    assert a1.get_potential_energy() < a0.get_potential_energy() - 0.1 * len(a0)  # spring embedding: far off
    p0, p1 = (-np.mean(a.get_stress()[:3]) / GPa for a in (a0, a1))
    assert p1 < p0 - 5.0, (p0, p1)
    assert np.sqrt((a1.get_forces() ** 2).sum(axis=1)).max() <= 0.05 + 1e-9
    mtime = dst.stat().st_mtime_ns
    assert minimized(wf, src, dst, pot) == dst and dst.stat().st_mtime_ns == mtime
    lc = learn_config(wf)
    assert [Path(s.structure).name for s in lc.system] == ["start_lps_0.extxyz", "start_lbo_0.extxyz",
                                                                  "start_int_0.extxyz"]
    off = Workflow(load_workflow(_setup(tmp_path, text.replace("minimize_steps = 400", "minimize_steps = 0"))))
    assert minimized(off, src, tmp_path / "n.extxyz", pot) == src and not (tmp_path / "n.extxyz").exists()


def test_unknown_stage(tmp_path):
    wf = Workflow(load_workflow(_setup(tmp_path)))
    with pytest.raises(ConfigurationError, match="unknown stage"):
        wf.run(from_stage="nope")


@pytest.mark.slow
def test_kill_and_resume_same_report(tmp_path):
    """SIGKILL `mtpjax run` during learn and during quench, re-run: same numbers as an uninterrupted run
    (with the production cells minimised first, so a resumed quench must start from the same cells)."""
    text = CI_TOML.replace("minimize_steps = 0", "minimize_steps = 30")
    clean = tmp_path / "clean"
    clean.mkdir()
    Workflow(load_workflow(_setup(clean, text))).run()
    killed = tmp_path / "killed"
    killed.mkdir()
    p = _setup(killed, text)
    env = dict(os.environ, PYTHONPATH=str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for stage in ("learn", "quench"):
        proc = subprocess.Popen([sys.executable, "-m", "mtpjax.cli", "run", str(p)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        marker = killed / "out" / "stages" / f"{STAGES[STAGES.index(stage) - 1]}.json"
        t0 = time.time()
        while not marker.exists() and time.time() - t0 < 600:
            time.sleep(0.2)
        time.sleep(8.0)  # well inside the stage
        assert proc.poll() is None, "finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (killed / "out" / "stages" / f"{stage}.json").exists()
    r = subprocess.run([sys.executable, "-m", "mtpjax.cli", "run", str(p)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _numbers(killed / "out" / "analyze" / "results.json") == _numbers(clean / "out" / "analyze" / "results.json")


def test_example_workflow_files_validate():
    """examples/quick.toml and examples/paper.toml are valid (paper: VASP command replaced by one that exists)."""
    ex = TESTS.parent / "examples"
    pytest.importorskip("tblite")
    q = load_workflow(ex / "quick.toml")
    assert q.reference["kind"] == "tblite" and q.n_structures >= 1
    p = load_workflow(ex / "paper.toml", ['reference.command="true"'])
    assert p.build.lps_formula_units == 12 and p.production.quench_ps == 2000
    assert p.learn.ensembles == ["nvt", "npt"]


def test_toy_reference_forces_and_stress_are_derivatives():
    """The toy reference used above: forces and stress against central finite differences of its energy."""
    import numpy as np
    from ase.build import bulk

    from _toy_reference import ToyPairs

    at = bulk("Li", "bcc", a=3.5, cubic=True).repeat(2)
    at.symbols[[0, 3, 5]] = ["P", "S", "O"]
    at.rattle(0.05, seed=2)
    at.calc = ToyPairs()
    F, S, V = at.get_forces(), at.get_stress(), at.get_volume()

    def energy(a):
        a.calc = ToyPairs()
        return a.get_potential_energy()

    h = 1e-5
    for k, c in ((0, 0), (3, 1), (7, 2)):
        ap, am = at.copy(), at.copy()
        ap.positions[k, c] += h
        am.positions[k, c] -= h
        assert abs(-(energy(ap) - energy(am)) / (2 * h) - F[k, c]) < 1e-6
    for v, (i, j) in enumerate([(0, 0), (1, 1), (2, 2)]):
        eps = np.zeros((3, 3))
        eps[i, j] = h
        ap, am = at.copy(), at.copy()
        ap.set_cell(at.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        am.set_cell(at.cell.array @ (np.eye(3) - eps), scale_atoms=True)
        assert abs((energy(ap) - energy(am)) / (2 * h) / V - S[v]) < 1e-6


def test_broken_production_md_names_the_remedy(tmp_path, monkeypatch):
    """An exploding/collapsing production run stops the workflow with what to change in the file."""
    import mtpjax.workflow.production as production
    from mtpjax.errors import MTPJaxError
    from mtpjax.md.simulation import SimulationError

    def boom(*a, **k):
        raise SimulationError("simulation collapsed in stage 2 (npt) near step 100")

    monkeypatch.setattr(production, "run_md", boom)
    wf = Workflow(load_workflow(_setup(tmp_path)), log=lambda *a: None)
    with pytest.raises(MTPJaxError, match=r"(?s)quench \(lbo\): simulation collapsed.*learn.ensembles.*--from learn"):
        production_md(wf, None, "quench", "lbo")
