"""mtpjax.analysis: trajectory analysis (pure numpy/scipy).

Modules: :mod:`.trajectory` (array/ASE/H5MD sources, streaming),
:mod:`.unwrap` (NPT-safe unwrapping, drift), :mod:`.msd` (FFT MSD),
:mod:`.diffusion` (D with He et al. errors, blocks, bootstrap),
:mod:`.arrhenius` (weighted Arrhenius fit, Nernst–Einstein), :mod:`.rdf`,
:mod:`.bondvalence` (GII), :mod:`.structure` (density, units, formula
units), :mod:`.energetics` (interface / amorphization energy),
:mod:`.regions` (interface-resolved transport), :mod:`.plots`.
"""
from mtpjax.analysis.arrhenius import ArrheniusFit, conductivity_range, fit_arrhenius, nernst_einstein_mS_cm
from mtpjax.analysis.bondvalence import bond_valence_sums, gii, gii_trajectory
from mtpjax.analysis.diffusion import (
    DiffusionResult,
    InsufficientDataError,
    analyze_diffusion,
    block_diffusivity,
    bootstrap_mean,
    combine_runs,
    diffusion_from_unwrapped,
    he_rsd,
)
from mtpjax.analysis.energetics import amorphization_energy, interface_energy, interface_energy_from_atoms
from mtpjax.analysis.msd import msd_axes, msd_columns
from mtpjax.analysis.rdf import compute_rdf, first_minimum
from mtpjax.analysis.regions import displacement_histogram, region_diffusivity, region_mask
from mtpjax.analysis.structure import (
    coordination_fractions,
    coordination_fractions_trajectory,
    decompose_formula_units,
    density_g_cm3,
    formula_units,
    molecular_units,
    molecular_units_trajectory,
)
from mtpjax.analysis.trajectory import ArrayTrajectory, H5MDTrajectory, from_ase, open_trajectory
from mtpjax.analysis.unwrap import unwrap, unwrapped_positions

__all__ = [n for n in dir() if not n.startswith("_")]
