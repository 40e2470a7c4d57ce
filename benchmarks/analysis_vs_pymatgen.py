"""mtpjax.analysis vs pymatgen-analysis-diffusion on the same trajectories.

Synthetic Li hopping (±a along x, y, z, Poisson, known D) in a 12 Å cubic
cell with a vibrating S framework; 48 Li, 32 S, 10 fs between frames.
For every seed both codes analyse the same displacements:

* ours: FFT multi-origin MSD, He et al. window (MSD ≥ 4.5 Å² .. 0.5 of the
  run) and He et al. error; also ours restricted to pymatgen's window;
* pymatgen ``DiffusionAnalyzer`` with ``smoothed='max'`` (default) and its
  ``diffusivity_std_dev``.

Prints a table and writes JSON (default benchmarks/analysis_vs_pymatgen.json)
with per-seed values and a summary: mean bias, the real seed-to-seed scatter,
the median stated relative error of each method and its 1σ coverage of the
true D.  Needs ``pip install pymatgen-analysis-diffusion``.

Usage: python benchmarks/analysis_vs_pymatgen.py [--seeds 20] [--frames 4000] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mtpjax.analysis.diffusion import diffusion_from_msd, diffusion_from_unwrapped


def hopping(rng, F, n, dt_fs, D_cm2_s, a=3.0, vib=0.2, box=12.0):
    lam = (2 * D_cm2_s * 10.0 / a ** 2) * dt_fs / 2
    steps = a * (rng.poisson(lam, (F - 1, n, 3)) - rng.poisson(lam, (F - 1, n, 3)))
    U = np.concatenate([np.zeros((1, n, 3)), np.cumsum(steps, 0)]) + rng.uniform(0, box, (1, n, 3))
    return U + rng.normal(0, vib, U.shape)


def run(seeds=20, frames=4000, D_true=5e-5, n_li=48, n_s=32, L=12.0, dt_fs=10.0):
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        U = hopping(rng, frames, n_li, dt_fs, D_true, box=L)
        S = rng.uniform(0, L, (1, n_s, 3)) + rng.normal(0, 0.1, (frames, n_s, 3))
        allpos = np.concatenate([U, S], axis=1)
        t0 = time.perf_counter()
        # ours: framework drift removal, He window and errors
        from mtpjax.analysis.trajectory import ArrayTrajectory
        from mtpjax.analysis.diffusion import analyze_diffusion

        traj = ArrayTrajectory(allpos, np.eye(3) * L, [3] * n_li + [16] * n_s, timestep_fs=dt_fs)
        ours = analyze_diffusion(traj, "Li", drift="framework")
        t_ours = time.perf_counter() - t0
        # ours restricted to pymatgen's window: 1000 fs .. end of run
        same = diffusion_from_msd(ours.lag_fs, ours.msd_xyz, n_li, start_fs=1000.0, end_fraction=1.0)["total"]
        # pymatgen on the same displacements (sites × steps × 3, relative to frame 0)
        st = Structure(Lattice.cubic(L), ["Li"] * n_li + ["S"] * n_s, allpos[0], coords_are_cartesian=True)
        disp = np.transpose(allpos - allpos[:1], (1, 0, 2))
        t0 = time.perf_counter()
        pm = DiffusionAnalyzer(st, disp, "Li", temperature=1000, time_step=2, step_skip=int(dt_fs / 2),
                               smoothed="max")
        t_pm = time.perf_counter() - t0
        rows.append({
            "seed": seed,
            "ours_D": ours.D, "ours_err": ours.D_err, "ours_window_fs": list(ours.fits["total"].window_fs),
            "ours_pmwindow_D": same.D_cm2_s, "ours_pmwindow_err": same.D_err_cm2_s,
            "pmg_D": float(pm.diffusivity), "pmg_err": float(pm.diffusivity_std_dev),
            "t_ours_s": t_ours, "t_pmg_s": t_pm,
        })
    return rows


def summarize(rows, D_true):
    out = {}
    for key in ("ours", "ours_pmwindow", "pmg"):
        D = np.array([r[f"{key}_D"] for r in rows])
        E = np.array([r[f"{key}_err"] for r in rows])
        out[key] = {
            "mean_D": float(D.mean()), "bias_rel": float(D.mean() / D_true - 1),
            "scatter_rel": float(D.std(ddof=1) / D_true),
            "median_stated_rel_err": float(np.median(E / D)),
            "coverage_1sigma": float(np.mean(np.abs(D - D_true) <= E)),
        }
    ours = np.array([r["ours_D"] for r in rows])
    pmg = np.array([r["pmg_D"] for r in rows])
    same = np.array([r["ours_pmwindow_D"] for r in rows])
    out["ours_vs_pmg_rel_diff_median"] = float(np.median(np.abs(ours / pmg - 1)))
    out["ours_pmwindow_vs_pmg_rel_diff_max"] = float(np.max(np.abs(same / pmg - 1)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--frames", type=int, default=4000)
    ap.add_argument("--D", type=float, default=5e-5, help="true D in cm²/s")
    ap.add_argument("--json", default=str(Path(__file__).with_suffix(".json")))
    ns = ap.parse_args(argv)
    rows = run(ns.seeds, ns.frames, ns.D)
    summ = summarize(rows, ns.D)
    print(f"true D = {ns.D:.3e} cm2/s, {ns.seeds} seeds, {ns.frames} frames x 10 fs, 48 Li + 32 S")
    print(f"{'seed':>4} {'ours D':>11} {'± He':>9} {'ours@pmg win':>13} {'pmg D':>11} {'± pmg':>9}")
    for r in rows:
        print(f"{r['seed']:>4} {r['ours_D']:>11.4e} {r['ours_err']:>9.2e} {r['ours_pmwindow_D']:>13.4e} "
              f"{r['pmg_D']:>11.4e} {r['pmg_err']:>9.2e}")
    print(f"\n{'method':<15}{'mean D':>11}{'bias':>8}{'real scatter':>14}{'stated err':>12}{'1σ coverage':>13}")
    for k in ("ours", "ours_pmwindow", "pmg"):
        s = summ[k]
        print(f"{k:<15}{s['mean_D']:>11.4e}{s['bias_rel']:>8.1%}{s['scatter_rel']:>14.1%}"
              f"{s['median_stated_rel_err']:>12.2%}{s['coverage_1sigma']:>13.0%}")
    print(f"median |ours/pmg - 1| = {summ['ours_vs_pmg_rel_diff_median']:.1%} (different fit windows); "
          f"max |ours(pmg window)/pmg - 1| = {summ['ours_pmwindow_vs_pmg_rel_diff_max']:.2%}")
    t_o = np.mean([r["t_ours_s"] for r in rows])
    t_p = np.mean([r["t_pmg_s"] for r in rows])
    print(f"mean time per trajectory: ours {t_o:.2f} s, pymatgen {t_p:.2f} s")
    with open(ns.json, "w") as fh:
        json.dump({"D_true_cm2_s": ns.D, "frames": ns.frames, "rows": rows, "summary": summ}, fh, indent=2)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
