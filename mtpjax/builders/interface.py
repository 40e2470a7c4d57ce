"""Stacked interface cells (Wang, Aykol, Mueller 2023 protocol).

Two cells with the same in-plane lattice (a, b) are stacked along c; the top
one is moved up by a gap s (searched from 1.2 to 1.5 Å, smallest first) so
that the closest Li–Li distance *across* the interface (an atom of the
bottom cell to one of the top cell, periodic images included, i.e. both
interfaces of the periodic stack) is ≥ 2.5 Å.  Our reading of "shifting the
top one vertically by 1.2–1.5 Å": the same gap s is left at the upper,
periodic interface too, so the stacked c vector is c_A + c_B + 2 s n̂
(n̂ = unit normal to a, b).  If no gap works, random in-plane translations of
the top cell (seeded) are tried before a ConfigurationError.

Molecular units (``arrays['unit_id']``, e.g. PS4) are never cut: each cell
is first translated along c (a different, equivalent cut plane of the
periodic bulk) so that as few units as possible straddle the cut, and units
are wrapped rigidly by their centroid.  Atoms of a straddling unit may then
poke slightly out of their slab, so every cross-interface pair must also be
≥ ``min_cross_any`` (1.6 Å default).
"""
from __future__ import annotations

import numpy as np

from mtpjax.analysis.geometry import neighbor_pairs
from mtpjax.errors import ConfigurationError
from ase import Atoms

__all__ = ["stack_interface", "cross_interface_min_distance"]


def cross_interface_min_distance(atoms, pair=("Li", "Li"), r_search: float = 6.0) -> float:
    """Closest distance Å between a ``pair[0]`` atom of region 0 and a
    ``pair[1]`` atom of region 1 (``arrays['region']``), with images;
    ``pair=None``: any species.  inf if none within ``r_search``."""
    reg = atoms.arrays["region"]
    sym = np.array(atoms.get_chemical_symbols())
    if pair is None:  # any species
        ia, ib = np.flatnonzero(reg == 0), np.flatnonzero(reg == 1)
    else:
        ia = np.flatnonzero((reg == 0) & (sym == pair[0]))
        ib = np.flatnonzero((reg == 1) & (sym == pair[1]))
    if ia.size == 0 or ib.size == 0:
        return float("inf")
    pos = atoms.get_positions()
    _, _, d = neighbor_pairs(pos[ia], pos[ib], atoms.cell[:], r_search)
    return float(d.min()) if d.size else float("inf")


def _unit_frac(atoms):
    """(rel (n, 3) fractional offsets from the unit centroid, centroid
    fractional c (n,), unit half-extent along c (n,)); without unit ids
    every atom is its own unit."""
    f = atoms.get_scaled_positions(wrap=True)
    if "unit_id" not in atoms.arrays:
        return f, f[:, 2].copy(), np.zeros(len(atoms))
    uid = atoms.arrays["unit_id"]
    _, first, inv = np.unique(uid, return_index=True, return_inverse=True)
    d = f - f[first][inv]
    d -= np.rint(d)
    whole = f[first][inv] + d
    cnt = np.bincount(inv)
    cen = np.stack([np.bincount(inv, whole[:, k]) / cnt for k in range(3)], axis=1)
    half = np.zeros(len(cnt))
    np.maximum.at(half, inv, np.abs(whole[:, 2] - cen[inv, 2]))
    return whole - cen[inv], cen[inv, 2], half[inv]


def _wrapped_whole(atoms, n_roll: int = 64):
    """Cartesian positions in [0, c) with units whole, after the c-roll that
    cuts the fewest units."""
    rel, cz, half = _unit_frac(atoms)
    if "unit_id" in atoms.arrays:
        offs = np.arange(n_roll) / n_roll
        z = (cz[None, :] + offs[:, None]) % 1.0
        cut = ((z - half[None]) < 0) | ((z + half[None]) >= 1)
        best = offs[int(np.argmin(cut.sum(axis=1)))]
        f = rel.copy()
        f[:, 2] += (cz + best) % 1.0
        cen_ab = atoms.get_scaled_positions(wrap=True)[:, :2] - rel[:, :2]
        f[:, :2] += cen_ab
    else:
        f = rel
    return f @ atoms.cell[:]


def _stack(bottom, top, s, lateral):
    cb, ct = bottom.cell[:], top.cell[:]
    nrm = np.cross(cb[0], cb[1])
    nrm /= np.linalg.norm(nrm)
    pb = _wrapped_whole(bottom)
    pt = _wrapped_whole(top) + cb[2] + s * nrm + np.asarray(lateral) @ cb[:2]
    cell = np.array([cb[0], cb[1], cb[2] + ct[2] + 2 * s * nrm])
    at = Atoms(bottom.get_chemical_symbols() + top.get_chemical_symbols(), positions=np.vstack([pb, pt]),
               cell=cell, pbc=True)
    at.arrays["region"] = np.concatenate([np.zeros(len(bottom), int), np.ones(len(top), int)])
    for key in ("unit_id",):
        if key in bottom.arrays and key in top.arrays:
            off = int(bottom.arrays[key].max()) + 1
            at.arrays[key] = np.concatenate([bottom.arrays[key], top.arrays[key] + off])
    return at


def stack_interface(bottom, top, *, gaps=None, pair=("Li", "Li"), min_cross: float = 2.5,
                    min_cross_any: float = 1.6, lateral_tries: int = 50, seed: int = 0, tol: float = 1e-3):
    """Stack ``top`` on ``bottom`` (both ``ase.Atoms``) along c.

    gaps: candidate vertical shifts Å (default 1.20, 1.25, ..., 1.50), tried
    in order; the first satisfying min cross-interface ``pair`` distance ≥
    ``min_cross`` Å is kept.  Returns Atoms with ``arrays['region']`` (0
    bottom, 1 top) and ``info`` {'gap_A', 'lateral_frac', 'min_cross_A',
    'interface_c_frac'} (fractional c of the two interfaces).
    """
    ca, cb = bottom.cell[:], top.cell[:]
    if not (np.allclose(ca[0], cb[0], atol=tol) and np.allclose(ca[1], cb[1], atol=tol)):
        raise ConfigurationError(f"in-plane lattices differ: bottom a,b = {ca[:2].tolist()}, top {cb[:2].tolist()}")
    gaps = np.round(np.arange(1.2, 1.5001, 0.05), 6) if gaps is None else np.asarray(gaps, dtype=np.float64)
    rng = np.random.default_rng(seed)
    laterals = [np.zeros(2)] + [rng.random(2) for _ in range(lateral_tries)]
    best = (-1.0, None)
    for lat in laterals:  # a few trial translations
        for s in gaps:
            at = _stack(bottom, top, s, lat)
            dmin = cross_interface_min_distance(at, pair, max(min_cross, 6.0))
            dany = cross_interface_min_distance(at, None, min_cross_any + 0.5)
            if dmin >= min_cross and dany >= min_cross_any:
                c = np.linalg.norm(at.cell[2])
                at.info.update({"gap_A": float(s), "lateral_frac": lat.tolist(), "min_cross_A": dmin,
                                "interface_c_frac": [float((np.linalg.norm(ca[2]) + s / 2) / c),
                                                     float(1.0 - s / 2 / c)]})
                return at
            if dmin > best[0]:
                best = (dmin, s)
    raise ConfigurationError(
        f"no gap in {gaps.tolist()} Å (with {lateral_tries} lateral shifts) gives a cross-interface "
        f"{pair[0]}-{pair[1]} distance ≥ {min_cross} Å (best {best[0]:.2f} Å at gap {best[1]})")
