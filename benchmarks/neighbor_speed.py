"""Neighbour-list rebuild cost vs one MTP energy+forces+stress call.

    python benchmarks/neighbor_speed.py [--sizes 1000 4000 8000] [--json OUT] [--quick|--tiny]

Times the jitted on-device rebuild (``fns.build``) with the dense and the
linked-cell builder, the host builder used at start-up
(:func:`mtpjax.geometry.neighbors.host_neighbors`) and the bare E+F+S call on the
same random Cu/Ag/Au FCC alloy (level-12 potential, cutoff 5 Å, skin 1 Å);
min and median over ``--repeats``. The issue's target: a rebuild costs no
more than one force call at 1000 atoms.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mtpjax  # noqa: F401,E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.common import put, repeat_time, write_json  # noqa: E402
from benchmarks.md_speed import POT, alloy, timeit  # noqa: E402
from mtpjax.md import forcefields as FF  # noqa: E402
from mtpjax.geometry.neighbors import host_neighbors, neighbor_list  # noqa: E402
from mtpjax.potential import MTP  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 8000, 32000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--potential", default=POT)
    ap.add_argument("--quick", action="store_true", help="1000 and 2000 atoms")
    ap.add_argument("--tiny", action="store_true", help="108 atoms, level-8 potential")
    ap.add_argument("--json", "--out", dest="json", default="benchmarks/results/neighbor_speed.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes = [1000, 2000]
    if a.tiny:
        a.sizes, a.repeats = [108], 2
        a.potential = str(Path(POT).with_name("m2_l08_trained.mtp"))
    model = MTP.from_file(a.potential)
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
            r[f"{method}_capacity"] = int(fns.capacity)
            put(r, f"{method}_build", timeit(jax.jit(fns.build), P, C, reps=a.repeats))
            if "efs_min_s" not in r:
                put(r, "efs", timeit(jax.jit(lambda p, c, nb: efs(p, c, nb, sp)), P, C, nb, reps=a.repeats))
        t0 = time.perf_counter()
        host_neighbors(pos, cell, [True] * 3, model.cutoff + 1.0)
        first = time.perf_counter() - t0
        put(r, "host_build", repeat_time(lambda: host_neighbors(pos, cell, [True] * 3, model.cutoff + 1.0),
                                         max(1, min(a.repeats, 3))))
        r["host_build_min_s"] = min(r["host_build_min_s"], first)
        best = min(r.get("dense_build_min_s", float("inf")), r.get("cell_build_min_s", float("inf")))
        r["best_rebuild_over_efs"] = best / r["efs_min_s"]
        rows.append(r)
        print(f"done N={n}", file=sys.stderr, flush=True)
    nan = float("nan")
    print(f"\n{'N':>7} {'E+F+S ms':>9} {'dense ms':>9} {'cell ms':>9} {'host ms':>9} {'best/EFS':>9}")
    for r in rows:
        print(f"{r['n_atoms']:>7} {r['efs_min_s'] * 1e3:>9.1f} {r.get('dense_build_min_s', nan) * 1e3:>9.1f} "
              f"{r.get('cell_build_min_s', nan) * 1e3:>9.1f} {r['host_build_min_s'] * 1e3:>9.1f} "
              f"{r['best_rebuild_over_efs']:>9.3f}")
    write_json(a.json, rows, {"potential": Path(a.potential).name, "skin_A": 1.0, "repeats": a.repeats,
                              "device": str(jax.devices()[0])})
    return rows


if __name__ == "__main__":
    main()
