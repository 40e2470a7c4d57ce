"""The benchmark suite: tiny end-to-end run (JSON + Markdown) and the MLIP/LAMMPS hooks,
exercised with fake ``mlp``/``lmp`` executables that print what the real programs print."""
import json
import os
import stat
import sys
import textwrap

import numpy as np
import pytest

from benchmarks import peers
from benchmarks.__main__ import main, render_markdown

ERRORS_REPORT = """\
_________________Errors report_________________
Energy:
\tErrors checked for 20 configurations
\tMaximal absolute difference = 0.0484016
\tAverage absolute difference = 0.0180745
\tRMS     absolute difference = 0.0229802

Energy per atom:
\tErrors checked for 20 configurations
\tMaximal absolute difference = 0.00134449
\tAverage absolute difference = 0.000536892
\tRMS     absolute difference = 0.000673586

Forces:
\tErrors checked for 664 atoms
\tMaximal absolute difference = 0.0950439
\tAverage absolute difference = 0.00621093
\tRMS     absolute difference = 0.01303
\tMax(ForceDiff) / Max(Force) = 0.0125464
\tRMS(ForceDiff) / RMS(Force) = 0.0121669

Stresses (in eV):
\tErrors checked for 20 configurations
\tMaximal absolute difference = 2.57529
\tAverage absolute difference = 0.105725
\tRMS     absolute difference = 0.409394

Stresses (in GPa):
\tErrors checked for 20 configurations
\tRMS     absolute difference = 9.99
_______________________________________________
"""


def _script(path, body):
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_mlp(tmp_path):
    """``mlp calc-efs POT IN OUT`` (writes OUT with Energy 1.0), ``mlp train``, ``mlp calc-errors``."""
    log = tmp_path / "mlp_calls.txt"
    report = tmp_path / "report.txt"
    report.write_text(ERRORS_REPORT)
    return _script(tmp_path / "mlp", f"""
        import shutil, sys
        sys.path.insert(0, {os.getcwd()!r})
        args = sys.argv[1:]
        open({str(log)!r}, "a").write(" ".join(args) + "\\n")
        cmd = args[0]
        if cmd == "calc-efs":
            from mtpjax.potential import read_cfg, write_cfg
            pot, inp, out = args[1:4]
            assert open(pot).read().startswith("MTP"), "not an .mtp file"
            confs = read_cfg(inp)
            for c in confs:
                c.energy = 1.0
                c.forces = 0.0 * c.positions
            write_cfg(out, confs)
        elif cmd == "train":
            pot, cfg = args[1:3]
            name = [a.split("=", 1)[1] for a in args if a.startswith("--trained-pot-name=")][0]
            assert any(a.startswith("--max-iter=") for a in args)
            shutil.copyfile(pot, name)
            print("BFGS iter 1: f=1.0")
            print(open({str(report)!r}).read())
        elif cmd == "calc-errors":
            print("MTPR from x, Database: y")
            print(open({str(report)!r}).read())
        else:
            sys.exit(f"unknown command {{cmd}}")
        """)


@pytest.fixture
def fake_lmp(tmp_path):
    """Checks the input uses ``pair_style mlip mlip.ini`` and prints LAMMPS' ``Loop time`` line."""
    return _script(tmp_path / "lmp", """
        import re, sys
        inp = sys.argv[sys.argv.index("-in") + 1]
        text = open(inp).read()
        assert "pair_style mlip mlip.ini" in text and "pair_coeff * *" in text, text
        ini = open("mlip.ini").read()
        pot = ini.split()[1]
        assert open(pot).read().startswith("MTP")
        data = open(re.search(r"read_data (\\S+)", text).group(1)).read()
        natoms = int(re.search(r"(\\d+) atoms", data).group(1))
        steps = int(re.search(r"^run (\\d+)", text, re.M).group(1))
        assert "Atoms # atomic" in data and len(data.split("Atoms # atomic")[1].split()) == 5 * natoms
        print("LAMMPS (2 Aug 2023)")
        print("Per MPI rank memory allocation (min/avg/max) = 3.1 | 3.1 | 3.1 Mbytes")
        print("   Step          Temp          E_pair  ")
        print(f"Loop time of {0.002 * steps:.6f} on 1 procs for {steps} steps with {natoms} atoms")
        print("Total wall time: 0:00:01")
        """)


def test_reference_timings_parsed():
    rows = peers.mlip_reference_timings()
    x10 = {(r["code"], r["level"]): r for r in rows if r["copies"] == 10}
    # tests/data/mlip_ref/README.md: level 08 MLIP-2 14.0 / 15.7 ms per configuration
    assert x10[("MLIP-2", 8)]["min_s"] == pytest.approx(0.0140463, rel=1e-4)
    assert x10[("MLIP-2", 8)]["median_s"] == pytest.approx(0.0157300, rel=1e-4)
    assert x10[("MLIP-3", 20)]["min_s"] == pytest.approx(0.1793388, rel=1e-4)
    assert all("EPYC" in r["machine"] for r in rows)


def test_parsers():
    err = peers.parse_mlp_errors("Energy per atom:\n" + ERRORS_REPORT)
    assert err == {"energy_rmse_total": 0.0229802, "energy_rmse": 0.000673586, "force_rmse": 0.01303,
                   "stress_rmse": 0.409394}
    lt = peers.parse_loop_time("x\nLoop time of 2.5 on 4 procs for 100 steps with 1000 atoms\n")
    assert lt["step_s"] == pytest.approx(0.025) and lt["atom_steps_per_s"] == pytest.approx(40000)
    with pytest.raises(ValueError):
        peers.parse_loop_time("no loop here")
    cell = np.array([[4.0, 0, 0], [1.0, 3.0, 0.5], [0.3, 0.2, 5.0]])
    box = peers.lammps_cell(cell)
    assert np.allclose(box @ box.T, cell @ cell.T) and box[0, 1] == box[0, 2] == box[1, 2] == 0


def test_mlp_and_lammps_hooks(tmp_path, fake_mlp, fake_lmp, monkeypatch):
    from benchmarks.common import MLIP_REF

    monkeypatch.setenv("MTPJAX_MLP", str(fake_mlp))
    monkeypatch.setenv("MTPJAX_LAMMPS", str(fake_lmp))
    mlp, lmp = peers.mlp_binary(), peers.lammps_binary()
    assert mlp == [str(fake_mlp)] and lmp == [str(fake_lmp)]
    pot = MLIP_REF / "potentials" / "m2_l08_trained.mtp"
    work = tmp_path / "w"
    work.mkdir()
    pos = np.random.default_rng(0).uniform(0, 8, (10, 3))
    cell = np.eye(3) * 8.0
    cfg = peers.write_cfg_copies(work / "in.cfg", pos, cell, np.arange(10) % 3, copies=3)
    res = peers.mlp_calc_efs(mlp, pot, cfg, work, repeats=2, copies=3)
    assert res["mlp_min_s"] > 0 and res["mlp_median_s"] >= res["mlp_min_s"] and res["mlp_energy_eV"] == 1.0
    d = MLIP_REF / "training"
    tr = peers.mlp_train(mlp, d / "l08_untrained.mtp", d / "train.cfg", work, 7, d / "valid.cfg")
    assert tr["mlp_train_wall_s"] > 0 and tr["mlp_valid_energy_rmse"] == 0.000673586
    assert tr["mlp_valid_force_rmse"] == 0.01303 and tr["mlp_max_iter"] == 7
    calls = (tmp_path / "mlp_calls.txt").read_text()
    assert "--max-iter=7" in calls and "calc-errors" in calls
    md = peers.lammps_md(lmp, pot, pos, cell, np.arange(10) % 3, [63.5, 107.9, 197.0], 10, work, "npt", repeats=2)
    assert md["lammps_step_min_s"] == pytest.approx(0.002) and md["lammps_atom_steps_per_s"] == pytest.approx(5000)
    assert "fix 1 all npt" in (work / "in.npt.lmp").read_text()
    # unset or wrong → no peer
    monkeypatch.setenv("MTPJAX_MLP", str(tmp_path / "missing"))
    assert peers.mlp_binary() is None


@pytest.mark.first
def test_suite_tiny(tmp_path, fake_mlp, monkeypatch):
    """efs (with the fake mlp as peer) and memory through the suite: one JSON, one Markdown."""
    monkeypatch.setenv("MTPJAX_MLP", str(fake_mlp))
    rc = main(["run", "--tiny", "--only", "efs,memory", "--out", str(tmp_path), "--name", "t"])
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["mode"] == "tiny" and data["machine"]["cpu_count"] and data["machine"]["versions"]["jax"]
    assert data["machine"]["mlp"] == str(fake_mlp)
    for case in ("efs", "memory"):
        assert "error" not in data["cases"][case], data["cases"][case]
    row = data["cases"]["efs"]["rows"][0]
    assert row["level"] == 8 and row["natoms"] > 0 and row["mtpjax_min_s"] > 0
    assert row["mtpjax_median_s"] >= row["mtpjax_min_s"]
    assert row["mlp_min_s"] > 0, row
    # same potential file read by both codes → same energy (when motep is installed)
    if "energy_diff_vs_motep_eV" in row:
        assert row["energy_diff_vs_motep_eV"] < 1e-9
    mem = data["cases"]["memory"]["rows"][0]
    assert mem["rss_peak_mb"] >= mem["rss_setup_mb"] > 0
    md = (tmp_path / "t.md").read_text()
    assert "| level |" in md and "mlp calc-efs ms" in md and "Peak memory" in md
    assert not (tmp_path / "quick.md").exists()
    assert rc == 0


def test_render_md_train_and_reference_rows():
    run = {"started": "now", "mode": "quick", "wall_s": 1.0,
           "machine": {"cpu_count": 2, "versions": {"jax": "x"}, "devices": ["cpu:0"]},
           "cases": {
               "md": {"rows": [dict(n_atoms=10, ensemble="NVT", replicas=4, code="mtpjax", step_min_s=1e-3,
                                    step_median_s=2e-3, atom_steps_per_s=4e4),
                               dict(n_atoms=10, ensemble="NVT", replicas=1, code="LAMMPS+MLIP", step_min_s=1e-3,
                                    step_median_s=1e-3, atom_steps_per_s=1e4)], "wall_s": 1.0},
               "efs": {"rows": [], "tables": {"efs vs MLIP reference (big1008.cfg)": [
                   dict(level=8, potential="m2_l08_trained.mtp", natoms=1008, mtpjax_min_s=0.02, mtpjax_median_s=0.03,
                        mlip2_ref_min_s=0.014, mlip2_ref_median_s=0.0157)]}, "wall_s": 1.0},
               "train": {"error": "RuntimeError: boom", "wall_s": 0.5}}}
    md = render_markdown(run)
    assert "| 10 | NVT | 4 | mtpjax | 1 / 2 | 4e+04 |" in md
    assert "LAMMPS+MLIP" in md and "MLIP-2 ms (recorded)" in md and "14 / 15.7" in md and "EPYC" in md
    assert "failed: `RuntimeError: boom`" in md


def test_suite_rejects_unknown_case(tmp_path):
    with pytest.raises(SystemExit):
        main(["run", "--only", "nope", "--out", str(tmp_path)])
