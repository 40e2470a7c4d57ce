"""Rigid molecular units used as building blocks (positions in Å relative
to the centre atom at the origin)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MolecularUnit", "tetrahedron", "triangle", "single_atom", "PS4", "random_rotations"]


@dataclass(frozen=True)
class MolecularUnit:
    """A rigid group of atoms: symbols (k,), positions (k, 3) Å."""

    name: str
    symbols: tuple
    positions: np.ndarray

    @property
    def size(self) -> int:
        return len(self.symbols)


def tetrahedron(center: str, ligand: str, bond: float) -> MolecularUnit:
    """Regular tetrahedron XY4 with X–Y = bond Å (e.g. PS4, P–S 2.05 Å)."""
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64) / np.sqrt(3.0)
    return MolecularUnit(f"{center}{ligand}4", (center,) + (ligand,) * 4, np.vstack([[0, 0, 0], bond * v]))


def triangle(center: str, ligand: str, bond: float) -> MolecularUnit:
    """Planar triangle XY3 (e.g. BO3, B–O 1.37 Å)."""
    ang = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    v = np.stack([np.cos(ang), np.sin(ang), np.zeros(3)], axis=1)
    return MolecularUnit(f"{center}{ligand}3", (center,) + (ligand,) * 3, np.vstack([[0, 0, 0], bond * v]))


def single_atom(symbol: str) -> MolecularUnit:
    return MolecularUnit(symbol, (symbol,), np.zeros((1, 3)))


PS4 = tetrahedron("P", "S", 2.05)


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly distributed rotation matrices (n, 3, 3) (unit quaternions
    from normalised Gaussians)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)
