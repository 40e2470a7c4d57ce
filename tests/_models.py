"""Small helpers shared by the potential tests (random but seeded models)."""
import numpy as np

from mtpjax.potential import MTP
from mtpjax.io.mtp import read_mtp


def random_model(templates, level: int, n_species: int, seed: int = 0, scaling: float = 0.05,
                 min_dist: float = 1.6, cutoff: float = 4.5) -> MTP:
    """An MTP of MLIP's level template with seeded random coefficients."""
    f = read_mtp(templates / f"{level:02d}.almtp")
    f.species_count = n_species
    f.min_dist, f.max_dist = min_dist, cutoff
    rng = np.random.default_rng(seed)
    f.radial_coeffs = rng.uniform(-1, 1, (n_species, n_species, f.radial_funcs_count, f.radial_basis_size))
    f.species = list(range(n_species))
    f.species_coeffs = rng.uniform(-3, -2, n_species)
    f.moment_coeffs = rng.uniform(-1, 1, len(f.alpha_moment_mapping))
    f.scaling = scaling
    return MTP.from_mtpfile(f)


def random_cell(n_atoms: int, n_species: int, seed: int = 0, skew: bool = True, density: float = 0.06,
                dmin: float = 1.7):
    """Random positions (N,3) in a (skewed) periodic cell at ``density`` atoms/Å³,
    no pair closer than ``dmin``; types (N,)."""
    rng = np.random.default_rng(seed)
    vol = n_atoms / density
    a = vol ** (1 / 3)
    cell = np.diag([a, a * 1.05, a / 1.05])
    if skew:
        cell[1, 0] = 0.2 * a
        cell[2, 0] = -0.15 * a
        cell[2, 1] = 0.1 * a
    pos = []
    while len(pos) < n_atoms:
        p = rng.uniform(0, 1, 3) @ cell
        ok = True
        for q in pos:
            d = p - q
            f = np.linalg.solve(cell.T, d)
            d = (f - np.round(f)) @ cell
            if np.linalg.norm(d) < dmin:
                ok = False
                break
        if ok:
            pos.append(p)
    return np.array(pos), cell, rng.integers(0, n_species, n_atoms)
