"""Starting structures for MD and learning: the first configuration of an MLIP ``.cfg`` or any file ASE reads,
checked as MD needs it (atoms present, finite positions, fully periodic, a proper cell, known elements)."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase.data import atomic_masses, atomic_numbers, chemical_symbols
from ase.io import read

from mtpjax.errors import ConfigurationError, FileFormatError
from mtpjax.io.cfg import read_cfg

__all__ = ["Structure", "read_structure", "check_cell", "lattice_problem"]


class Structure(NamedTuple):
    """A starting structure: positions (N, 3) Å, cell (3, 3) Å rows, MLIP types (N,), atomic numbers (N,),
    masses (N,) amu."""

    positions: np.ndarray
    cell: np.ndarray
    types: np.ndarray
    numbers: np.ndarray
    masses: np.ndarray


def read_structure(path: Path, elements) -> Structure:
    """The first configuration of ``path`` (an MLIP ``.cfg``, which needs ``elements`` for its types' masses,
    or any file ASE reads); MLIP types are indices into ``elements`` (atomic numbers without it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    znum = None if elements is None else [atomic_numbers[e] for e in elements]
    if path.suffix.lower() == ".cfg":
        confs = read_cfg(path)
        if not confs:
            raise FileFormatError("no configuration (BEGIN_CFG … END_CFG) in the file", path=path)
        c = confs[0]
        types = np.asarray(c.types, int)
        pos = np.asarray(c.positions, float)
        cell = np.zeros((3, 3)) if c.cell is None else np.asarray(c.cell, float)
        pbc = np.asarray(c.pbc, bool) if getattr(c, "pbc", None) is not None else np.linalg.norm(cell, axis=1) > 0
        if znum is None:
            raise ConfigurationError(f"{path}: a .cfg structure needs 'elements' (MLIP type → element) for the masses")
        if len(types) and types.max() >= len(znum):
            raise ConfigurationError(f"{path}: atom type {types.max()} has no entry in 'elements' {elements}")
        numbers = np.array([znum[t] for t in types])
    else:
        try:
            atoms = read(path)
        except Exception as e:  # noqa: BLE001 - any reader error is a bad input file
            raise FileFormatError(f"cannot read structure ({e})", path=path) from None
        pos, cell, pbc, numbers = atoms.positions, np.asarray(atoms.cell.array), atoms.pbc, atoms.numbers
        if znum is None:
            types = np.asarray(numbers, int)
        else:
            lut = {z: k for k, z in enumerate(znum)}
            missing = sorted({int(z) for z in numbers} - set(lut))
            if missing:
                raise ConfigurationError(
                    f"{path}: element(s) {[chemical_symbols[z] for z in missing]} not in 'elements' {elements}")
            types = np.array([lut[int(z)] for z in numbers])
    if len(pos) == 0:
        raise ConfigurationError(f"{path}: the structure has no atoms")
    if not np.all(np.isfinite(pos)):
        raise ConfigurationError(f"{path}: atom {int(np.argmin(np.isfinite(pos).all(axis=1))) + 1} has a non-finite "
                                 "position")
    if not np.all(pbc):
        raise ConfigurationError(f"{path}: MD needs a fully periodic cell (pbc = {list(map(bool, pbc))})")
    check_cell(path, cell)
    return Structure(np.asarray(pos, float), np.asarray(cell, float), types, np.asarray(numbers), atomic_masses[numbers])


def lattice_problem(cell) -> str | None:
    """What is wrong with three lattice vectors (Å rows): a non-finite entry, a zero vector or (nearly)
    linearly dependent vectors; None when they span a proper cell."""
    cell = np.asarray(cell, float)
    if not np.all(np.isfinite(cell)):
        return "the cell has non-finite entries"
    lengths = np.linalg.norm(cell, axis=1)
    if np.any(lengths == 0):
        return f"lattice vector {int(np.argmin(lengths)) + 1} is zero"
    vol = abs(np.linalg.det(cell))
    if not vol > 1e-6 * np.prod(lengths):
        return f"the lattice vectors are (nearly) linearly dependent (volume {vol:.3g} Å³)"
    return None


def check_cell(path, cell) -> None:
    """A cell with a zero, non-finite or linearly dependent lattice vector is an input error (naming ``path``)."""
    problem = lattice_problem(cell)
    if problem:
        raise ConfigurationError(f"{path}: {problem}")
