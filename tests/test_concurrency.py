"""One writer per work folder; readers never disturb a writer (issue 19).

Other processes are real subprocesses: the OS locks (flock) and HDF5's file locks are per process."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from mtpjax.cli import main as cli_main
from mtpjax.errors import MTPJaxError, WorkdirBusy
from mtpjax.io.cfg import Configuration
from mtpjax.io.lock import LOCK_NAME, workdir_lock
from mtpjax.io.store import TrainingStore
from mtpjax.md.run import run_md


def _holder(code: str, ready):
    """A subprocess running ``code``; returns once it has written the file ``ready``."""
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not os.path.exists(ready):
        if p.poll() is not None:
            raise AssertionError(f"holder exited early: {p.stderr.read()}")
        if time.monotonic() - t0 > 60:
            p.kill()
            raise AssertionError("holder did not start")
        time.sleep(0.05)
    return p


def _lock_holder(folder, tmp_path):
    ready = tmp_path / "ready"
    return _holder(f"""
        import time
        from mtpjax.io.lock import workdir_lock
        with workdir_lock({str(folder)!r}):
            open({str(ready)!r}, "w").close()
            time.sleep(120)
    """, ready)


def test_second_writer_refused_and_lock_freed_by_kill(tmp_path):
    folder = tmp_path / "work"
    p = _lock_holder(folder, tmp_path)
    try:
        with pytest.raises(WorkdirBusy, match="another mtpjax process is writing in this folder"):
            with workdir_lock(folder):
                pass
    finally:
        os.kill(p.pid, signal.SIGKILL)  # a killed holder leaves no stale lock
        p.wait()
    with workdir_lock(folder) as path:
        assert path == folder / LOCK_NAME


def _md_run(tmp_path):
    write(tmp_path / "ar.extxyz", bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2))
    return {"structure": str(tmp_path / "ar.extxyz"), "elements": ["Ar"], "output": str(tmp_path / "out"),
            "timestep_fs": 2.0, "thermo_every": 5, "traj_every": 5, "checkpoint_every": 10,
            "potential": {"type": "lj", "epsilon": 0.0104, "sigma": 3.4, "cutoff": 8.0},
            "stage": [{"ensemble": "nvt", "temperature_K": 80, "steps": 20}]}


def test_md_and_cli_refuse_a_locked_folder(tmp_path, capsys):
    run = _md_run(tmp_path)
    p = _lock_holder(tmp_path / "out", tmp_path)
    try:
        with pytest.raises(WorkdirBusy):
            run_md(run, progress=False)
        assert sorted(f.name for f in (tmp_path / "out").iterdir()) == [LOCK_NAME]  # refused before writing anything
        learn_toml = tmp_path / "learn.toml"
        learn_toml.write_text(f'workdir = "{tmp_path / "out"}"\n')
        rc = cli_main(["learn", str(learn_toml)])
        err = capsys.readouterr().err
        assert rc == 2
        assert err.count("\n") == 1 and err.startswith("mtpjax: error:"), err
    finally:
        p.kill()
        p.wait()
    run_md(run, progress=False)  # free again
    assert (tmp_path / "out" / "final.extxyz").exists()


def _conf(seed, bad=None):
    rng = np.random.default_rng(seed)
    c = Configuration(positions=rng.random((4, 3)) * 4, types=np.zeros(4, int), cell=np.eye(3) * 4,
                      pbc=np.ones(3, bool), energy=-1.0, forces=rng.normal(size=(4, 3)), plus_stress=np.zeros(6))
    if bad == "positions":
        c.positions[1, 2] = np.nan
    elif bad == "forces":
        c.forces[0, 0] = np.inf
    elif bad == "energy":
        c.energy = float("nan")
    return c


def test_store_writer_not_disturbed_by_a_reader_holding_the_file(tmp_path):
    path = tmp_path / "train.h5"
    store = TrainingStore(path)
    store.add("a", _conf(0))
    ready = tmp_path / "ready"
    # a notebook keeping the file open read-only with h5py's defaults (HDF5 file locking on)
    p = _holder(f"""
        import time, h5py
        f = h5py.File({str(path)!r}, "r")
        n = len(f["labels"])
        open({str(ready)!r}, "w").close()
        time.sleep(8)
        print(n, len(f["labels"]))
    """, ready)
    for k in range(5):
        assert store.add(f"b{k}", _conf(k + 1))
    assert len(TrainingStore(path)) == 6  # another reader sees every record
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.split()[0] == "1"


def test_store_never_holds_non_finite_labels(tmp_path):
    store = TrainingStore(tmp_path / "train.h5")
    for what in ("positions", "forces", "energy"):
        with pytest.raises(MTPJaxError, match=f"non-finite {what}"):
            store.add(what, _conf(0, bad=what))
    assert len(store) == 0
