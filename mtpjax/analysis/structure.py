"""Structural descriptors: density, formula units, coordination and
molecular-unit fractions (BO3/BO4, PS4/P2S7/P2S6...).

All functions take ``ase.Atoms`` (periodic) unless stated otherwise.
"""
from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.analysis.geometry import neighbor_pairs, pair_distances_frames
from ase.data import atomic_masses
from ase.data import atomic_numbers
from mtpjax.analysis.regions import check_regions
from mtpjax.analysis.regions import region_mask
from mtpjax.analysis.trajectory import as_trajectory
from mtpjax.analysis.trajectory import species_indices
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
import re

__all__ = [
    "AMU_A3_TO_G_CM3",
    "density_g_cm3",
    "parse_formula",
    "formula_units",
    "decompose_formula_units",
    "coordination_numbers",
    "coordination_fractions",
    "molecular_units",
    "coordination_fractions_trajectory",
    "molecular_units_trajectory",
]

AMU_A3_TO_G_CM3 = 1.66053906660  # 1 amu/Å³ = 1.66054 g/cm³


def density_g_cm3(atoms) -> float:
    """Mass density in g/cm³ (standard atomic masses)."""
    m = atomic_masses[atoms.get_atomic_numbers()].sum()
    return float(m / abs(atoms.cell.volume) * AMU_A3_TO_G_CM3)


def parse_formula(formula: str) -> dict:
    """'Li3B11O18' -> {'Li': 3, 'B': 11, 'O': 18} (no brackets)."""
    parts = re.findall(r"([A-Z][a-z]?)(\d*)", formula)
    if not parts or "".join(a + b for a, b in parts) != formula:
        raise ConfigurationError(f"cannot parse formula {formula!r} (use e.g. 'Li3PS4')")
    out: dict = {}
    for el, n in parts:
        if el not in atomic_numbers:
            raise ConfigurationError(f"unknown element {el!r} in {formula!r}")
        out[el] = out.get(el, 0) + (int(n) if n else 1)
    return out


def _counts(atoms) -> Counter:
    return Counter(atoms.get_chemical_symbols())


def formula_units(atoms, formula: str) -> int:
    """Number of formula units of ``formula`` in ``atoms``; raises if the
    composition is not an exact multiple."""
    comp = parse_formula(formula)
    cnt = _counts(atoms)
    if set(cnt) != set(comp):
        raise ConfigurationError(f"elements {sorted(cnt)} do not match formula {formula} ({sorted(comp)})")
    ratios = {Fraction(cnt[e], comp[e]) for e in comp}
    if len(ratios) != 1 or next(iter(ratios)).denominator != 1:
        raise ConfigurationError(f"composition {dict(cnt)} is not an integer multiple of {formula}")
    return int(next(iter(ratios)))


def decompose_formula_units(atoms, formulas) -> list[int]:
    """Integer counts (N_A, N_B, ...) such that the atoms are exactly
    Σ N_k · formula_k (e.g. an interface cell into Li3PS4 and Li3B11O18)."""
    comps = [parse_formula(f) for f in formulas]
    cnt = _counts(atoms)
    els = sorted(set(cnt) | {e for c in comps for e in c})
    A = np.array([[c.get(e, 0) for c in comps] for e in els], dtype=np.float64)
    y = np.array([cnt.get(e, 0) for e in els], dtype=np.float64)
    x, *_ = np.linalg.lstsq(A, y, rcond=None)
    xi = np.rint(x).astype(int)
    if np.any(xi < 0) or not np.array_equal(A @ xi, y):
        raise ConfigurationError(f"composition {dict(cnt)} is not an integer combination of {list(formulas)}")
    return xi.tolist()


def coordination_numbers(atoms, center: str, ligand: str, cutoff: float) -> np.ndarray:
    """Number of ``ligand`` atoms within ``cutoff`` Å of each ``center`` atom (n_center,)."""
    sym = np.array(atoms.get_chemical_symbols())
    ic, il = np.flatnonzero(sym == center), np.flatnonzero(sym == ligand)
    if ic.size == 0 or il.size == 0:
        raise ConfigurationError(f"species {center!r} or {ligand!r} not present")
    pos = atoms.get_positions()
    i, _, _ = neighbor_pairs(pos[ic], pos[il], atoms.cell[:], cutoff, same=center == ligand)
    return np.bincount(i, minlength=ic.size)


def coordination_fractions(atoms, center: str = "B", ligand: str = "O", cutoff: float = 2.0) -> dict:
    """Fractions of center atoms by coordination, e.g. {3: 0.74, 4: 0.26}
    for BO3/BO4 (B–O cutoff 2.0 Å default, between the B–O bond ≈ 1.4–1.5 Å
    and the next O shell ≈ 2.4 Å)."""
    cn = coordination_numbers(atoms, center, ligand, cutoff)
    vals, counts = np.unique(cn, return_counts=True)
    return {int(v): float(c) / cn.size for v, c in zip(vals, counts)}


def _unit_components(pos_c, pos_l, cell, center: str, ligand: str, cutoff: float,
                     center_center_cutoff: float | None):
    """Connected units of one frame: (comp (n_center,) unit id of each
    center, names (n_units,) e.g. 'PS4', n_centers (n_units,))."""
    nc, nl = len(pos_c), len(pos_l)
    rows, cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    if nl:
        i, j, _ = neighbor_pairs(pos_c, pos_l, cell, cutoff)
        rows.append(i)
        cols.append(nc + j)
    if center_center_cutoff and nc > 1:
        a, b, _ = neighbor_pairs(pos_c, pos_c, cell, center_center_cutoff, same=True)
        rows.append(a)
        cols.append(b)
    r, c = np.concatenate(rows), np.concatenate(cols)
    G = coo_matrix((np.ones(r.size), (r, c)), shape=(nc + nl, nc + nl))
    _, lab = connected_components(G, directed=False)
    units, comp = np.unique(lab[:nc], return_inverse=True)  # units containing a center
    n_c = np.bincount(comp, minlength=units.size)
    n_l = np.array([int(np.sum(lab[nc:] == u)) for u in units], dtype=np.int64)
    names = [f"{center}{k if k > 1 else ''}{ligand}{m if m != 1 else ''}" if m else f"{center}{k if k > 1 else ''}"
             for k, m in zip(n_c.tolist(), n_l.tolist())]
    return comp, names, n_c


def molecular_units(atoms, center: str = "P", ligand: str = "S", cutoff: float = 2.6,
                    center_center_cutoff: float | None = 2.4) -> Counter:
    """Count anion units such as PS4, P2S7 (corner-sharing) and P2S6 (P–P bond).

    A graph joins each center to its ligands within ``cutoff`` Å and centers
    to each other within ``center_center_cutoff`` (None: no direct bonds);
    each connected component containing a center is one unit named by its
    composition, e.g. 'PS4', 'P2S7'.  Returns a Counter {name: count}.
    """
    sym = np.array(atoms.get_chemical_symbols())
    ic, il = np.flatnonzero(sym == center), np.flatnonzero(sym == ligand)
    if ic.size == 0:
        raise ConfigurationError(f"species {center!r} not present")
    pos, cell = atoms.get_positions(), atoms.cell[:]
    _, names, _ = _unit_components(pos[ic], pos[il], cell, center, ligand, cutoff, center_center_cutoff)
    return Counter(names)


# ---------------------------------------------------------------- trajectories


def _label_key(name: str):
    return (len(name), name)


def _stream_units(traj, center, ligand, classify, regions, start, stop, stride, chunk, timestep_fs, meta):
    """Shared streaming loop: ``classify(pc (f, nc, 3), pl (f, nl, 3), cells)``
    returns per frame (labels (nc,) object array, unit weight (nc,) = 1/n_center
    of the unit).  Centers are assigned to regions by their own wrapped
    fractional c coordinate in that frame."""
    src = as_trajectory(traj, timestep_fs)
    if stride < 1 or start < 0:
        raise ConfigurationError(f"need start >= 0 and stride >= 1 (got start={start}, stride={stride})")
    regs = [None] + [tuple(float(x) for x in r) for r in (regions or [])]
    check_regions(regs[1:])
    for r in regs[1:]:
        if not (0.0 <= r[0] <= 1.0 and 0.0 <= r[1] <= 1.0) or r[0] == r[1]:
            raise ConfigurationError(f"region {r}: give fractional c bounds lo != hi in [0, 1]")
    ic = species_indices(src.species, center)
    same = center == ligand
    il = ic if same else species_indices(src.species, ligand)
    sel = ic if same else np.concatenate([ic, il])
    nc = ic.size
    stop = src.n_frames if stop is None else min(int(stop), src.n_frames)
    times = np.asarray(src.times_fs, dtype=np.float64)
    frames = []
    acc = [{"n": [], "centers": [], "units": []} for _ in regs]
    for s, P, C in src.iter_chunks(max(chunk, 1) * stride, sel):
        fr = np.arange(s, s + len(P))
        keep = (fr >= start) & (fr < stop) & ((fr - start) % stride == 0)
        if not keep.any():
            if s >= stop:
                break
            continue
        P, C = P[keep], np.asarray(C, dtype=np.float64)[keep]
        pc = P[:, :nc]
        pl = pc if same else P[:, nc:]
        sc = np.einsum("fnj,fjk->fnk", pc, np.linalg.inv(C))[..., 2]
        sc = sc - np.floor(sc)
        for f, (lab, w) in enumerate(classify(pc, pl, C)):
            frames.append(int(fr[keep][f]))
            for k, r in enumerate(regs):
                m = np.ones(nc, dtype=bool) if r is None else region_mask(sc[f], *r)[0]
                names, inv = np.unique(lab[m], return_inverse=True)
                acc[k]["n"].append(int(m.sum()))
                acc[k]["centers"].append(dict(zip(names.tolist(), np.bincount(inv, minlength=names.size).tolist())))
                acc[k]["units"].append(dict(zip(names.tolist(), np.bincount(inv, w[m], minlength=names.size).tolist())))
    if not frames:
        raise ConfigurationError(f"no frames selected (n_frames={src.n_frames}, start={start}, stop={stop}, "
                                 f"stride={stride})")
    out = dict(meta)
    out.update({"frames": frames, "times_fs": times[frames].tolist(), "n_frames": len(frames), "regions": []})
    for r, a in zip(regs, acc):
        labels = sorted({x for d in a["centers"] for x in d}, key=_label_key)
        n = np.asarray(a["n"], dtype=np.float64)
        cnt = {x: np.array([d.get(x, 0) for d in a["centers"]], dtype=np.float64) for x in labels}
        uc = {x: np.array([d.get(x, 0.0) for d in a["units"]], dtype=np.float64) for x in labels}
        utot = sum(uc.values()) if labels else np.zeros_like(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = {x: np.where(n > 0, v / n, np.nan) for x, v in cnt.items()}
            ufrac = {x: np.where(utot > 0, v / utot, np.nan) for x, v in uc.items()}

        def stats(d):
            mean, std = {}, {}
            for x, v in d.items():
                ok = np.isfinite(v)
                mean[x] = float(v[ok].mean()) if ok.any() else float("nan")
                std[x] = float(v[ok].std()) if ok.any() else float("nan")
            return mean, std

        fm, fs = stats(frac)
        um, us = stats(ufrac)
        out["regions"].append({
            "region": None if r is None else [r[0], r[1]],
            "label": "all" if r is None else f"[{r[0]:g}, {r[1]:g})",
            "labels": labels,
            "n_centers": n.astype(int).tolist(), "n_centers_mean": float(n.mean()),
            "center_counts": {x: v.astype(int).tolist() for x, v in cnt.items()},
            "fractions": {x: v.tolist() for x, v in frac.items()},
            "mean": fm, "std": fs,
            "pooled": {x: float(v.sum() / n.sum()) if n.sum() else float("nan") for x, v in cnt.items()},
            "unit_counts": {x: v.tolist() for x, v in uc.items()},
            "unit_fractions": {x: v.tolist() for x, v in ufrac.items()},
            "unit_fractions_mean": um, "unit_fractions_std": us,
        })
    return out


def coordination_fractions_trajectory(traj, center: str = "B", ligand: str = "O", cutoff: float = 2.0, *,
                                      regions=None, start: int = 0, stop: int | None = None, stride: int = 1,
                                      chunk: int = 16, timestep_fs: float | None = 1.0) -> dict:
    """BO3/BO4-type fractions of every selected frame of a trajectory.

    Streams ``traj`` (an H5MD path, any ASE-readable file, a list of Atoms or
    a source from :mod:`.trajectory`) in chunks of ``chunk`` selected frames;
    frames ``start, start+stride, ... < stop``.  Each ``center`` atom is
    classified by its number of ``ligand`` atoms within ``cutoff`` Å (all
    periodic images), labelled e.g. 'BO3', 'BO4'.

    regions: fractional c ranges [(lo, hi), ...] along the third lattice
    vector (the interface normal of a stacked cell), lo > hi wraps through 0;
    a center belongs to a region in a frame if its wrapped fractional c is in
    [lo, hi).  The whole cell ('all') is always reported first.

    Returns a JSON-ready dict: ``frames``, ``times_fs`` and per region
    ``fractions`` {label: per-frame fraction of the region's centers (NaN
    with none)}, ``mean``/``std`` over frames, ``pooled`` (Σ counts / Σ
    centers), ``center_counts``, ``n_centers`` per frame, and ``mean_cn``.
    For the N4 ratio BO4/(BO3 + BO4) use the counts (with a 2.0 Å B–O cutoff
    all B are 3- or 4-coordinated in borate glasses).
    """
    cutoff = float(cutoff)
    if cutoff <= 0:
        raise ConfigurationError(f"cutoff must be > 0 Å, got {cutoff}")
    same = center == ligand
    cns = []

    def classify(pc, pl, C):
        cn = np.zeros(pc.shape[:2], dtype=np.int64)
        for _, m in pair_distances_frames(pc, pl, C, cutoff, same=same):
            cn += m.sum(axis=2)
        cns.append(cn)
        w = np.ones(pc.shape[1])
        for row in cn:
            yield np.array([f"{center}{ligand}{k}" for k in row.tolist()], dtype=object), w

    out = _stream_units(traj, center, ligand, classify, regions, start, stop, stride, chunk, timestep_fs,
                        {"kind": "coordination", "center": center, "ligand": ligand, "cutoff_A": cutoff})
    cn = np.concatenate(cns) if cns else np.zeros((0, 0))
    out["regions"][0]["mean_cn"] = cn.mean(axis=1).tolist()
    out["regions"][0]["mean_cn_mean"] = float(cn.mean())
    return out


def molecular_units_trajectory(traj, center: str = "P", ligand: str = "S", cutoff: float = 2.6, *,
                               center_center_cutoff: float | None = 2.4, regions=None, start: int = 0,
                               stop: int | None = None, stride: int = 1, chunk: int = 16,
                               timestep_fs: float | None = 1.0) -> dict:
    """PS4 / P2S7 / P2S6 ... unit statistics of every selected frame (see
    :func:`molecular_units` for the graph and :func:`coordination_fractions_trajectory`
    for frames, regions and the returned dict).

    ``fractions``: fraction of the ``center`` atoms that belong to each unit
    type (e.g. the share of P in P2S7, as NMR reports it); ``unit_counts``:
    number of units per frame, a unit split by a region boundary counted
    fractionally (1/n_center per center inside); ``unit_fractions``: share of
    the units."""
    cutoff = float(cutoff)
    if cutoff <= 0:
        raise ConfigurationError(f"cutoff must be > 0 Å, got {cutoff}")

    def classify(pc, pl, C):
        for f in range(len(pc)):
            comp, names, n_c = _unit_components(pc[f], pl[f], C[f], center, ligand, cutoff, center_center_cutoff)
            yield np.asarray(names, dtype=object)[comp], 1.0 / n_c[comp]

    return _stream_units(traj, center, ligand, classify, regions, start, stop, stride, chunk, timestep_fs,
                         {"kind": "molecular_units", "center": center, "ligand": ligand, "cutoff_A": cutoff,
                          "center_center_cutoff_A": center_center_cutoff})
