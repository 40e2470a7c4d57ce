"""Plots (optional matplotlib extra, imported lazily; Agg backend).

Each function writes a PNG to ``path`` and returns the path.
"""
from __future__ import annotations

import numpy as np

from mtpjax.plotting import pyplot, save

__all__ = ["plot_msd", "plot_arrhenius", "plot_rdf", "plot_parity"]


def plot_msd(result, path, components=("total", "x", "y", "z")):
    """MSD vs lag (ps) with the fitted lines in their windows."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    lag_ps = result.lag_fs / 1000.0
    curves = {"total": result.msd, "x": result.msd_xyz[:, 0], "y": result.msd_xyz[:, 1],
              "z": result.msd_xyz[:, 2], "normal": result.msd_normal, "parallel": result.msd - result.msd_normal}
    for c in components:
        (ln,) = ax.plot(lag_ps, curves[c], label=c)
        f = result.fits.get(c)
        if f is not None:
            t = np.linspace(*f.window_fs, 10)
            ax.plot(t / 1000.0, f.intercept_A2 + f.slope_A2_fs * t, "--", color=ln.get_color())
    f = result.fits["total"]
    ax.set_xlabel("lag (ps)")
    ax.set_ylabel("MSD per ion (Å$^2$)")
    ax.set_title(f"D = {f.D_cm2_s:.3g} ± {f.D_err_cm2_s:.2g} cm²/s")
    ax.legend()
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_arrhenius(fit, path, T0: float | None = 300.0):
    """log10 D vs 1000/T with error bars, fitted line and the T0 extrapolation band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    T, D, E = fit.T_K, fit.D_cm2_s, fit.D_err_cm2_s
    yerr = np.vstack([np.log10(D) - np.log10(np.maximum(D - E, D * 1e-3)), np.log10(D + E) - np.log10(D)])
    ax.errorbar(1000 / T, np.log10(D), yerr=yerr, fmt="o", capsize=3, label="data")
    Tl = np.linspace(min(T.min(), T0 or T.min()), T.max(), 100)
    Dl, band = fit.D_at(Tl)
    ax.plot(1000 / Tl, np.log10(Dl), "-", label=f"Ea = {fit.Ea_eV:.3f} ± {fit.Ea_err_eV:.3f} eV")
    ax.fill_between(1000 / Tl, np.log10(band[:, 0]), np.log10(band[:, 1]), alpha=0.25)
    if T0:
        D0, b0 = fit.D_at(T0)
        ax.errorbar([1000 / T0], [np.log10(D0)], yerr=[[np.log10(D0 / b0[0])], [np.log10(b0[1] / D0)]],
                    fmt="s", capsize=3, label=f"{T0:g} K extrapolation")
    ax.set_xlabel("1000/T (1/K)")
    ax.set_ylabel("log$_{10}$ D (cm$^2$/s)")
    ax.legend()
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_rdf(rdf, path):
    """g(r) (left axis) and running CN (right axis) for every pair."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax2 = ax.twinx()
    for k in rdf.g:
        (ln,) = ax.plot(rdf.r, rdf.g[k], label=k)
        ax2.plot(rdf.edges[1:], rdf.cn[k], ":", color=ln.get_color())
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax2.set_ylabel("CN(r) (dotted)")
    ax.legend()
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_parity(x, y, path, xlabel="reference", ylabel="model", units=""):
    """Parity plot with MAE / RMSE in the title."""
    plt = pyplot()
    x, y = np.ravel(x), np.ravel(y)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(x, y, ".", ms=3)
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel(f"{xlabel} {units}")
    ax.set_ylabel(f"{ylabel} {units}")
    ax.set_title(f"MAE {np.mean(np.abs(y - x)):.3g}, RMSE {np.sqrt(np.mean((y - x) ** 2)):.3g} {units}")
    fig.tight_layout()
    return save(fig, path, dpi=120)
