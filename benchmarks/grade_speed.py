"""Cost of the extrapolation grade per MD step relative to the MD step itself.

    python benchmarks/grade_speed.py [--level 12] [--cfg big1008.cfg] [--repeat 10] [--json OUT] [--quick|--tiny]
                                     [--block-steps 5] [--no-kernels]

Times, on one configuration (default: ``tests/data/mlip_ref/inputs/big1008.cfg``,
1008 atoms, ≈42 neighbours per atom, 3 species, synthetic level-LL potential):

* ``efs``: energy, forces and PlusStress (the force call of one MD step);
* ``md_step``: one Nosé–Hoover NVT step of :mod:`mtpjax.md` (efs + integrator);
* ``grade_cfg`` / ``grade_nbh``: the on-device grade (:func:`make_grade_fn`)
  in configuration / neighbourhood mode against a random well-conditioned
  active set of the right size (the cost does not depend on its content);
* ``efs_plus_grade``: energy, forces, stress and the cfg-mode grade fused in
  one backward pass (:func:`make_efs_grade_fn`).

and, the quantity of the issue-#5 target, whole jitted MD blocks of
:class:`mtpjax.md.simulation.Simulation` (NVT, ``--block-steps`` steps per call,
on-device neighbour-list update included) per step:

* ``md_plain``: no hook (``mtp_efs``);
* ``md_fused``: grade every step from the force call (``mtp_efs_grade`` +
  ``aux_hook``, what :class:`mtpjax.active.learn.Learner` uses in cfg mode);
* ``md_separate``: grade every step by the separate hook (``make_hook``).

``overhead_fused`` = md_fused / md_plain − 1 (target ≤ 0.10 at level 12 with
the grade checked every step, ``hook_every = 1``) as the median over rounds of
the ratio of back-to-back calls (robust on a loaded machine; ``_cpu``: the
same with process CPU time, ``_min``: ratio of the minima);
``overhead_separate`` likewise for the separate hook.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import mtpjax  # noqa: E402,F401
from benchmarks.common import MLIP_REF  # noqa: E402
from mtpjax.active.maxvol import ActiveSet  # noqa: E402
from mtpjax.active.md_grade import aux_hook, make_efs_grade_fn, make_grade_fn, make_hook, mtp_efs_grade  # noqa: E402
from mtpjax.potential import MTP, read_cfg  # noqa: E402
from mtpjax.potential.model import energy_forces_stress  # noqa: E402

REF = MLIP_REF


def _time(fn, repeat):
    jax.block_until_ready(fn())  # compile
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return float(np.min(ts)), float(np.median(ts))


def _time_interleaved(fns: dict, repeat: int) -> dict:
    """(min, median) seconds of each function, calls interleaved round-robin so
    that load from other processes affects all of them alike."""
    for f in fns.values():
        jax.block_until_ready(f())  # compile
    ts = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            ts[k].append(time.perf_counter() - t0)
    return {k: (float(np.min(v)), float(np.median(v))) for k, v in ts.items()}


def _paired(fns: dict, repeat: int, base: str):
    """Interleaved timing with paired ratios: per round, each function's wall
    and process-CPU time divided by those of ``base`` measured in the same
    round; returns ({name: (min, median) wall s}, {name: median wall ratio},
    {name: median CPU-time ratio}). Ratios of neighbouring calls are far less
    sensitive to load from other processes than ratios of minima."""
    for f in fns.values():
        jax.block_until_ready(f())  # compile
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeat):
        for k in names[r % len(names):] + names[: r % len(names)]:  # rotate the order: no position bias
            f = fns[k]
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(f())
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    wb, cb = np.asarray(wall[base]), np.asarray(cpu[base])
    stats = {k: (float(np.min(v)), float(np.median(v))) for k, v in wall.items()}
    rw = {k: float(np.median(np.asarray(v) / wb)) for k, v in wall.items()}
    rc = {k: float(np.median(np.asarray(v) / cb)) for k, v in cpu.items()}
    return stats, rw, rc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--level", type=int, default=12)
    ap.add_argument("--cfg", default=str(REF / "inputs" / "big1008.cfg"))
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="level 12, 10 repeats")
    ap.add_argument("--tiny", action="store_true", help="level 8, 3 repeats")
    ap.add_argument("--block-steps", type=int, default=5, help="MD steps per timed block call")
    ap.add_argument("--no-kernels", action="store_true", help="only the MD-block comparison")
    a = ap.parse_args(argv)
    if a.quick:
        a.level, a.repeat = 12, 10
    if a.tiny:
        a.level, a.repeat = 8, 3
    model = MTP.from_file(REF / "potentials" / f"synth_l{a.level:02d}_s3.mtp")
    conf = read_cfg(a.cfg)[0]
    from mtpjax.md.forcefields import mtp_efs
    from mtpjax.md.stages import Stage, make_integrator
    from mtpjax.units import FS, KB
    from mtpjax.geometry.neighbors import neighbor_list

    pos = jnp.asarray(conf.positions)
    cell = jnp.asarray(conf.cell)
    species = jnp.asarray(model.species_index(conf.types))
    fns, _ = neighbor_list(np.asarray(pos), np.asarray(cell), (True, True, True), model.cutoff, 1.0, 1.25, None)
    nbrs = jax.jit(fns.build)(pos, cell)
    n = model.n_params
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    st_cfg = ActiveSet(A=q, inv=q.T, owner=np.zeros((n, 2), int), mode="cfg")
    st_nbh = ActiveSet(A=q, inv=q.T, owner=np.zeros((n, 2), int), mode="nbh")
    g_cfg = jax.jit(make_grade_fn(model, st_cfg))
    g_nbh = jax.jit(make_grade_fn(model, st_nbh))
    efs = jax.jit(lambda p: energy_forces_stress(model, p, cell, species, nbrs.idx, nbrs.shifts))

    stage = Stage("nvt", 1, temperature=1000.0, tdamp=100 * FS)
    integ = make_integrator(stage, mtp_efs(model), fns, 1.0 * FS)
    masses = jnp.full(len(pos), 30.0)
    s0 = integ.init(pos, masses, cell, nbrs, species, kT=KB * 1000.0, key=jax.random.PRNGKey(0))
    step = jax.jit(lambda s, nb: integ.step(s, nb, KB * 1000.0, 0.0))

    res = {"level": a.level, "natoms": int(len(pos)), "n_params": n, "device": str(jax.devices()[0]),
           "neighbors_capacity": int(nbrs.idx.shape[1]), "cpu_count": os.cpu_count()}
    if not a.no_kernels:
        joint = jax.jit(make_efs_grade_fn(model, st_cfg))
        fns_ = {
            "efs_s": lambda: efs(pos),
            "md_step_s": lambda: step(s0, nbrs)[0].positions,
            "grade_cfg_s": lambda: g_cfg(pos, cell, nbrs.idx, nbrs.shifts, species),
            "grade_nbh_s": lambda: g_nbh(pos, cell, nbrs.idx, nbrs.shifts, species),
            "efs_plus_grade_s": lambda: joint(pos, cell, nbrs.idx, nbrs.shifts, species),
        }
        res.update(_time_interleaved(fns_, a.repeat))
        res["ratio_joint_extra"] = (res["efs_plus_grade_s"][0] - res["efs_s"][0]) / res["md_step_s"][0]
        md = res["md_step_s"][0]
        res["ratio_cfg"] = res["grade_cfg_s"][0] / md
        res["ratio_nbh"] = res["grade_nbh_s"][0] / md
        for k in ("efs_s", "md_step_s", "grade_cfg_s", "grade_nbh_s", "efs_plus_grade_s"):
            print(f"{k:16s} min {res[k][0] * 1e3:9.2f} ms   median {res[k][1] * 1e3:9.2f} ms")
        print(f"grade/md_step: cfg {res['ratio_cfg']:.3f}, nbh {res['ratio_nbh']:.3f} "
              f"(every step; divide by hook_every for sparser checks); fused E+F+S+grade adds "
              f"{res['ratio_joint_extra']:.3f} of an MD step")

    # whole MD blocks (Simulation), grade checked every step vs none
    from mtpjax.md.simulation import Simulation

    nb_steps = int(a.block_steps)
    variants = {
        "md_plain": (mtp_efs(model), None),
        "md_fused": (mtp_efs_grade(model, st_cfg), aux_hook(1e30, 1)),
        "md_separate": (mtp_efs(model), make_hook(model, st_cfg, 1e30, 1)),
    }
    blocks = {}
    for name, (efs_fn, hook) in variants.items():
        stg = Stage("nvt", 10**9, temperature=1000.0, tdamp=100 * FS)
        sim = Simulation(efs_fn, model.cutoff, 1.0 * FS, [stg], thermo_every=nb_steps, traj_every=nb_steps, hook=hook)
        st, nb = sim.init_state(np.asarray(pos), masses, np.asarray(cell), species, 1000.0, seed=0)
        fn = sim._block_fn(stg, 2)
        args = (*sim._params(), st, nb, jnp.asarray(nb_steps, jnp.int32), sim._sched(stg))
        blocks[name] = (lambda fn=fn, args=args: fn(*args).state.positions)
    t, rw, rc = _paired(blocks, a.repeat, "md_plain")
    for k, (tmin, tmed) in t.items():
        res[k + "_per_step_s"] = (tmin / nb_steps, tmed / nb_steps)
        print(f"{k + '/step':16s} min {tmin / nb_steps * 1e3:9.2f} ms   median {tmed / nb_steps * 1e3:9.2f} ms")
    base = t["md_plain"]
    for v in ("fused", "separate"):
        res[f"overhead_{v}_min"] = t[f"md_{v}"][0] / base[0] - 1.0  # ratio of minima
        res[f"overhead_{v}"] = rw[f"md_{v}"] - 1.0  # median of paired wall-time ratios (headline)
        res[f"overhead_{v}_cpu"] = rc[f"md_{v}"] - 1.0  # median of paired process-CPU-time ratios
    print(f"grade every MD step, level {a.level}, {len(pos)} atoms (median of paired ratios, wall / CPU time; "
          f"ratio of minima): fused +{100 * res['overhead_fused']:.1f} % / +{100 * res['overhead_fused_cpu']:.1f} %; "
          f"+{100 * res['overhead_fused_min']:.1f} %, separate hook +{100 * res['overhead_separate']:.1f} % / "
          f"+{100 * res['overhead_separate_cpu']:.1f} %; +{100 * res['overhead_separate_min']:.1f} % of an MD step "
          f"(target ≤ 10 %)")
    if a.json:
        row = {k: v for k, v in res.items() if not isinstance(v, tuple) and k != "device"}
        for k, v in res.items():
            if isinstance(v, tuple):
                row[f"{k[:-2]}_min_s"], row[f"{k[:-2]}_median_s"] = v
        for old, new in (("ratio_cfg", "grade_overhead_cfg"), ("ratio_nbh", "grade_overhead_nbh"),
                         ("ratio_joint_extra", "fused_grade_overhead")):
            if old in row:
                row[new] = row.pop(old)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"meta": {"device": res["device"], "repeats": a.repeat,
                                                     "cfg": Path(a.cfg).name, "hook_every": 1},
                                            "rows": [row], "raw": res}, indent=1))
    return res


if __name__ == "__main__":
    main()
