"""Reference calculators, label dispatch (retries, timeouts, NaN, SCF failure,
silent no-ops), the HDF5 training-set store, VASP through a fake executable,
submitit's local executor and tblite GFN1-xTB."""
import json
import os
import stat
import sys

import numpy as np
import pytest

from mtpjax.active.dispatch import Job, ProcessExecutor, dispatch, make_executor
from mtpjax.active.reference import (
    LabelError,
    ReferenceNotAvailable,
    atoms_payload,
    check_spec,
    label_atoms,
)
from mtpjax.io.store import TrainingStore
from mtpjax.errors import MTPJaxError
from mtpjax.potential import Configuration, read_cfg


def _fcc(n_rep=1, a=3.6, seed=0, rattle=0.05):
    from ase.build import bulk

    at = bulk("Cu", "fcc", a=a, cubic=True).repeat(n_rep)
    at.rattle(rattle, seed=seed)
    return Configuration.from_atoms(at, symbol_to_type={"Cu": 0})


# ------------------------------------------------------------ flaky calculator (imported by spawned workers)
def flaky_calc(counter_dir, plan):
    """EMT that misbehaves by plan: {natoms: [action per attempt]} with actions
    ok | raise | nan | hang | unconverged."""
    from ase.calculators.emt import EMT

    class Flaky(EMT):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            n = len(atoms)
            path = os.path.join(counter_dir, f"n{n}")
            k = int(open(path).read()) if os.path.exists(path) else 0
            with open(path, "w") as f:
                f.write(str(k + 1))
            acts = plan.get(str(n), ["ok"])
            act = acts[min(k, len(acts) - 1)]
            self.converged = True
            if act == "raise":
                raise RuntimeError("SCF exploded")
            if act == "hang":
                import time

                time.sleep(600)
            super().calculate(atoms, properties, system_changes)
            if act == "nan":
                self.results["energy"] = float("nan")
            if act == "unconverged":
                self.converged = False

    return Flaky()


def _cu_cluster(n):
    pos = np.array([[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5], [2.5, 2.5, 0], [2.5, 0, 2.5]])[:n]
    return {"numbers": [29] * n, "positions": pos.tolist(), "cell": np.zeros((3, 3)).tolist(), "pbc": [False] * 3}


def test_check_spec_messages():
    with pytest.raises(MTPJaxError, match="allowed: tblite, vasp, emt, ase"):
        check_spec({"kind": "dft"})
    with pytest.raises(MTPJaxError, match="missing key 'kind'"):
        check_spec({})
    with pytest.raises(ReferenceNotAvailable, match="cannot be imported"):
        check_spec({"kind": "ase", "factory": "no_such_module_xyz:calc"})
    with pytest.raises(ReferenceNotAvailable, match="not found"):
        check_spec({"kind": "vasp", "command": "/nonexistent/vasp_std"})
    with pytest.raises(MTPJaxError, match="allowed: GFN1-xTB"):
        check_spec({"kind": "tblite", "method": "DFTB"})


def test_label_emt_plus_stress_sign():
    conf = _fcc(a=3.45)  # compressed: PlusStress > 0
    lab = label_atoms({"kind": "emt"}, atoms_payload(conf, {0: "Cu"}))
    assert lab.plus_stress is not None and np.all(lab.plus_stress[:3] > 0)
    assert lab.forces.shape == (4, 3)


def test_dispatch_retries_timeouts_failures(tmp_path):
    """raise → retried → ok; NaN always → failed after retries; hang → killed at
    the timeout and retried → ok; unconverged SCF → failed. Everything else labelled,
    the store holds exactly the successes, failures are recorded."""
    plan = {"2": ["ok"], "3": ["raise", "ok"], "4": ["nan"], "5": ["hang", "ok"], "6": ["unconverged"]}
    spec = check_spec({"kind": "ase", "factory": "test_active_labels:flaky_calc",
                       "kwargs": {"counter_dir": str(tmp_path), "plan": plan}})
    store = TrainingStore(tmp_path / "ts.h5")
    jobs = [Job(f"j{n}", _cu_cluster(n), {"n": n}) for n in (2, 3, 4, 5, 6)]

    def done(job, lab):
        conf = Configuration(positions=np.array(job.payload["positions"]), types=np.zeros(len(lab.forces), int),
                             energy=lab.energy, forces=lab.forces)
        store.add(job.key, conf, {**job.meta, "attempts": job.attempts})

    out = dispatch(jobs, spec, ProcessExecutor(max_workers=2), retries=2, timeout=20.0, backoff=0.1,
                   on_done=done, on_failed=lambda j: store.add_failed(j.key, j.errors, j.meta))
    st = {j.key: j for j in out}
    assert st["j2"].status == "done" and st["j2"].attempts == 1
    assert st["j3"].status == "done" and st["j3"].attempts == 2 and "SCF exploded" in st["j3"].errors[0]
    assert st["j4"].status == "failed" and st["j4"].attempts == 3 and "non-finite" in st["j4"].errors[-1]
    assert st["j5"].status == "done" and "timeout" in st["j5"].errors[0]
    assert st["j6"].status == "failed" and "not converged" in st["j6"].errors[0]
    assert sorted(store.keys()) == ["j2", "j3", "j5"]
    assert set(store.failed()) == {"j4", "j6"}
    assert store.provenance()["j3"]["attempts"] == 2
    # idempotent: a second add of the same key writes nothing
    assert not store.add("j2", store.configurations()[0])
    assert len(store) == 3


def test_store_roundtrip_and_export(tmp_path):
    store = TrainingStore(tmp_path / "ts.h5")
    confs = [_fcc(seed=s) for s in range(3)]
    for k, c in enumerate(confs):
        lab = label_atoms({"kind": "emt"}, atoms_payload(c, {0: "Cu"}))
        c.energy, c.forces, c.plus_stress = lab.energy, lab.forces, lab.plus_stress
        store.add(f"it0/s0/f{k}", c, {"iteration": 0, "grade": 1.5 + k, "calculator": {"kind": "emt"}})
    assert store.keys() == [f"it0/s0/f{k}" for k in range(3)]
    back = store.configurations()
    for a, b in zip(confs, back):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.plus_stress, b.plus_stress)
        assert a.energy == b.energy
    assert store.to_cfg(tmp_path / "ts.cfg") == 3
    rb = read_cfg(tmp_path / "ts.cfg")
    np.testing.assert_allclose(rb[1].forces, confs[1].forces, rtol=0, atol=0)
    assert store.to_extxyz(tmp_path / "ts.xyz", {0: "Cu"}) == 3
    from ase.io import read

    assert len(read(tmp_path / "ts.xyz", ":")) == 3
    assert store.provenance()["it0/s0/f2"]["grade"] == 3.5
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(MTPJaxError, match="cannot open"):
        TrainingStore(tmp_path / "bad.h5")


# ------------------------------------------------------------ VASP via a fake executable
FAKE_VASP = r'''#!{python}
"""Fake VASP: EMT energies/forces/stress written as OUTCAR + vasprun.xml."""
import os, sys
import numpy as np
from ase.io import read
from ase.calculators.emt import EMT
mode = os.environ.get("FAKE_VASP_MODE", "ok")
if mode == "noop":
    sys.exit(0)
at = read("POSCAR", format="vasp")
incar = open("INCAR").read()
at.calc = EMT()
e = at.get_potential_energy(); f = at.get_forces(); s = at.get_stress(voigt=False)
kb = -s * 1602.1766208  # eV/Å³ → kBar, VASP's sign (positive = compressed)
conv = "aborting loop because EDIFF is reached" if mode == "ok" else "aborting loop EDIFF was not reached (unconverged)"
with open("OUTCAR", "w") as o:
    o.write(" vasp.6.3.0 fake\n NBANDS=      16\n ENCUT  = %s\n" % ("400" if "ENCUT = 400" in incar.replace("400.0","400") else "?"))
    o.write("------------------------ %s ------------------------\n" % conv)
    o.write("  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)\n  free  energy   TOTEN  = %.8f eV\n" % e)
def v(rows):
    return "".join("<v> %s </v>\n" % " ".join("%.10f" % x for x in r) for r in rows)
sym = at.get_chemical_symbols()
frac = at.get_scaled_positions(wrap=False)
struct = ('<structure><crystal><varray name="basis">%s</varray></crystal>'
          '<varray name="positions">%s</varray></structure>') % (v(at.cell), v(frac))
with open("vasprun.xml", "w") as x:
    x.write('<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n')
    x.write('<generator><i name="program" type="string">vasp </i><i name="version" type="string">6.3.0</i></generator>\n')
    x.write('<parameters><i name="ENCUT">400</i></parameters>\n')
    x.write('<kpoints><generation param="Gamma"><v type="int" name="divisions">1 1 1</v></generation>'
            '<varray name="kpointlist"><v>0 0 0</v></varray><varray name="weights"><v>1</v></varray></kpoints>\n')
    x.write('<atominfo><atoms>%d</atoms><array name="atoms"><set>%s</set></array></atominfo>\n'
            % (len(sym), "".join("<rc><c>%s</c><c>1</c></rc>" % s_ for s_ in sym)))
    x.write(struct.replace("<structure>", '<structure name="initialpos">') + "\n")
    x.write('<calculation><scstep><energy><i name="e_fr_energy">%.10f</i><i name="e_wo_entrp">%.10f</i>'
            '<i name="e_0_energy">%.10f</i></energy></scstep>%s' % (e, e, e, struct))
    x.write('<varray name="forces">%s</varray><varray name="stress">%s</varray>' % (v(f), v(kb)))
    x.write('<energy><i name="e_fr_energy">%.10f</i><i name="e_wo_entrp">%.10f</i><i name="e_0_energy">%.10f</i></energy>'
            '</calculation>\n' % (e, e, e))
    x.write(struct.replace("<structure>", '<structure name="finalpos">') + "\n</modeling>\n")
'''


@pytest.fixture
def fake_vasp(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "vasp"
    exe.parent.mkdir()
    exe.write_text(FAKE_VASP.replace("{python}", sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    pp = tmp_path / "pp" / "potpaw_PBE" / "Cu"
    pp.mkdir(parents=True)
    (pp / "POTCAR").write_text("  PAW_PBE Cu 22Jun2005\n   11.0000000000000000\n End of Dataset\n")
    monkeypatch.setenv("VASP_PP_PATH", str(tmp_path / "pp"))
    return exe


def test_vasp_through_fake_executable(tmp_path, fake_vasp, monkeypatch):
    from ase.calculators.emt import EMT

    conf = _fcc(a=3.5, seed=3)
    spec = check_spec({"kind": "vasp", "command": str(fake_vasp), "incar": {"ENCUT": 400}})
    assert spec["incar"]["encut"] == 400 and spec["incar"]["ispin"] == 1 and spec["incar"]["gamma"]
    lab = label_atoms(spec, atoms_payload(conf, {0: "Cu"}), workdir=str(tmp_path / "run0"))
    at = conf.to_atoms({0: "Cu"})
    at.calc = EMT()
    assert abs(lab.energy - at.get_potential_energy()) < 1e-7
    np.testing.assert_allclose(lab.forces, at.get_forces(), atol=1e-8)
    np.testing.assert_allclose(lab.plus_stress, -at.get_stress() * at.get_volume(), rtol=1e-6, atol=1e-6)
    incar = (tmp_path / "run0" / "INCAR").read_text().upper()
    assert "ENCUT = 400" in incar and "ISPIN = 1" in incar and "GGA = PE" in incar
    monkeypatch.setenv("FAKE_VASP_MODE", "unconverged")
    with pytest.raises(LabelError, match="not converged"):
        label_atoms(spec, atoms_payload(conf, {0: "Cu"}), workdir=str(tmp_path / "run1"))
    monkeypatch.setenv("FAKE_VASP_MODE", "noop")
    with pytest.raises(LabelError):
        label_atoms(spec, atoms_payload(conf, {0: "Cu"}), workdir=str(tmp_path / "run2"))


@pytest.mark.slow
def test_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit")
    ex = make_executor("submitit-local", folder=tmp_path / "jobs", max_workers=2, parameters={"timeout_min": 2})
    jobs = [Job(f"s{k}", atoms_payload(_fcc(seed=k), {0: "Cu"})) for k in range(2)]
    got = {}
    out = dispatch(jobs, {"kind": "emt"}, ex, retries=1, timeout=120, on_done=lambda j, lab: got.update({j.key: lab}))
    assert all(j.status == "done" for j in out) and set(got) == {"s0", "s1"}
    bad = [Job("bad", {"numbers": [29], "positions": [[0, 0, 0]], "cell": [[0] * 3] * 3, "pbc": [True] * 3})]
    out = dispatch(bad, {"kind": "emt"}, ex, retries=1, timeout=120, backoff=0.1)
    assert out[0].status == "failed" and out[0].attempts == 2


def test_tblite_gfn1_li3ps4():
    pytest.importorskip("tblite")
    from ase import Atoms

    spec = check_spec({"kind": "tblite"})
    assert spec["method"] == "GFN1-xTB"
    # a small Li3PS4-like cell: PS4 tetrahedron + 3 Li, 6 Å cube
    ps4 = np.array([[0, 0, 0], [1.2, 1.2, 1.2], [-1.2, -1.2, 1.2], [-1.2, 1.2, -1.2], [1.2, -1.2, -1.2]]) + 3.0
    li = np.array([[0.5, 3.0, 0.5], [3.0, 0.5, 5.5], [5.5, 5.5, 3.0]])
    at = Atoms("PS4Li3", positions=np.vstack([ps4, li]), cell=[6.0, 6.0, 6.0], pbc=True)
    conf = Configuration.from_atoms(at, symbol_to_type={"Li": 0, "P": 1, "S": 2})
    lab = label_atoms(spec, atoms_payload(conf, {0: "Li", 1: "P", 2: "S"}))
    assert np.isfinite(lab.energy) and lab.forces.shape == (8, 3) and lab.plus_stress.shape == (6,)
    # forces = −∂E/∂x (finite difference on one coordinate)
    h = 1e-4
    p = atoms_payload(conf, {0: "Li", 1: "P", 2: "S"})
    p1 = json.loads(json.dumps(p)); p1["positions"][5][0] += h
    p2 = json.loads(json.dumps(p)); p2["positions"][5][0] -= h
    fd = -(label_atoms(spec, p1).energy - label_atoms(spec, p2).energy) / (2 * h)
    assert abs(fd - lab.forces[5, 0]) < 1e-4 * max(1, abs(fd))


def test_store_key_order_is_independent_of_insertion_order(tmp_path):
    """Labels finish in any order under a process pool; order="key" gives the learner one order."""
    import numpy as np

    from mtpjax.io.store import TrainingStore
    from mtpjax.io.cfg import Configuration

    def conf(e):
        return Configuration(positions=np.zeros((1, 3)), types=np.zeros(1, int), cell=np.eye(3) * 5,
                             pbc=np.ones(3, bool), energy=e, forces=np.zeros((1, 3)))

    keys = ["it000/a/c00002", "boot/a/r0001", "it000/a/c00001", "data/seed/00000"]
    for name, order in (("s1.h5", keys), ("s2.h5", keys[::-1])):
        st = TrainingStore(tmp_path / name)
        for k in order:
            st.add(k, conf(float(keys.index(k))), {})
    a = [c.features["key"] for c in TrainingStore(tmp_path / "s1.h5").configurations(order="key")]
    b = [c.features["key"] for c in TrainingStore(tmp_path / "s2.h5").configurations(order="key")]
    assert a == b == sorted(keys)
    assert [c.features["key"] for c in TrainingStore(tmp_path / "s2.h5").configurations()] == keys[::-1]


def test_anchor_labels_get_the_anchor_loss_weight(tmp_path):
    """learn.train.anchor_weight: the labels whose provenance marks them as stage anchors carry
    ``loss_weight`` for training, the others none; weight 1 leaves the list untouched."""
    from dataclasses import replace

    from mtpjax.active.learn import weight_anchors

    store = TrainingStore(tmp_path / "ts.h5")
    for k, anchor in enumerate((False, True, False, True)):
        c = _fcc(seed=k)
        c = replace(c, energy=-1.0 * k, forces=np.zeros((c.natoms, 3)))
        store.add(f"it000/s/{'a' if anchor else 'c'}{k:03d}", c, {"anchor": True} if anchor else {"grade": 2.0})
    confs = store.configurations(order="key")
    assert weight_anchors(store, confs, 1.0) is confs
    got = {c.features["key"]: c.features.get("loss_weight") for c in weight_anchors(store, confs, 10)}
    assert got == {"it000/s/c000": None, "it000/s/a001": "10.0", "it000/s/c002": None, "it000/s/a003": "10.0"}
    assert all("loss_weight" not in c.features for c in confs)  # the store's list is not modified


def test_anchor_labels_keep_their_mark_through_export_and_import(tmp_path, monkeypatch):
    """A store exported to .cfg marks anchors (Feature anchor 1); a learning run that imports such a file (or an
    older harvested file whose names end in a learner's anchor key itNNN/<system>/aNNN) records them as
    anchors, so anchor_weight reaches them (issue #23: the seed's harvested anchors lost their names)."""
    from dataclasses import replace

    from mtpjax.active.learn import weight_anchors
    from mtpjax.io.cfg import read_cfg, write_cfg
    from mtpjax.io.store import is_anchor

    store = TrainingStore(tmp_path / "ts.h5")
    for k, anchor in enumerate((False, True)):
        c = replace(_fcc(seed=k), energy=-1.0 * k, forces=np.zeros((4, 3)))
        store.add(f"it001/lps0_production/{'a' if anchor else 'c'}{k:03d}", c, {"anchor": True} if anchor else {})
    assert store.to_cfg(tmp_path / "export.cfg") == 2
    exported = read_cfg(tmp_path / "export.cfg")
    assert [is_anchor(c.features) for c in exported] == [False, True]
    assert [c.features.get("anchor") for c in exported] == [None, "1"]
    # a harvested file of an older version: names only (examples/data/xtb_seed.cfg)
    old = [replace(c, features={"name": f"harvest/quick_out/it000/int0_production/{n}"})
           for c, n in zip(exported, ("c00114", "a002"))]
    assert [is_anchor(c.features) for c in old] == [False, True]
    assert not is_anchor({"name": "it000/a/c00001"}) and not is_anchor({"key": "data/seed/00001"})
    write_cfg(tmp_path / "seed.cfg", old)

    # imported the way bootstrap imports [bootstrap] data files
    from mtpjax.active import bootstrap as B

    class Cfg:  # what bootstrap reads (method none: only the data files)
        seed, system, species, reference, labels = 0, [], ["Cu"], None, None
        bootstrap = type("b", (), {"method": "none"})()

    monkeypatch.setattr(B, "data_files", lambda cfg: [(tmp_path / "seed.cfg", read_cfg(tmp_path / "seed.cfg"))])
    monkeypatch.setattr(B, "label_into_store", lambda *a, **k: (0, 0))
    imported = TrainingStore(tmp_path / "imported.h5")
    B.bootstrap(Cfg(), imported, tmp_path, log=lambda *a: None)
    prov = imported.provenance()
    assert prov["data/seed/00001"]["anchor"] is True and "anchor" not in prov["data/seed/00000"]
    assert prov["data/seed/00001"]["origin"].endswith("int0_production/a002")
    got = {c.features["key"]: c.features.get("loss_weight")
           for c in weight_anchors(imported, imported.configurations(), 5.0)}
    assert got == {"data/seed/00000": None, "data/seed/00001": "5.0"}
