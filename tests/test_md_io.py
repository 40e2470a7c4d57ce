"""MD run files, H5MD output (MDAnalysis, znh5md), converters, checkpoints and resume after kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mtpjax  # noqa: F401
from refdata import REF
from ase import units
from ase.io import read, write
from ase.lattice.cubic import FaceCenteredCubic

from mtpjax.io.convert import lammps_cell
from mtpjax.io.h5md import read_h5md
from mtpjax.io.thermo import read_thermo
from mtpjax.config.md import load_md_run
from mtpjax.md.run import run_md

POT = REF / "potentials/m2_l12_trained.mtp"
CFG = REF / "inputs/train.cfg"

RUN = """
structure = "ar.extxyz"
potential = {{type = "lj"}}
output = "out"
timestep_fs = 2.0
temperature_K = 80
seed = 3
thermo_every = 10
traj_every = 50
checkpoint_every = 100
velocities = true
{extra}

[[stage]]
name = "compress"
ensemble = "npt"
steps = {n1}
temperature_K = 80
pressure_bar = 10
barostat = "tri"
tdamp_fs = 100
pdamp_fs = 1000

[[stage]]
name = "cool"
ensemble = "nvt"
steps = {n2}
temperature_K = 80
temperature_end_K = 40
tdamp_fs = 100
"""


def _argon(path, tri=True):
    a = FaceCenteredCubic("Ar", size=(2, 2, 2), latticeconstant=5.3)
    if tri:
        f = a.get_scaled_positions()
        a.cell = a.cell.array @ (np.eye(3) + np.array([[0, 0.05, 0.02], [0, 0, 0.03], [0, 0, 0]]))
        a.positions = f @ a.cell.array
    a.rattle(0.02, seed=1)
    write(path, a)
    return a


def _runfile(tmp, n1=200, n2=200, extra=""):
    _argon(tmp / "ar.extxyz")
    p = tmp / "run.toml"
    p.write_text(RUN.format(n1=n1, n2=n2, extra=extra))
    return p


def test_run_outputs_h5md_thermo_and_ramp(tmp_path):
    out = run_md(load_md_run(_runfile(tmp_path)), progress=False)
    sp, pos, cells, steps, times, vel, obs = read_h5md(out / "traj.h5md")
    assert list(steps) == list(range(0, 401, 50))
    np.testing.assert_allclose(times * 1000, steps * 2.0)
    assert pos.shape == (9, 32, 3) and cells.shape == (9, 3, 3) and vel.shape == (9, 32, 3)
    assert np.all(sp == 18)
    assert abs(cells[-1, 0, 1]) > 0  # triclinic box kept
    th = read_thermo(out / "thermo.csv")
    assert list(th["step"]) == list(range(0, 401, 10))
    for col in ("time_fs", "temperature_K", "pressure_bar", "epot_eV", "ekin_eV", "conserved_eV", "volume_A3",
                "density_g_cm3"):
        assert np.all(np.isfinite(th[col]))
    # the H5MD observables are the thermo values at the frame steps
    np.testing.assert_allclose(obs["potential_energy"], th["epot_eV"][::5], rtol=1e-9)
    np.testing.assert_allclose(obs["volume"], th["volume_A3"][::5], rtol=1e-9)
    final = read(out / "final.extxyz")
    np.testing.assert_allclose(final.cell.array, cells[-1], atol=1e-8)


def _rotated_triclinic_run(tmp_path, n1=100, n2=100):
    """The run file of _runfile with a triclinic cell in a generic orientation (not lower-triangular)."""
    p = _runfile(tmp_path, n1, n2)
    a = read(tmp_path / "ar.extxyz")
    ax = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    K = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    Q = np.eye(3) + np.sin(0.7) * K + (1 - np.cos(0.7)) * K @ K
    a.set_cell(a.cell.array @ Q.T, scale_atoms=True)
    write(tmp_path / "ar.extxyz", a)
    return p


def _temperature(masses, v_ase):
    from ase import units

    return np.sum(masses[:, None] * v_ase**2) / (3 * (len(masses) - 1) * units.kB)  # dof 3N − 3, as the MD


def test_h5md_readable_by_mdanalysis_and_znh5md(tmp_path):
    """A triclinic NPT run in a rotated cell: MDAnalysis, znh5md and our reader give the same periodic
    distances, velocities (temperature) and energies; MDAnalysis the frame spacing as dt."""
    from ase.geometry import get_distances

    from mtpjax.io.h5md import ASE_VELOCITY_UNIT, mdanalysis_universe

    out = run_md(load_md_run(_rotated_triclinic_run(tmp_path)), progress=False)
    path = out / "traj.h5md"
    sp, pos, cells, steps, times, vel, obs = read_h5md(path)
    assert abs(cells[0, 0, 1]) > 0.1 and abs(cells[0, 0, 2]) > 0.1  # the run's own, rotated orientation
    masses = np.full(32, 39.948)
    dist = [get_distances(pos[k], cell=cells[k], pbc=True)[1] for k in range(len(pos))]
    temps = [_temperature(masses, vel[k] / ASE_VELOCITY_UNIT) for k in range(len(pos))]
    th = read_thermo(out / "thermo.csv")
    np.testing.assert_allclose(temps, th["temperature_K"][::5], rtol=1e-9)  # our reader = the run's thermo
    mda = pytest.importorskip("MDAnalysis")
    from MDAnalysis.lib.distances import distance_array

    u = mdanalysis_universe(path)
    assert len(u.trajectory) == len(steps) and list(u.atoms.elements) == ["Ar"] * 32
    np.testing.assert_allclose(u.atoms.masses, masses, rtol=1e-4)
    assert u.trajectory.dt == pytest.approx(0.1)  # 50 steps × 2 fs, ps
    for k, ts in enumerate(u.trajectory):
        np.testing.assert_allclose(distance_array(ts.positions, ts.positions, box=ts.dimensions), dist[k], atol=2e-4)
        assert ts.time == pytest.approx(times[k])
        np.testing.assert_allclose(_temperature(masses, ts.velocities / ASE_VELOCITY_UNIT), temps[k], rtol=1e-5)
        assert ts.data["trajectory/potential_energy"] == pytest.approx(obs["potential_energy"][k], rel=1e-12)
    znh5md = pytest.importorskip("znh5md")
    frames = znh5md.IO(str(path))[:]
    assert len(frames) == len(steps)
    for k, at in enumerate(frames):
        assert list(at.numbers) == [18] * 32 and all(at.pbc)
        np.testing.assert_allclose(at.get_all_distances(mic=True), dist[k], atol=1e-8)
        np.testing.assert_allclose(at.get_temperature() * (3 * 32) / (3 * 32 - 3), temps[k], rtol=1e-9)
        assert at.get_potential_energy() == pytest.approx(obs["potential_energy"][k], rel=1e-12)
        np.testing.assert_allclose(np.linalg.eigvalsh(at.get_stress(voigt=False)),
                                   np.linalg.eigvalsh(_voigt(obs["stress"][k])), atol=1e-12)
    # the project's own analysis reader: the run's orientation, like read_h5md
    from mtpjax.analysis.trajectory import open_trajectory

    tr = open_trajectory(path)
    np.testing.assert_allclose(tr.times_fs, steps * 2.0)
    _, p_tr, c_tr = next(tr.iter_chunks(1000))
    np.testing.assert_allclose(p_tr, pos, atol=1e-12)
    np.testing.assert_allclose(c_tr, cells, atol=1e-12)
    # stress: the run's pressure is minus a third of its trace (bar)
    from mtpjax.units import BAR

    np.testing.assert_allclose(-obs["stress"][:, :3].sum(1) / 3 / BAR, obs["pressure"], rtol=1e-9)


def _voigt(s):
    return np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])


def test_h5md_readable_while_the_run_writes_it(tmp_path):
    """A reader (ours, and h5py with HDF5's default locking) opens the trajectory of a running MD and sees the
    frames flushed so far; the run is not disturbed."""
    import h5py

    p = _runfile(tmp_path, 4000, 10)
    proc = subprocess.Popen([sys.executable, "-m", "mtpjax.cli", "md", str(p), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = tmp_path / "out" / "traj.h5md"
    try:
        seen = []
        t0 = time.monotonic()
        while len(set(seen)) < 3 and proc.poll() is None and time.monotonic() - t0 < 300:
            if path.exists():
                try:
                    seen.append(len(read_h5md(path)[1]))
                    with h5py.File(path, "r") as f:  # a notebook's default open
                        assert f["particles/trajectory/position/value"].shape[0] >= 1
                except (OSError, KeyError):  # the file is being created
                    pass
            time.sleep(0.2)
        assert len(set(seen)) >= 2, seen  # frames grew while we read
    finally:
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert len(read_h5md(path)[1]) == 4010 // 50 + 1


def test_convert_extxyz_lammps_dump_and_data(tmp_path):
    from mtpjax.cli import main

    out = run_md(load_md_run(_rotated_triclinic_run(tmp_path)), progress=False)
    sp, pos, cells, steps, times, vel, obs = read_h5md(out / "traj.h5md")
    assert main(["convert", str(out / "traj.h5md"), str(tmp_path / "t.xyz")]) == 0
    imgs = read(tmp_path / "t.xyz", ":")
    assert len(imgs) == len(steps)
    for k, a in enumerate(imgs):
        np.testing.assert_allclose(a.cell.array, cells[k], atol=1e-8)
        np.testing.assert_allclose(a.positions, pos[k], atol=1e-8)
        np.testing.assert_allclose(a.get_velocities() * 1000 * units.fs, vel[k], atol=1e-8)  # Å/ps
        assert a.info["step"] == steps[k]
    assert main(["convert", str(out / "traj.h5md"), str(tmp_path / "t.dump")]) == 0
    dump = read(tmp_path / "t.dump", ":", format="lammps-dump-text")
    assert len(dump) == len(steps)
    text = (tmp_path / "t.dump").read_text()
    assert text.startswith("ITEM: TIME\n") and "ITEM: ATOMS id type element x y z ix iy iz vx vy vz" in text
    for k, a in enumerate(dump):
        lmp, R = lammps_cell(cells[k])
        assert a.get_chemical_symbols() == ["Ar"] * 32
        np.testing.assert_allclose(a.cell.array, lmp, atol=1e-6)
        np.testing.assert_allclose(a.cell.volume, abs(np.linalg.det(cells[k])), rtol=1e-8)
        np.testing.assert_allclose(a.get_all_distances(mic=True),
                                   read(tmp_path / "t.xyz", k).get_all_distances(mic=True), atol=1e-8)
        # ASE reads metal-unit velocities (Å/ps) from the dump
        np.testing.assert_allclose(np.linalg.norm(a.get_velocities(), axis=1),
                                   np.linalg.norm(vel[k], axis=1) / (1000 * units.fs), rtol=1e-8)
    assert main(["convert", str(out / "traj.h5md"), str(tmp_path / "last.data")]) == 0
    data = (tmp_path / "last.data").read_text()
    assert data.index("Atom Type Labels") < data.index("Masses") and "\n1 Ar\n" in data
    d = read(tmp_path / "last.data", format="lammps-data", style="atomic", units="metal")
    np.testing.assert_allclose(d.cell.volume, abs(np.linalg.det(cells[-1])), rtol=1e-10)
    np.testing.assert_allclose(d.get_all_distances(mic=True), imgs[-1].get_all_distances(mic=True), atol=1e-8)
    np.testing.assert_allclose(d.get_masses(), 39.948, rtol=1e-4)


def test_lammps_types_follow_the_mlip_species_order(tmp_path):
    """A 2-species run: LAMMPS type k+1 is MLIP type k (the run's 'elements'), not the order of appearance."""
    from ase.build import bulk

    from mtpjax.cli import main

    a = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(2)
    a.symbols[:] = ["Cl" if s == "Na" else "Na" for s in a.get_chemical_symbols()]  # Cl first
    write(tmp_path / "nacl.extxyz", a)
    (tmp_path / "run.toml").write_text(
        'structure = "nacl.extxyz"\nelements = ["Na", "Cl"]\noutput = "out"\ntimestep_fs = 1.0\n'
        'temperature_K = 50\nthermo_every = 5\ntraj_every = 5\ncheckpoint_every = 10\n'
        'potential = {type = "lj", epsilon = 0.01, sigma = 2.8, cutoff = 6.0}\n'
        '[[stage]]\nensemble = "nvt"\nsteps = 10\ntemperature_K = 50\n')
    out = run_md(load_md_run(tmp_path / "run.toml"), progress=False)
    assert main(["convert", str(out / "traj.h5md"), str(tmp_path / "t.dump")]) == 0
    rows = [ln.split() for ln in (tmp_path / "t.dump").read_text().splitlines() if ln[:1].isdigit()]
    types = {r[2]: r[1] for r in rows if len(r) == 9}  # id type element x y z ix iy iz
    assert types == {"Na": "1", "Cl": "2"}


def test_resume_is_bit_identical(tmp_path):
    """Stop after 3 blocks (as if killed), resume: trajectory and thermo identical to an uninterrupted run."""
    cfg = load_md_run(_runfile(tmp_path))
    full = run_md(cfg, output=tmp_path / "full", progress=False)
    part = tmp_path / "part"
    run_md(cfg, output=part, progress=False, max_blocks=3)
    run_md(cfg, output=part, progress=False)
    a = read_h5md(full / "traj.h5md")
    b = read_h5md(part / "traj.h5md")
    for x, y in zip(a[:6], b[:6]):
        assert np.array_equal(x, y)
    assert (full / "thermo.csv").read_text() == (part / "thermo.csv").read_text()


def test_nvt_then_npt_run_file_resumes_across_the_stage_change(tmp_path):
    """A run file with NVT before NPT (tri) runs (the barostat's variables start at rest at the stage change),
    and a run stopped at every block boundary in turn and resumed equals the uninterrupted run bit for bit."""
    _argon(tmp_path / "ar.extxyz")
    text = RUN.format(n1=100, n2=100, extra="")
    a, b = text.index("[[stage]]\nname = \"compress\""), text.index("[[stage]]\nname = \"cool\"")
    run = tmp_path / "run.toml"
    run.write_text(text[:a] + text[b:] + "\n" + text[a:b])  # cool (nvt) first, then compress (npt tri)
    cfg = load_md_run(run)
    assert [s.ensemble for s in cfg.stage] == ["nvt", "npt"]
    full = run_md(cfg, output=tmp_path / "full", progress=False)
    th = read_thermo(full / "thermo.csv")
    assert th["step"][-1] == 200 and np.ptp(th["volume_A3"][th["step"] <= 100]) == 0
    assert np.ptp(th["volume_A3"][th["step"] > 100]) > 0
    for k in (2, 3, 4):  # blocks of 50 steps: the stage change comes after the third
        part = tmp_path / f"part{k}"
        run_md(cfg, output=part, progress=False, max_blocks=k)
        run_md(cfg, output=part, progress=False)
        for x, y in zip(read_h5md(full / "traj.h5md")[:6], read_h5md(part / "traj.h5md")[:6]):
            assert np.array_equal(x, y)


@pytest.mark.first
def test_kill9_and_resume(tmp_path):
    """SIGKILL a running `mtpjax md`, rerun the command: no gaps, no duplicates, same frames as a clean run."""
    run = _runfile(tmp_path, n1=1500, n2=1500, extra="")
    text = run.read_text().replace("checkpoint_every = 100", "checkpoint_every = 200")
    run.write_text(text)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "mtpjax.cli", "md", str(run), "--no-progress", "-o", str(tmp_path / "k")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ck = tmp_path / "k" / "checkpoint.npz"
    t0 = time.time()
    from mtpjax.io.checkpoint import load_checkpoint_meta

    while time.time() - t0 < 240:
        time.sleep(0.5)
        if ck.exists():
            try:
                if load_checkpoint_meta(ck)["step"] >= 600:
                    break
            except Exception:  # noqa: BLE001  (being replaced right now)
                pass
        if proc.poll() is not None:
            break
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "run finished before it could be killed"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming" in r.stdout
    clean = run_md(load_md_run(run), output=tmp_path / "clean", progress=False)
    a = read_h5md(clean / "traj.h5md")
    b = read_h5md(tmp_path / "k" / "traj.h5md")
    assert list(b[3]) == list(range(0, 3001, 50))
    for x, y in zip(a[:6], b[:6]):
        assert np.array_equal(x, y)
    assert (clean / "thermo.csv").read_text() == (tmp_path / "k" / "thermo.csv").read_text()


def test_cli_mtp_cfg_structure(tmp_path, capsys):
    from mtpjax.cli import main

    (tmp_path / "run.toml").write_text(f"""
structure = "{CFG}"
elements = ["Cu", "Ag", "Au"]
potential = "{POT}"
output = "o"
timestep_fs = 1.0
temperature_K = 300
traj_every = 20
[[stage]]
ensemble = "npt"
steps = 40
temperature_K = 300
pressure_GPa = 0.0001
barostat = "aniso"
""")
    assert main(["md", str(tmp_path / "run.toml"), "--no-progress"]) == 0
    sp, pos, *_ = read_h5md(tmp_path / "o" / "traj.h5md")
    assert pos.shape[0] == 3 and set(np.unique(sp)) <= {29, 47, 79}


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda t: t.replace('ensemble = "nvt"', 'ensemble = "nvx"'), "unknown ensemble"),
        (lambda t: t.replace("timestep_fs = 2.0", "timestep_fs = -1.0"), "timestep"),
        (lambda t: t.replace("timestep_fs = 2.0", "timestep_fs = 0"), "timestep"),
        (lambda t: t.replace("tdamp_fs = 100\npdamp", "tdamp_fs = 0\npdamp"), "tdamp"),
        (lambda t: t.replace("pdamp_fs = 1000", "pdamp_fs = -5"), "pdamp"),
        (lambda t: t.replace('"ar.extxyz"', '"missing.xyz"'), "missing.xyz"),
        (lambda t: t.replace('{type = "lj"}', '"missing.mtp"'), "missing.mtp"),
        (lambda t: t.replace('{type = "lj"}', '{type = "buckingham"}'), "potential type"),
        (lambda t: t.replace("seed = 3", "seed = 3\nbogus = 1"), "unknown key"),
        (lambda t: t.replace("seed = 3", "seed = 3\nchunk_atoms = 0"), "chunk_atoms"),
    ],
)
def test_bad_run_files_give_clear_errors(tmp_path, capsys, edit, match):
    from mtpjax.cli import main

    p = _runfile(tmp_path)
    p.write_text(edit(p.read_text()))
    assert main(["md", str(p), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "mtpjax: error:" in err and match in err and "Traceback" not in err


def test_overlapping_atoms_and_missing_species(tmp_path, capsys):
    from mtpjax.cli import main

    p = _runfile(tmp_path)
    a = read(tmp_path / "ar.extxyz")
    a.positions[1] = a.positions[0] + 0.1
    write(tmp_path / "ar.extxyz", a)
    assert main(["md", str(p), "--no-progress"]) == 2
    assert "overlap" in capsys.readouterr().err
    if POT.exists():
        _argon(tmp_path / "ar.extxyz")
        p.write_text(p.read_text().replace('{type = "lj"}', f'"{POT}"').replace(
            "seed = 3", 'seed = 3\nelements = ["Cu", "Ag", "Au"]'))
        assert main(["md", str(p), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "Ar" in err and "elements" in err


def test_explosion_keeps_last_good_checkpoint(tmp_path, capsys):
    from mtpjax.cli import main
    from mtpjax.io.checkpoint import load_checkpoint_meta

    p = _runfile(tmp_path)
    a = read(tmp_path / "ar.extxyz")
    a.positions[1] = a.positions[0] + [2.3, 0.0, 0.0]  # violent start: T rises far above the limit
    write(tmp_path / "ar.extxyz", a)
    p.write_text(p.read_text().replace("timestep_fs = 2.0", "timestep_fs = 5.0\nmax_temperature_K = 300"))
    assert main(["md", str(p), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "exploded" in err
    meta = load_checkpoint_meta(tmp_path / "out" / "checkpoint.npz")
    sp, pos, *_ = read_h5md(tmp_path / "out" / "traj.h5md")
    assert np.all(np.isfinite(pos))
    assert meta["step"] % 100 == 0
