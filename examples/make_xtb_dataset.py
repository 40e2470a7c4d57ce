"""Generate a small GFN1-xTB-labelled training set of Li–P–S and Li–B–O cells.

Random packings (uniform positions with a minimum distance, cubic cells at a
target density) and snapshots of short xTB Langevin MD runs started from
them, labelled with energies, forces and stresses by tblite
(``pip install tblite``, the project's ``xtb`` extra). Output: one MLIP
``.cfg`` per system, ``OUT/xtb_LiPS.cfg`` and ``OUT/xtb_LiBO.cfg`` (plus a
random ``_train``/``_valid`` split), with
types ``Li P S`` → ``0 1 2`` and ``Li B O`` → ``0 1 2``. The data set is
generated, not shipped.

    python examples/make_xtb_dataset.py --out data/xtb --n-random 40 --n-md 2 --md-steps 40

Cost: one xTB single point per configuration (≈0.5–5 s for 20–100 atoms).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

#: formula unit (symbol: count), atoms per unit, density g/cm³
SYSTEMS = {
    "LiPS": ({"Li": 3, "P": 1, "S": 4}, 1.9),  # Li3PS4
    "LiBO": ({"Li": 3, "B": 1, "O": 3}, 2.1),  # Li3BO3
}
TYPES = {"LiPS": ["Li", "P", "S"], "LiBO": ["Li", "B", "O"]}


def random_cell(unit: dict, n_units: int, density: float, rng, dmin: float = 1.8, tries: int = 20000):
    """A cubic cell with ``n_units`` formula units placed at random with all
    distances ≥ ``dmin`` Å (periodic)."""
    from ase import Atoms
    from ase.data import atomic_masses, atomic_numbers

    symbols = [s for s, c in unit.items() for _ in range(c * n_units)]
    mass = sum(atomic_masses[atomic_numbers[s]] for s in symbols)  # amu
    vol = mass * 1.66054 / density  # Å³
    a = vol ** (1 / 3)
    pos = []
    for _ in symbols:
        for _ in range(tries):
            x = rng.uniform(0, a, 3)
            if not pos:
                break
            d = np.asarray(pos) - x
            d -= a * np.round(d / a)
            if np.min(np.sqrt((d**2).sum(1))) >= dmin:
                break
        else:
            raise RuntimeError("could not place atoms; lower the density or dmin")
        pos.append(x)
    return Atoms(symbols, positions=pos, cell=[a, a, a], pbc=True)


def label(atoms, calc):
    """Copy of ``atoms`` with xTB energy, forces, stress attached (SinglePointCalculator)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = atoms.copy()
    atoms.calc = calc
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    s = atoms.get_stress()
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=e, free_energy=e, forces=f, stress=s)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="xtb_data")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    p.add_argument("--n-random", type=int, default=40, help="random cells per system")
    p.add_argument("--n-md", type=int, default=2, help="MD runs per system")
    p.add_argument("--md-steps", type=int, default=40)
    p.add_argument("--md-every", type=int, default=4, help="keep every k-th MD step")
    p.add_argument("--temperature", type=float, default=1200.0, help="MD temperature (K)")
    p.add_argument("--units", type=int, nargs=2, default=(3, 12), help="formula units per cell, min max")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-fraction", type=float, default=0.2, help="also write a random train/valid split")
    a = p.parse_args(argv)

    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from tblite.ase import TBLite

    from mtpjax.potential.cfg import Configuration, write_cfg

    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in a.systems:
        unit, rho = SYSTEMS[name]
        calc = TBLite(method="GFN1-xTB", verbosity=0)
        labelled = []
        t0 = time.perf_counter()
        for k in range(a.n_random):
            n_units = int(rng.integers(a.units[0], a.units[1] + 1))
            at = random_cell(unit, n_units, rho * rng.uniform(0.85, 1.1), rng)
            try:
                labelled.append(label(at, calc))
            except Exception as e:  # SCF failure on a pathological packing: skip it
                print(f"{name} random {k}: skipped ({e})")
        for k in range(a.n_md):
            n_units = int(rng.integers(a.units[0], a.units[1] + 1))
            at = random_cell(unit, n_units, rho, rng)
            at.calc = TBLite(method="GFN1-xTB", verbosity=0)
            MaxwellBoltzmannDistribution(at, temperature_K=a.temperature, rng=rng)  # noqa
            dyn = Langevin(at, 1.0 * units.fs, temperature_K=a.temperature, friction=0.02, rng=rng)
            for s in range(a.md_steps):
                dyn.run(1)
                if (s + 1) % a.md_every == 0:
                    labelled.append(label(at, at.calc))
        confs = [Configuration.from_atoms(x, symbol_to_type=TYPES[name]) for x in labelled]
        path = out / f"xtb_{name}.cfg"
        write_cfg(path, confs)
        perm = rng.permutation(len(confs))
        n_valid = int(round(a.valid_fraction * len(confs)))
        if n_valid:
            write_cfg(out / f"xtb_{name}_valid.cfg", [confs[i] for i in perm[:n_valid]])
            write_cfg(out / f"xtb_{name}_train.cfg", [confs[i] for i in perm[n_valid:]])
        print(f"{name}: {len(confs)} configurations, {sum(c.natoms for c in confs)} atoms, "
              f"{time.perf_counter() - t0:.0f} s → {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
