"""``mtpjax analyze diffusion|rdf|gii|units|arrhenius ...``: print tables, write JSON + PNG.

Called by :func:`mtpjax.cli.main` as ``main(argv)`` (which turns bad input into one line and status 2).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from mtpjax.plotting import pyplot, save
from mtpjax.analysis.arrhenius import fit_arrhenius
from mtpjax.analysis.arrhenius import nernst_einstein_mS_cm
from mtpjax.analysis.arrhenius import read_dt_table
from mtpjax.analysis.bondvalence import gii_trajectory
from mtpjax.analysis.diffusion import analyze_diffusion
from mtpjax.analysis.rdf import compute_rdf
from mtpjax.analysis.structure import coordination_fractions_trajectory
from mtpjax.analysis.structure import molecular_units_trajectory
from mtpjax.analysis.trajectory import open_trajectory
from mtpjax.errors import ConfigurationError
from mtpjax.analysis.plots import plot_arrhenius
from mtpjax.analysis.plots import plot_msd
from mtpjax.analysis.plots import plot_rdf


__all__ = ["main", "build_parser"]


def _write_json(path, obj):
    if path:
        with open(path, "w") as fh:
            json.dump(obj, fh, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        print(f"wrote {path}")


def _add_traj(p):
    p.add_argument("trajectory", help="H5MD (.h5/.h5md) or any ASE-readable file (extxyz, XDATCAR, ...)")
    p.add_argument("--timestep-fs", type=float, default=None,
                   help="fs between stored frames (ASE files without per-frame time)")
    p.add_argument("--json", default=None, help="write results to this JSON file")
    p.add_argument("--png", default=None, help="write a plot to this PNG file (needs matplotlib)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mtpjax analyze", description="Trajectory and transport analysis")
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("diffusion", help="MSD, tracer D (total/axes/in-plane/normal) with He et al. errors")
    _add_traj(d)
    d.add_argument("--species", default="Li")
    d.add_argument("--site-distance", type=float, default=3.0, help="a in Å for N_eff and the window start")
    d.add_argument("--start-msd", type=float, default=None, help="window start MSD Å² (default 0.5 a²)")
    d.add_argument("--end-fraction", type=float, default=0.5, help="window end as a fraction of the run")
    d.add_argument("--start-fs", type=float, default=None)
    d.add_argument("--end-fs", type=float, default=None)
    d.add_argument("--rsd-floor", type=float, default=0.04)
    d.add_argument("--drift", default="all", choices=["all", "framework", "none"])
    d.add_argument("--blocks", type=int, default=0, help="also a block estimate with this many blocks")
    d.add_argument("--temperature", type=float, default=None, help="K; adds the Nernst–Einstein σ")
    d.add_argument("--charge", type=float, default=1.0)
    d.add_argument("--haven-ratio", type=float, default=1.0)

    r = sub.add_parser("rdf", help="partial RDFs, running CNs, first minima")
    _add_traj(r)
    r.add_argument("--pairs", nargs="+", required=True, help="e.g. P-S Li-S B-O")
    r.add_argument("--rmax", type=float, default=8.0)
    r.add_argument("--dr", type=float, default=0.02)
    r.add_argument("--start", type=int, default=0)
    r.add_argument("--stride", type=int, default=1)

    g = sub.add_parser("gii", help="Global Instability Index per frame (bond valence, b = 0.37)")
    _add_traj(g)
    g.add_argument("--cutoff", action="append", default=[], metavar="ANION=R",
                   help="bond cutoff per anion, e.g. O=3.5 S=4.0 (repeatable)")
    g.add_argument("--start", type=int, default=0)
    g.add_argument("--stride", type=int, default=1)

    u = sub.add_parser("units", help="BO3/BO4 (coordination) or PS4/P2S7 (molecular unit) fractions per frame, "
                                     "optionally per region along c")
    _add_traj(u)
    u.add_argument("--center", default="B", help="center species (B, P, ...)")
    u.add_argument("--ligand", default="O", help="ligand species (O, S, ...)")
    u.add_argument("--cutoff", type=float, default=2.0, help="center-ligand bond cutoff in Å")
    u.add_argument("--molecular", action="store_true",
                   help="classify connected units (PS4, P2S7, P2S6 ...) instead of coordination numbers")
    u.add_argument("--center-center-cutoff", type=float, default=2.4,
                   help="direct center-center bond cutoff in Å for --molecular (P-P in P2S6; 0: none)")
    u.add_argument("--regions", nargs="+", default=None, metavar="LO,HI",
                   help="fractional c ranges [lo, hi), e.g. 0,0.5 0.5,1 (lo > hi wraps through 0)")
    u.add_argument("--start", type=int, default=0)
    u.add_argument("--stop", type=int, default=None)
    u.add_argument("--stride", type=int, default=1)

    a = sub.add_parser("arrhenius", help="weighted Arrhenius fit, extrapolated D and σ")
    a.add_argument("table", help="CSV with header T,D,D_err (K, cm²/s); repeated T = independent structures")
    a.add_argument("--ion-density", type=float, required=True, help="mobile-ion number density (Å⁻³)")
    a.add_argument("--charge", type=float, default=1.0)
    a.add_argument("--haven-ratio", type=float, default=1.0)
    a.add_argument("--T0", type=float, default=300.0, help="extrapolation temperature (K)")
    a.add_argument("--mode", default="wls", choices=["wls", "ols", "dspace"])
    a.add_argument("--scale-chi2", action="store_true", help="scale the covariance by the reduced χ²")
    a.add_argument("--json", default=None)
    a.add_argument("--png", default=None)
    return ap


def _diffusion(ns):
    src = open_trajectory(ns.trajectory, timestep_fs=ns.timestep_fs)
    res = analyze_diffusion(src, ns.species, drift=None if ns.drift == "none" else ns.drift,
                            n_blocks=ns.blocks, site_distance=ns.site_distance, start_msd=ns.start_msd,
                            end_fraction=ns.end_fraction, start_fs=ns.start_fs, end_fs=ns.end_fs,
                            rsd_floor=ns.rsd_floor)
    out = res.to_dict()
    print(f"{res.species}: {res.n_ions} ions, {len(res.lag_fs)} frames, <V> = {res.volume_A3:.2f} Å^3")
    print(f"{'component':<10}{'D (cm2/s)':>14}{'err':>12}{'RSD':>8}{'N_eff':>10}  window (fs)")
    for k, f in res.fits.items():
        if f is None:
            print(f"{k:<10}{'(no diffusion)':>14}")
            continue
        print(f"{k:<10}{f.D_cm2_s:>14.4e}{f.D_err_cm2_s:>12.2e}{f.rsd:>8.3f}{f.n_eff:>10.1f}  "
              f"[{f.window_fs[0]:.1f}, {f.window_fs[1]:.1f}]")
    if res.block:
        print(f"block ({res.block['n_blocks']}): D = {res.block['D_cm2_s']:.4e} ± {res.block['D_err_cm2_s']:.2e}")
    if ns.temperature:
        n = res.n_ions / res.volume_A3
        f = res.fits["total"]
        s = float(nernst_einstein_mS_cm(f.D_cm2_s, ns.temperature, n, ns.charge, ns.haven_ratio))
        rng = [s * np.exp(-f.rsd), s * np.exp(f.rsd)]
        out["sigma_mS_cm"], out["sigma_range_mS_cm"] = s, rng
        print(f"sigma({ns.temperature:g} K) = {s:.4g} mS/cm  range [{rng[0]:.4g}, {rng[1]:.4g}]")
    _write_json(ns.json, out)
    if ns.png:
        print(f"wrote {plot_msd(res, ns.png)}")


def _rdf(ns):
    res = compute_rdf(ns.trajectory, ns.pairs, r_max=ns.rmax, dr=ns.dr, start=ns.start, stride=ns.stride,
                      timestep_fs=ns.timestep_fs or 1.0)
    out = res.to_dict()
    print(f"{res.n_frames} frames")
    print(f"{'pair':<8}{'1st max (Å)':>12}{'g_max':>8}{'1st min (Å)':>12}{'CN(min)':>9}")
    for k, v in out["pairs"].items():
        g = res.g[k]
        im = int(np.argmax(g))
        fm = v["first_min_A"]
        print(f"{k:<8}{res.r[im]:>12.3f}{g[im]:>8.2f}{(fm if fm else float('nan')):>12.3f}"
              f"{(v['cn_at_first_min'] if v['cn_at_first_min'] is not None else float('nan')):>9.3f}")
    _write_json(ns.json, out)
    if ns.png:
        print(f"wrote {plot_rdf(res, ns.png)}")


def _gii(ns):
    cut = {}
    for c in ns.cutoff:
        try:
            k, v = c.split("=")
            cut[k.strip()] = float(v)
        except ValueError:
            raise ConfigurationError(f"--cutoff {c!r} must look like O=3.5") from None
    out = gii_trajectory(ns.trajectory, start=ns.start, stride=ns.stride, cutoffs=cut or None,
                         timestep_fs=ns.timestep_fs or 1.0)
    print(f"GII over {len(out['frames'])} frames: mean {out['mean']:.4f}, std {out['std']:.4f} v.u. "
          f"(b = {out['b_A']} Å, cutoffs {out['cutoffs_A']})")
    print("cutoff sensitivity (shift Å: mean GII): " +
          ", ".join(f"{k}: {v:.4f}" for k, v in out["cutoff_sensitivity"].items()))
    _write_json(ns.json, out)
    if ns.png:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(out["frames"], out["gii"])
        ax.set_xlabel("frame")
        ax.set_ylabel("GII (v.u.)")
        fig.tight_layout()
        save(fig, ns.png, dpi=120)
        print(f"wrote {ns.png}")


def _units(ns):
    regions = None
    if ns.regions:
        regions = []
        for r in ns.regions:
            try:
                lo, hi = (float(x) for x in r.split(","))
            except ValueError:
                raise ConfigurationError(f"--regions {r!r} must look like 0,0.5") from None
            regions.append((lo, hi))
    kw = dict(regions=regions, start=ns.start, stop=ns.stop, stride=ns.stride, timestep_fs=ns.timestep_fs or 1.0)
    if ns.molecular:
        out = molecular_units_trajectory(ns.trajectory, ns.center, ns.ligand, ns.cutoff,
                                         center_center_cutoff=ns.center_center_cutoff or None, **kw)
        what = f"{ns.center}-{ns.ligand} units (cutoff {ns.cutoff:g} Å, {ns.center}-{ns.center} " \
               f"{ns.center_center_cutoff:g} Å); fraction of {ns.center} atoms per unit type"
    else:
        out = coordination_fractions_trajectory(ns.trajectory, ns.center, ns.ligand, ns.cutoff, **kw)
        what = f"{ns.center}{ns.ligand}n fractions ({ns.center}-{ns.ligand} cutoff {ns.cutoff:g} Å)"
    print(f"{what} over {out['n_frames']} frames; mean ± std over frames")
    labels = sorted({x for r in out["regions"] for x in r["labels"]}, key=lambda x: (len(x), x))
    print(f"{'region':<14}{'N_center':>9}" + "".join(f"{x:>18}" for x in labels))
    for r in out["regions"]:
        cells = []
        for x in labels:
            m, s = r["mean"].get(x, 0.0), r["std"].get(x, 0.0)
            cells.append(f"{m:>9.4f} ± {s:<6.4f}")
        print(f"{r['label']:<14}{r['n_centers_mean']:>9.1f}" + "".join(f"{c:>18}" for c in cells))
    _write_json(ns.json, out)
    if ns.png:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3))
        for r in out["regions"]:
            for x in r["labels"]:
                ax.plot(out["frames"], r["fractions"][x], label=f"{x} {r['label']}")
        ax.set_xlabel("frame")
        ax.set_ylabel("fraction")
        ax.legend(fontsize=6)
        fig.tight_layout()
        save(fig, ns.png, dpi=120)
        print(f"wrote {ns.png}")


def _arrhenius(ns):
    T, D, E = read_dt_table(ns.table)
    fit = fit_arrhenius(T, D, E, mode=ns.mode, scale_by_chi2=ns.scale_chi2)
    D0, Drng = fit.D_at(ns.T0)
    s0, srng = fit.conductivity_at(ns.T0, ns.ion_density, ns.charge, ns.haven_ratio)
    out = {
        "Ea_eV": fit.Ea_eV, "Ea_err_eV": fit.Ea_err_eV, "D0_cm2_s": fit.D0_cm2_s,
        "T0_K": ns.T0, "D_T0_cm2_s": float(D0), "D_T0_range_cm2_s": np.asarray(Drng).tolist(),
        "sigma_T0_mS_cm": float(s0), "sigma_T0_range_mS_cm": np.asarray(srng).tolist(),
        "reduced_chi2": fit.reduced_chi2, "mode": fit.mode, "scaled_by_chi2": fit.scaled_by_chi2,
        "ion_density_A3": ns.ion_density, "charge": ns.charge, "haven_ratio": ns.haven_ratio,
        "cov_slope_intercept": fit.cov.tolist(),
        "points": {"T_K": fit.T_K.tolist(), "D_cm2_s": fit.D_cm2_s.tolist(), "D_err_cm2_s": fit.D_err_cm2_s.tolist()},
    }
    print(f"{'T (K)':>8}{'D (cm2/s)':>13}{'D_err':>11}")
    for t, d, e in zip(fit.T_K, fit.D_cm2_s, fit.D_err_cm2_s):
        print(f"{t:>8.1f}{d:>13.4e}{e:>11.3e}")
    print(f"Ea = {fit.Ea_eV:.4f} ± {fit.Ea_err_eV:.4f} eV   D0 = {fit.D0_cm2_s:.4e} cm2/s   "
          f"reduced chi2 = {fit.reduced_chi2:.3f}  ({fit.mode})")
    print(f"D({ns.T0:g} K) = {float(D0):.4e} cm2/s  range [{Drng[0]:.4e}, {Drng[1]:.4e}]")
    print(f"sigma({ns.T0:g} K) = {float(s0):.4g} mS/cm  range [{srng[0]:.4g}, {srng[1]:.4g}] (full covariance)")
    _write_json(ns.json, out)
    if ns.png:
        print(f"wrote {plot_arrhenius(fit, ns.png, ns.T0)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``main(['arrhenius', 'D_T.csv', '--ion-density', '0.0256'])``."""
    ns = build_parser().parse_args(argv)
    {"diffusion": _diffusion, "rdf": _rdf, "gii": _gii, "units": _units, "arrhenius": _arrhenius}[ns.cmd](ns)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
