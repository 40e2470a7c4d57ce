"""The paper the workflow reproduces: Wang, Aykol & Mueller, *Chem. Mater.* 35, 6346 (2023) — its
compositions and the values the report compares with (PBE, the paper's cell sizes and times)."""
from __future__ import annotations

#: the compositions of the workflow: bulk Li3PS4 and Li3B11O18, and their interface (LPS below, LBO on top, along c)
COMPS = ("lps", "lbo", "int")
COMP_NAMES = {"lps": "Li3PS4", "lbo": "Li3B11O18", "int": "Li3PS4/Li3B11O18 interface"}
#: the bulk compositions by formula (crystal references for amorphization energies)
COMPOSITIONS = {"lps": "Li3PS4", "lbo": "Li3B11O18"}

#: the paper's numbers the sanity checks use; ``interface_cell_atoms``: its interface cells' size. Below it the
#: sign of γ is not a check: at 48 atoms the reference (GFN1-xTB) itself gives γ < 0 for these glasses
#: (−474 ± 74 mJ/m² on 300 K frames, −383 ± 11 at their inherent structures; box-frustrated 16-atom LPS slabs)
PAPER = {"density_g_cm3": {"lps": 1.79, "lbo": 2.09}, "interface_cell_atoms": 224, "gamma_mJ_m2": 620.0}

#: one colour per composition in every figure of the report; the interface's two directions (Fig. 7) in two
COLORS = {"lps": "tab:blue", "lbo": "tab:orange", "int": "tab:green",
          ("int", "parallel"): "tab:green", ("int", "normal"): "tab:purple"}
#: the paper's Li activation energies (eV) the Arrhenius figures print beside the fitted ones
PAPER_EA_EV = {("lbo", "total"): 0.53, ("int", "normal"): 0.55}
#: the paper's GII range of its LOTF production structures (v.u.)
PAPER_GII = (0.24, 0.33)

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
