"""Bond-valence sums and the Global Instability Index, per frame.

s_ij = exp((R0 − R_ij)/b), b = 0.37 Å, summed over cation–anion pairs within
a cutoff; V_i = Σ_j s_ij; GII = √(Σ_i (V_i − |v_i|)² / N) over all atoms
(Salinas-Sánchez et al., J. Solid State Chem. 100, 201 (1992)).

R0 (Å): Li–S 1.94, P–S 2.145, Li–O 1.466, B–O 1.371, P–O 1.617 from Brown's
selection ``bvparm2011sel.cif`` (as documented in docs/spec/analysis.md);
others from Brese & O'Keeffe, Acta Cryst. B47, 192 (1991).  Cutoffs: 3.5 Å
for bonds to O, 4.0 Å for bonds to S (s < 0.04 v.u. beyond ~R0 + 1.2 Å),
configurable and reported with the result.  Not pymatgen's
``calculate_bv_sum`` (b = 0.31, element-wise parameters).
"""
from __future__ import annotations

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.analysis.geometry import pair_distances_frames
from mtpjax.analysis.trajectory import as_trajectory
from ase.data import chemical_symbols

__all__ = ["R0_TABLE", "OXIDATION_STATES", "DEFAULT_CUTOFFS", "bond_valence_sums", "gii", "gii_trajectory"]

B_DEFAULT = 0.37

R0_TABLE = {
    ("Li", "S"): 1.94, ("P", "S"): 2.145, ("Li", "O"): 1.466, ("B", "O"): 1.371, ("P", "O"): 1.617,
    ("Na", "Cl"): 2.15, ("Mg", "O"): 1.693, ("Ti", "O"): 1.815, ("Sr", "O"): 2.118, ("Si", "O"): 1.624,
}
OXIDATION_STATES = {"Li": 1, "Na": 1, "Mg": 2, "Sr": 2, "B": 3, "P": 5, "Si": 4, "Ti": 4,
                    "O": -2, "S": -2, "Cl": -1}
DEFAULT_CUTOFFS = {"O": 3.5, "S": 4.0, "Cl": 4.0}


def _setup(symbols, oxidation, r0, cutoffs, skip_missing: bool = False):
    ox = dict(OXIDATION_STATES)
    ox.update(oxidation or {})
    R0 = dict(R0_TABLE)
    R0.update(r0 or {})
    cut = dict(DEFAULT_CUTOFFS)
    if isinstance(cutoffs, (int, float)):
        cut = {k: float(cutoffs) for k in set(cut) | {s for s in symbols if ox.get(s, 0) < 0}}
    else:
        cut.update(cutoffs or {})
    present = sorted(set(symbols))
    missing = [s for s in present if s not in ox]
    if missing:
        raise ConfigurationError(f"no oxidation state for {missing}; pass oxidation={{...}}")
    cations = [s for s in present if ox[s] > 0]
    anions = [s for s in present if ox[s] < 0]
    pairs = []
    for c in cations:
        for a in anions:
            if (c, a) not in R0:
                if skip_missing:  # e.g. B–S across an oxide/sulfide interface: not counted
                    continue
                raise ConfigurationError(f"no bond-valence R0 for {c}-{a}; pass r0={{('{c}', '{a}'): ...}}")
            if a not in cut:
                raise ConfigurationError(f"no bond cutoff for anion {a}; pass cutoffs={{'{a}': ...}}")
            pairs.append((c, a, R0[(c, a)], cut[a]))
    return ox, pairs


def bond_valence_sums(positions, cells, symbols, *, b: float = B_DEFAULT, oxidation=None, r0=None,
                      cutoffs=None, skip_missing: bool = False) -> np.ndarray:
    """Bond-valence sums V (f, N) v.u. for frames positions (f, N, 3) Å,
    cells (f, 3, 3); symbols (N,) chemical symbols. ``skip_missing``: leave
    out cation–anion pairs without an R0 (instead of raising)."""
    symbols = np.asarray(symbols)
    P = np.asarray(positions, dtype=np.float64)
    C = np.asarray(cells, dtype=np.float64)
    if P.ndim == 2:
        P, C = P[None], C.reshape(1, 3, 3)
    ox, pairs = _setup(symbols.tolist(), oxidation, r0, cutoffs, skip_missing)
    V = np.zeros(P.shape[:2])
    for c, a, R0, rc in pairs:
        ic, ia = np.flatnonzero(symbols == c), np.flatnonzero(symbols == a)
        for d, m in pair_distances_frames(P[:, ic], P[:, ia], C, rc):
            s = np.where(m, np.exp((R0 - d) / b), 0.0)
            V[:, ic] += s.sum(axis=2)
            V[:, ia] += s.sum(axis=1)
    return V


def gii(positions, cells, symbols, **kw) -> np.ndarray:
    """Global Instability Index (f,) v.u. per frame (see module doc)."""
    symbols = np.asarray(symbols)
    ox, _ = _setup(symbols.tolist(), kw.get("oxidation"), kw.get("r0"), kw.get("cutoffs"),
                   kw.get("skip_missing", False))
    V = bond_valence_sums(positions, cells, symbols, **kw)
    v = np.abs(np.array([ox[s] for s in symbols.tolist()], dtype=np.float64))
    return np.sqrt(np.mean((V - v) ** 2, axis=-1))


def gii_trajectory(traj, *, start=0, stop=None, stride=1, chunk=16, timestep_fs=1.0,
                   cutoff_scan=(-0.5, 0.0, 0.5), **kw) -> dict:
    """GII of every selected frame of a trajectory, and its sensitivity to
    the cutoffs (all anion cutoffs shifted by each value of ``cutoff_scan`` Å,
    mean GII reported).  Returns a JSON-ready dict."""
    src = as_trajectory(traj, timestep_fs)
    sym = np.array([chemical_symbols[z] for z in src.species])
    ox, pairs = _setup(sym.tolist(), kw.get("oxidation"), kw.get("r0"), kw.get("cutoffs"))
    base_cut = {a: rc for _, a, _, rc in pairs}
    stop = src.n_frames if stop is None else min(stop, src.n_frames)
    frames, vals, scan = [], [], {float(x): [] for x in sorted(set(cutoff_scan) | {0.0})}
    for s, P, C in src.iter_chunks(chunk * max(stride, 1)):
        fr = np.arange(s, s + len(P))
        keep = (fr >= start) & (fr < stop) & ((fr - start) % stride == 0)
        if not keep.any():
            continue
        P, C = P[keep], np.asarray(C)[keep]
        frames.extend(fr[keep].tolist())
        for x in scan:
            kk = dict(kw)
            kk["cutoffs"] = {a: rc + x for a, rc in base_cut.items()}
            g = gii(P, C, sym, **kk)
            scan[x].extend(g.tolist())
            if x == 0.0:
                vals.extend(g.tolist())
    if not frames:
        raise ConfigurationError("no frames selected for the GII")
    g = np.asarray(vals)
    return {"frames": frames, "gii": g.tolist(), "mean": float(g.mean()), "std": float(g.std()),
            "b_A": kw.get("b", B_DEFAULT), "cutoffs_A": base_cut,
            "cutoff_sensitivity": {f"{x:+.2f}": float(np.mean(v)) for x, v in scan.items()}}
