"""Cost of the extrapolation grade per MD step relative to the MD step itself.

    python benchmarks/grade_speed.py [--level 12] [--cfg big1008.cfg] [--repeat 20] [--json OUT]

Times, on one configuration (default: ``shared/data/mlip_ref/inputs/big1008.cfg``,
1008 atoms, ≈42 neighbours per atom, 3 species, synthetic level-LL potential):

* ``efs``: energy, forces and PlusStress (the force call of one MD step);
* ``md_step``: one Nosé–Hoover NVT step of :mod:`mtpjax.md` (efs + integrator);
* ``grade_cfg`` / ``grade_nbh``: the on-device grade (:func:`make_grade_fn`)
  in configuration / neighbourhood mode against a random well-conditioned
  active set of the right size (the cost does not depend on its content);
* ``efs_plus_grade``: energy, forces, stress and the cfg-mode grade fused in
  one backward pass (:func:`make_efs_grade_fn`).

Reports the ratio grade / md_step; the target is ≤ 10 % when graded every
step (``hook_every = 1``), and the ratio scales as 1/hook_every otherwise.
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
from mtpjax.active.maxvol import ActiveSet  # noqa: E402
from mtpjax.active.md_grade import make_efs_grade_fn, make_grade_fn  # noqa: E402
from mtpjax.potential import MTP, read_cfg  # noqa: E402
from mtpjax.potential.model import energy_forces_stress  # noqa: E402

REF = Path(os.environ.get("MTPJAX_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "mlip_ref"


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--level", type=int, default=12)
    ap.add_argument("--cfg", default=str(REF / "inputs" / "big1008.cfg"))
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    model = MTP.from_file(REF / "potentials" / f"synth_l{a.level:02d}_s3.mtp")
    conf = read_cfg(a.cfg)[0]
    from mtpjax.md.forcefields import mtp_efs
    from mtpjax.md.simulate import FS, KB, Stage, make_integrator
    from mtpjax.md.neighbors import neighbor_list

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
           "neighbors_capacity": int(nbrs.idx.shape[1])}
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
        print(f"{k:14s} min {res[k][0] * 1e3:9.2f} ms   median {res[k][1] * 1e3:9.2f} ms")
    print(f"grade/md_step: cfg {res['ratio_cfg']:.3f}, nbh {res['ratio_nbh']:.3f} "
          f"(every step; divide by hook_every for sparser checks); fused E+F+S+grade adds "
          f"{res['ratio_joint_extra']:.3f} of an MD step")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
