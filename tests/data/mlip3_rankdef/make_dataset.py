"""Rank-deficient EMT Cu/Ag/Au training sets (and a graded test set) for MLIP-3's neighbourhood-mode MaxVol.

types 0, 1, 2 = Cu, Ag, Au (as in ../mlip_ref/mlip3_more). Labels: ASE's EMT (energy eV, forces eV/A,
PlusStress = -stress*V in eV, Voigt xx yy zz yz xz xy), written in the same .cfg layout as
../mlip_ref/mlip3_more/make_dataset.py (16-digit scientific, no Feature / EnergyWeight lines).
Generated with ASE 3.29.0, numpy 2.4.6, Python 3.11.7; seed 20250611 (one numpy Generator drives
everything, in the order below, so the files are reproducible bit for bit with these versions).

The "mixed" cell: fcc 2x2x2 conventional (32 atoms), 11 Cu + 11 Ag + 10 Au on randomly permuted sites,
Vegard lattice constant (fcc a: Cu 3.61, Ag 4.09, Au 4.08 A). MD: ASE Langevin, dt 2 fs,
friction 0.02 / fs, initial Maxwell-Boltzmann velocities, 400 equilibration steps before sampling.

  train.cfg       120 frames of one 50 K trajectory of the mixed cell, every 10 steps (20 fs apart):
                  3840 neighbourhood rows for 235 parameters, all near-duplicates of 32 environments.
  test.cfg        20 configurations, in this order:
                   0-3   the same 50 K trajectory continued (frames 100 steps apart after the training frames)
                   4-7   the mixed cell at 300 K (separate trajectory, 100 steps apart)
                   8-11  the mixed cell at 1000 K (separate trajectory, 100 steps apart)
                  12-15  50 K snapshots (a separate 50 K trajectory) of the mixed cell under a random symmetric
                         strain of maximal component 0.02, 0.04, 0.06, 0.08
                  16-17  the same 32 sites with the species permuted anew, 50 K trajectory
                  18-19  the mixed cell at 1200 K (separate trajectory, 100 steps apart)
  train_elem.cfg  60 frames: pure Cu, pure Ag, pure Au fcc 32-atom cells (own fcc a), 20 frames each of a
                  50 K trajectory every 10 steps (all three species occur, but no unlike pair is ever within
                  the cutoff, so the 6 x 24 cross-species radial columns are exactly zero in every row).
  test_elem.cfg   9 configurations: for Cu, Ag, Au in turn, one frame each at 50 K, 300 K and 1000 K.

    python make_dataset.py OUTDIR      (writes the four files into OUTDIR)
"""
import sys
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

SYMBOLS = ["Cu", "Ag", "Au"]
A_FCC = np.array([3.61, 4.09, 4.08])
SEED = 20250611


def fcc_cell(types):
    counts = np.bincount(types, minlength=3) / len(types)
    atoms = bulk("Cu", "fcc", a=float(counts @ A_FCC), cubic=True).repeat((2, 2, 2))
    atoms.set_chemical_symbols([SYMBOLS[t] for t in types])
    return atoms


def label(atoms, types):
    a = atoms.copy()
    a.calc = EMT()
    return dict(cell=a.cell.array.copy(), pos=a.positions.copy(), types=np.asarray(types),
                energy=a.get_potential_energy(), forces=a.get_forces(),
                ps=-a.get_stress(voigt=True) * a.get_volume())


def trajectory(rng, atoms, types, temperature, n_frames, every, equil=400):
    """n_frames snapshots (labelled dicts) of a Langevin run, `every` steps apart after `equil` steps."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, rng=rng)
    dyn.run(equil)
    out = []
    for _ in range(n_frames):
        dyn.run(every)
        out.append(label(atoms, types))
    return out, atoms


def strained(rng, atoms, types, emax):
    e = rng.uniform(-1.0, 1.0, (3, 3))
    e = 0.5 * (e + e.T)
    e *= emax / np.abs(e).max()
    a = atoms.copy()
    a.set_cell(a.cell.array @ (np.eye(3) + e), scale_atoms=True)
    return label(a, types)


def fmt(x):
    return f"{x:.16e}"


def write_cfg(path, confs):
    with open(path, "w") as f:
        for c in confs:
            f.write("BEGIN_CFG\n Size\n    %d\n Supercell\n" % len(c["types"]))
            for row in c["cell"]:
                f.write("    " + " ".join(fmt(v) for v in row) + "\n")
            f.write(" AtomData:  id type       cartes_x      cartes_y      cartes_z           fx          fy          fz\n")
            for i, (t, p, fr) in enumerate(zip(c["types"], c["pos"], c["forces"])):
                f.write(f"    {i + 1} {int(t)}  " + " ".join(fmt(v) for v in p) + "  " + " ".join(fmt(v) for v in fr) + "\n")
            f.write(" Energy\n    " + fmt(c["energy"]) + "\n")
            f.write(" PlusStress:  xx          yy          zz          yz          xz          xy\n")
            f.write("    " + " ".join(fmt(v) for v in c["ps"]) + "\n")
            f.write("END_CFG\n\n")


def min_dist(confs):
    from ase.geometry import get_distances
    dmin = 1e9
    for c in confs:
        _, d = get_distances(c["pos"], cell=c["cell"], pbc=True)
        d[np.diag_indices_from(d)] = 1e9
        dmin = min(dmin, d.min())
    return dmin


def main(outdir):
    rng = np.random.default_rng(SEED)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)

    types = rng.permutation(np.repeat([0, 1, 2], [11, 11, 10]))
    cell = fcc_cell(types)

    # training: one 50 K trajectory; the test's first 4 frames continue it
    train, last = trajectory(rng, cell, types, 50.0, 120, 10)
    test, _ = trajectory(rng, last, types, 50.0, 4, 100, equil=0)
    # (the continuation re-draws velocities at 50 K; it starts from the last training frame)
    test += trajectory(rng, cell, types, 300.0, 4, 100)[0]
    test += trajectory(rng, cell, types, 1000.0, 4, 100)[0]
    cold, _ = trajectory(rng, cell, types, 50.0, 4, 100)
    for c, emax in zip(cold, (0.02, 0.04, 0.06, 0.08)):
        a = cell.copy()
        a.positions = c["pos"]
        test.append(strained(rng, a, types, emax))
    types2 = rng.permutation(types)
    test += trajectory(rng, fcc_cell(types2), types2, 50.0, 2, 100)[0]
    test += trajectory(rng, cell, types, 1200.0, 2, 100)[0]

    train_elem, test_elem = [], []
    for t in range(3):
        tt = np.full(32, t)
        c = fcc_cell(tt)
        train_elem += trajectory(rng, c, tt, 50.0, 20, 10)[0]
        for temp in (50.0, 300.0, 1000.0):
            test_elem += trajectory(rng, c, tt, temp, 1, 10)[0]

    write_cfg(out / "train.cfg", train)
    write_cfg(out / "test.cfg", test)
    write_cfg(out / "train_elem.cfg", train_elem)
    write_cfg(out / "test_elem.cfg", test_elem)
    for name, confs in (("train", train), ("test", test), ("train_elem", train_elem), ("test_elem", test_elem)):
        print(f"{name}.cfg: {len(confs)} configurations, {sum(len(c['types']) for c in confs)} atoms, "
              f"min distance {min_dist(confs):.4f} A")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
