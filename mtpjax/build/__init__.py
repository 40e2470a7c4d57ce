"""mtpjax.build: random amorphous cells, stacked interfaces, supercells."""
from .amorphous import (
    PRESETS,
    build_amorphous,
    build_preset,
    cell_for_density,
    production_supercell,
    random_packing,
)
from .interface import cross_interface_min_distance, stack_interface
from .network import borate_network, local_topology, network_topology, roll_fewest_cut_bonds
from .units import PS4, MolecularUnit, tetrahedron, triangle

__all__ = [n for n in dir() if not n.startswith("_")]
