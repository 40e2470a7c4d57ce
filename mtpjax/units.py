"""Units and conventions, in one place.

Inside mtpjax everything is in ASE's units: energy eV, length Å, mass amu, time in ASE's unit
(``FS`` of them per femtosecond), temperature as kT in eV, pressure and stress in eV/Å³. User-facing
quantities (fs, ps, K, bar, GPa, g/cm³) are converted with these constants once, where a file or a
command line is read or written.

Stresses and virials in 6-vectors use Voigt order ``xx yy zz yz xz xy`` (MLIP's ``PlusStress`` and ASE's
``get_stress()`` share it). MLIP's PlusStress is −∂E/∂ε in eV (positive under compression), ASE's stress is
−PlusStress / V in eV/Å³.
"""
from __future__ import annotations
import jax.numpy as jnp

#: ASE time units per femtosecond (``ase.units.fs``)
FS = 0.09822694788464063
#: femtoseconds per picosecond
FS_PER_PS = 1000.0
#: Boltzmann's constant in eV/K (``ase.units.kB``; CODATA 2014, as ASE and LAMMPS' metal units)
KB = 8.617330337217213e-05
#: Boltzmann's constant in eV/K, CODATA 2018 (the Arrhenius/Nernst–Einstein analysis)
KB_CODATA2018 = 8.617333262e-5
#: one bar in eV/Å³ (``ase.units.bar``)
BAR = 6.241509125883258e-07
#: one GPa in eV/Å³ (``ase.units.GPa``)
GPA = 0.006241509125883258
#: eV/Å³ → GPa (MLIP's error reports)
EV_PER_A3_IN_GPA = 160.21766208
#: amu/Å³ → g/cm³
AMU_PER_A3_TO_G_CM3 = 1.66053906660

#: (row, column) of each Voigt component, in the order xx yy zz yz xz xy
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def voigt_to_matrix(v):
    """Symmetric 3×3 matrix of a Voigt 6-vector ``v`` (xx yy zz yz xz xy); numpy or JAX arrays."""
    xx, yy, zz, yz, xz, xy = (v[k] for k in range(6))
    return jnp.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def matrix_to_voigt(m):
    """Voigt 6-vector (xx yy zz yz xz xy) of the 3×3 matrix ``m``; numpy or JAX arrays."""
    return jnp.stack([m[a, b] for a, b in VOIGT])
