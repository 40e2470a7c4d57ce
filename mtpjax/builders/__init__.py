"""mtpjax.builders: random amorphous cells, stacked interfaces, supercells."""
from mtpjax.builders.amorphous import (
    PRESETS,
    build_amorphous,
    build_preset,
    cell_for_density,
    production_supercell,
    random_packing,
)
from mtpjax.builders.interface import cross_interface_min_distance, stack_interface
from mtpjax.builders.network import borate_network, local_topology, network_topology, roll_fewest_cut_bonds
from mtpjax.builders.molecules import PS4, MolecularUnit, tetrahedron, triangle

__all__ = [n for n in dir() if not n.startswith("_")]
