"""MLIP's remaining commands (``mtpjax.cli.mlp``) against MLIP-3's own output.

References: ``tests/data/mlip_ref/mlip3_cli`` (its README gives the ``mlp`` command of every file), inputs from
``mlip3_more`` and ``training``. Where MLIP's output is deterministic text the comparison is byte for byte
(check_errors' report and log, MLIP-2's calc-errors report, mindist, cut_extrapolative_nbh and convert with
``--rounded``); relax is compared on the relaxed energy, forces, stresses and cell. The OUTCAR is ASE's test file
``OUTCAR_example_1`` (read from the installed ASE package; its NELM = 40 variant is made here as the README says).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import ase
import numpy as np
import pytest
from ase.io import read as ase_read

from mtpjax.cli import main
from mtpjax.cli.train import build_parser, current_potential_writer, resolve_options, updated_mindist
from mtpjax.io.cfg import read_cfg, write_cfg
from mtpjax.potential import MTP
from mtpjax.potential.params import params
from refdata import REF

CLI = REF / "mlip3_cli"
MORE = REF / "mlip3_more"
POT = MORE / "l10_trained_potential_only.mtp"
OUTCAR = Path(ase.__file__).parent / "test" / "testdata" / "vasp" / "OUTCAR_example_1"


def _run(capsys, *args):
    """(exit status, stdout, stderr) of ``mtpjax ARGS``."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _text(path) -> str:
    return Path(path).read_text(encoding="utf-8")


def _outcar(tmp_path, nelm: int | None = None) -> Path:
    if not OUTCAR.is_file():
        pytest.skip("ASE's test data (ase/test/testdata/vasp/OUTCAR_example_1) is not installed")
    dest = tmp_path / (f"OUTCAR_nelm{nelm}" if nelm else "OUTCAR_example_1")
    text = _text(OUTCAR)
    if nelm:
        line = "   NELM   =    120;"
        assert line in text
        text = text.replace(line, f"   NELM   = {nelm:5d};")
    dest.write_text(text, encoding="utf-8")
    return dest


def _assert_one_line_error(rc, err, *words):
    assert rc == 2, err
    assert err.startswith("mtpjax: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


# ------------------------------------------------------------------ calc-errors
def test_calc_errors_is_mlip3_check_errors_byte_for_byte(tmp_path, capsys):
    rc, out, _ = _run(capsys, "check_errors", POT, MORE / "valid.cfg", "--log", tmp_path / "log.txt")
    assert rc == 0
    assert out == _text(CLI / "check_errors.valid.stdout.txt")
    assert _text(tmp_path / "log.txt") == _text(CLI / "check_errors.valid.log.txt")


def test_calc_errors_mlip2_layout_is_mlip2_calc_errors(tmp_path, capsys, monkeypatch):
    """MLIP-2's report: its titles, and its per-component force and stress averages."""
    monkeypatch.chdir(tmp_path)  # MLIP-2 names the files as given on its command line
    shutil.copy(REF / "training/mlip2_l08_trained.mtp", "mlip2_l08_trained.mtp")
    shutil.copy(REF / "training/valid.cfg", "valid.cfg")
    rc, out, _ = _run(capsys, "calc-errors", "mlip2_l08_trained.mtp", "valid.cfg", "--layout", "mlip2")
    assert rc == 0
    assert out == _text(REF / "training/mlip2_valid_errors.txt")


# ---------------------------------------------------------------------- mindist
def test_mindist_matches_mlip3(tmp_path, capsys):
    db = tmp_path / "db.cfg"
    shutil.copy(MORE / "valid.cfg", db)
    rc, out, _ = _run(capsys, "mindist", db)
    assert rc == 0 and out == _text(CLI / "mindist.valid.stdout.txt")
    feats = [ln for ln in _text(db).splitlines(keepends=True) if ln.startswith(" Feature   mindists")]
    assert "".join(feats) == _text(CLI / "mindist.valid.mindists.txt")
    # the rewritten file keeps every value (lossless by default)
    a, b = read_cfg(db), read_cfg(MORE / "valid.cfg")
    assert all(np.array_equal(x.positions, y.positions) and x.energy == y.energy for x, y in zip(a, b))
    # one number per configuration, MLIP's spelling of the option, MLIP's rounded file
    shutil.copy(MORE / "valid.cfg", db)
    rc, out, _ = _run(capsys, "mindist", db, "--no_types=true", "--rounded")
    assert rc == 0 and out == _text(CLI / "mindist.valid.no_types.stdout.txt")
    feats = [ln for ln in _text(db).splitlines(keepends=True) if ln.startswith(" Feature   mindists")]
    assert "".join(feats) == _text(CLI / "mindist.valid.no_types.mindists.txt")
    # --no-overwrite leaves the file alone
    before = (MORE / "train.cfg").read_bytes()
    rc, out, _ = _run(capsys, "mindist", MORE / "train.cfg", "--no-overwrite")
    assert rc == 0 and out == _text(CLI / "mindist.train.stdout.txt")
    assert (MORE / "train.cfg").read_bytes() == before


# -------------------------------------------------------- cut-extrapolative-nbh
@pytest.mark.parametrize("cutoff", [None, 5])
def test_cut_extrapolative_nbh_matches_mlip3(tmp_path, capsys, cutoff):
    name = "cut_extrapolative_nbh.valid" + (f".cutoff{cutoff}" if cutoff else "")
    extra = [f"--cutoff={cutoff}"] if cutoff else []
    graded = MORE / "l10_nbh.calculate_grade.valid.cfg"
    rc, out, err = _run(capsys, "cut_extrapolative_nbh", graded, tmp_path / "cut.cfg", "--rounded", *extra)
    assert rc == 0 and out == _text(CLI / f"{name}.stdout.txt")
    assert "12 of 30 configurations" in err
    assert (tmp_path / "cut.cfg").read_bytes() == (CLI / f"{name}.cfg").read_bytes()
    # lossless output: the same clusters to MLIP's 6 printed decimals
    rc, _, _ = _run(capsys, "cut-extrapolative-nbh", graded, tmp_path / "cut16.cfg", *extra)
    ours, ref = read_cfg(tmp_path / "cut16.cfg"), read_cfg(CLI / f"{name}.cfg")
    assert len(ours) == len(ref) == 12
    for a, b in zip(ours, ref):
        assert np.array_equal(a.types, b.types) and a.features == b.features and not a.pbc.any()
        np.testing.assert_allclose(a.positions, b.positions, atol=5.1e-7)


# ---------------------------------------------------------------------- convert
def test_convert_outcar_matches_mlip3(tmp_path, capsys):
    outcar = _outcar(tmp_path)
    rc, out, _ = _run(capsys, "convert", "--input_format=outcar", outcar, tmp_path / "a.cfg", "--rounded")
    assert rc == 0 and out == _text(CLI / "convert.OUTCAR_example_1.stdout.txt")
    assert (tmp_path / "a.cfg").read_bytes() == (CLI / "convert.OUTCAR_example_1.cfg").read_bytes()
    rc, out, _ = _run(capsys, "convert-cfg", outcar, tmp_path / "abs.cfg", "--absolute-types", "--rounded")
    assert (tmp_path / "abs.cfg").read_bytes() == (CLI / "convert.OUTCAR_example_1.absolute_types.cfg").read_bytes()
    # lossless default: the numbers of the OUTCAR exactly (MLIP's file: to its printed digits)
    rc, _, _ = _run(capsys, "convert-cfg", outcar, tmp_path / "b.cfg")
    a, b = read_cfg(tmp_path / "b.cfg")[0], read_cfg(CLI / "convert.OUTCAR_example_1.cfg")[0]
    assert a.energy == b.energy and a.features == {"EFS_by": "VASP"}
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.plus_stress, b.plus_stress)
    np.testing.assert_allclose(a.forces, b.forces, atol=5e-7)
    # ASE agrees on positions, forces and the free energy
    atoms = ase_read(outcar, format="vasp-out")
    np.testing.assert_allclose(a.positions, atoms.positions, atol=1e-12)
    assert a.energy == pytest.approx(atoms.get_potential_energy(force_consistent=True), abs=1e-8)


def test_convert_outcar_nonconverged(tmp_path, capsys):
    outcar = _outcar(tmp_path, nelm=40)
    rc, out, err = _run(capsys, "convert-cfg", outcar, tmp_path / "nc.cfg")
    assert rc == 0 and out == "Processed 0 configurations\n"
    assert "non-converged calculation detected (63 electronic iterations, NELM = 40); skipped" in err
    assert _text(tmp_path / "nc.cfg") == ""
    rc, out, err = _run(capsys, "convert-cfg", outcar, tmp_path / "nc2.cfg", "--save_nonconverged", "--rounded")
    assert rc == 0 and out == "Processed 1 configurations\n" and "skipped" not in err
    assert (tmp_path / "nc2.cfg").read_bytes() == (CLI / "convert.OUTCAR_nelm40.save_nonconverged.cfg").read_bytes()
    # filter-nonconv drops it again (EFS_by VASP_not_converged), in place as MLIP-3 or to another file
    write_cfg(tmp_path / "mixed.cfg", read_cfg(tmp_path / "nc2.cfg") + read_cfg(CLI / "convert.OUTCAR_example_1.cfg"))
    rc, out, _ = _run(capsys, "filter-nonconv", tmp_path / "mixed.cfg", tmp_path / "kept.cfg")
    assert rc == 0 and "kept 1 of 2" in out
    assert [c.features["EFS_by"] for c in read_cfg(tmp_path / "kept.cfg")] == ["VASP"]
    rc, _, _ = _run(capsys, "filter_nonconv", tmp_path / "mixed.cfg")
    assert rc == 0 and len(read_cfg(tmp_path / "mixed.cfg")) == 1


def test_convert_cfg_to_ase_formats_and_back(tmp_path, capsys):
    src = CLI / "convert.OUTCAR_example_1.cfg"
    rc, _, _ = _run(capsys, "convert-cfg", src, tmp_path / "a.xyz")
    assert rc == 0
    rc, _, _ = _run(capsys, "convert", tmp_path / "a.xyz", tmp_path / "back.cfg")  # dispatches to convert-cfg
    a, b = read_cfg(src)[0], read_cfg(tmp_path / "back.cfg")[0]
    assert a.energy == b.energy and np.array_equal(a.types, b.types) and b.features == {"EFS_by": "VASP"}
    np.testing.assert_allclose(b.forces, a.forces, atol=1e-12)
    np.testing.assert_allclose(b.plus_stress, a.plus_stress, atol=1e-9)
    # POSCAR needs the elements: --type-order (MLIP: --type_order)
    rc, _, _ = _run(capsys, "convert-cfg", src, tmp_path / "POSCAR", "--type_order=28")
    p = ase_read(tmp_path / "POSCAR", format="vasp")
    assert set(p.get_chemical_symbols()) == {"Ni"} and np.allclose(p.positions, a.positions)
    # an OUTCAR's elements come from its POTCAR lines
    rc, _, _ = _run(capsys, "convert-cfg", _outcar(tmp_path), tmp_path / "o.xyz")
    assert set(ase_read(tmp_path / "o.xyz").get_chemical_symbols()) == {"Ni"}


# ------------------------------------------------------------------------ relax
def _max_stress_gpa(c) -> float:
    xx, yy, zz, yz, xz, xy = c.plus_stress
    return float(np.abs([xx, yy, zz, yz, xz, xy]).max() / c.volume * 160.2176487)


def _mindists(c) -> list[float]:
    """The values of MLIP's ``mindists`` feature ``{(0,0):2.624713,(0,1):...}``."""
    return [float(x) for x in re.findall(r":([0-9.eE+-]+)", c.features["mindists"])]


def test_relax_matches_mlip3(tmp_path, capsys):
    rc, out, _ = _run(capsys, "relax", POT, CLI / "relax.in.cfg", tmp_path / "out.cfg")
    assert rc == 0 and "From 1 configurations 1 were relaxed successfully" in out
    ours, ref = read_cfg(tmp_path / "out.cfg")[0], read_cfg(CLI / "relax.out.cfg")[0]
    assert ours.energy / ours.natoms == pytest.approx(ref.energy / ref.natoms, abs=1e-6)
    assert np.linalg.norm(ours.forces, axis=1).max() < 1e-4 and _max_stress_gpa(ours) < 1e-3
    assert ours.volume == pytest.approx(ref.volume, rel=1e-5)
    # the same cell up to a rotation (metric tensor: lengths and angles), within the strain that a stress of
    # 1e-3 GPa (the tolerance) leaves: ~2e-5 of |a|² ≈ 61 Å²
    np.testing.assert_allclose(ours.cell @ ours.cell.T, ref.cell @ ref.cell.T, atol=3e-3)
    assert ours.features["from"] == "relaxation_OK"
    np.testing.assert_allclose(_mindists(ours), _mindists(ref), atol=5e-5)
    # positions only (MLIP: --relax:stress_tolerance=0): the cell stays, atoms as MLIP's
    rc, out, _ = _run(capsys, "relax", POT, CLI / "relax.in.cfg", tmp_path / "atoms.cfg",
                      "--relax:stress_tolerance=0", "-q")
    ours, ref = read_cfg(tmp_path / "atoms.cfg")[0], read_cfg(CLI / "relax.atoms_only.out.cfg")[0]
    assert ours.energy / ours.natoms == pytest.approx(ref.energy / ref.natoms, abs=1e-6)
    np.testing.assert_array_equal(ours.cell, read_cfg(CLI / "relax.in.cfg")[0].cell)
    np.testing.assert_allclose(ours.positions, ref.positions, atol=2e-4)
    np.testing.assert_allclose(ours.plus_stress, ref.plus_stress, atol=2e-3)


def test_relax_failure_is_reported_not_fatal(tmp_path, capsys):
    c = read_cfg(CLI / "relax.in.cfg")[0]
    c.positions[1] = c.positions[0] + [0.3, 0.0, 0.0]  # closer than MLIP's mindist 0.5
    write_cfg(tmp_path / "bad.cfg", [c])
    rc, out, err = _run(capsys, "relax", POT, tmp_path / "bad.cfg", tmp_path / "out.cfg",
                        "--save-unrelaxed", tmp_path / "failed.cfg")
    assert rc == 0 and "From 1 configurations 0 were relaxed successfully" in out
    assert "relaxation of configuration 1 failed" in err
    assert read_cfg(tmp_path / "out.cfg") == []
    assert read_cfg(tmp_path / "failed.cfg")[0].features["from"] == "relaxation_FAILED"


# ----------------------------------------------------- help, list, version, aliases
def test_help_list_version_and_aliases(capsys):
    rc, out, _ = _run(capsys, "list")
    assert rc == 0 and "List of available commands:" in out
    for name in ("calc-errors", "mindist", "convert-cfg", "filter-nonconv", "cut-extrapolative-nbh", "relax",
                 "check_errors", "calculate_efs", "calculate_grade", "select_add", "cut_extrapolative_nbh"):
        assert name in out
    rc, out, _ = _run(capsys, "help", "check_errors")
    assert rc == 0 and "usage: mtpjax calc-errors" in out
    rc, out, _ = _run(capsys, "help")
    assert rc == 0 and "usage: mtpjax COMMAND" in out
    rc, out, _ = _run(capsys, "--version")
    assert rc == 0 and out.startswith("mtpjax ") and out.split()[1][0].isdigit()
    rc, _, err = _run(capsys, "help", "no-such-command")
    assert rc == 2 and "unknown command" in err


def _same_efs(a, b) -> bool:
    return len(a) == len(b) and all(x.energy == y.energy and np.array_equal(x.forces, y.forces)
                                    and np.array_equal(x.plus_stress, y.plus_stress) for x, y in zip(a, b))


def test_calculate_efs_alias_and_calc_grade_state_als(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pot = tmp_path / "pot.mtp"
    shutil.copy(REF / "potentials/synth_l08_s3.mtp", pot)
    write_cfg(tmp_path / "train.cfg", read_cfg(REF / "inputs/train.cfg")[:6])
    write_cfg(tmp_path / "in.cfg", read_cfg(REF / "inputs/test_in.cfg")[:2])
    rc, _, _ = _run(capsys, "calc-efs", pot, "in.cfg", "efs.cfg")
    ref = read_cfg("efs.cfg")
    # MLIP-3's form: calculate_efs POT CFG [--output_filename=OUT]; without it CFG is rewritten in place
    rc, _, _ = _run(capsys, "calculate_efs", pot, "in.cfg", "--output_filename=efs3.cfg")
    assert rc == 0 and _same_efs(read_cfg("efs3.cfg"), ref)
    shutil.copy("in.cfg", "inplace.cfg")
    rc, _, _ = _run(capsys, "calculate_efs", pot, "inplace.cfg")
    assert rc == 0 and _same_efs(read_cfg("inplace.cfg"), ref)
    # MLIP-2: the state goes to state.als in the working folder; POT.almtp beside the potential as before
    rc, _, err = _run(capsys, "calculate_grade", pot, "train.cfg", "in.cfg", "graded.cfg", "-q")
    assert rc == 0, err
    assert (tmp_path / "state.als").is_file() and (tmp_path / "pot.almtp").is_file()
    assert all("MV_grade" in c.features for c in read_cfg("graded.cfg"))
    (tmp_path / "state.als").unlink()
    rc, _, _ = _run(capsys, "calc-grade", pot, "train.cfg", "in.cfg", "graded.cfg", "-q", "--no-state-als")
    assert rc == 0 and not (tmp_path / "state.als").exists()
    rc, _, _ = _run(capsys, "calc-grade", pot, "train.cfg", "in.cfg", "graded.cfg", "-q", "--als_filename=my.als")
    assert rc == 0 and (tmp_path / "my.als").is_file() and not (tmp_path / "state.als").exists()


# ------------------------------------------------------------------- train flags
def test_train_flags_of_mlip(tmp_path):
    args = build_parser().parse_args([str(REF / "training/l08_untrained.mtp"), str(MORE / "valid.cfg"),
                                      "--skip-preinit", "--update-mindist", "--curr-pot-name",
                                      str(tmp_path / "cur.mtp"), "--trained-pot-name", str(tmp_path / "t.mtp")])
    o = resolve_options(args)
    assert o.skip_preinit and o.update_mindist and o.curr_pot_name == str(tmp_path / "cur.mtp")
    assert not resolve_options(build_parser().parse_args([str(REF / "training/l08_untrained.mtp"),
                                                         str(MORE / "valid.cfg")])).skip_preinit
    # --update-mindist: 0.99 × the set's minimal distance, as MLIP-3's train on train.cfg set it in POT
    model = MTP.from_file(MORE / "l10_untrained_s3.almtp")
    new = updated_mindist(model, read_cfg(MORE / "train.cfg"), quiet=True)
    assert new.min_dist == pytest.approx(MTP.from_file(POT).min_dist, rel=1e-12)
    # --curr-pot-name: the potential in the checkpoint written at this iteration
    trained = MTP.from_file(POT)
    ckpt = tmp_path / "t.mtp.ckpt.npz"
    np.savez(ckpt, flat=np.asarray(params(trained)), precond=np.zeros(0), scaling=np.asarray(trained.scaling))
    cb = current_potential_writer(trained, ckpt, tmp_path / "cur.mtp", every=10)
    assert cb({"iter": 7}) is False and not (tmp_path / "cur.mtp").exists()
    assert cb({"iter": 10}) is False
    back = MTP.from_file(tmp_path / "cur.mtp")
    np.testing.assert_array_equal(np.asarray(params(back)), np.asarray(params(trained)))


# --------------------------------------------------------------------- bad input
def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    untrained = MORE / "l10_untrained_s3.almtp"
    _assert_one_line_error(*_run(capsys, "calc-errors", untrained, MORE / "valid.cfg")[::2], "untrained")
    _assert_one_line_error(*_run(capsys, "check_errors", POT, tmp_path / "missing.cfg")[::2], "missing.cfg")
    (tmp_path / "empty.cfg").write_text("")
    _assert_one_line_error(*_run(capsys, "mindist", tmp_path / "empty.cfg")[::2], "no configurations")
    _assert_one_line_error(*_run(capsys, "cut-extrapolative-nbh", MORE / "valid.cfg",
                                 tmp_path / "o.cfg")[::2], "nbh_grades")
    _assert_one_line_error(*_run(capsys, "cut-extrapolative-nbh", MORE / "valid.cfg", tmp_path / "o.cfg",
                                 "--cutoff", "-1")[::2], "--cutoff")
    (tmp_path / "OUTCAR").write_text("not an OUTCAR\n")
    _assert_one_line_error(*_run(capsys, "convert-cfg", tmp_path / "OUTCAR", tmp_path / "o.cfg")[::2], "NELM")
    (tmp_path / "x.unknownext").write_text("1 2 3\n")
    _assert_one_line_error(*_run(capsys, "convert-cfg", tmp_path / "x.unknownext", tmp_path / "o.cfg")[::2],
                           "x.unknownext")
    _assert_one_line_error(*_run(capsys, "convert-cfg", MORE / "valid.cfg", tmp_path / "o",
                                 "--output-format", "outcar")[::2], "input format only")
    _assert_one_line_error(*_run(capsys, "relax", POT, CLI / "relax.in.cfg", tmp_path / "o.cfg",
                                 "--force-tolerance", "0", "--stress-tolerance", "0")[::2], "nothing to relax")
    _assert_one_line_error(*_run(capsys, "filter-nonconv", tmp_path / "missing.cfg")[::2], "missing.cfg")
    _assert_one_line_error(*_run(capsys, "mindist", MORE / "valid.cfg", "--no-types=maybe")[::2], "maybe")
