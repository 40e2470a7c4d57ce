"""The paper the workflow reproduces: Wang, Aykol & Mueller, *Chem. Mater.* 35, 6346 (2023) — its
compositions and the values the report compares with (PBE, the paper's cell sizes and times)."""
from __future__ import annotations

#: the compositions of the workflow: bulk Li3PS4 and Li3B11O18, and their interface (LPS below, LBO on top, along c)
COMPS = ("lps", "lbo", "int")
COMP_NAMES = {"lps": "Li3PS4", "lbo": "Li3B11O18", "int": "Li3PS4/Li3B11O18 interface"}
#: the bulk compositions by formula (crystal references for amorphization energies)
COMPOSITIONS = {"lps": "Li3PS4", "lbo": "Li3B11O18"}

#: the paper's numbers the sanity checks use
PAPER = {"density_g_cm3": {"lps": 1.79, "lbo": 2.09}}

#: the paper's values the report prints beside its own (quantity, value)
PAPER_TABLE = [
    ("density a-Li3PS4 (g/cm³)", "1.79 ± 0.014"),
    ("density a-Li3B11O18 (g/cm³)", "2.09 ± 0.01"),
    ("P–S / B–O coordination", "4 / 3.2"),
    ("BO4/(BO3+BO4) bulk / interface", "0.26 / 0.22"),
    ("interface energy (mJ/m²)", "620"),
    ("σ(300 K) LPS (mS/cm)", "16.4"),
    ("σ(300 K) LBO (mS/cm); E_a", "0.138; 0.53 eV"),
    ("E_a normal to the interface (eV)", "0.55 ± 0.02"),
    ("amorphization energy LPS / LBO (meV/atom)", "36.7 / 42.0"),
    ("GII (LOTF production)", "0.24–0.33"),
]
