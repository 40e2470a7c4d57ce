"""Stage 1 of the workflow: the random starting cells of every composition.

``n_structures`` cells of amorphous Li3PS4 (PS4 tetrahedra and Li packed at the starting density) and of
Li3B11O18 (a random packing, or a B–O network with every O bridging), and their interface (LBO on top of LPS
along c, cut where the fewest B–O bonds cross for a network), written to ``workdir/build/<comp>_<k>.extxyz``.
Every cell is seeded from ``seed`` (seed + 100 + k, + 200 + k, + 300 + k), so a rebuilt cell is the same cell.
"""
from __future__ import annotations

from ase.io import write

from mtpjax.builders import PRESETS, PS4, borate_network, build_amorphous, roll_fewest_cut_bonds, stack_interface


def build_cells(wf) -> dict:
    """Build every cell of the workflow ``wf``; returns the stage's record (atoms, cell lengths, formulas)."""
    b, seed = wf.cfg.build, int(wf.cfg.seed)
    d = wf.workdir / "build"
    d.mkdir(exist_ok=True)
    a = float(b.a_A)
    nl, nb = int(b.lps_formula_units), int(b.lbo_formula_units)
    info = {"structures": {}}
    for k in range(int(wf.cfg.n_structures)):
        lps = build_amorphous([(PS4, nl), ("Li", 3 * nl)], density_g_cm3=float(b.lps_density_g_cm3), a=a, b=a,
                              min_distances=PRESETS["Li3PS4"]["min_distances"], seed=seed + 100 + k)
        if b.lbo_builder == "network":
            lbo = borate_network(11 * nb, 18 * nb, [("Li", 3 * nb)], density_g_cm3=float(b.lbo_density_g_cm3),
                                 a=a, b=a, min_distances=PRESETS["Li3B11O18"]["min_distances"], seed=seed + 200 + k)
        else:
            lbo = build_amorphous([("O", 18 * nb), ("B", 11 * nb), ("Li", 3 * nb)],
                                  density_g_cm3=float(b.lbo_density_g_cm3), a=a, b=a,
                                  min_distances=PRESETS["Li3B11O18"]["min_distances"], seed=seed + 200 + k)
        out = {"lps": lps, "lbo": lbo}
        if b.interface:
            top = roll_fewest_cut_bonds(lbo) if b.lbo_builder == "network" else lbo  # cut the network
            out["int"] = stack_interface(lps, top, gaps=list(b.gaps_A), min_cross=float(b.min_cross_LiLi_A),
                                         seed=seed + 300 + k)
        for comp, at in out.items():
            write(d / f"{comp}_{k}.extxyz", at, format="extxyz")
            rec = {"natoms": len(at), "cell_A": at.cell.lengths().tolist(), "formula": at.get_chemical_formula()}
            if comp == "int":
                rec["gap_A"] = at.info["gap_A"]
            info["structures"][f"{comp}_{k}"] = rec
    wf.log(f"[build] {len(info['structures'])} cells in {d}")
    return info
