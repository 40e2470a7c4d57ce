"""Failing references in every bootstrap method and executor (issue 19): an exception, NaN forces, NaN
positions, a hang past the timeout. The run goes on, the store holds only finite labels, failures are recorded.

The scripted calculator (EMT) misbehaves at given call numbers, counted across processes in a file."""
import os
import time

import numpy as np
import pytest

from mtpjax.active.learn import Learner
from mtpjax.cli import main as cli_main
from mtpjax.config.learn import load_learn
from mtpjax.errors import MTPJaxError
from mtpjax.io.cfg import Configuration
from mtpjax.io.store import TrainingStore


def scripted_calc(counter, plan):
    """EMT whose call number k (0-based, over all processes) does ``plan.get(str(k), "ok")``:
    ok | raise | nan_forces | nan_positions | hang."""
    from ase.calculators.emt import EMT

    class Scripted(EMT):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            k = int(open(counter).read()) if os.path.exists(counter) else 0
            with open(counter, "w") as f:
                f.write(str(k + 1))
            act = plan.get(str(k), "ok")
            if act == "raise":
                raise RuntimeError(f"scripted failure at call {k}")
            if act == "hang":
                time.sleep(120)
            super().calculate(atoms, properties, system_changes)
            if act == "nan_forces":
                self.results["forces"] = self.results["forces"] * np.nan
            if act == "nan_positions":
                atoms.positions[0, 0] = np.nan

    return Scripted()


LEARN = """
workdir = "out"
species = ["Cu"]
max_iterations = 1
[potential]
level = 4
cutoff = 4.5
min_dist = 1.9
[reference]
kind = "ase"
factory = "test_reference_failures:scripted_calc"
kwargs = {{counter = "{counter}", plan = {plan}}}
[labels]
executor = "{executor}"
retries = {retries}
timeout_s = {timeout}
backoff_s = 0.01
[md]
steps = 100
[bootstrap]
method = "{method}"
n_configs = 3
relax_steps = 5
relax_fmax = 0.001
md_steps = 4
md_every = 1
[[system]]
name = "cu"
structure = {{symbols = "Cu4", cell = [[3.61, 0, 0], [0, 3.61, 0], [0, 0, 3.61]], scaled_positions = [[0.03, 0, 0], [0, 0.5, 0.45], [0.5, 0.04, 0.5], [0.5, 0.5, 0]]}}
"""


def _bootstrap(tmp_path, method, executor, plan, retries=0, timeout=30.0):
    text = LEARN.format(counter=tmp_path / "calls", plan="{" + ", ".join(f'"{k}" = "{v}"' for k, v in plan.items()) + "}",
                        executor=executor, retries=retries, timeout=timeout, method=method)
    p = tmp_path / "learn.toml"
    p.write_text(text)
    Learner(load_learn(p), log=lambda *a: None).run(stop_after="bootstrap")
    store = TrainingStore(tmp_path / "out" / "train.h5")
    assert store.non_finite() == {}
    for c in store.configurations():
        assert all(np.all(np.isfinite(x)) for x in (c.positions, c.cell, c.energy, c.forces, c.plus_stress))
    return store


@pytest.mark.parametrize("executor, fault", [("inline", "raise"), ("inline", "nan_forces"),
                                             ("inline", "nan_positions"), ("process", "nan_positions")])
def test_relax_bootstrap_keeps_the_path_before_a_fault(tmp_path, executor, fault):
    """Calls 0–2 are relaxation steps 0–2, call 3 fails: steps 0–2 are stored, the rest is dropped, the
    rattles of where the relaxation ended are labelled."""
    store = _bootstrap(tmp_path, "relax", executor, {"3": fault})
    keys = store.keys()
    assert sorted(k for k in keys if "/x" in k) == ["boot/cu/x0000", "boot/cu/x0001", "boot/cu/x0002"]
    assert sum("/r" in k for k in keys) == 3


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_md_bootstrap_fault_on_every_attempt_is_recorded_and_the_run_goes_on(tmp_path, executor):
    """The first call of each of the 2 attempts raises: no frame at all, the job is recorded as failed."""
    store = _bootstrap(tmp_path, "md", executor, {"0": "raise", "1": "raise"}, retries=1)
    assert len(store) == 0
    assert list(store.failed()) == ["boot/cu/md"]
    assert "scripted failure" in store.failed()["boot/cu/md"][-1]


def test_md_bootstrap_hang_past_the_timeout_inline(tmp_path):
    """The inline executor enforces the timeout too (labels.timeout_s per calculation of the trajectory:
    0.4 s × 5 here): the hung attempt is abandoned and recorded, the run goes on."""
    t0 = time.monotonic()
    store = _bootstrap(tmp_path, "md", "inline", {"2": "hang"}, timeout=0.4)
    assert time.monotonic() - t0 < 60
    assert len(store) == 0 and "timeout" in store.failed()["boot/cu/md"][-1]


def test_rattle_bootstrap_nan_label_failed_after_retries(tmp_path):
    """Rattle j gets calls j·… in order; call 1 and its 2 retries (calls 3, 4: the retry queue runs after the
    others) give NaN forces: that label is recorded as failed, the other two are stored."""
    store = _bootstrap(tmp_path, "rattle", "inline", {"1": "nan_forces", "3": "nan_forces", "4": "nan_forces"},
                       retries=2)
    assert len(store) == 2 and list(store.failed()) == ["boot/cu/r0001"]
    assert "non-finite forces" in store.failed()["boot/cu/r0001"][-1]


def test_store_repair_and_resume_refusal(tmp_path, capsys):
    """A store written before labels were checked (NaN positions inside): resume names the fix;
    `mtpjax store repair` moves the bad labels to /failed, after which the run resumes."""
    import h5py

    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "train.h5"
    store = TrainingStore(path)
    c = Configuration(positions=np.eye(3) * 1.5, types=np.zeros(3, int), cell=np.eye(3) * 5, pbc=np.ones(3, bool),
                      energy=-1.0, forces=np.zeros((3, 3)), plus_stress=np.zeros(6))
    for k in range(3):
        store.add(f"k{k}", c)
    with h5py.File(path, "a") as f:  # what an older version could write
        f["labels/k1/positions"][0, 0] = np.nan
    assert store.non_finite() == {"k1": ["positions"]}
    # a learning run in this folder that stopped after its bootstrap
    _bootstrap_text = LEARN.format(counter=tmp_path / "calls", plan="{}", executor="inline", retries=0, timeout=30,
                                   method="none")
    (tmp_path / "learn.toml").write_text(_bootstrap_text)
    (tmp_path / "out" / "learn_state.json").write_text(
        '{"iteration": 0, "phase": "train", "done": true, "systems": {}, "timing": {}, "history": [], '
        '"thresholds": {}, "events": []}')
    with pytest.raises(MTPJaxError, match="store repair"):
        Learner(load_learn(tmp_path / "learn.toml"), log=lambda *a: None).run(resume=True)
    assert cli_main(["store", "info", str(path)]) == 0
    assert "non-finite labels: 1" in capsys.readouterr().out
    assert cli_main(["store", "repair", str(path)]) == 0
    assert store.keys() == ["k0", "k2"] and "non-finite positions" in store.failed()["k1"][0]
    assert store.non_finite() == {}
    Learner(load_learn(tmp_path / "learn.toml"), log=lambda *a: None).run(resume=True)  # done: nothing to do
    capsys.readouterr()
    assert cli_main(["store", "info", str(tmp_path / "missing.h5")]) == 2
    assert "no such store" in capsys.readouterr().err
