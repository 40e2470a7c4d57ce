"""ASE calculator for MTPs.

>>> from mtpjax.potential import MTPCalculator
>>> atoms.calc = MTPCalculator("pot.mtp", symbols=["Li", "P", "S"])
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

``symbols`` maps the potential's species (in order: MLIP type 0, 1, …) to
chemical symbols, like LAMMPS' ``pair_coeff * * Li P S``. When the potential's
type labels are atomic numbers (MLIP-3 trained on atomic numbers), they are
used directly and ``symbols`` may be omitted.

Properties: ``energy``, ``free_energy`` (eV), ``forces`` (eV/Å), ``stress``
(eV/Å³, ASE sign and Voigt order: −PlusStress/V; 3D-periodic cells only),
``energies`` (site energies, eV).

The calculator pickles (and ``copy.deepcopy``-s) before and after use, so it travels to process pools, Dask
or Parsl workers: a pickle holds the potential's parameters (numpy arrays), the species map, the options and
ASE's last ``atoms``/``results``, never the compiled functions or the neighbour list. Those are rebuilt on
the first calculation after unpickling (which compiles once, as a fresh calculator does).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import atomic_numbers

from mtpjax.errors import ConfigurationError
from mtpjax.geometry.neighbors import NeighborListFns, neighbor_list, pair_distances
from mtpjax.potential.model import MTP, block_size, energy_forces_stress_blocks_above
from ase.data import chemical_symbols


class MTPCalculator(Calculator):
    """ASE ``Calculator`` backed by the jitted MTP kernel.

    Parameters
    ----------
    potential : MTP or path to an ``.mtp``/``.almtp`` file.
    symbols : chemical symbols of species 0..C−1 (or None, see module doc).
    skin : Å of neighbour-list skin; the list is reused while no atom moved
        more than skin/2 (cheap repeated calls in MD/relaxations).
    min_distance : Å; refuse configurations with atoms closer than this.
    chunk_atoms : evaluate systems larger than this in blocks of this many
        atoms (same numbers, memory ∝ the block; for 10⁵–10⁶-atom cells).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, potential, symbols=None, skin: float = 0.5, min_distance: float | None = 0.5,
                 chunk_atoms: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.chunk_atoms = None if chunk_atoms is None else block_size(chunk_atoms)  # ConfigurationError is a ValueError
        self.model = potential if isinstance(potential, MTP) else MTP.from_file(potential)
        self.skin = float(skin)
        self.min_distance = min_distance
        if symbols is not None:
            if len(symbols) != self.model.n_species:
                raise ValueError(
                    f"symbols has {len(symbols)} entries but the potential has {self.model.n_species} species"
                )
            zs = [atomic_numbers[s] if isinstance(s, str) else int(s) for s in symbols]
        else:
            labels = list(self.model.species)
            if all(1 <= t <= 118 for t in labels) and labels != list(range(len(labels))):
                zs = labels
            else:
                raise ValueError(
                    "the potential's species are MLIP type indices "
                    f"{labels}; pass symbols=[...] giving the element of each (in order)"
                )
        self._z_to_species = {z: k for k, z in enumerate(zs)}
        self._forget_neighbors()

    #: attributes a pickle or a deep copy leaves out (rebuilt by the next calculation)
    _TRANSIENT = ("_fns", "_update", "_nbrs", "_key")

    def _forget_neighbors(self) -> None:
        self._fns: NeighborListFns | None = None
        self._update = None  # jit of self._fns.update: eager, its lax.cond would compile on every call
        self._nbrs = None
        self._key = None

    def __getstate__(self) -> dict:
        """What defines the calculator: the potential with numpy leaves (device-free), the species map,
        the options and ASE's state; no compiled function, no neighbour list."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}
        state["model"] = jax.tree_util.tree_map(np.asarray, self.model)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.model = jax.tree_util.tree_map(jnp.asarray, self.model)
        self._forget_neighbors()

    def _species(self, atoms) -> np.ndarray:
        try:
            return np.asarray([self._z_to_species[int(z)] for z in atoms.numbers], dtype=np.int32)
        except KeyError as e:
            raise ConfigurationError(
                f"element {chemical_symbols[e.args[0]]} is not a species of this potential "
                f"(species: {[chemical_symbols[z] for z in self._z_to_species]})"
            ) from None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        pos = jnp.asarray(a.positions, dtype=jnp.float64)
        pbc = np.asarray(a.pbc, dtype=bool)
        cell = np.where(pbc[:, None], np.asarray(a.cell[:], dtype=float), 0.0)
        key = (len(a), tuple(pbc))
        rebuild = self._nbrs is None or key != self._key or "numbers" in system_changes
        if not rebuild:
            self._nbrs = self._update(pos, jnp.asarray(cell), self._nbrs)
            rebuild = bool(self._nbrs.did_overflow)
        if rebuild:
            self._fns, self._nbrs = neighbor_list(a.positions, cell, pbc, self.model.cutoff, skin=self.skin)
            self._update = jax.jit(self._fns.update)
            self._key = key
        species = jnp.asarray(self._species(a))
        nb = self._nbrs
        if self.min_distance is not None:
            dist = pair_distances(a.positions, cell, nb.idx, nb.shifts)
            dmin = float(dist.min()) if dist.size else np.inf
            if dmin < self.min_distance:
                raise ConfigurationError(
                    f"atoms closer than {self.min_distance} Å ({dmin:.4f} Å); set min_distance to allow"
                )
        e, f, s, v = energy_forces_stress_blocks_above(self.model, pos, jnp.asarray(cell), species, nb.idx, nb.shifts,
                                                       self.chunk_atoms)
        self.results["energy"] = float(e)
        self.results["free_energy"] = float(e)
        self.results["forces"] = np.asarray(f, dtype=float)
        self.results["energies"] = np.asarray(v, dtype=float)
        if pbc.all():
            self.results["stress"] = -np.asarray(s, dtype=float) / abs(a.get_volume())
        elif "stress" in properties:
            raise PropertyNotImplementedError("stress needs a 3D-periodic cell")
