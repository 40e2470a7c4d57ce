"""Generate the built-in example data: Cu/Ag/Au alloys labelled with ASE's EMT.

Random fcc/bcc supercells with random species, strain and displacements,
labelled with energies, forces and stresses; written as MLIP .cfg with types
0/1/2 = Cu/Ag/Au.  Seeded; reproduces examples/data/*.cfg exactly.

    python examples/make_emt_data.py [--out examples/data]
"""
import argparse
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from mtpjax.potential import Configuration, write_cfg

SYMBOLS = ["Cu", "Ag", "Au"]


def random_alloy(rng, kind: str):
    if kind == "fcc":
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.75, 4.05), cubic=True).repeat((2, 2, 2))
    else:
        atoms = bulk("Cu", "bcc", a=rng.uniform(2.95, 3.2), cubic=True).repeat((3, 3, 2))
    atoms.set_chemical_symbols(rng.choice(SYMBOLS, len(atoms)))
    strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
    atoms.set_cell(atoms.cell[:] @ ((strain + strain.T) / 2), scale_atoms=True)
    atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
    return atoms


def make(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = random_alloy(rng, "fcc" if k % 5 else "bcc")
        atoms.calc = EMT()
        atoms.get_potential_energy()
        conf = Configuration.from_atoms(atoms, symbol_to_type={s: t for t, s in enumerate(SYMBOLS)})
        conf.features["EFS_by"] = "ASE_EMT"
        out.append(conf)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(Path(__file__).parent / "data"))
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_cfg(out / "CuAgAu_train.cfg", make(40, seed=1))
    write_cfg(out / "CuAgAu_valid.cfg", make(12, seed=2))
    print(f"wrote {out}/CuAgAu_train.cfg (40) and CuAgAu_valid.cfg (12)")


if __name__ == "__main__":
    main()
