"""Generate a GFN1-xTB-labelled training set of amorphous Li3PS4 and Li3B11O18 cells (and, with
``--systems interface``, of 48-atom Li3PS4|Li3B11O18 interface cells).

Starting cells come from :mod:`mtpjax.builders` (PS4 tetrahedra kept intact, the
paper's compositions, 16–64 atoms, densities drawn around the paper's), then:

* **MD**: short xTB Langevin runs at ``--temperature`` (default 1200 K), a
  snapshot every ``--md-every`` steps after ``--md-skip`` steps of
  equilibration;
* **rattles**: copies of MD snapshots with Gaussian displacements (σ drawn in
  ``--rattle``) and a random ±3 % cell strain, one xTB call each (cheap
  diversity around the sampled states, stresses included);
* **random**: a few unrelaxed random cells (the far-from-equilibrium states an
  active-learning bootstrap starts from).

Every configuration is labelled with energy, forces and stress by tblite
(``pip install -e .[xtb]``) and appended to ``OUT/xtb_all.cfg`` as soon as it
is computed (a killed run keeps what it has; ``--resume`` continues). Types
follow the workflow's species list ``Li B O P S`` → 0 … 4. At the end a
seeded random train/validation split is written (``xtb_train.cfg``,
``xtb_valid.cfg``). The data set is generated, not shipped.

    python examples/make_xtb_dataset.py --out xtb_data            # ≈ 500 configurations, ~1 h on 1 core
    mtpjax init --level 12 --species 0 1 2 3 4 --cutoff 5.0 --min-dist 1.2 l12.mtp
    mtpjax train l12.mtp xtb_data/xtb_train.cfg --valid-cfgs xtb_data/xtb_valid.cfg \\
        --trained-pot-name l12_xtb.mtp --max-iter 100 --force-weight 0.1 --plot l12_xtb
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SPECIES = ["Li", "B", "O", "P", "S"]


def starting_cell(system: str, n_units: int, density: float, seed: int):
    """A random amorphous cell of ``n_units`` formula units at ``density`` g/cm³ (cubic-ish);
    ``interface``: a 16-atom Li3PS4 cell stacked on a 32-atom Li3B11O18 cell of the workflow's
    quick size (7 Å in plane; ``n_units`` and ``density`` are ignored)."""
    from mtpjax.builders.amorphous import PRESETS, build_amorphous
    from mtpjax.builders.interface import stack_interface
    from mtpjax.builders.molecules import PS4

    if system == "interface":
        lps = build_amorphous([(PS4, 2), ("Li", 6)], density_g_cm3=1.677, a=7.0, b=7.0,
                              min_distances=PRESETS["Li3PS4"]["min_distances"], seed=seed)
        lbo = build_amorphous([("O", 18), ("B", 11), ("Li", 3)], density_g_cm3=1.854, a=7.0, b=7.0,
                              min_distances=PRESETS["Li3B11O18"]["min_distances"], seed=seed + 1)
        return stack_interface(lps, lbo, gaps=[1.2, 1.3, 1.4, 1.5], min_cross=2.5, seed=seed + 2)
    p = PRESETS[system]
    items = [(PS4, n_units), ("Li", 3 * n_units)] if system == "Li3PS4" else \
        [("O", 18 * n_units), ("B", 11 * n_units), ("Li", 3 * n_units)]
    md = {k: 0.8 * v for k, v in p["min_distances"].items()}  # small cells: pack a little looser than the presets
    mass = {"Li3PS4": 215.0, "Li3B11O18": 427.7}[system] * n_units * 1.66054
    a = (mass / density) ** (1 / 3)
    return build_amorphous(items, density_g_cm3=density, a=a, b=a, min_distances=md, seed=seed)


def label(atoms, calc):
    """Copy of ``atoms`` with xTB energy, forces and stress (SinglePointCalculator)."""
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
    p.add_argument("--systems", nargs="+", default=["Li3PS4", "Li3B11O18"],
                   choices=["Li3PS4", "Li3B11O18", "interface"])
    p.add_argument("--n-md", type=int, default=4, help="MD runs per system")
    p.add_argument("--md-steps", type=int, default=100)
    p.add_argument("--md-skip", type=int, default=20, help="equilibration steps not sampled")
    p.add_argument("--md-every", type=int, default=4, help="keep every k-th MD step")
    p.add_argument("--n-rattle", type=int, default=2, help="rattled copies per MD snapshot")
    p.add_argument("--rattle", type=float, nargs=2, default=(0.02, 0.08), help="σ range of the rattles (Å)")
    p.add_argument("--n-random", type=int, default=8, help="unrelaxed random cells per system")
    p.add_argument("--temperature", type=float, default=1200.0, help="MD temperature (K)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-fraction", type=float, default=0.2)
    p.add_argument("--resume", action="store_true", help="keep xtb_all.cfg and skip what it already holds")
    a = p.parse_args(argv)

    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from tblite.ase import TBLite

    from mtpjax.io.cfg import Configuration, read_cfg, write_cfg

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "xtb_all.cfg"
    have = {c.features.get("ID", "") for c in read_cfg(path)} if (a.resume and path.exists()) else set()
    if not a.resume and path.exists():
        path.unlink()
    t0 = time.perf_counter()
    count = [len(have)]

    def keep(atoms, ident: str):
        c = Configuration.from_atoms(atoms, symbol_to_type=SPECIES)
        c.features["ID"] = ident
        with open(path, "a") as fh:
            write_cfg(fh, [c])
        count[0] += 1
        print(f"{count[0]:4d} {ident:<28} {len(atoms):3d} atoms  E/N {c.energy / len(atoms):8.3f} eV  "
              f"|F|max {np.abs(c.forces).max():6.2f} eV/Å  {time.perf_counter() - t0:7.0f} s", flush=True)

    sizes = {"Li3PS4": (2, 3, 4, 5, 6, 8), "Li3B11O18": (1, 2), "interface": (1,)}  # 16–64 atoms (xTB cost grows fast)
    rho = {"Li3PS4": 1.75, "Li3B11O18": 2.0, "interface": 1.9}
    for si, system in enumerate(a.systems):
        rng = np.random.default_rng([a.seed, si])
        calc = TBLite(method="GFN1-xTB", verbosity=0)
        for k in range(a.n_random):
            n_units = int(rng.choice(sizes[system]))
            ident = f"{system}/random{k:02d}"
            at = starting_cell(system, n_units, rho[system] * rng.uniform(0.9, 1.1), int(rng.integers(1 << 30)))
            if ident not in have:
                try:
                    keep(label(at, calc), ident)
                except Exception as e:  # noqa: BLE001 - an SCF failure on a pathological packing: skip it
                    print(f"{ident}: skipped ({e})")
        for k in range(a.n_md):
            n_units = int(rng.choice(sizes[system]))
            at = starting_cell(system, n_units, rho[system] * rng.uniform(0.95, 1.05), int(rng.integers(1 << 30)))
            snaps = [f"{system}/md{k}/s{s:04d}" for s in range(a.md_skip + a.md_every - 1, a.md_steps, a.md_every)]
            rat = [f"{x}/r{j}" for x in snaps for j in range(a.n_rattle)]
            if all(x in have for x in snaps + rat):
                continue
            at.calc = TBLite(method="GFN1-xTB", verbosity=0)
            MaxwellBoltzmannDistribution(at, temperature_K=a.temperature, rng=rng)
            Stationary(at)
            dyn = Langevin(at, 1.0 * units.fs, temperature_K=a.temperature, friction=0.02, rng=rng)
            for s in range(a.md_steps):
                dyn.run(1)
                ident = f"{system}/md{k}/s{s:04d}"
                if s >= a.md_skip and (s - a.md_skip + 1) % a.md_every == 0:
                    if ident not in have:
                        keep(label(at, at.calc), ident)
                    for j in range(a.n_rattle):
                        rid = f"{ident}/r{j}"
                        x = at.copy()
                        x.positions += rng.normal(0, rng.uniform(*a.rattle), x.positions.shape)
                        x.set_cell(x.cell @ (np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))), scale_atoms=True)
                        if rid not in have:
                            try:
                                keep(label(x, calc), rid)
                            except Exception as e:  # noqa: BLE001
                                print(f"{rid}: skipped ({e})")
    confs = read_cfg(path)
    perm = np.random.default_rng(a.seed).permutation(len(confs))
    n_valid = int(round(a.valid_fraction * len(confs)))
    write_cfg(out / "xtb_valid.cfg", [confs[i] for i in sorted(perm[:n_valid])])
    write_cfg(out / "xtb_train.cfg", [confs[i] for i in sorted(perm[n_valid:])])
    print(f"{len(confs)} configurations, {sum(c.natoms for c in confs)} atoms, {time.perf_counter() - t0:.0f} s "
          f"→ {path} (+ xtb_train.cfg / xtb_valid.cfg)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
