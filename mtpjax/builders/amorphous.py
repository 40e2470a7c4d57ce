"""Random amorphous starting cells at a target density.

Random sequential insertion: molecular units (rigid, uniformly random
orientation) first, then free atoms; each insertion draws a batch of
candidate positions/orientations at once and keeps the first one whose atoms
respect every per-pair minimum distance to the atoms already placed
(periodic images included; distances inside one unit are exempt).  After
``max_batches`` failed batches the whole cell is restarted; after
``n_restarts`` it raises :class:`mtpjax.errors.ConfigurationError`.  A cell
whose hard-sphere packing fraction (radii = half the like-pair minimum
distance) exceeds random close packing (0.64) is rejected at once.

Everything is drawn from ``np.random.default_rng(seed)``: the same seed gives
the same cell.  Units: Å, g/cm³.
"""
from __future__ import annotations

import numpy as np

from mtpjax.analysis.geometry import image_shifts
from mtpjax.errors import ConfigurationError
from mtpjax.builders.molecules import PS4, MolecularUnit, random_rotations, single_atom
from ase import Atoms
from ase.data import atomic_masses
from ase.data import atomic_numbers
from mtpjax.analysis.geometry import face_widths

__all__ = ["cell_for_density", "random_packing", "build_amorphous", "PRESETS", "build_preset",
           "min_distance_matrix", "production_supercell"]

AMU_A3_TO_G_CM3 = 1.66053906660


def _items(items):
    out = []
    for u, n in items:
        unit = single_atom(u) if isinstance(u, str) else u
        if not isinstance(unit, MolecularUnit):
            raise ConfigurationError(f"item {u!r} is neither a symbol nor a MolecularUnit")
        if int(n) < 0:
            raise ConfigurationError(f"negative count {n} for {unit.name}")
        out.append((unit, int(n)))
    return out


def _mass(items) -> float:
    return float(sum(n * sum(atomic_masses[atomic_numbers[s]] for s in u.symbols) for u, n in items))


def cell_for_density(items, density_g_cm3: float, a: float = 12.0, b: float = 12.0) -> np.ndarray:
    """Orthorhombic cell (3, 3) with lengths a, b and c chosen so that the
    density of ``items`` [(unit or symbol, count)] is exactly ``density``."""
    if not density_g_cm3 > 0:
        raise ConfigurationError(f"density must be positive, got {density_g_cm3}")
    vol = _mass(_items(items)) * AMU_A3_TO_G_CM3 / density_g_cm3
    return np.diag([a, b, vol / (a * b)])


def min_distance_matrix(symbols, min_distances, default: float) -> tuple[list, np.ndarray]:
    """Species list and symmetric matrix (S, S) of minimum distances Å."""
    sp = sorted(set(symbols))
    M = np.full((len(sp), len(sp)), float(default))
    for (x, y), d in (min_distances or {}).items():
        if x in sp and y in sp:
            i, j = sp.index(x), sp.index(y)
            M[i, j] = M[j, i] = float(d)
    return sp, M


def _try_pack(rng, cell, units, sp, M, batch, max_batches, fixed=None):
    inv = np.linalg.inv(cell)

    ortho = np.allclose(cell, np.diag(np.diag(cell)))
    if ortho and M.max() <= 0.5 * face_widths(cell).min():
        shifts = np.zeros((1, 3))  # rounding gives the exact minimum image
    else:
        shifts = image_shifts(cell[None], float(M.max())) @ cell  # (S, 3) Cartesian
    pos = np.zeros((0, 3))
    code = np.zeros(0, dtype=int)
    uid = np.zeros(0, dtype=int)
    syms: list = []
    if fixed is not None:  # atoms already in place (each its own unit), e.g. a B–O network
        pos = np.asarray(fixed[0], dtype=np.float64).reshape(-1, 3)
        syms = list(fixed[1])
        code = np.array([sp.index(s) for s in syms], dtype=int)
        uid = np.arange(len(syms))
    for k, unit in enumerate(units):  # sequential insertion: one unit at a time
        ucode = np.array([sp.index(s) for s in unit.symbols])
        thr = M[ucode][:, code]  # (k, m)
        placed = False
        for _ in range(max_batches):
            R = random_rotations(rng, batch) if unit.size > 1 else np.broadcast_to(np.eye(3), (batch, 3, 3))
            ctr = rng.random((batch, 3)) @ cell
            cand = ctr[:, None, :] + np.einsum("kj,bij->bki", unit.positions, R)  # (B, k, 3)
            if pos.shape[0] == 0:
                ok = np.ones(batch, dtype=bool)
            else:
                d = cand[:, :, None, :] - pos[None, None, :, :]
                fr = d @ inv
                d = (fr - np.rint(fr)) @ cell
                dmin = np.full(d.shape[:3], np.inf)
                for s in shifts:  # a few periodic images
                    dmin = np.minimum(dmin, np.linalg.norm(d + s, axis=-1))
                ok = np.all(dmin >= thr[None], axis=(1, 2))
            hit = np.flatnonzero(ok)
            if hit.size:
                c = cand[hit[0]]
                c = (c @ inv % 1.0) @ cell
                pos = np.vstack([pos, c])
                code = np.concatenate([code, ucode])
                uid = np.concatenate([uid, np.full(unit.size, k + (0 if fixed is None else len(fixed[1])))])
                syms.extend(unit.symbols)
                placed = True
                break
        if not placed:
            return None, k
    return (pos, syms, uid), len(units)


def random_packing(cell, items, min_distances=None, *, default_min_distance: float = 1.5, seed: int = 0,
                   batch: int = 64, max_batches: int = 200, n_restarts: int = 10, fixed=None):
    """Pack ``items`` [(MolecularUnit or symbol, count)] into ``cell``.

    ``fixed``: optional (positions (n, 3) Å, symbols (n,)) of atoms already
    in place, kept as they are and first in the result (the minimum
    distances apply to them too; they are not counted in the density).

    cell: (3, 3) Å rows = vectors or (3,) lengths; min_distances: {(a, b): d}
    Å between atoms of different units (symmetric; unspecified pairs use
    ``default_min_distance``).  Returns ``ase.Atoms`` (pbc) with
    ``arrays['unit_id']`` and ``info['seed']``, ``info['density_g_cm3']``.
    """
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape == (3,):
        cell = np.diag(cell)
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-6:
        raise ConfigurationError(f"invalid cell {cell.tolist()}")
    its = _items(items)
    units = [u for u, n in sorted(its, key=lambda t: -t[0].size) for _ in range(n)]
    if not units:
        raise ConfigurationError("nothing to pack")
    symbols = [s for u in units for s in u.symbols]
    sp, M = min_distance_matrix(symbols + (list(fixed[1]) if fixed is not None else []), min_distances,
                                default_min_distance)
    vol = abs(np.linalg.det(cell))
    # hard spheres of radius d_aa/2; the centre atom of a unit sits inside its
    # ligands and is not counted
    counted = [s for u in units for s in (u.symbols[1:] if u.size > 1 else u.symbols)]
    radii = 0.5 * np.diag(M)[[sp.index(s) for s in counted]]
    phi = float(np.sum(4.0 / 3.0 * np.pi * radii ** 3) / vol)
    if phi > 0.64:
        raise ConfigurationError(
            f"packing impossible: hard-sphere volume fraction {phi:.2f} > 0.64 (random close packing) for "
            f"{len(symbols)} atoms in {vol:.1f} Å^3; lower the density or the minimum distances")
    rng = np.random.default_rng(seed)
    worst = 0
    for _ in range(n_restarts):
        res, k = _try_pack(rng, cell, units, sp, M, batch, max_batches, fixed)
        if res is not None:
            pos, syms, uid = res
            at = Atoms(syms, positions=pos, cell=cell, pbc=True)
            at.arrays["unit_id"] = uid
            at.info["seed"] = int(seed)
            at.info["density_g_cm3"] = _mass(its) * AMU_A3_TO_G_CM3 / vol
            return at
        worst = max(worst, k)
    raise ConfigurationError(
        f"could not pack {len(units)} units ({len(symbols)} atoms) into {vol:.1f} Å^3 with the minimum "
        f"distances given: best attempt placed {worst}/{len(units)} after {n_restarts} restarts "
        f"(hard-sphere fraction {phi:.2f}); lower the density or the minimum distances")


def build_amorphous(items, *, density_g_cm3=None, cell=None, a: float = 12.0, b: float = 12.0,
                    min_distances=None, seed: int = 0, **kw):
    """Random amorphous cell from ``items`` at a target density (cell a × b ×
    c with c from the density) or in a given ``cell``."""
    if (density_g_cm3 is None) == (cell is None):
        raise ConfigurationError("give exactly one of density_g_cm3 or cell")
    if cell is None:
        cell = cell_for_density(items, density_g_cm3, a, b)
    return random_packing(cell, items, min_distances, seed=seed, **kw)


# Paper presets (Wang, Aykol, Mueller 2023): Li3PS4 96 atoms in 12×12×14.87 Å,
# Li3B11O18 128 atoms in 12×12×10.64 Å.  Minimum distances (Å) are our choice,
# well below the crystal contacts (to be relaxed by MD).
PRESETS = {
    "Li3PS4": {
        "items": [(PS4, 12), ("Li", 36)],
        "cell": (12.0, 12.0, 14.87),
        "min_distances": {("Li", "Li"): 2.2, ("Li", "P"): 2.6, ("Li", "S"): 2.1, ("P", "P"): 3.6,
                          ("P", "S"): 2.8, ("S", "S"): 2.6},
    },
    "Li3B11O18": {
        "items": [("O", 72), ("B", 44), ("Li", 12)],
        "cell": (12.0, 12.0, 10.64),
        "min_distances": {("Li", "Li"): 2.2, ("Li", "B"): 2.2, ("Li", "O"): 1.7, ("B", "B"): 2.2,
                          ("B", "O"): 1.3, ("O", "O"): 2.2},
    },
}


def build_preset(name: str, seed: int = 0, density_g_cm3: float | None = None, **kw):
    """Build a paper preset ('Li3PS4' or 'Li3B11O18') with the paper's cell,
    or at ``density_g_cm3`` (a = b = 12 Å, c from the density)."""
    if name not in PRESETS:
        raise ConfigurationError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    p = PRESETS[name]
    md = dict(p["min_distances"])
    md.update(kw.pop("min_distances", None) or {})
    if density_g_cm3 is None:
        return build_amorphous(p["items"], cell=p["cell"], min_distances=md, seed=seed, **kw)
    return build_amorphous(p["items"], density_g_cm3=density_g_cm3, a=p["cell"][0], b=p["cell"][1],
                           min_distances=md, seed=seed, **kw)


def production_supercell(atoms, kind: str = "bulk"):
    """Paper's production supercells: 2×2×2 for bulk, 2×2×1 for interfaces
    (per-atom arrays such as unit_id / region are repeated; unit ids are
    made unique per copy)."""
    reps = {"bulk": (2, 2, 2), "interface": (2, 2, 1)}.get(kind)
    if reps is None:
        raise ConfigurationError(f"kind must be 'bulk' or 'interface', got {kind!r}")
    n = len(atoms)
    big = atoms.repeat(reps)
    if "unit_id" in atoms.arrays:
        copies = np.repeat(np.arange(len(big) // n), n)
        big.arrays["unit_id"] = atoms.arrays["unit_id"][np.tile(np.arange(n), len(big) // n)] + \
            copies * (int(atoms.arrays["unit_id"].max()) + 1)
    return big
