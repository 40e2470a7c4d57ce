"""ASE calculator contract and clear errors for bad input to the core."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mtpjax.cli import main
from mtpjax.errors import ConfigurationError
from mtpjax.potential import MTP, MTPCalculator, calc_efs, read_cfg


@pytest.fixture
def l12(ref):
    return MTP.from_file(ref / "potentials/m2_l12_trained.mtp")


def test_calculator_matches_calc_efs_and_ase_conventions(ref, l12):
    conf = read_cfg(ref / "inputs/test_in.cfg")[1]  # skewed triclinic cell
    expect = calc_efs(l12, [conf])[0]
    atoms = conf.to_atoms(["Cu", "Ag", "Au"])
    atoms.calc = MTPCalculator(l12, symbols=["Cu", "Ag", "Au"])
    assert abs(atoms.get_potential_energy() - expect.energy) < 1e-10
    assert abs(atoms.get_potential_energy(force_consistent=True) - expect.energy) < 1e-10
    np.testing.assert_allclose(atoms.get_forces(), expect.forces, atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(), -expect.plus_stress / atoms.get_volume(), atol=1e-12)
    assert abs(atoms.get_potential_energies().sum() - expect.energy) < 1e-9
    # moving atoms within the skin reuses the list and stays exact
    atoms.positions[0] += [0.05, -0.03, 0.02]
    moved = conf.__class__(positions=atoms.positions.copy(), types=conf.types, cell=conf.cell, pbc=conf.pbc)
    again = calc_efs(l12, [moved])[0]
    np.testing.assert_allclose(atoms.get_forces(), again.forces, atol=1e-10)
    # ASE stress agrees with a finite-difference strain derivative
    s = atoms.get_stress(voigt=False)
    h = 1e-6
    cell0 = atoms.cell.copy()
    e = np.zeros((3, 3)); e[0, 1] = e[1, 0] = h / 2
    def en(sign):
        a = atoms.copy(); a.calc = MTPCalculator(l12, symbols=["Cu", "Ag", "Au"])
        a.set_cell(cell0 @ (np.eye(3) + sign * e).T, scale_atoms=True)
        return a.get_potential_energy()
    fd = (en(1) - en(-1)) / (2 * h) / atoms.get_volume()
    assert abs(fd - s[0, 1]) < 1e-6


def test_calculator_steps_compile_nothing_after_the_first(ref, l12):
    """Moves within the skin reuse the compiled neighbour update and E+F+S: no XLA compilation after
    the first call (an eager lax.cond used to compile on every call, ~0.4 s each for 32 atoms), and the
    forces stay MLIP's."""
    import logging

    import jax

    conf = read_cfg(ref / "inputs/test_in.cfg")[1]
    atoms = conf.to_atoms(["Cu", "Ag", "Au"])
    atoms.calc = MTPCalculator(l12, symbols=["Cu", "Ag", "Au"])
    atoms.get_forces()
    atoms.positions[1] += [0.01, 0.0, 0.0]
    atoms.get_forces()  # the update's first call compiles once

    class Count(logging.Handler):
        n = 0

        def emit(self, record):
            if "Compiling" in record.getMessage():
                Count.n += 1

    h = Count()
    log = logging.getLogger("jax")
    log.addHandler(h)
    old_level = log.level
    log.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            for k in range(3):
                atoms.positions[0] += [0.01, -0.01, 0.005]
                f = atoms.get_forces()
    finally:
        log.removeHandler(h)
        log.setLevel(old_level)
    assert Count.n == 0
    moved = conf.__class__(positions=atoms.positions.copy(), types=conf.types, cell=conf.cell, pbc=conf.pbc)
    np.testing.assert_allclose(f, calc_efs(l12, [moved])[0].forces, atol=1e-10)


def test_calculator_in_atom_blocks_matches_mlip(ref, l12):
    """chunk_atoms=10 (a 100-atom cell in 10 blocks) gives MLIP's calc-efs numbers."""
    confs = read_cfg(ref / "inputs/test_in.cfg")
    k = max(range(len(confs)), key=lambda i: confs[i].natoms)
    theirs = read_cfg(ref / "mlip2_out/m2_l12_trained.calc-efs.lossless.cfg")[k]
    atoms = confs[k].to_atoms(["Cu", "Ag", "Au"])
    assert len(atoms) > 10
    atoms.calc = MTPCalculator(l12, symbols=["Cu", "Ag", "Au"], chunk_atoms=10)
    assert abs(atoms.get_potential_energy() - theirs.energy) < 1e-9 * len(atoms)
    np.testing.assert_allclose(atoms.get_forces(), theirs.forces, atol=1e-8)
    np.testing.assert_allclose(atoms.get_stress(), -theirs.plus_stress / atoms.get_volume(), atol=1e-8)


def test_calculator_open_boundaries_no_stress(l12):
    a = Atoms("Cu3Au", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.6]])
    a.calc = MTPCalculator(l12, symbols=["Cu", "Ag", "Au"])
    assert np.isfinite(a.get_potential_energy())
    assert abs(a.get_forces().sum(0)).max() < 1e-10  # Newton's third law
    from ase.calculators.calculator import PropertyNotImplementedError
    with pytest.raises(PropertyNotImplementedError):
        a.get_stress()


def test_calculator_unknown_element_and_symbols(l12):
    a = bulk("Fe", "bcc", a=2.87, cubic=True)
    a.calc = MTPCalculator(l12, symbols=["Cu", "Ag", "Au"])
    with pytest.raises(ConfigurationError, match="Fe is not a species"):
        a.get_potential_energy()
    with pytest.raises(ValueError, match="pass symbols"):
        MTPCalculator(l12)
    with pytest.raises(ValueError, match="3 species"):
        MTPCalculator(l12, symbols=["Cu"])


def test_overlapping_atoms_refused_with_names(ref, l12, tmp_path):
    confs = read_cfg(ref / "inputs/test_in.cfg")[:2]
    confs[1].positions[3] = confs[1].positions[7] + [0.1, 0.0, 0.0]
    with pytest.raises(ConfigurationError, match=r"configuration 2: atoms (4 and 8|8 and 4) are 0.1000 Å apart"):
        calc_efs(l12, confs)
    # configurable: allowed when the user lowers the bound
    assert np.isfinite(calc_efs(l12, confs, min_distance=0.05)[1].energy)


def test_unknown_type_names_configuration(ref, l12):
    confs = read_cfg(ref / "inputs/test_in.cfg")[:3]
    confs[2].types = confs[2].types.copy()
    confs[2].types[0] = 7
    with pytest.raises(ConfigurationError, match=r"configuration 3: atom type 7 is not a species"):
        calc_efs(l12, confs)


def test_cli_errors_are_one_line(ref, tmp_path, capsys):
    bad = tmp_path / "bad.mtp"
    txt = (ref / "potentials/synth_l08_s3.mtp").read_text().replace("radial_funcs_count = 2", "radial_funcs_count = x")
    bad.write_text(txt)
    rc = main(["calc-efs", str(bad), str(ref / "inputs/test_in.cfg"), str(tmp_path / "o.cfg")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.mtp" in err and "line" in err and "radial_funcs_count" in err
    assert "Traceback" not in err
    badcfg = tmp_path / "bad.cfg"
    badcfg.write_text((ref / "inputs/test_in.cfg").read_text().replace("    32\n", "    31\n", 1))
    rc = main(["calc-efs", str(ref / "potentials/synth_l08_s3.mtp"), str(badcfg), str(tmp_path / "o.cfg")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.cfg" in err and "line" in err
    rc = main(["calc-efs", str(tmp_path / "missing.mtp"), str(badcfg), str(tmp_path / "o.cfg")])
    assert rc == 2 and "missing.mtp" in capsys.readouterr().err
    # untrained potential cannot compute
    rc = main(["calc-efs", str(ref.parent / "mlip_templates/08.almtp"), str(ref / "inputs/test_in.cfg"), str(tmp_path / "o.cfg")])
    assert rc == 2 and "untrained" in capsys.readouterr().err


def test_level_command(ref, capsys):
    assert main(["level", str(ref / "potentials/synth_l16_s3.mtp")]) == 0
    out = capsys.readouterr().out
    assert "level               16" in out
    assert "basis functions     92" in out
    assert "parameters          383" in out  # README table: level 16, 3 species


@pytest.mark.parametrize("err,want", [
    (OSError(30, "Read-only file system", "/data/run1/traj.h5md"), "Read-only file system: /data/run1/traj.h5md"),
    (OSError(28, "No space left on device", "/scratch/out.cfg"), "No space left on device: /scratch/out.cfg"),
    (PermissionError(13, "Permission denied", "/shared/pot.mtp"), "Permission denied: /shared/pot.mtp"),
    (OSError(18, "Invalid cross-device link", "a.tmp", None, "b.cfg"), "Invalid cross-device link: a.tmp → b.cfg"),
])
def test_operating_system_errors_are_one_line_naming_the_path(err, want, capsys):
    """Read-only or full disks, permissions (#19): one line naming the path, exit status 2, no traceback."""
    from mtpjax.cli import guard

    def fail():
        raise err

    assert guard(fail) == 2
    out = capsys.readouterr().err
    assert out == f"mtpjax: error: {want}\n"


def test_an_unwritable_output_is_one_line(ref, tmp_path, capsys):
    """A real OS error from a command: the output's folder is a file (the same path as a read-only disk)."""
    (tmp_path / "taken").write_text("")
    rc = main(["calc-efs", str(ref / "potentials/synth_l08_s3.mtp"), str(ref / "inputs/test_in.cfg"),
               str(tmp_path / "taken" / "o.cfg")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "taken" in err and "Traceback" not in err
