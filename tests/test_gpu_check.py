"""benchmarks/gpu_check.sh --smoke: the GPU check runs end to end on CPU (so it cannot rot between GPU visits),
writes every case to its JSON without an error, and the E+F+S it times is the potential's (the energies it
records equal MTPCalculator's on the same cell; float32 within 1e-5 eV/atom of float64)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from refdata import REF

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHON": sys.executable, "MTPJAX_WHEELS": str(tmp_path / "no_wheels"),
           "JAX_PLATFORMS": "cpu"}
    r = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--smoke", "--json", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert doc["meta"]["platform"] == "cpu" and doc["meta"]["x64"]
    kinds = {(x["case"], x.get("ensemble"), x.get("replicas"), x.get("dtype")) for x in rows}
    assert {("efs", None, None, "float64"), ("efs", None, None, "float32"), ("md", "NVT", 1, None),
            ("md", "NPT iso", 1, None), ("replicas", "NVT", 2, None)} <= kinds
    assert not [x for x in rows if "error" in x or "skipped" in x]
    for x in rows:
        rate = x.get("atoms_per_s", x.get("atom_steps_per_s"))
        assert rate > 0 and x["compile_s"] > 0 and x["peak_memory_gb"] > 0
    assert all(x["blocked"] for x in rows if x["case"] == "efs")  # 108 atoms in blocks of 64: the 10⁵+ path
    assert "E+F+S L8 float64" in r.stdout and "atom-steps/s" in r.stdout

    # the energies it timed are the potential's, on the same cell
    sys.path.insert(0, str(ROOT))
    from benchmarks.md_speed import alloy
    from mtpjax.potential import MTP, MTPCalculator

    pos, cell, types, _ = alloy(108)
    model = MTP.from_file(REF / "potentials/m2_l08_trained.mtp")
    atoms = Atoms(symbols=[("Cu", "Ag", "Au")[t] for t in types], positions=pos, cell=cell, pbc=True)
    atoms.calc = MTPCalculator(model, symbols=["Cu", "Ag", "Au"])
    e = {x["dtype"]: x["energy_eV"] for x in rows if x["case"] == "efs"}
    want = atoms.get_potential_energy()
    assert e["float64"] == pytest.approx(want, rel=1e-10)
    assert abs(e["float32"] - e["float64"]) / len(atoms) < 1e-5
