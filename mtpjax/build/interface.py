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
"""
from __future__ import annotations

import numpy as np

from ..analysis.geometry import neighbor_pairs
from ..errors import ConfigurationError

__all__ = ["stack_interface", "cross_interface_min_distance"]


def cross_interface_min_distance(atoms, pair=("Li", "Li"), r_search: float = 6.0) -> float:
    """Closest distance Å between a ``pair[0]`` atom of region 0 and a
    ``pair[1]`` atom of region 1 (``arrays['region']``), with images."""
    reg = atoms.arrays["region"]
    sym = np.array(atoms.get_chemical_symbols())
    ia = np.flatnonzero((reg == 0) & (sym == pair[0]))
    ib = np.flatnonzero((reg == 1) & (sym == pair[1]))
    if ia.size == 0 or ib.size == 0:
        return float("inf")
    pos = atoms.get_positions()
    _, _, d = neighbor_pairs(pos[ia], pos[ib], atoms.cell[:], r_search)
    return float(d.min()) if d.size else float("inf")


def _stack(bottom, top, s, lateral):
    from ase import Atoms

    cb, ct = bottom.cell[:], top.cell[:]
    nrm = np.cross(cb[0], cb[1])
    nrm /= np.linalg.norm(nrm)
    pb = bottom.get_scaled_positions(wrap=True) @ cb
    pt = top.get_scaled_positions(wrap=True) @ ct + cb[2] + s * nrm + np.asarray(lateral) @ cb[:2]
    cell = np.array([cb[0], cb[1], cb[2] + ct[2] + 2 * s * nrm])
    at = Atoms(bottom.get_chemical_symbols() + top.get_chemical_symbols(), positions=np.vstack([pb, pt]),
               cell=cell, pbc=True)
    at.wrap()
    at.arrays["region"] = np.concatenate([np.zeros(len(bottom), int), np.ones(len(top), int)])
    for key in ("unit_id",):
        if key in bottom.arrays and key in top.arrays:
            off = int(bottom.arrays[key].max()) + 1
            at.arrays[key] = np.concatenate([bottom.arrays[key], top.arrays[key] + off])
    return at


def stack_interface(bottom, top, *, gaps=None, pair=("Li", "Li"), min_cross: float = 2.5,
                    lateral_tries: int = 50, seed: int = 0, tol: float = 1e-3):
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
            if dmin >= min_cross:
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
