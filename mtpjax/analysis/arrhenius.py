"""Arrhenius fit of D(T) and Nernst–Einstein conductivity.

Weighted least squares of y = ln D on x = 1/(k_B T) [eV⁻¹], weights
w = 1/RSD² with RSD = σ_D / D (He et al. 2018):

    S = Σw, Sx = Σwx, Sy = Σwy, Sxx = Σwx², Sxy = Σwxy, Δ = S·Sxx − Sx²
    b = (S·Sxy − Sx·Sy)/Δ,  c = (Sxx·Sy − Sx·Sxy)/Δ
    E_a = −b,  σ(E_a) = √(S/Δ),  D₀ = e^c
    Var[ln D(T₀)] = (Sxx − 2x₀Sx + x₀²S)/Δ      (full covariance of b, c)

Nernst–Einstein (He eq. 5): σ = n q² D / (H_R k_B T) with n in Å⁻³, q = z e;
σ[mS/cm] = n[Å⁻³]·z²·D[cm²/s]/(H_R·k_B T[eV]) × 1e27 (derived below).
Ranges are σ·exp(±√Var[ln D]).
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np

from mtpjax.units import KB_CODATA2018 as KB_EV  # eV/K

from mtpjax.errors import ConfigurationError
from mtpjax.errors import FileFormatError
import csv
from scipy.optimize import curve_fit

__all__ = [
    "KB_EV",
    "ArrheniusFit",
    "fit_arrhenius",
    "combine_per_temperature",
    "nernst_einstein_mS_cm",
    "conductivity_range",
    "read_dt_table",
]

# σ = n q² D/(k T): n [Å⁻³] = 1e24 cm⁻³, q² / (kT) = e·z²/(kT[eV]) C/V, D cm²/s
# -> S/cm = n·1e24 · 1.602176634e-19 · z² · D / kT[eV]; ×1e3 for mS/cm.
_NE_FACTOR_mS = 1e24 * 1.602176634e-19 * 1e3


def nernst_einstein_mS_cm(D_cm2_s, T_K, ion_density_A3, charge: float = 1.0, haven_ratio: float = 1.0):
    """Ionic conductivity in mS/cm from the tracer D (cm²/s) at T (K).

    ion_density_A3: mobile-ion number density (Å⁻³); haven_ratio H_R
    (1 = uncorrelated, the default)."""
    D = np.asarray(D_cm2_s, dtype=np.float64)
    return _NE_FACTOR_mS * ion_density_A3 * charge ** 2 * D / (haven_ratio * KB_EV * np.asarray(T_K, dtype=np.float64))


def conductivity_range(D_cm2_s, D_err_cm2_s, T_K, ion_density_A3, charge=1.0, haven_ratio=1.0):
    """(σ, [σ·e^−r, σ·e^+r]) in mS/cm with r = σ_D/D (log-normal error)."""
    s = nernst_einstein_mS_cm(D_cm2_s, T_K, ion_density_A3, charge, haven_ratio)
    r = np.asarray(D_err_cm2_s) / np.asarray(D_cm2_s)
    return s, np.stack([s * np.exp(-r), s * np.exp(r)], axis=-1)


@dataclass
class ArrheniusFit:
    """Result of :func:`fit_arrhenius`.  Energies in eV, D in cm²/s, x = 1/kT eV⁻¹."""

    Ea_eV: float
    Ea_err_eV: float
    D0_cm2_s: float
    ln_D0: float
    cov: np.ndarray  # (2, 2) covariance of (slope b, intercept c)
    reduced_chi2: float
    n_points: int
    scaled_by_chi2: bool
    T_K: np.ndarray
    D_cm2_s: np.ndarray
    D_err_cm2_s: np.ndarray
    mode: str

    def ln_D_at(self, T_K):
        """ln D(T) and its standard deviation from the full covariance."""
        x = 1.0 / (KB_EV * np.asarray(T_K, dtype=np.float64))
        y = -self.Ea_eV * x + self.ln_D0
        var = self.cov[0, 0] * x * x + 2 * self.cov[0, 1] * x + self.cov[1, 1]
        return y, np.sqrt(var)

    def D_at(self, T_K):
        """D(T) in cm²/s and the ±1σ range [D·e^−s, D·e^+s]."""
        y, s = self.ln_D_at(T_K)
        D = np.exp(y)
        return D, np.stack([D * np.exp(-s), D * np.exp(s)], axis=-1)

    def conductivity_at(self, T_K, ion_density_A3, charge=1.0, haven_ratio=1.0):
        """σ(T) in mS/cm and its full-covariance ±1σ range."""
        y, s = self.ln_D_at(T_K)
        sig = nernst_einstein_mS_cm(np.exp(y), T_K, ion_density_A3, charge, haven_ratio)
        return sig, np.stack([sig * np.exp(-s), sig * np.exp(s)], axis=-1)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, np.ndarray):
                d[k] = v.tolist()
        return d


def _wls_line(x, y, w):
    S, Sx, Sy = w.sum(), (w * x).sum(), (w * y).sum()
    Sxx, Sxy = (w * x * x).sum(), (w * x * y).sum()
    Dl = S * Sxx - Sx ** 2
    if not Dl > 0:
        raise ConfigurationError("Arrhenius fit needs at least two distinct temperatures")
    b = (S * Sxy - Sx * Sy) / Dl
    c = (Sxx * Sy - Sx * Sxy) / Dl
    cov = np.array([[S, -Sx], [-Sx, Sxx]]) / Dl
    return b, c, cov


def combine_per_temperature(T_K, D, D_err, rtol: float = 1e-6):
    """Merge rows with the same T (independent structures, e.g. 4 glasses).

    Per T: D̄ = arithmetic mean; σ = max(√Σσ_i² / n, std(D_i)/√n) so the
    structure-to-structure scatter is never hidden.  Returns (T, D̄, σ, n).
    """
    T = np.asarray(T_K, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    E = np.asarray(D_err, dtype=np.float64)
    order = np.argsort(T, kind="stable")
    T, D, E = T[order], D[order], E[order]
    brk = np.flatnonzero(np.diff(T) > rtol * T[1:]) + 1
    groups = np.split(np.arange(len(T)), brk)
    Tu, Dm, Em, N = [], [], [], []
    for g in groups:  # one iteration per temperature
        n = len(g)
        Tu.append(T[g].mean())
        Dm.append(D[g].mean())
        prop = np.sqrt(np.sum(E[g] ** 2)) / n
        spread = D[g].std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
        Em.append(max(prop, spread))
        N.append(n)
    return np.array(Tu), np.array(Dm), np.array(Em), np.array(N)


def fit_arrhenius(T_K, D_cm2_s, D_err_cm2_s=None, *, mode: str = "wls", combine: bool = True,
                  scale_by_chi2: bool = False) -> ArrheniusFit:
    """Fit D = D₀ exp(−E_a/k_B T).

    T_K, D_cm2_s, D_err_cm2_s: (n,).  Rows with the same T are merged first
    (``combine=True``, see :func:`combine_per_temperature`).
    mode: 'wls' (ln-space, weights 1/RSD², default), 'ols' (unweighted
    ln-space, covariance from residuals) or 'dspace' (nonlinear least squares
    on D itself with σ_D, scipy ``curve_fit``).  ``scale_by_chi2`` multiplies
    the covariance by the reduced χ² (when > 1 only the honest direction;
    here always, as asked).
    """
    T = np.asarray(T_K, dtype=np.float64)
    D = np.asarray(D_cm2_s, dtype=np.float64)
    if np.any(~np.isfinite(D)) or np.any(D <= 0):
        raise ConfigurationError("all diffusivities must be positive and finite for an Arrhenius fit")
    if np.any(T <= 0):
        raise ConfigurationError("temperatures must be positive (K)")
    E = None if D_err_cm2_s is None else np.asarray(D_err_cm2_s, dtype=np.float64)
    if E is None and mode != "ols":
        raise ConfigurationError(f"mode={mode!r} needs D errors; use mode='ols' without them")
    if E is not None and (np.any(E <= 0) or np.any(~np.isfinite(E))):
        raise ConfigurationError("D errors must be positive and finite")
    if combine:
        T, D, E, _ = combine_per_temperature(T, D, E if E is not None else np.full_like(D, np.nan))
        if D_err_cm2_s is None:
            E = None
    if len(np.unique(T)) < 2:
        raise ConfigurationError("Arrhenius fit needs at least two distinct temperatures")
    x = 1.0 / (KB_EV * T)
    y = np.log(D)
    n = len(T)
    if mode == "wls":
        w = (D / E) ** 2
        b, c, cov = _wls_line(x, y, w)
        chi2 = float(np.sum(w * (y - b * x - c) ** 2) / max(n - 2, 1))
    elif mode == "ols":
        b, c, cov0 = _wls_line(x, y, np.ones_like(x))
        res = y - b * x - c
        s2 = float(np.sum(res ** 2) / max(n - 2, 1))
        cov = cov0 * s2
        chi2 = float(np.sum(((y - b * x - c) * D / E) ** 2) / max(n - 2, 1)) if E is not None else float("nan")
    elif mode == "dspace":
        b0, c0, _ = _wls_line(x, y, (D / E) ** 2)
        f = lambda xx, bb, cc: np.exp(bb * xx + cc)  # noqa: E731
        p, cov = curve_fit(f, x, D, p0=[b0, c0], sigma=E, absolute_sigma=True)
        b, c = p
        chi2 = float(np.sum(((D - f(x, *p)) / E) ** 2) / max(n - 2, 1))
    else:
        raise ConfigurationError(f"unknown mode {mode!r} (wls, ols, dspace)")
    if scale_by_chi2 and np.isfinite(chi2):
        cov = cov * chi2
    return ArrheniusFit(float(-b), float(np.sqrt(cov[0, 0])), float(np.exp(c)), float(c), np.asarray(cov),
                        chi2, n, bool(scale_by_chi2), T, D,
                        E if E is not None else np.full_like(D, np.nan), mode)


def read_dt_table(path):
    """Read a CSV with a header and columns T (K), D, D_err (cm²/s).

    Returns (T, D, D_err) arrays; raises FileFormatError naming the line."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise FileFormatError("empty table", path=path, line=1)
    head = [h.strip() for h in rows[0]]
    need = ["T", "D", "D_err"]
    for k in need:
        if k not in head:
            raise FileFormatError(f"header {head} lacks column {k!r} (need T, D, D_err)", path=path, line=1, field=k)
    cols = {k: head.index(k) for k in need}
    out = {k: [] for k in need}
    for ln, r in enumerate(rows[1:], start=2):
        if not r or all(not c.strip() for c in r):
            continue
        for k, j in cols.items():
            try:
                out[k].append(float(r[j]))
            except (IndexError, ValueError):
                raise FileFormatError(f"cannot read a number from {r!r}", path=path, line=ln, field=k) from None
    if len(out["T"]) < 2:
        raise FileFormatError("need at least two data rows", path=path, line=len(rows))
    return tuple(np.asarray(out[k]) for k in need)
