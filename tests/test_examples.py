"""Every example in examples/ runs from a clone as its header comment says, shortened with overrides.

Each test calls the command line the example's header names (``mtpjax md|train|learn|run FILE``) with
``--set``/flag overrides for length and output folder only, so a key renamed in the code or a data file
missing from the repository fails here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtpjax.cli import main
from mtpjax.config import read_toml

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS.parent / "examples"


def _run(*argv):
    rc = main([str(a) for a in argv])
    assert rc == 0, argv


def _short_stages(path: Path, steps: int = 4) -> list[str]:
    """``--set`` overrides giving every ``[[stage]]`` of the MD run file ``path`` ``steps`` time steps."""
    cfg = read_toml(path)
    dt_ps = cfg.get("timestep_fs", 1.0) / 1000.0  # the raw TOML dict: which keys the file gives
    sets = []
    for k, stage in enumerate(cfg["stage"]):
        key = "time_ps" if "time_ps" in stage else "steps"
        sets += ["--set", f"stage.{k}.{key}={steps * dt_ps if key == 'time_ps' else steps}"]
    return sets


def test_every_example_has_a_test():
    """A new example TOML must get a test here."""
    tested = {"md_lj_quick.toml", "md_melt_quench.toml", "train_mlip_ref.toml", "train_xtb.toml",
              "learn_cu_emt.toml", "learn_li3ps4_xtb.toml", "learn_li3ps4_xtb_48.toml", "learn_li3ps4_vasp.toml",
              "quick.toml", "paper.toml"}
    assert {p.name for p in EXAMPLES.glob("*.toml")} == tested


@pytest.mark.parametrize("name", ["md_lj_quick.toml", "md_melt_quench.toml"])
def test_md_examples(tmp_path, name):
    from mtpjax.io.h5md import read_h5md
    from mtpjax.io.thermo import read_thermo

    path = EXAMPLES / name
    out = tmp_path / "out"
    _run("md", path, "--output", out, "--no-progress", *_short_stages(path), "--set", "thermo_every=2",
         "--set", "traj_every=2", "--set", "checkpoint_every=4")
    th = read_thermo(out / "thermo.csv")
    n_stages = len(read_toml(path)["stage"])
    assert th["step"][-1] == 4 * n_stages and np.all(np.isfinite(th["conserved_eV"]))
    _, pos, _, steps, _, _, _ = read_h5md(out / "traj.h5md")
    assert steps[-1] == 4 * n_stages and np.all(np.isfinite(pos))


def test_train_mlip_ref_example(tmp_path):
    """The example's data and keys as shipped; two LM iterations into tmp_path."""
    from mtpjax.potential import MTP

    out = tmp_path / "pot.mtp"
    _run("train", "--config", EXAMPLES / "train_mlip_ref.toml", "--max-iter", "2", "--n-starts", "1",
         "--start-iter", "1", "--trained-pot-name", out, "--plot", tmp_path / "p", "-q")
    assert MTP.from_file(out).level == 8 and (tmp_path / "p_parity.png").is_file()


def test_train_xtb_example(tmp_path):
    """The level-12 fit on the shipped xTB labels: the file's data and keys, no iteration (errors of the initial fit)."""
    from mtpjax.potential import MTP

    out = tmp_path / "pot.mtp"
    _run("train", "--config", EXAMPLES / "train_xtb.toml", "--max-iter", "0", "--n-starts", "1",
         "--trained-pot-name", out, "--plot", "", "--log", tmp_path / "log.jsonl",
         "--checkpoint", tmp_path / "ck.npz", "-q")
    m = MTP.from_file(out)
    assert m.level == 12 and len(m.species) == 5


def _learn(tmp_path, name, *sets):
    _run("learn", EXAMPLES / name, "--set", f'workdir="{tmp_path / "w"}"', *[x for s in sets for x in ("--set", s)])
    return json.loads((tmp_path / "w" / "learn_state.json").read_text())


def test_learn_cu_emt_example(tmp_path):
    st = _learn(tmp_path, "learn_cu_emt.toml", "max_iterations=1", "md.steps=20", "train.max_iter=3",
                "train.init_max_iter=3")
    assert st["done"] and st["iteration"] >= 0


@pytest.mark.parametrize("name", ["learn_li3ps4_xtb.toml", "learn_li3ps4_xtb_48.toml"])
def test_learn_xtb_examples(tmp_path, name):
    pytest.importorskip("tblite")
    st = _learn(tmp_path, name, "max_iterations=1", "md.steps=10", "train.max_iter=2", "train.init_max_iter=2",
                "bootstrap.n_configs=2", "bootstrap.relax_steps=2", 'labels.executor="inline"')
    assert st["done"]


def test_learn_vasp_example(tmp_path, monkeypatch):
    """The VASP/SLURM example with every key as shipped, but labels from the tests' toy pair potential
    (no VASP here), run inline for a few steps: its structure file and every section are valid."""
    monkeypatch.syspath_prepend(str(TESTS))
    st = _learn(tmp_path, "learn_li3ps4_vasp.toml", 'reference={kind="ase", factory="_toy_reference:toy_calculator"}',
                'labels.executor="inline"', "max_iterations=1", "md.steps=10", "train.max_iter=2",
                "bootstrap.md_steps=4", "bootstrap.md_every=2", "potential.level=6")
    assert st["done"]


def _workflow(tmp_path, name, until, *sets):
    argv = ["run", EXAMPLES / name, "--set", f'workdir="{tmp_path / "w"}"']
    argv += [x for s in sets for x in ("--set", s)]
    if until:
        argv += ["--until", until]
    _run(*argv)
    return tmp_path / "w"


def test_quick_workflow_example_builds(tmp_path):
    """examples/quick.toml as shipped, through its build stage (cells of every composition, minimised)."""
    pytest.importorskip("tblite")
    from ase.io import read

    wd = _workflow(tmp_path, "quick.toml", "build")
    cells = sorted((wd / "build").glob("*.extxyz"))
    assert {"lps_0.extxyz", "lbo_0.extxyz", "int_0.extxyz"} <= {c.name for c in cells}
    assert len(read(wd / "build" / "int_0.extxyz")) == 48


def test_paper_workflow_example_builds(tmp_path):
    """examples/paper.toml (VASP on SLURM) with its VASP command replaced by one that exists: its build stage
    makes the paper's cell sizes (96-atom Li3PS4, 128-atom Li3B11O18, 224-atom interface)."""
    from ase.io import read

    wd = _workflow(tmp_path, "paper.toml", "build", 'reference.command="true"')
    sizes = {c.name.split("_")[0]: len(read(c)) for c in (wd / "build").glob("*_0.extxyz")}
    assert sizes == {"lps": 96, "lbo": 128, "int": 224}


@pytest.mark.slow
def test_quick_workflow_example_end_to_end_shortened(tmp_path):
    """examples/quick.toml end to end with every length cut (about 4 minutes on 2 cores): every stage and the
    report run from the shipped data (labels from tblite)."""
    pytest.importorskip("tblite")
    wd = _workflow(tmp_path, "quick.toml", None, "learn.max_iterations=1", "learn.steps=20", "learn.hot_ps=0.01",
                   "learn.train.max_iter=1", "learn.train.init_max_iter=0", "fit.max_iter=1",
                   "production.melt_ps=0.05", "production.quench_ps=0.1", "production.relax_ps=0.2",
                   "sweep.time_ps=0.1", "production.minimize_steps=5", "analysis.reference_check=false",
                   'labels.executor="inline"')
    assert (wd / "report" / "report.md").is_file()
