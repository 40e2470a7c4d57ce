"""``[replicas]`` in an MD run file: batched runs equal single runs; resume after a stop is bit-identical."""
from __future__ import annotations

import numpy as np
import pytest

from mtpjax.errors import ConfigurationError
from mtpjax.io.h5md import read_h5md
from mtpjax.io.thermo import read_thermo
from mtpjax.config.md import load_md_run
from mtpjax.md.run import run_md

from test_md_io import RUN, _argon


def _files(tmp_path, n1=100, n2=100, replicas=""):
    _argon(tmp_path / "ar.extxyz")
    a2 = tmp_path / "ar2.extxyz"
    from ase.io import read, write

    at = read(tmp_path / "ar.extxyz")
    at.rattle(0.05, seed=4)
    write(a2, at)
    p = tmp_path / "run.toml"
    p.write_text(RUN.format(n1=n1, n2=n2, extra="") + replicas)
    return p


REP = """
[replicas]
temperatures_K = [80, 60]
seeds = [3, 9]
structures = ["ar.extxyz", "ar2.extxyz"]
"""


@pytest.mark.slow  # the engine's replicas = single runs, bit for bit: test_md.py::test_replicas_equal_individual_runs
def test_replicas_match_single_runs(tmp_path):
    """Each replica of a batched run is the run of its own file (same seed, T, structure)."""
    cfg = load_md_run(_files(tmp_path, replicas=REP))
    out = run_md(cfg, output=tmp_path / "batch", progress=False)
    singles = []
    for k, (T, seed, s) in enumerate([(80, 3, "ar.extxyz"), (60, 9, "ar2.extxyz")]):
        text = RUN.format(n1=100, n2=100, extra="").replace("seed = 3", f"seed = {seed}")
        text = text.replace('structure = "ar.extxyz"', f'structure = "{s}"')
        f = 60 / 80 if T == 60 else 1.0
        text = text.replace("temperature_K = 80\nseed", f"temperature_K = {T}\nseed")
        text = text.replace("ensemble = \"npt\"\nsteps = 100\ntemperature_K = 80",
                            f"ensemble = \"npt\"\nsteps = 100\ntemperature_K = {80 * f:g}")
        text = text.replace("temperature_K = 80\ntemperature_end_K = 40",
                            f"temperature_K = {80 * f:g}\ntemperature_end_K = {40 * f:g}")
        p = tmp_path / f"single{k}.toml"
        p.write_text(text)
        singles.append(run_md(load_md_run(p), output=tmp_path / f"single{k}", progress=False))
    for k, single in enumerate(singles):
        a = read_h5md(out / f"r{k:02d}" / "traj.h5md")
        b = read_h5md(single / "traj.h5md")
        assert len(a[3]) == len(b[3]) == 5
        np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-9)  # positions
        np.testing.assert_allclose(a[2], b[2], rtol=0, atol=1e-9)  # cells
        ta, tb = read_thermo(out / f"r{k:02d}" / "thermo.csv"), read_thermo(single / "thermo.csv")
        np.testing.assert_allclose(ta["epot_eV"], tb["epot_eV"], rtol=1e-9)
        assert (out / f"r{k:02d}" / "final.extxyz").exists()
    # the two replicas really differ (different T, seed and start)
    assert not np.allclose(read_h5md(out / "r00" / "traj.h5md")[1][-1], read_h5md(out / "r01" / "traj.h5md")[1][-1])


def test_replicas_resume_bit_identical(tmp_path):
    cfg = load_md_run(_files(tmp_path, replicas=REP))
    full = run_md(cfg, output=tmp_path / "full", progress=False)
    part = tmp_path / "part"
    run_md(cfg, output=part, progress=False, max_blocks=2)
    run_md(cfg, output=part, progress=False)
    for k in range(2):
        a, b = read_h5md(full / f"r{k:02d}" / "traj.h5md"), read_h5md(part / f"r{k:02d}" / "traj.h5md")
        for x, y in zip(a[:6], b[:6]):
            assert np.array_equal(x, y)
        assert (full / f"r{k:02d}" / "thermo.csv").read_text() == (part / f"r{k:02d}" / "thermo.csv").read_text()


@pytest.mark.parametrize("rep,msg", [
    ("[replicas]\nfoo = 1\n", "unknown key"),
    ("[replicas]\ntemperatures_K = [80, 60]\nseeds = [1, 2, 3]\n", "different lengths"),
    ("[replicas]\ntemperatures_K = [80, -1]\n", "positive"),
])
def test_replicas_bad_input(tmp_path, rep, msg):
    with pytest.raises(ConfigurationError, match=msg):
        run_md(load_md_run(_files(tmp_path, replicas=rep)), output=tmp_path / "x", progress=False)
