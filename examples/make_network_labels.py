"""xTB labels of dense B–O network cells for the quick workflow's seed data.

GFN1-xTB relaxes a 32-atom Li3B11O18 network cell of
:func:`mtpjax.builders.borate_network` (every bridge joining neighbouring
borons) to ~1.8 g/cm³ at zero pressure, with B–O coordination 3.18 — as low
in energy as the open ~1.2 g/cm³ networks that the learning runs reach once
an MTP that overestimates the pressure of dense networks (by 0.6–2.5 GPa)
lets the cell open up in the melt. This script labels what that MTP was
missing, on cells built with other seeds than the quick run's:

* the path of a GFN1-xTB relaxation of atoms *and cell* (FIRE on ASE's
  ``FrechetCellFilter``) of Li3B11O18 network cells and of Li3PS4 | Li3B11O18
  interface cells built as the workflow builds them, every ``--every``-th
  step;
* ``--hot`` snapshots of NVT MD at 1000 K (ASE Langevin, 1 fs) with the MTP
  ``--pot`` in the relaxed cell, i.e. the dense melt, each labelled by xTB.

    python examples/make_network_labels.py --pot examples/data/quick_seed_l8.mtp \
        --out network_labels.cfg                                   # ~10 min on 2 cores
    python - <<'EOF'                                              # append to the seed data
    from mtpjax.potential import read_cfg, write_cfg
    write_cfg("examples/data/xtb_seed.cfg", read_cfg("examples/data/xtb_seed.cfg") + read_cfg("network_labels.cfg"))
    EOF

Types 0..4 = Li B O P S; each configuration is named ``network/<cell>/<step>``.
"""
from __future__ import annotations

import argparse
import os
import sys

SPECIES = ["Li", "B", "O", "P", "S"]


def build(kind: str, seed: int):
    from mtpjax.builders import PRESETS, PS4, borate_network, build_amorphous, roll_fewest_cut_bonds, stack_interface

    lbo = borate_network(11, 18, [("Li", 3)], density_g_cm3=1.854, a=7.0, b=7.0,
                         min_distances=PRESETS["Li3B11O18"]["min_distances"], seed=seed)
    if kind == "lbo":
        return lbo
    lps = build_amorphous([(PS4, 2), ("Li", 6)], density_g_cm3=1.677, a=7.0, b=7.0,
                          min_distances=PRESETS["Li3PS4"]["min_distances"], seed=seed + 1)
    return stack_interface(lps, roll_fewest_cut_bonds(lbo), gaps=[1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5],
                           min_cross=2.5, seed=seed + 2)


def job(args):
    kind, seed, a = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    from ase import units
    from ase.filters import FrechetCellFilter
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.optimize import FIRE
    from tblite.ase import TBLite

    from mtpjax.potential import Configuration, MTPCalculator

    out = []

    def keep(atoms, name):
        c = Configuration.from_atoms(atoms, SPECIES)
        c.features["name"] = name
        out.append(c)

    at = build(kind, seed)
    tag = f"network/{kind}{seed}"
    xtb = TBLite(method="GFN1-xTB", verbosity=0, max_iterations=300)
    at.calc = xtb
    opt = FIRE(FrechetCellFilter(at), logfile=None)
    try:
        for k in range(0, a.relax_steps + 1, a.every):
            if k:
                opt.run(fmax=0.05, steps=a.every)
            at.get_potential_energy()
            at.get_stress()
            keep(at, f"{tag}/relax{k:03d}")
    except Exception as e:  # noqa: BLE001 - a failing SCF: keep what was labelled
        print(f"{tag}: relaxation stopped ({type(e).__name__}: {e})", flush=True)
    md = at.copy()
    md.calc = MTPCalculator(a.pot, symbols=SPECIES)
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(md, temperature_K=1000.0, rng=rng)
    dyn = Langevin(md, 1.0 * units.fs, temperature_K=1000.0, friction=0.02, rng=rng)
    for k in range(a.hot):
        try:
            dyn.run(a.hot_every)
        except Exception as e:  # noqa: BLE001 - MTP MD left its domain: stop sampling this cell
            print(f"{tag}: hot MD stopped ({type(e).__name__}: {e})", flush=True)
            break
        snap = md.copy()
        snap.calc = TBLite(method="GFN1-xTB", verbosity=0, max_iterations=300)
        try:
            snap.get_potential_energy()
            snap.get_stress()
        except Exception as e:  # noqa: BLE001
            print(f"{tag}: hot snapshot {k} not labelled ({type(e).__name__})", flush=True)
            continue
        keep(snap, f"{tag}/hot{k:02d}")
    rho = at.get_masses().sum() * 1.66053906660 / at.get_volume()
    print(f"{tag}: {len(out)} labels, relaxed density {rho:.3f} g/cm³", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pot", required=True, help="MTP (.mtp, species Li B O P S) for the hot MD")
    ap.add_argument("--out", required=True, help=".cfg to write")
    ap.add_argument("--lbo-seeds", type=int, nargs="*", default=[501, 502, 503, 504, 505, 506])
    ap.add_argument("--int-seeds", type=int, nargs="*", default=[601, 602, 603, 604])
    ap.add_argument("--relax-steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=6)
    ap.add_argument("--hot", type=int, default=5, help="hot MD snapshots per cell")
    ap.add_argument("--hot-every", type=int, default=100, help="MD steps (1 fs) between hot snapshots")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)

    import multiprocessing as mp

    from mtpjax.potential import write_cfg

    jobs = [("lbo", s, a) for s in a.lbo_seeds] + [("int", s, a) for s in a.int_seeds]
    with mp.get_context("spawn").Pool(a.workers) as pool:
        confs = [c for res in pool.imap(job, jobs) for c in res]
    write_cfg(a.out, confs)
    print(f"{len(confs)} configurations written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
