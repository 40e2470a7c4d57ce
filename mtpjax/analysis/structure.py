"""Structural descriptors: density, formula units, coordination and
molecular-unit fractions (BO3/BO4, PS4/P2S7/P2S6...).

All functions take ``ase.Atoms`` (periodic) unless stated otherwise.
"""
from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np

from ..errors import ConfigurationError
from .geometry import neighbor_pairs

__all__ = [
    "AMU_A3_TO_G_CM3",
    "density_g_cm3",
    "parse_formula",
    "formula_units",
    "decompose_formula_units",
    "coordination_numbers",
    "coordination_fractions",
    "molecular_units",
]

AMU_A3_TO_G_CM3 = 1.66053906660  # 1 amu/Å³ = 1.66054 g/cm³


def density_g_cm3(atoms) -> float:
    """Mass density in g/cm³ (standard atomic masses)."""
    from ase.data import atomic_masses

    m = atomic_masses[atoms.get_atomic_numbers()].sum()
    return float(m / abs(atoms.cell.volume) * AMU_A3_TO_G_CM3)


def parse_formula(formula: str) -> dict:
    """'Li3B11O18' -> {'Li': 3, 'B': 11, 'O': 18} (no brackets)."""
    import re

    from ase.data import atomic_numbers

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


def molecular_units(atoms, center: str = "P", ligand: str = "S", cutoff: float = 2.6,
                    center_center_cutoff: float | None = 2.4) -> Counter:
    """Count anion units such as PS4, P2S7 (corner-sharing) and P2S6 (P–P bond).

    A graph joins each center to its ligands within ``cutoff`` Å and centers
    to each other within ``center_center_cutoff`` (None: no direct bonds);
    each connected component containing a center is one unit named by its
    composition, e.g. 'PS4', 'P2S7'.  Returns a Counter {name: count}.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sym = np.array(atoms.get_chemical_symbols())
    ic, il = np.flatnonzero(sym == center), np.flatnonzero(sym == ligand)
    if ic.size == 0:
        raise ConfigurationError(f"species {center!r} not present")
    pos, cell = atoms.get_positions(), atoms.cell[:]
    nc, nl = ic.size, il.size
    i, j, _ = neighbor_pairs(pos[ic], pos[il], cell, cutoff)
    rows, cols = [i], [nc + j]
    if center_center_cutoff:
        a, b, _ = neighbor_pairs(pos[ic], pos[ic], cell, center_center_cutoff, same=True)
        rows.append(a)
        cols.append(b)
    r, c = np.concatenate(rows), np.concatenate(cols)
    G = coo_matrix((np.ones(r.size), (r, c)), shape=(nc + nl, nc + nl))
    _, lab = connected_components(G, directed=False)
    out: Counter = Counter()
    for comp in np.unique(lab[:nc]):  # one iteration per unit
        n_c = int(np.sum(lab[:nc] == comp))
        n_l = int(np.sum(lab[nc:] == comp))
        name = f"{center}{n_c if n_c > 1 else ''}{ligand}{n_l if n_l != 1 else ''}" if n_l else f"{center}{n_c if n_c > 1 else ''}"
        out[name] += 1
    return out
