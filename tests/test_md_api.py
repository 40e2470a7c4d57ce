"""MD from Python on an ase.Atoms (mtpjax.md.simulate) and progress reporting in logs."""
import numpy as np
import pytest
from ase.build import bulk

from mtpjax.analysis import compute_rdf
from mtpjax.errors import ConfigurationError
from mtpjax.io.h5md import read_h5md
from mtpjax.md import MDTrajectory, simulate
from mtpjax.md.run import run_md
from mtpjax.potential import MTP
from mtpjax.progress import Progress

from refdata import REF

LJ = {"type": "lj", "epsilon": 0.0104, "sigma": 3.4, "cutoff": 8.0}
STAGES = [{"ensemble": "nvt", "temperature_K": 80, "steps": 40},
          {"ensemble": "npt", "temperature_K": 80, "pressure_bar": 1.0, "steps": 40}]


def test_simulate_equals_the_run_file_driver(tmp_path):
    """simulate(atoms, ...) is run_md on the same structure and keys: the same frames, bit for bit; its result is
    an analysis source with thermo, final and atoms(k); calling it again resumes (nothing to do)."""
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    atoms.rattle(0.02, seed=3)
    kw = dict(timestep_fs=2.0, temperature_K=80, traj_every=10, thermo_every=10, checkpoint_every=20, seed=5)
    traj = simulate(atoms, LJ, STAGES, output=tmp_path / "api", **kw)
    assert isinstance(traj, MDTrajectory) and traj.n_frames == 9
    atoms.write(tmp_path / "start.extxyz")
    ref = run_md({"structure": str(tmp_path / "start.extxyz"), "potential": LJ, "stage": STAGES,
                  "elements": ["Ar"], **kw}, output=tmp_path / "file", progress=False)
    a, b = read_h5md(tmp_path / "api" / "traj.h5md"), read_h5md(ref / "traj.h5md")
    for x, y in zip(a[1:3], b[1:3]):
        np.testing.assert_array_equal(x, y)
    assert list(traj.thermo["step"]) == list(range(0, 81, 10))
    np.testing.assert_allclose(traj.atoms(-1).positions, b[1][-1], atol=1e-12)
    assert traj.final.get_volume() == pytest.approx(abs(np.linalg.det(b[2][-1])), rel=1e-12)
    assert compute_rdf(traj, ["Ar-Ar"], r_max=5.0).g["Ar-Ar"].max() > 1.0
    again = simulate(atoms, LJ, STAGES, output=tmp_path / "api", **kw)
    assert again.n_frames == 9


def test_simulate_input_errors(tmp_path):
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    pot = MTP.from_file(REF / "potentials/m2_l08_trained.mtp")
    with pytest.raises(ConfigurationError, match="give elements"):
        simulate(atoms, pot, STAGES, output=tmp_path / "a")
    with pytest.raises(ConfigurationError, match="ase.Atoms"):
        simulate("not atoms", LJ, STAGES, output=tmp_path / "b")
    simulate(bulk("Ar", "fcc", a=5.26, cubic=True), LJ, STAGES[:1], output=tmp_path / "c", timestep_fs=2.0,
             traj_every=10, thermo_every=10, checkpoint_every=20)
    with pytest.raises(ConfigurationError, match="other atoms"):
        simulate(bulk("Ar", "fcc", a=5.3, cubic=True), LJ, STAGES[:1], output=tmp_path / "c")


def test_progress_in_logs_is_one_line_per_summary_with_eta(monkeypatch):
    """Not on a terminal: no bar, a summary line (done/total, postfix, ETA) every every_s seconds."""
    lines, clock = [], [0.0]
    monkeypatch.setattr("mtpjax.progress.time.perf_counter", lambda: clock[0])
    p = Progress(100, "steps", "md", log=lines.append, every_s=10.0, tty=False)
    for _ in range(10):
        clock[0] += 3.0
        p.update(5, "1.2 ns/day")
    p.close()
    assert p.bar is None and len(lines) == 2  # at 12 s and 24 s (then 27, 30 s < 10 s after the last)
    assert lines[0] == "md: 20/100 steps (20.0 %), 1.2 ns/day, ETA 0:00:48"
    assert all("\r" not in x for x in lines)
    q = Progress(8, "iterations", "learn", log=lines.append, every_s=0.0, tty=False, eta="ETA at most")
    clock[0] += 60.0
    q.update(2, "120 labels")
    assert lines[-1] == "learn: 2/8 iterations (25.0 %), 120 labels, ETA at most 0:03:00"
