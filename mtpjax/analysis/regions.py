"""Interface-resolved transport: displacement histograms along an axis
(Figure 9 of Wang et al. 2023) and per-region diffusivities.

Regions are slabs of the periodic cell along the third lattice vector c,
given in fractional coordinates [lo, hi) (lo > hi wraps through 0).
Membership is evaluated at **every** frame from the wrapped position.

Per-region MSD (survival-conditioned, Liu, Harder & Berne, J. Phys. Chem. B
108, 6595 (2004)): for lag τ only (ion, origin) pairs with the ion inside
the region at all frames t0 … t0+τ count,

    MSD_r(τ) = Σ_{i,t0} 1[in r on [t0, t0+τ]] |Δr_i|² / Σ_{i,t0} 1[...].

The in-plane D_∥ = slope/4 is unbiased; the normal component is confined
by the slab and underestimates D_⊥ for lags comparable to the residence time
(reported, flagged in the docstring, not hidden).  Region volume =
⟨V_cell⟩ × (hi − lo mod 1) > 0 and the ion count is the time average, so the
Nernst–Einstein conductivity has the right sign and density.
"""
from __future__ import annotations

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.analysis.arrhenius import nernst_einstein_mS_cm
from mtpjax.analysis.diffusion import A2_PER_FS_TO_CM2_PER_S, InsufficientDataError, fit_line, he_rsd
from mtpjax.analysis.trajectory import as_trajectory, species_indices
from mtpjax.analysis.unwrap import UnwrapState, unwrap_chunk

__all__ = ["load_unwrapped_with_fractional", "displacement_histogram", "region_diffusivity", "region_mask"]


def load_unwrapped_with_fractional(traj, select="Li", chunk: int = 2048, timestep_fs=None):
    """(U (F, n, 3) Å unwrapped, sc (F, n) wrapped fractional c coordinate,
    normals (F, 3) unit a×b, volumes (F,) Å³, times (F,) fs)."""
    src = as_trajectory(traj, timestep_fs)
    idx = species_indices(src.species, select)
    F, n = src.n_frames, len(idx)
    U = np.empty((F, n, 3))
    sc = np.empty((F, n))
    nrm = np.empty((F, 3))
    vol = np.empty(F)
    st = UnwrapState()
    for s, p, c in src.iter_chunks(chunk, idx):
        c = np.asarray(c)
        e = s + len(p)
        U[s:e] = unwrap_chunk(p, c, st)
        frac = np.einsum("fnj,fjk->fnk", p, np.linalg.inv(c))
        sc[s:e] = frac[..., 2] - np.floor(frac[..., 2])
        cr = np.cross(c[:, 0], c[:, 1])
        nrm[s:e] = cr / np.linalg.norm(cr, axis=1, keepdims=True)
        vol[s:e] = np.abs(np.linalg.det(c))
    return U, sc, nrm, vol, np.asarray(src.times_fs, dtype=np.float64)


def displacement_histogram(traj=None, select="Li", *, axis="normal", lag_fs: float | None = None,
                           bins=60, range=None, data=None) -> dict:
    """Histogram of ion displacements along one direction.

    axis: 0/1/2 (Cartesian x/y/z) or 'normal' (unit a × b of the first frame,
    the interface normal).  lag_fs None: displacement from the first to the
    last frame per ion (Figure 9 style); else all origins at that lag pooled.
    ``data`` may hold the tuple of :func:`load_unwrapped_with_fractional` to
    avoid re-reading.  Returns {'edges', 'counts', 'mean', 'std', 'n'} (Å).
    """
    U, _, nrm, _, t = data if data is not None else load_unwrapped_with_fractional(traj, select)
    if axis == "normal":
        e = nrm[0]
    else:
        e = np.eye(3)[int(axis)]
    x = np.einsum("fnk,k->fn", U, e)
    if lag_fs is None:
        d = x[-1] - x[0]
    else:
        m = int(round(lag_fs / (t[1] - t[0])))
        if not 0 < m < len(t):
            raise InsufficientDataError(f"lag {lag_fs} fs outside the run ({t[-1] - t[0]} fs)")
        d = (x[m:] - x[:-m]).ravel()
    counts, edges = np.histogram(d, bins=bins, range=range)
    return {"edges_A": edges.tolist(), "counts": counts.tolist(), "mean_A": float(d.mean()),
            "std_A": float(d.std()), "n": int(d.size), "axis": e.tolist(), "lag_fs": lag_fs}


def region_mask(sc, lo, hi):
    """(mask, width): which wrapped fractional c values ``sc`` lie in the
    slab [lo, hi) (lo > hi wraps through 0; hi = 1 is the top face), and the
    slab's width as a fraction of c."""
    lo = float(lo) % 1.0
    hi = 1.0 if float(hi) == 1.0 else float(hi) % 1.0
    if lo < hi:
        return (sc >= lo) & (sc < hi), hi - lo
    return (sc >= lo) | (sc < hi), 1.0 - lo + hi


_region_mask = region_mask


def region_diffusivity(traj=None, select="Li", regions=((0.0, 0.5), (0.5, 1.0)), *, temperature_K=None,
                       charge: float = 1.0, haven_ratio: float = 1.0, fit_fs=None, n_lags: int = 40,
                       site_distance: float = 3.0, rsd_floor: float = 0.04, min_pairs: int = 50,
                       data=None) -> list[dict]:
    """Per-region tracer diffusivity (total, in-plane, normal) and
    Nernst–Einstein conductivity (if ``temperature_K``) of the selected ions.

    regions: fractional c ranges [lo, hi); fit_fs: (t_start, t_end) fs of the
    fit window (default: from the lag where the conditioned MSD reaches
    0.5 a² to the last lag with ≥ ``min_pairs`` surviving pairs, at most half
    the run); n_lags lags are sampled in the window.  Uncertainty: He et al.
    with N_eff = max(conditioned MSD × ⟨N_r⟩)/a².
    """
    check_regions(regions)
    U, sc, nrm, vol, t = data if data is not None else load_unwrapped_with_fractional(traj, select)
    F, n, _ = U.shape
    dt = t[1] - t[0]
    nv = nrm[0]
    out = []
    for lo, hi in regions:  # a few regions
        M, width = _region_mask(sc, lo, hi)
        fidx = np.arange(F)[:, None]
        E = np.where(M, F, fidx)
        nxt = np.minimum.accumulate(E[::-1], axis=0)[::-1]  # first frame ≥ t outside
        n_mean = float(M.sum(axis=1).mean())
        V = float(vol.mean()) * width
        if fit_fs is None:
            cand = np.unique(np.linspace(1, F // 2, min(F // 2, 4 * n_lags)).astype(int))
        else:
            m0, m1 = int(np.ceil(fit_fs[0] / dt)), int(np.floor(fit_fs[1] / dt))
            if not 0 < m0 < m1 < F:
                raise InsufficientDataError(f"fit window {fit_fs} fs not inside the run")
            cand = np.unique(np.linspace(m0, m1, n_lags).astype(int))
        msd_t, msd_n, npair = [], [], []
        for m in cand:  # lags, each vectorised over origins × ions
            ok = M[:-m] & (nxt[:-m] > fidx[:-m] + m)
            d = U[m:] - U[:-m]
            dn = np.einsum("fnk,k->fn", d, nv)
            d2 = np.einsum("fnk,fnk->fn", d, d)
            c = ok.sum()
            npair.append(c)
            msd_t.append((d2 * ok).sum() / max(c, 1))
            msd_n.append((dn * dn * ok).sum() / max(c, 1))
        cand, msd_t, msd_n, npair = map(np.asarray, (cand, msd_t, msd_n, npair))
        lag = cand * dt
        good = npair >= min_pairs
        if fit_fs is None:
            thr = 0.5 * site_distance ** 2
            start = np.flatnonzero(good & (msd_t >= thr))
            if start.size == 0:
                raise InsufficientDataError(f"region [{lo}, {hi}): conditioned MSD never reaches {thr} Å² "
                                            f"with ≥ {min_pairs} surviving pairs")
            sel = np.arange(start[0], len(cand))
            sel = sel[good[sel]]
            if sel.size > n_lags:
                sel = sel[np.unique(np.linspace(0, sel.size - 1, n_lags).astype(int))]
        else:
            sel = np.flatnonzero(good)
        if sel.size < 3:
            raise InsufficientDataError(f"region [{lo}, {hi}): only {sel.size} usable lags in the fit window")
        res = {"region": [float(lo), float(hi)], "n_ions_mean": n_mean, "volume_A3": V,
               "ion_density_A3": n_mean / V, "window_fs": [float(lag[sel[0]]), float(lag[sel[-1]])],
               "lag_fs": lag.tolist(), "msd_A2": msd_t.tolist(), "msd_normal_A2": msd_n.tolist(),
               "n_pairs": npair.tolist()}
        for name, y, d in (("total", msd_t, 3), ("parallel", msd_t - msd_n, 2), ("normal", msd_n, 1)):
            slope, _ = fit_line(lag[sel], y[sel])
            D = slope / (2 * d) * A2_PER_FS_TO_CM2_PER_S
            neff = float(np.max(y[sel]) * n_mean / site_distance ** 2)
            rsd = float(he_rsd(neff, rsd_floor))
            res[f"D_{name}_cm2_s"] = float(D)
            res[f"D_{name}_err_cm2_s"] = float(abs(D) * rsd)
            if temperature_K is not None and D > 0:
                res[f"sigma_{name}_mS_cm"] = float(nernst_einstein_mS_cm(D, temperature_K, n_mean / V, charge,
                                                                          haven_ratio))
        out.append(res)
    return out


def check_regions(regions):
    for r in regions:
        if len(r) != 2:
            raise ConfigurationError(f"region {r} must be (lo, hi) in fractional c")
