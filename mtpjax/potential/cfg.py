"""MLIP ``.cfg`` configurations: the in-memory record and its reader/writer.

See ``shared/docs/mtp.md`` §6.2 for the format.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Configuration:
    """One MLIP configuration.

    ``positions`` (N, 3) Cartesian Å; ``types`` (N,) int (MLIP type labels as
    written in the file); ``cell`` (3, 3) lattice vectors as rows in Å, with a
    zero row for every non-periodic direction (``pbc`` (3,) bool says which
    rows were present in ``Supercell``); ``energy`` eV or None; ``forces``
    (N, 3) eV/Å or None; ``plus_stress`` (6,) eV in MLIP order
    xx yy zz yz xz xy (= −∂E/∂ε, ASE stress = −plus_stress/V) or None;
    ``features`` ordered ``{key: value}`` (a key repeated in the file has its
    values joined with ``\\n``); ``atom_data`` any further per-atom columns
    (``site_en``, ``charge``, ``nbh_grades``, ...) as (N,) arrays keyed by
    column name.
    """

    positions: np.ndarray
    types: np.ndarray
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    energy: float | None = None
    forces: np.ndarray | None = None
    plus_stress: np.ndarray | None = None
    features: dict = field(default_factory=dict)
    atom_data: dict = field(default_factory=dict)

    @property
    def natoms(self) -> int:
        return int(len(self.positions))
