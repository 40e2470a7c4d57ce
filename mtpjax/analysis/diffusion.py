"""Tracer diffusivity from the MSD, with He et al. (2018) uncertainties.

Equations (He, Zhu, Epstein, Mo, npj Comput. Mater. 4, 18 (2018)):

* TMSD(Δt) = Σ_i ⟨|r_i(t+Δt) − r_i(t)|²⟩_t (eq. 2), MSD = TMSD / N (eq. 3);
* D = slope / (2d) of a straight line (free intercept) fitted to MSD(Δt)
  in a window (eq. 4); d = 3 total, 1 per Cartesian axis, 2 in-plane;
* RSD(D) = 3.43 / √N_eff + floor, floor = 0.04 (eq. 8);
* N_eff = max_Δt TMSD(Δt) / a² (eq. 9), a = site distance (3 Å default).

Directional N_eff: for a component set c (one axis, the two in-plane axes or
all three) we take N_eff,c = max_Δt TMSD_c(Δt) / a², i.e. the squared
displacement *in those components* counted in units of a².  For isotropic
hopping this gives N_eff/3 for one axis, so RSD_axis ≈ √3 × the statistical
part of RSD_total, which is what averaging three independent components
implies; the coverage tests in ``tests/test_analysis.py`` check it.

Default fit window (He et al. and their code): from the first lag where the
per-ion MSD reaches 0.5 a² (4.5 Å² for a = 3 Å; excludes the ballistic and
vibrational part) up to ``end_fraction`` = 0.5 of the run (the tail has few
time origins).  An empty or too-short window, or a negative slope, raises
:class:`InsufficientDataError` — a negative D is never returned.

Units: lags in fs, MSD in Å², D in cm²/s (1 Å²/fs = 0.1 cm²/s).
"""
from __future__ import annotations

from dataclasses import dataclass, field, asdict

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.analysis.msd import msd_axes, msd_columns
from mtpjax.analysis.trajectory import as_trajectory
from mtpjax.analysis.unwrap import unwrapped_positions
from ase.data import chemical_symbols

__all__ = [
    "InsufficientDataError",
    "A2_PER_FS_TO_CM2_PER_S",
    "he_rsd",
    "n_effective",
    "fit_window",
    "fit_line",
    "DiffusionFit",
    "DiffusionResult",
    "diffusion_from_msd",
    "analyze_diffusion",
    "diffusion_from_unwrapped",
    "block_diffusivity",
    "bootstrap_mean",
    "combine_runs",
]

A2_PER_FS_TO_CM2_PER_S = 0.1


class InsufficientDataError(ConfigurationError):
    """Too few frames / too little displacement for the requested fit window."""


def he_rsd(n_eff, floor: float = 0.04):
    """He et al. eq. 8: relative standard deviation of D, 3.43/√N_eff + floor."""
    n_eff = np.asarray(n_eff, dtype=np.float64)
    return 3.43 / np.sqrt(np.maximum(n_eff, 1e-300)) + floor


def n_effective(tmsd, site_distance: float = 3.0) -> float:
    """He et al. eq. 9: max over lags of the total (summed over ions) MSD / a²."""
    return float(np.max(tmsd)) / site_distance ** 2


def fit_window(lag_fs, msd, site_distance: float = 3.0, start_msd: float | None = None,
               end_fraction: float = 0.5, start_fs: float | None = None,
               end_fs: float | None = None, min_points: int = 5) -> tuple[int, int]:
    """Indices [i0, i1) of the fit window on ``lag_fs`` (M,).

    msd: (M,) per-ion total MSD Å².  Start: ``start_fs`` if given, else the
    first lag with msd ≥ ``start_msd`` (default 0.5 a²).  End: ``end_fs`` if
    given, else ``end_fraction`` × the longest lag.  Raises
    InsufficientDataError with the reason when fewer than ``min_points`` lags
    remain.
    """
    lag = np.asarray(lag_fs, dtype=np.float64)
    msd = np.asarray(msd, dtype=np.float64)
    M = len(lag)
    if M < 3:
        raise InsufficientDataError(f"only {M} frames: need many more for a diffusion fit")
    if not 0 < end_fraction <= 1:
        raise ConfigurationError(f"end_fraction must be in (0, 1], got {end_fraction}")
    t_end = lag[-1] * end_fraction if end_fs is None else float(end_fs)
    i1 = int(np.searchsorted(lag, t_end, side="right"))
    if start_fs is not None:
        i0 = int(np.searchsorted(lag, float(start_fs), side="left"))
        why = f"start_fs={start_fs} fs"
    else:
        thr = 0.5 * site_distance ** 2 if start_msd is None else float(start_msd)
        above = np.flatnonzero(msd[1:] >= thr)
        if above.size == 0:
            raise InsufficientDataError(
                f"MSD never reaches the fit-window start {thr:.3g} Å² (max {msd.max():.3g} Å² over "
                f"{lag[-1]:.4g} fs): too little diffusion or too short a run; lower start_msd or give start_fs")
        i0 = int(above[0]) + 1
        why = f"MSD ≥ {thr:.3g} Å² at {lag[i0]:.4g} fs"
    if i1 - i0 < min_points:
        raise InsufficientDataError(
            f"fit window too short: {why}, end at {t_end:.4g} fs ({end_fraction:g} of the run) leaves "
            f"{max(i1 - i0, 0)} lags (< {min_points}); run longer or store frames more often")
    return i0, i1


def fit_line(x, y) -> tuple[float, float]:
    """Ordinary least-squares slope and intercept of y(x)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xm, ym = x.mean(), y.mean()
    sxx = np.sum((x - xm) ** 2)
    b = float(np.sum((x - xm) * (y - ym)) / sxx)
    return b, float(ym - b * xm)


@dataclass
class DiffusionFit:
    """One diffusivity. D and D_err in cm²/s; slope Å²/fs; window in fs."""

    D_cm2_s: float
    D_err_cm2_s: float
    rsd: float
    n_eff: float
    dim: int
    slope_A2_fs: float
    intercept_A2: float
    window_fs: tuple[float, float]
    n_points: int


@dataclass
class DiffusionResult:
    """MSD curves and fitted diffusivities of one species in one trajectory.

    lag_fs: (M,) fs; msd_xyz: (M, 3) per-ion MSD per Cartesian axis Å²;
    msd_normal: (M,) per-ion MSD along the interface normal Å²;
    fits: {'total', 'x', 'y', 'z', 'parallel', 'normal'} -> DiffusionFit;
    n_ions; volume_A3: mean cell volume; site_distance Å; block: optional
    block estimate dict.
    """

    lag_fs: np.ndarray
    msd_xyz: np.ndarray
    msd_normal: np.ndarray
    fits: dict
    n_ions: int
    volume_A3: float
    site_distance: float
    normal: np.ndarray
    species: str = ""
    block: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def msd(self) -> np.ndarray:
        """Per-ion total MSD (M,) Å²."""
        return self.msd_xyz.sum(axis=1)

    @property
    def D(self) -> float:
        return self.fits["total"].D_cm2_s

    @property
    def D_err(self) -> float:
        return self.fits["total"].D_err_cm2_s

    def to_dict(self, max_points: int = 2000) -> dict:
        """JSON-ready summary (MSD subsampled to ≤ max_points lags)."""
        M = len(self.lag_fs)
        k = np.unique(np.linspace(0, M - 1, min(M, max_points)).astype(int))
        return {
            "species": self.species,
            "n_ions": self.n_ions,
            "volume_A3": self.volume_A3,
            "ion_density_A3": self.n_ions / self.volume_A3,
            "site_distance_A": self.site_distance,
            "normal": np.asarray(self.normal).tolist(),
            "fits": {kk: (asdict(v) if v is not None else None) for kk, v in self.fits.items()},
            "block": self.block,
            "lag_fs": self.lag_fs[k].tolist(),
            "msd_A2": self.msd[k].tolist(),
            "msd_xyz_A2": self.msd_xyz[k].tolist(),
            "msd_normal_A2": self.msd_normal[k].tolist(),
            **self.extra,
        }


def _fit_component(lag, msd_c, tmsd_c, dim, window, site_distance, rsd_floor):
    i0, i1 = window
    slope, icpt = fit_line(lag[i0:i1], msd_c[i0:i1])
    if not slope > 0:
        raise InsufficientDataError(
            f"non-positive MSD slope {slope:.3g} Å²/fs in the fit window "
            f"[{lag[i0]:.4g}, {lag[i1 - 1]:.4g}] fs (d={dim}): no diffusion detected")
    D = slope / (2 * dim) * A2_PER_FS_TO_CM2_PER_S
    neff = n_effective(tmsd_c, site_distance)
    rsd = float(he_rsd(neff, rsd_floor))
    return DiffusionFit(D, D * rsd, rsd, neff, dim, slope, icpt,
                        (float(lag[i0]), float(lag[i1 - 1])), int(i1 - i0))


def diffusion_from_msd(lag_fs, msd_xyz, n_ions: int, msd_normal=None, *, site_distance: float = 3.0,
                       start_msd: float | None = None, end_fraction: float = 0.5,
                       start_fs: float | None = None, end_fs: float | None = None,
                       rsd_floor: float = 0.04, min_points: int = 5) -> dict:
    """Fit D for total, x, y, z, in-plane and normal components.

    lag_fs (M,) fs; msd_xyz (M, 3) per-ion MSD Å²; msd_normal (M,) per-ion
    MSD along the interface normal (default: z).  Returns {name: DiffusionFit}.
    """
    lag = np.asarray(lag_fs, dtype=np.float64)
    mx = np.asarray(msd_xyz, dtype=np.float64)
    mn = mx[:, 2] if msd_normal is None else np.asarray(msd_normal, dtype=np.float64)
    tot = mx.sum(axis=1)
    win = fit_window(lag, tot, site_distance, start_msd, end_fraction, start_fs, end_fs, min_points)
    comps = {
        "total": (tot, 3), "x": (mx[:, 0], 1), "y": (mx[:, 1], 1), "z": (mx[:, 2], 1),
        "parallel": (tot - mn, 2), "normal": (mn, 1),
    }
    out = {}
    for name, (m, d) in comps.items():
        try:
            out[name] = _fit_component(lag, m, m * n_ions, d, win, site_distance, rsd_floor)
        except InsufficientDataError:
            if name == "total":
                raise
            out[name] = None  # a component without diffusion (e.g. confined axis)
    return out


def _normal_of(cell) -> np.ndarray:
    n = np.cross(cell[0], cell[1])
    return n / np.linalg.norm(n)


def diffusion_from_unwrapped(U, times_fs, volume_A3: float, normal=(0.0, 0.0, 1.0), *,
                             species: str = "", n_blocks: int = 0, **fit_kw) -> DiffusionResult:
    """Diffusion analysis of unwrapped positions U (F, n, 3) Å at times (F,) fs.

    Frames must be equally spaced.  ``fit_kw``: site_distance, start_msd,
    end_fraction, start_fs, end_fs, rsd_floor, min_points (see
    :func:`diffusion_from_msd`).  ``n_blocks`` ≥ 2 adds a block estimate.
    """
    t = np.asarray(times_fs, dtype=np.float64)
    F, n, _ = U.shape
    if F < 3:
        raise InsufficientDataError(f"only {F} frames")
    dt = np.diff(t)
    if np.any(dt <= 0) or np.ptp(dt) > 1e-6 * abs(dt.mean()) + 1e-9:
        raise ConfigurationError("frames must be equally spaced in time for the multi-origin MSD")
    lag = t - t[0]
    mx = msd_axes(U) / n
    nv = np.asarray(normal, dtype=np.float64)
    nv = nv / np.linalg.norm(nv)
    if np.allclose(nv, [0, 0, 1]):
        mn = mx[:, 2].copy()
    else:
        proj = np.einsum("fnk,k->fn", np.asarray(U), nv)
        mn = msd_columns(proj).sum(axis=1) / n
    site_distance = fit_kw.get("site_distance", 3.0)
    fits = diffusion_from_msd(lag, mx, n, mn, **fit_kw)
    res = DiffusionResult(lag, mx, mn, fits, n, float(volume_A3), site_distance, nv, species)
    if n_blocks and n_blocks >= 2:
        res.block = block_diffusivity(U, t, n_blocks, **fit_kw)
    return res


def analyze_diffusion(traj, select="Li", *, drift="all", timestep_fs: float | None = None,
                      n_blocks: int = 0, chunk: int = 2048, memmap_path=None, **fit_kw) -> DiffusionResult:
    """Full pipeline: read (streaming) → unwrap (NPT-safe) → drift-correct →
    FFT MSD over all origins → D total / per axis / in-plane / normal with He
    uncertainties.

    traj: a source, a path (H5MD or ASE-readable) or a list of Atoms;
    select: species symbol(s) or an index array; drift: see
    :func:`.unwrap.unwrapped_positions`; the interface normal is a × b of the
    first frame's cell.  Returns a :class:`DiffusionResult`.
    """
    src = as_trajectory(traj, timestep_fs)
    _, _, c0 = next(src.iter_chunks(1))
    U, idx, vols = unwrapped_positions(src, select, drift=drift, chunk=chunk, memmap_path=memmap_path)

    names = sorted({chemical_symbols[z] for z in np.asarray(src.species)[idx]})
    return diffusion_from_unwrapped(U, src.times_fs, float(np.mean(vols)), _normal_of(np.asarray(c0[0])),
                                    species="+".join(names), n_blocks=n_blocks, **fit_kw)


def block_diffusivity(U, times_fs, n_blocks: int, **fit_kw) -> dict:
    """Block estimate: split the run into ``n_blocks`` consecutive segments,
    fit D in each (same window rules, relative to the block length) and
    return mean, standard error (std/√n, ddof=1) and the values in cm²/s.
    Segments of one run are only approximately independent.
    """
    F = U.shape[0]
    L = F // n_blocks
    if L < 3:
        raise InsufficientDataError(f"{F} frames cannot be split into {n_blocks} blocks")
    t = np.asarray(times_fs, dtype=np.float64)
    n = U.shape[1]
    Ds = []
    for b in range(n_blocks):  # loop over a handful of blocks, not frames
        seg = np.asarray(U[b * L:(b + 1) * L])
        mx = msd_axes(seg) / n
        fits = diffusion_from_msd(t[b * L:(b + 1) * L] - t[b * L], mx, n, **fit_kw)
        Ds.append(fits["total"].D_cm2_s)
    Ds = np.asarray(Ds)
    return {"n_blocks": int(n_blocks), "D_cm2_s": float(Ds.mean()),
            "D_err_cm2_s": float(Ds.std(ddof=1) / np.sqrt(n_blocks)), "values": Ds.tolist()}


def bootstrap_mean(values, n_boot: int = 4000, seed: int = 0, ci: float = 0.6827) -> dict:
    """Bootstrap over independent runs: mean, bootstrap std error and the
    central ``ci`` percentile interval of the mean."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        raise InsufficientDataError("bootstrap needs at least two independent runs")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return {"mean": float(v.mean()), "std_err": float(means.std(ddof=1)),
            "ci": [float(lo), float(hi)], "n": int(v.size)}


def combine_runs(results, component: str = "total", n_boot: int = 4000, seed: int = 0) -> dict:
    """Combine independent runs (e.g. 4 glasses at one T).

    Returns the mean D, its He-propagated error √Σσ²/n, the run-to-run
    standard error (std/√n) and a bootstrap error; ``D_err_cm2_s`` is the
    larger of He-propagated and run-to-run errors.
    """
    D = np.array([r.fits[component].D_cm2_s for r in results])
    e = np.array([r.fits[component].D_err_cm2_s for r in results])
    n = len(D)
    he = float(np.sqrt(np.sum(e ** 2)) / n)
    spread = float(D.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    out = {"n_runs": n, "D_cm2_s": float(D.mean()), "D_err_he_cm2_s": he,
           "D_err_spread_cm2_s": spread, "D_err_cm2_s": max(he, spread)}
    if n > 1:
        out["bootstrap"] = bootstrap_mean(D, n_boot, seed)
    return out
