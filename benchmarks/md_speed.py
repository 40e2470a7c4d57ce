"""MD throughput (atom-steps/s) with a level-12 MTP: NVT and NPT, vs jax-md's nvt_nose_hoover.

    python benchmarks/md_speed.py [--sizes 1000 8000 64000] [--steps 20] [--out md_speed.json]

System: random Cu/Ag/Au FCC alloy (a = 3.85 Å) with the Cu/Ag/Au level-12
potential (``m2_l12_trained.mtp``), 1 fs, skin 1 Å. For each size the bare
energy+forces+stress call, our NHC NVT step, our MTK NPT (iso) step and
jax-md's ``simulate.nvt_nose_hoover`` step (same potential and neighbour
list, forces from the same kernel) are timed inside jitted loops after a
warm-up. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import mtpjax  # noqa: F401
import jax
import jax.numpy as jnp

from mtpjax.md import forcefields as FF
from mtpjax.md import integrators as I
from mtpjax.md.neighbors import neighbor_list
from mtpjax.potential import MTP

POT = "/work/shared/data/mlip_ref/potentials/m2_l12_trained.mtp"
FS = 0.09822694788464063
KB = 8.617330337217213e-05


def alloy(n_atoms, a=3.85, seed=0):
    from ase.build import bulk

    reps = {1000: (5, 5, 10), 8000: (10, 10, 20), 64000: (20, 20, 40)}.get(n_atoms)
    if reps is None:
        k = round((n_atoms / 4) ** (1 / 3))
        reps = (k, k, k)
    at = bulk("Cu", "fcc", a=a, cubic=True).repeat(reps)
    rng = np.random.default_rng(seed)
    types = rng.integers(0, 3, len(at))
    at.positions += rng.normal(0, 0.05, at.positions.shape)
    masses = np.array([63.546, 107.8682, 196.96657])[types]
    return at.positions, at.cell.array, types, masses


def timeit(fn, *args, reps=3):
    out = fn(*args)
    jax.block_until_ready(out)
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    return best


def bench(n, steps, model):
    pos, cell, types, masses = alloy(n)
    sp = jnp.asarray(model.species_index(types))
    efs = FF.mtp_efs(model)
    fns, nb = neighbor_list(pos, cell, True, model.cutoff, 1.0)
    P = jnp.asarray(pos)
    C = jnp.asarray(cell)
    res = dict(n_atoms=n, neighbor_method=fns.method, capacity=fns.capacity)
    t_efs = timeit(jax.jit(lambda p, c, nb: efs(p, c, nb, sp)), P, C, nb)
    t_build = timeit(jax.jit(fns.build), P, C)
    res["efs_s"] = t_efs
    res["rebuild_s"] = t_build
    kT = KB * 300.0
    dt = 1.0 * FS

    def run_ours(integ):
        st = integ.init(P, masses, C, nb, sp, kT=kT, key=jax.random.PRNGKey(0))

        @jax.jit
        def loop(st, nb):
            def body(i, c):
                return integ.step(c[0], c[1], kT, 0.0)

            return jax.lax.fori_loop(0, steps, body, (st, nb))

        return timeit(loop, st, nb, reps=2) / steps

    res["nvt_step_s"] = run_ours(I.nvt_nose_hoover(efs, fns, dt, 100 * FS))
    res["npt_step_s"] = run_ours(I.npt_mtk(efs, fns, dt, 100 * FS, 1000 * FS, "iso"))
    res["npt_tri_step_s"] = run_ours(I.npt_mtk(efs, fns, dt, 100 * FS, 1000 * FS, "tri"))
    try:
        from jax_md import simulate, space

        disp, shift = space.periodic_general(C, fractional_coordinates=False)

        def force_fn(R, nbrs=None, **kw):
            return efs(R, C, nbrs, sp)[1]

        init, apply = simulate.nvt_nose_hoover(force_fn, shift, dt, kT, chain_length=3, tau=100 * dt)
        st = init(jax.random.PRNGKey(0), P, mass=jnp.asarray(masses)[:, None], nbrs=nb)

        @jax.jit
        def jloop(st, nb):
            def body(i, c):
                s, b = c
                b = fns.update(s.position, C, b)
                return apply(s, nbrs=b), b

            return jax.lax.fori_loop(0, steps, body, (st, nb))

        res["jaxmd_nvt_step_s"] = timeit(jloop, st, nb, reps=2) / steps
    except Exception as e:  # noqa: BLE001
        res["jaxmd_error"] = repr(e)
    for k in ("nvt", "npt", "npt_tri", "jaxmd_nvt"):
        if f"{k}_step_s" in res:
            res[f"{k}_atom_steps_per_s"] = n / res[f"{k}_step_s"]
    res["nvt_over_efs"] = res["nvt_step_s"] / t_efs
    res["npt_over_nvt"] = res["npt_step_s"] / res["nvt_step_s"]
    res["rebuild_over_efs"] = t_build / t_efs
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000, 64000])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="md_speed.json")
    a = ap.parse_args()
    model = MTP.from_file(POT)
    rows = []
    for n in a.sizes:
        steps = max(2, a.steps if n <= 8000 else a.steps // 10)
        r = bench(n, steps, model)
        rows.append(r)
        print(json.dumps(r), flush=True)
    hdr = f"{'N':>7} {'E+F+S ms':>9} {'rebuild ms':>10} {'NVT a-s/s':>11} {'NPT a-s/s':>11} {'NPTtri a-s/s':>12} " \
          f"{'jax-md NVT':>11} {'NVT/EFS':>8} {'NPT/NVT':>8}"
    print(f"\nlevel-12 MTP, CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), 1 fs")
    print(hdr)
    for r in rows:
        print(f"{r['n_atoms']:>7} {r['efs_s'] * 1e3:>9.1f} {r['rebuild_s'] * 1e3:>10.1f} "
              f"{r['nvt_atom_steps_per_s']:>11.3g} {r['npt_atom_steps_per_s']:>11.3g} "
              f"{r['npt_tri_atom_steps_per_s']:>12.3g} {r.get('jaxmd_nvt_atom_steps_per_s', float('nan')):>11.3g} "
              f"{r['nvt_over_efs']:>8.2f} {r['npt_over_nvt']:>8.2f}")
    with open(a.out, "w") as fh:
        json.dump(dict(device=str(jax.devices()[0]), cpu_count=os.cpu_count(), results=rows), fh, indent=1)


if __name__ == "__main__":
    main()
