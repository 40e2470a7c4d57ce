"""A cheap, smooth reference calculator for Li–B–O–P–S workflow tests (not physics).

Morse pairs with bond lengths of the real system (P–S 2.05 Å, B–O 1.38 Å,
Li–S 2.45 Å, Li–O 1.95 Å; like-ion pairs weakly bound at long distances),
shifted to zero at the cutoff. Energy eV, forces eV/Å, stress eV/Å³ (ASE sign).
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list

R0 = {("P", "S"): 2.05, ("B", "O"): 1.38, ("Li", "S"): 2.45, ("Li", "O"): 1.95, ("P", "O"): 1.6, ("B", "S"): 1.9,
      ("Li", "Li"): 2.8, ("S", "S"): 3.4, ("O", "O"): 2.5, ("P", "P"): 3.6, ("B", "B"): 2.6, ("Li", "P"): 3.0,
      ("Li", "B"): 2.6, ("O", "S"): 3.0, ("B", "P"): 3.0}
DEPTH = {("P", "S"): 2.0, ("B", "O"): 2.0, ("P", "O"): 1.5, ("B", "S"): 1.0, ("Li", "S"): 0.4, ("Li", "O"): 0.4}


class ToyPairs(Calculator):
    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, cutoff: float = 4.5, alpha: float = 1.6, **kw):
        super().__init__(**kw)
        self.rc, self.a = cutoff, alpha

    def _params(self, si, sj):
        key = tuple(sorted((si, sj)))
        r0 = R0.get(key, R0.get(key[::-1], 3.0))
        D = DEPTH.get(key, DEPTH.get(key[::-1], 0.05))
        return r0, D

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        at = self.atoms
        sym = np.array(at.get_chemical_symbols())
        i, j, d, D = neighbor_list("ijdD", at, self.rc)
        r0, dep = np.array([self._params(sym[a], sym[b]) for a, b in zip(i, j)]).T.reshape(2, -1)
        e = np.exp(-self.a * (d - r0))
        ec = np.exp(-self.a * (self.rc - r0))
        # shifted-force Morse: E(r) - E(rc) - (r - rc) E'(rc)
        E = dep * ((1 - e) ** 2 - 1)
        Erc = dep * ((1 - ec) ** 2 - 1)
        dE = 2 * dep * self.a * (1 - e) * e
        dErc = 2 * dep * self.a * (1 - ec) * ec
        pair_e = E - Erc - (d - self.rc) * dErc
        pair_f = dE - dErc  # dE/dr
        energy = 0.5 * pair_e.sum()
        g = (pair_f / d)[:, None] * D  # dE/dD_ij
        F = np.zeros((len(at), 3))
        np.add.at(F, i, g)
        np.add.at(F, j, -g)
        F *= 0.5  # every pair appears twice (i→j and j→i)
        vir = 0.5 * np.einsum("pa,pb->ab", D, g)
        stress = vir / at.get_volume()
        self.results = {"energy": energy, "forces": F,
                        "stress": np.array([stress[0, 0], stress[1, 1], stress[2, 2], stress[1, 2], stress[0, 2],
                                            stress[0, 1]])}


def toy_calculator(**kw):
    return ToyPairs(**kw)
