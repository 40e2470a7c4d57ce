"""Neighbour-list rebuild cost vs one level-12 MTP energy+forces+stress call.

    python benchmarks/neighbor_speed.py [--sizes 1000 4000 8000] [--out neighbor_speed.json]

Times the jitted on-device rebuild (``fns.build``) with the dense and the
linked-cell builder and the bare E+F+S call on the same random Cu/Ag/Au FCC
alloy (cutoff 5 Å, skin 1 Å). The issue's target: a rebuild costs no more
than one force call at 1000 atoms.
"""
from __future__ import annotations

import argparse
import json

import mtpjax  # noqa: F401
import jax
import jax.numpy as jnp

from mtpjax.md import forcefields as FF
from mtpjax.md.neighbors import neighbor_list
from mtpjax.potential import MTP

from md_speed import POT, alloy, timeit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 8000])
    ap.add_argument("--out", default="neighbor_speed.json")
    a = ap.parse_args()
    model = MTP.from_file(POT)
    efs = FF.mtp_efs(model)
    rows = []
    for n in a.sizes:
        pos, cell, types, _ = alloy(n)
        sp = jnp.asarray(model.species_index(types))
        P, C = jnp.asarray(pos), jnp.asarray(cell)
        r = dict(n_atoms=n)
        for method in ("dense", "cell"):
            if method == "dense" and n > 8000:
                continue
            try:
                fns, nb = neighbor_list(pos, cell, True, model.cutoff, 1.0, method=method)
            except Exception as e:  # noqa: BLE001
                r[f"{method}_error"] = str(e)
                continue
            r[f"{method}_build_s"] = timeit(jax.jit(fns.build), P, C)
            if "efs_s" not in r:
                r["efs_s"] = timeit(jax.jit(lambda p, c, nb: efs(p, c, nb, sp)), P, C, nb)
        rows.append(r)
        print(json.dumps(r), flush=True)
    print(f"\n{'N':>7} {'E+F+S ms':>9} {'dense ms':>9} {'cell ms':>9} {'cell/EFS':>9}")
    for r in rows:
        print(f"{r['n_atoms']:>7} {r['efs_s'] * 1e3:>9.1f} {r.get('dense_build_s', float('nan')) * 1e3:>9.1f} "
              f"{r.get('cell_build_s', float('nan')) * 1e3:>9.1f} "
              f"{r.get('cell_build_s', float('nan')) / r['efs_s']:>9.3f}")
    with open(a.out, "w") as fh:
        json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
