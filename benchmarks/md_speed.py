"""MD throughput (atom-steps/s) with a level-12 MTP: NVT and NPT, single and batched replicas,
beside jax-md and (optionally) LAMMPS with MLIP's pair style.

    python benchmarks/md_speed.py [--sizes 1000 8000 64000] [--steps 20] [--replicas 4] [--json OUT]

System: random Cu/Ag/Au FCC alloy (a = 3.85 Å) with the Cu/Ag/Au level-12
potential (``m2_l12_trained.mtp``), 1 fs, skin 1 Å. For each size:

* mtpjax: Nosé–Hoover-chain NVT, MTK NPT (iso and triclinic), each for one
  system and for ``--replicas`` replicas batched with ``jax.vmap`` (the
  neighbour list rebuild decision shared over replicas);
* jax-md: ``simulate.nvt_nose_hoover`` driven by the same MTP forces (the
  mtpjax kernel and neighbour list as jax-md's ``force_fn``), single and
  batched;
* LAMMPS (``MTPJAX_LAMMPS``): ``pair_style mlip mlip.ini`` on the same cell
  and potential, ``fix nvt`` / ``fix npt``, parsed ``Loop time``.

Each figure: ``--steps`` steps inside one jitted ``fori_loop`` after a
warm-up, min and median over ``--repeats``; reported per step and as
atom-steps/s (replicas × atoms / step time), and as ratios to one bare E+F+S call (timed in a jitted loop like the steps) of the
same system (``step_over_efs``, per replica; target ≤ 1.3) and, for NPT, to NVT
(``step_over_nvt``; target ≤ 1.3). Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mtpjax  # noqa: F401,E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import peers  # noqa: E402
from benchmarks.common import MLIP_REF, repeat_time, write_json  # noqa: E402
from mtpjax.md import forcefields as FF  # noqa: E402
from mtpjax.md import integrators as I  # noqa: E402
from mtpjax.geometry.neighbors import neighbor_list  # noqa: E402
from mtpjax.potential import MTP  # noqa: E402

POT = str(MLIP_REF / "potentials" / "m2_l12_trained.mtp")
MASSES = [63.546, 107.8682, 196.96657]
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
    masses = np.array(MASSES)[types]
    return at.positions, at.cell.array, types, masses


def timeit(fn, *args, reps=3):
    """(min, median) seconds of ``fn(*args)`` after one warm-up (compiling) call."""
    jax.block_until_ready(fn(*args))
    return repeat_time(lambda: fn(*args), reps, jax.block_until_ready)


def _loop(step, steps):
    @jax.jit
    def loop(st, nb):
        return jax.lax.fori_loop(0, steps, lambda i, c: step(*c), (st, nb))

    return loop


def _row(n, ensemble, replicas, code, mm, steps):
    mn, med = mm[0] / steps, mm[1] / steps
    return dict(n_atoms=n, ensemble=ensemble, replicas=replicas, code=code, step_min_s=mn, step_median_s=med,
                atom_steps_per_s=n * replicas / mn)


def bench(n, steps, model, replicas=4, repeats=2, jaxmd=True, lammps=None, workdir=None,
          ensembles=("NVT", "NPT iso", "NPT tri"), pot=POT):
    """Rows (one per code × ensemble × replica count) for ``n`` atoms."""
    pos, cell, types, masses = alloy(n)
    sp = jnp.asarray(model.species_index(types))
    efs = FF.mtp_efs(model)
    fns, nb = neighbor_list(pos, cell, True, model.cutoff, 1.0)
    rfns = fns.for_replicas("replica")
    P = jnp.asarray(pos)
    C = jnp.asarray(cell)
    kT = KB * 300.0
    dt = 1.0 * FS
    rows = []
    R = max(1, replicas)
    nbR = jax.tree_util.tree_map(lambda x: jnp.stack([x] * R), nb)

    def ours(make, ensemble):
        integ = make(fns)
        st = integ.init(P, masses, C, nb, sp, kT=kT, key=jax.random.PRNGKey(0))
        rows.append(_row(n, ensemble, 1, "mtpjax",
                         timeit(_loop(lambda s, b: integ.step(s, b, kT, 0.0), steps), st, nb, reps=repeats), steps))
        if replicas > 1:
            integ_r = make(rfns)
            sts = [integ_r.init(P, masses, C, nb, sp, kT=kT, key=jax.random.PRNGKey(r)) for r in range(R)]
            stR = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *sts)
            vstep = jax.vmap(lambda s, b: integ_r.step(s, b, kT, 0.0), axis_name="replica")
            rows.append(_row(n, ensemble, R, "mtpjax", timeit(_loop(vstep, steps), stR, nbR, reps=repeats), steps))

    makers = {"NVT": lambda f: I.nvt_nose_hoover(efs, f, dt, 100 * FS),
              "NPT iso": lambda f: I.npt_mtk(efs, f, dt, 100 * FS, 1000 * FS, "iso"),
              "NPT tri": lambda f: I.npt_mtk(efs, f, dt, 100 * FS, 1000 * FS, "tri")}
    # the bare E+F+S call on the same system and list: the reference of the "MD step ≤ 1.3× E+F+S" target.
    # Timed like the MD steps, ``steps`` calls inside one jitted loop (positions nudged along the forces so
    # that no call can be hoisted; species an argument, not a constant folded into the program): one call
    # per dispatch adds ~15 ms of XLA:CPU call overhead at 1000 atoms, which the MD loop does not pay.
    def efs_loop(p, c, b, s):
        def body(i, carry):
            q, acc = carry
            e, f, _ = efs(q, c, b, s)
            return q + 1e-12 * f, acc + e
        return jax.lax.fori_loop(0, steps, body, (p, jnp.zeros((), p.dtype)))

    rows.append(_row(n, "E+F+S", 1, "mtpjax", timeit(jax.jit(efs_loop), P, C, nb, sp, reps=max(repeats, 3)), steps))
    for ens in ensembles:
        ours(makers[ens], ens)
    base = rows[0]["step_min_s"]
    nvt = {r["replicas"]: r["step_min_s"] for r in rows if r["ensemble"] == "NVT"}
    for r in rows:
        if r["ensemble"] != "E+F+S":
            r["step_over_efs"] = r["step_min_s"] / (base * r["replicas"])
            if r["replicas"] in nvt and r["ensemble"].startswith("NPT"):
                r["step_over_nvt"] = r["step_min_s"] / nvt[r["replicas"]]
    if jaxmd:
        try:
            rows += _jaxmd_rows(n, steps, efs, fns, rfns, P, C, sp, masses, nb, nbR, kT, dt, R, repeats)
        except Exception as e:  # noqa: BLE001
            rows.append(dict(n_atoms=n, ensemble="NVT", replicas=1, code="jax-md", error=repr(e)[:300]))
    if lammps:
        for ens in ("nvt", "npt"):
            try:
                res = peers.lammps_md(lammps, pot, pos, cell, types, MASSES, max(steps, 10), workdir, ens, 300.0,
                                      repeats)
                rows.append(dict(n_atoms=n, ensemble=ens.upper() + (" iso" if ens == "npt" else ""), replicas=1,
                                 code="LAMMPS+MLIP", step_min_s=res["lammps_step_min_s"],
                                 step_median_s=res["lammps_step_median_s"],
                                 atom_steps_per_s=res["lammps_atom_steps_per_s"], procs=res["lammps_procs"]))
            except Exception as e:  # noqa: BLE001
                rows.append(dict(n_atoms=n, ensemble=ens.upper(), replicas=1, code="LAMMPS+MLIP", error=repr(e)[:300]))
    return rows


def _jaxmd_rows(n, steps, efs, fns, rfns, P, C, sp, masses, nb, nbR, kT, dt, R, repeats):
    from jax_md import simulate, space

    _, shift = space.periodic_general(C, fractional_coordinates=False)

    def force_fn(Rpos, nbrs=None, **kw):
        return efs(Rpos, C, nbrs, sp)[1]

    init, apply = simulate.nvt_nose_hoover(force_fn, shift, dt, kT, chain_length=3, tau=100 * dt)
    m = jnp.asarray(masses)[:, None]
    rows = []
    st = init(jax.random.PRNGKey(0), P, mass=m, nbrs=nb)

    def jstep(f):
        def step(s, b):
            b = f.update(s.position, C, b)
            return apply(s, nbrs=b), b

        return step

    rows.append(_row(n, "NVT", 1, "jax-md", timeit(_loop(jstep(fns), steps), st, nb, reps=repeats), steps))
    if R > 1:
        stR = jax.vmap(lambda k: init(k, P, mass=m, nbrs=nb))(jax.random.split(jax.random.PRNGKey(1), R))
        vstep = jax.vmap(jstep(rfns), axis_name="replica")
        rows.append(_row(n, "NVT", R, "jax-md", timeit(_loop(vstep, steps), stR, nbR, reps=repeats), steps))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000, 64000])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--replicas", type=int, default=4, help="batched replicas (1: single only)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-jaxmd", action="store_true")
    ap.add_argument("--potential", default=POT)
    ap.add_argument("--ensembles", nargs="+", default=["NVT", "NPT iso", "NPT tri"])
    ap.add_argument("--quick", action="store_true", help="1000 atoms, NVT and NPT iso, 20 steps, 4 replicas, 3 repeats")
    ap.add_argument("--tiny", action="store_true", help="108 atoms, level 8, NVT and NPT iso, 3 steps, 2 replicas, 2 repeats")
    ap.add_argument("--json", "--out", dest="json", default="benchmarks/results/md_speed.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.steps, a.replicas, a.repeats = [1000], 20, 4, 3
        a.ensembles = ["NVT", "NPT iso"]
    if a.tiny:
        a.sizes, a.steps, a.replicas, a.repeats = [108], 3, 2, 2
        a.ensembles, a.potential = ["NVT", "NPT iso"], str(MLIP_REF / "potentials" / "m2_l08_trained.mtp")
    model = MTP.from_file(a.potential)
    lammps = peers.lammps_binary()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            steps = max(2, a.steps if n <= 8000 else a.steps // 10)
            rows += bench(n, steps, model, a.replicas, a.repeats, not a.no_jaxmd, lammps, Path(tmp), a.ensembles,
                          a.potential)
            print(f"done N={n}", file=sys.stderr, flush=True)
    print(f"\n{Path(a.potential).name}, {jax.devices()[0]} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), 1 fs")
    print(f"{'N':>7} {'ensemble':>8} {'R':>3} {'code':>12} {'ms/step':>9} {'atom-steps/s':>13} {'/E+F+S':>7} {'/NVT':>6}")
    for r in rows:
        if "error" in r:
            print(f"{r['n_atoms']:>7} {r['ensemble']:>8} {r['replicas']:>3} {r['code']:>12} error: {r['error']}")
            continue
        print(f"{r['n_atoms']:>7} {r['ensemble']:>8} {r['replicas']:>3} {r['code']:>12} "
              f"{r['step_min_s'] * 1e3:>9.2f} {r['atom_steps_per_s']:>13.4g} "
              f"{r.get('step_over_efs', float('nan')):>7.2f} {r.get('step_over_nvt', float('nan')):>6.2f}")
    meta = dict(device=str(jax.devices()[0]), cpu_count=os.cpu_count(), potential=Path(a.potential).name, timestep_fs=1.0,
                temperature_K=300.0, repeats=a.repeats, lammps=" ".join(lammps) if lammps else None)
    write_json(a.json, rows, meta)
    return rows


if __name__ == "__main__":
    main()
