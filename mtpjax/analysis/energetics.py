"""Interface and amorphization energies.

γ = (E_int − N_A E_A − N_B E_B) / (2 A): two interfaces per periodic
stacked cell; A = |a × b| of the interface cell (interface normal to c).
1 eV/Å² = 16021.766 mJ/m².
"""
from __future__ import annotations

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.analysis.structure import decompose_formula_units, parse_formula
from functools import reduce
from math import gcd

__all__ = ["EV_PER_A2_TO_MJ_PER_M2", "interface_area", "interface_energy", "interface_energy_from_atoms",
           "amorphization_energy", "gamma_energy_error"]

EV_PER_A2_TO_MJ_PER_M2 = 1.602176634e-19 / 1e-20 * 1e3


def interface_area(cell) -> float:
    """|a × b| in Å² for a cell (3, 3), rows = vectors."""
    c = np.asarray(cell, dtype=np.float64)
    return float(np.linalg.norm(np.cross(c[0], c[1])))


def interface_energy(E_int: float, n_A: float, E_A: float, n_B: float, E_B: float, area_A2: float) -> dict:
    """Interface energy from total energies (eV).

    E_int: interface cell; E_A, E_B: energy per formula unit (or per atom)
    of the bulk phases, n_A, n_B: how many of those units the interface cell
    holds (see :func:`interface_energy_from_atoms`); area_A2: |a × b| Å².
    Returns {'gamma_meV_A2', 'gamma_mJ_m2', 'gamma_eV_A2'}.
    """
    if not area_A2 > 0:
        raise ConfigurationError(f"interface area must be positive, got {area_A2}")
    g = (E_int - n_A * E_A - n_B * E_B) / (2.0 * area_A2)
    return {"gamma_eV_A2": g, "gamma_meV_A2": 1e3 * g, "gamma_mJ_m2": g * EV_PER_A2_TO_MJ_PER_M2}


def interface_energy_from_atoms(E_int: float, atoms_int, formula_A: str, E_A_per_fu: float,
                                formula_B: str, E_B_per_fu: float) -> dict:
    """γ with N_A, N_B counted from the interface cell's composition."""
    nA, nB = decompose_formula_units(atoms_int, [formula_A, formula_B])
    area = interface_area(atoms_int.cell[:])
    out = interface_energy(E_int, nA, E_A_per_fu, nB, E_B_per_fu, area)
    atoms_per_fu = [sum(parse_formula(f).values()) for f in (formula_A, formula_B)]
    out.update({"n_A": nA, "n_B": nB, "area_A2": area, "n_atoms": len(atoms_int),
                "n_atoms_A": nA * atoms_per_fu[0], "n_atoms_B": nB * atoms_per_fu[1]})
    return out


def gamma_energy_error(eps_eV_atom: float, n_atoms: int, n_atoms_A: float, n_atoms_B: float,
                       area_A2: float) -> float:
    """σ_γ (mJ/m²) that an energy error of ``eps_eV_atom`` per atom (e.g. a potential's validation RMSE)
    gives γ = (E_int − N_A E_A − N_B E_B)/(2A): the interface cell's energy and the two bulk terms each off
    by ε per atom, independently: σ_γ = ε √(N² + N_A² + N_B²) / (2A), N the interface cell's atoms and
    N_A, N_B the atoms of each bulk phase it holds."""
    return float(eps_eV_atom * np.sqrt(n_atoms ** 2 + n_atoms_A ** 2 + n_atoms_B ** 2) / (2.0 * area_A2)
                 * EV_PER_A2_TO_MJ_PER_M2)


def amorphization_energy(E_amorph: float, atoms_amorph, E_cryst: float, atoms_cryst) -> float:
    """E_amorph/N − E_cryst/N' in meV/atom; compositions must match (same
    reduced formula)."""
    def reduced(at):
        c = parse_formula(at.get_chemical_formula(mode="hill", empirical=False).replace(" ", ""))
        g = reduce(gcd, c.values())
        return {k: v // g for k, v in c.items()}

    ra, rc = reduced(atoms_amorph), reduced(atoms_cryst)
    if ra != rc:
        raise ConfigurationError(f"compositions differ: amorphous {ra} vs crystal {rc}")
    return 1e3 * (E_amorph / len(atoms_amorph) - E_cryst / len(atoms_cryst))
