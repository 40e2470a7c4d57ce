"""The workflow's report: ``report/report.md`` + PNG figures + ``report/report.json``.

Laid out like figures 3–9 of Wang, Aykol & Mueller (Chem. Mater. 2023):
learning and validation, RDF/CN, densities and BO4 fractions, Arrhenius
plots with σ(300 K), interface diffusion parallel/normal, GII vs energy,
and the Li displacement histogram across the interface. Every number comes
from ``analyze/results.json``; the paper's values are shown beside ours.
"""
from __future__ import annotations

import json
import shutil

import numpy as np

from mtpjax.io.atomic import atomic_write_json
from mtpjax.workflow.paper import COLORS, COMP_NAMES, PAPER, PAPER_EA_EV, PAPER_GII, PAPER_TABLE
from mtpjax.plotting import pyplot, save



def _f(x, fmt="{:.3g}"):
    return "—" if x is None else fmt.format(x)


def _pm(d, fmt="{:.3g}"):
    if not d or d.get("mean") is None:
        return "—"
    return f"{fmt.format(d['mean'])} ± {fmt.format(d['std'] or 0.0)}"


def _copy_learning_figures(wf, d, figs: dict) -> None:
    """Fig. 3: learning + parity + learning curve, copied from the learn/fit stages when present."""
    for name, src in (("fig3a_learning.png", wf.workdir / "learn" / "summary.png"),
                      ("fig3b_parity.png", wf.workdir / "fit" / "parity.png"),
                      ("fig3c_learning_curve.png", wf.workdir / "fit" / "learning_curve.png")):
        if src.exists():
            shutil.copy(src, d / name)
            figs[name] = name


def _fig4_rdf(plt, res: dict, comps: list, d) -> str:
    """Fig. 4: g(r) per pair and the running coordination number (dotted), one panel per composition."""
    fig, axes = plt.subplots(1, len(comps), figsize=(4.5 * len(comps), 3.6), squeeze=False)
    for ax, comp in zip(axes[0], comps):
        rd = res["compositions"][comp]["rdf"]
        ax2 = ax.twinx()
        for p, g in rd["g"].items():
            (ln,) = ax.plot(rd["r_A"], g, label=p)
            ax2.plot(rd["edges_A"][1:], rd["cn"][p], ":", color=ln.get_color())
        ax.set_title(COMP_NAMES[comp])
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r)")
        ax2.set_ylabel("CN(r) (dotted)")
        ax2.set_ylim(0, 12)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, d / "fig4_rdf.png", dpi=100)
    return "fig4_rdf.png"


def _fig5_density_bo4(plt, res: dict, comps: list, d) -> str:
    """Fig. 5: densities (g/cm³, paper's dashed) and BO4 fractions bulk vs interface."""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    dens = [res["compositions"][c]["density_g_cm3"] for c in comps]
    ax[0].bar(range(len(comps)), [x["mean"] for x in dens], yerr=[x["std"] for x in dens], capsize=4,
              color=[COLORS[c] for c in comps], label="this run")
    for i, c in enumerate(comps):
        if c in PAPER["density_g_cm3"]:
            ax[0].plot([i - 0.4, i + 0.4], [PAPER["density_g_cm3"][c]] * 2, "k--", label="paper" if i == 0 else None)
    ax[0].set_xticks(range(len(comps)), [COMP_NAMES[c].replace(" interface", "\ninterface") for c in comps],
                     fontsize=8)
    ax[0].set_ylabel("density (g/cm³)")
    ax[0].legend()
    bo = [(c, res["compositions"][c].get("BO4_fraction")) for c in comps if res["compositions"][c].get("BO4_fraction")]
    if bo:
        ax[1].bar(range(len(bo)), [x["mean"] or 0 for _, x in bo], yerr=[x["std"] or 0 for _, x in bo], capsize=4,
                  color=[COLORS[c] for c, _ in bo])
        ax[1].set_xticks(range(len(bo)), ["bulk LBO" if c == "lbo" else "interface" for c, _ in bo])
        ax[1].axhline(0.26, color="k", ls="--", lw=1, label="paper bulk 0.26")
        ax[1].axhline(0.22, color="gray", ls=":", lw=1, label="paper interface 0.22")
        ax[1].set_ylabel("BO4 / (BO3 + BO4)")
        ax[1].legend(fontsize=7)
    fig.tight_layout()
    save(fig, d / "fig5_density_bo4.png", dpi=100)
    return "fig5_density_bo4.png"


def _arrhenius_points(ax, dd: dict, c: str, label: str, color) -> None:
    """log₁₀ D against 1000/T with its error bars; replicas without Li hopping as crosses."""
    kD, kE = ("D_cm2_s", "D_err_cm2_s") if c == "total" else (f"D_{c}_cm2_s", f"D_{c}_err_cm2_s")
    pts = [r for r in dd["rows"] if r.get(kD, 0) > 0]
    if pts:
        T = np.array([r["T_K"] for r in pts])
        D = np.array([r[kD] for r in pts])
        E = np.array([r[kE] for r in pts])
        hop = np.array([r["hopping"] for r in pts])
        lo = np.log10(D) - np.log10(np.maximum(D - E, D * 1e-3))
        hi = np.log10(D + E) - np.log10(D)
        ax.errorbar(1000 / T[hop], np.log10(D[hop]), yerr=[lo[hop], hi[hop]], fmt="o", capsize=3, color=color,
                    label=label)
        if (~hop).any():
            ax.plot(1000 / T[~hop], np.log10(D[~hop]), "x", color=color)


def _arrhenius_fit_line(ax, fit: dict, label: str, T0: float, color, paper_ea=None) -> None:
    """The fitted line ln D = ln D₀ − E_a/kT down to T0 (dashed below the simulated range) and the
    extrapolated D(T0) with its range (open square), in the series' colour; the paper's E_a in the legend."""
    Tl = np.linspace(T0, max(fit["T_K"]), 50)
    x = 1 / (8.617333262e-5 * Tl)
    y = np.log(fit["D0_cm2_s"]) - fit["Ea_eV"] * x
    paper = f" (paper {paper_ea:.2f})" if paper_ea is not None else ""
    ax.plot(1000 / Tl, y / np.log(10), "-", lw=1, color=color,
            label=f"{label}: E$_a$ {fit['Ea_eV']:.2f}±{fit['Ea_err_eV']:.2f} eV{paper}")
    r = fit["D_T0_range_cm2_s"]
    ax.errorbar([1000 / T0], [np.log10(fit["D_T0_cm2_s"])],
                yerr=[[np.log10(fit["D_T0_cm2_s"] / r[0])], [np.log10(r[1] / fit["D_T0_cm2_s"])]],
                fmt="s", mfc="none", capsize=3, color=color)


def _arrhenius_figure(plt, res: dict, keys: list, T0: float, path) -> None:
    """Figs. 6/7: an Arrhenius plot of the (composition, direction) pairs ``keys``."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for comp, c in keys:
        dd = res["diffusion"][comp]
        fit = dd.get(f"arrhenius_{c}", {})
        label = f"{COMP_NAMES[comp]} {c}" if c != "total" else COMP_NAMES[comp]
        color = COLORS[(comp, c)] if (comp, c) in COLORS else COLORS[comp]
        _arrhenius_points(ax, dd, c, label, color)
        if "Ea_eV" in fit:
            _arrhenius_fit_line(ax, fit, label, T0, color, PAPER_EA_EV.get((comp, c)))
    ax.set_xlabel("1000/T (1/K)")
    ax.set_ylabel("log$_{10}$ D$_{Li}$ (cm²/s)")
    ax.set_title(f"open squares: D({T0:g} K) extrapolated; x: no Li hopping", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path, dpi=100)


def _fig8_gii_energy(plt, res: dict, comps: list, d) -> str:
    """Fig. 8: GII vs energy per atom (frames of the 300 K NPT stage)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for comp in comps:
        xs, ys = [], []
        for r in res["compositions"][comp]["per_structure"]:
            xs += r["gii"]["per_frame"]
            ys += r["gii"]["epot_per_atom"]
        ax.plot(xs, ys, ".", color=COLORS[comp], label=COMP_NAMES[comp])
    ax.axvspan(*PAPER_GII, color="0.85", zorder=0, label=f"paper (LOTF) {PAPER_GII[0]}–{PAPER_GII[1]} v.u.")
    ax.set_xlabel("GII (v.u.)")
    ax.set_ylabel("E$_{pot}$ (eV/atom)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, d / "fig8_gii_energy.png", dpi=100)
    return "fig8_gii_energy.png"


def _fig9_displacement(plt, h: dict, d) -> str:
    """Fig. 9: histogram of the Li displacement along the interface normal."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    e = np.asarray(h["edges_A"])
    ax.bar(0.5 * (e[1:] + e[:-1]), h["counts"], width=np.diff(e), alpha=0.8, color=COLORS["int"])
    ax.set_xlabel("Li displacement along the interface normal (Å)")
    ax.set_ylabel("Li atoms (count)")
    ax.set_title(f"interface, {h['T_K']:g} K")
    fig.tight_layout()
    save(fig, d / "fig9_displacement.png", dpi=100)
    return "fig9_displacement.png"


def figures(res: dict, wf, d) -> dict:
    """Draw (or copy) the report's figures into ``d``; returns {file name: file name} in drawing order."""
    plt = pyplot()
    figs = {}
    comps = list(res["compositions"])
    _copy_learning_figures(wf, d, figs)
    for draw in (_fig4_rdf, _fig5_density_bo4):
        name = draw(plt, res, comps, d)
        figs[name] = name
    # Fig 6/7: Arrhenius (total per composition; interface parallel vs normal)
    for fname, keys in (("fig6_arrhenius.png", [(c, "total") for c in comps]),
                        ("fig7_interface_diffusion.png", [("int", "parallel"), ("int", "normal")] if "int" in comps
                         else [])):
        if keys:
            _arrhenius_figure(plt, res, keys, float(wf.cfg.analysis.T0_K), d / fname)
            figs[fname] = fname
    name = _fig8_gii_energy(plt, res, comps, d)
    figs[name] = name
    h = res.get("displacement")
    if h:
        name = _fig9_displacement(plt, h, d)
        figs[name] = name
    return figs


# ------------------------------------------------------------------ report sections (lists of Markdown lines)
def _header(wf) -> list:
    """Title, workflow file and work folder, and what the reference labels make the numbers comparable with."""
    c = wf.cfg
    L = [f"# mtpjax workflow report: {c.title}", ""]
    L += [f"Workflow file: `{c.source or ''}`; work folder `{wf.workdir}`.", ""]
    ref = c.reference
    rname = ref.get("method") or ref.get("factory") or ""
    L += [f"> **Reference labels: {ref.get('kind')} {rname}**, {c.n_structures} structure(s) per "
          f"composition, MTP level {c.potential.level}. The numbers below are what this run computed; "
          "they are comparable with the paper's (PBE/VASP, 96–128-atom cells, ns runs) only when this workflow is run "
          "with the paper's settings (`examples/paper.toml`). A quick run (tiny cells, xTB, ps) checks that every "
          "stage works and that the physics is sane, not the paper's values.", ""]
    return L


def _stages(wf) -> list:
    """The stages and their wall times."""
    L = ["## Stages", "", "| stage | wall time (s) |", "|---|---|"]
    for s in ("build", "learn", "fit", "quench", "sweep", "analyze"):
        m = wf.done(s)
        L.append(f"| {s} | {_f(m and m.get('wall_s'), '{:.1f}')} |")
    L.append("")
    return L


def check_result(chk: dict) -> str:
    """PASS, FAIL or 'not checked' of one check."""
    return "not checked" if chk["passed"] is None else ("PASS" if chk["passed"] else "FAIL")


def _check_value(v) -> str:
    if isinstance(v, (int, float)) or v is None:
        return _f(v)
    if isinstance(v, dict) and "diff_mJ_m2" in v:
        return (f"γ_MTP {v['mtp_mJ_m2']:.0f}, γ_ref {v['ref_mJ_m2']:.0f}, Δ {v['diff_mJ_m2']:.0f} ± "
                f"{v['sigma_mJ_m2']:.0f} mJ/m² ({v['n_cells']} cells)")
    if isinstance(v, dict):
        return f"E_a = {_f(v.get('Ea_eV'))} eV"
    return str(v)


def _sanity(res: dict) -> list:
    """The checks with PASS / FAIL / not checked, physics (what the glass is) apart from fidelity (how closely
    the potential follows its reference)."""
    L = ["## Checks", "",
         "*Physics* checks test the result (structure, density, transport); *fidelity* checks test how closely "
         "the MTP follows the reference it was trained on. A check that this run's scale cannot decide is "
         "reported as *not checked*, with the reason.", ""]
    for kind in ("physics", "fidelity"):
        rows = [c for c in res["sanity"] if c.get("kind", "physics") == kind]
        if not rows:
            continue
        L += [f"### {kind.capitalize()}", "", "| check | value | expected | result |", "|---|---|---|---|"]
        for chk in rows:
            result = check_result(chk) + (f": {chk['reason']}" if chk.get("reason") else "")
            cells = (chk["check"], _check_value(chk["value"]), chk["expected"], result)
            L.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        L.append("")
    return L


def _fit_errors(fit: dict) -> list:
    """Training/validation errors of the validated potential and how the production potential was fitted."""
    vm = fit.get("valid_metrics") or {}
    tm = fit.get("train_metrics") or {}
    L = ["| set | configurations | E RMSE (meV/atom) | E MAE (meV/atom) | F RMSE (eV/Å) | F MAE (eV/Å) |",
         "|---|---|---|---|---|---|"]
    for name, m, n in (("train", tm, fit.get("n_train")), ("validation", vm, fit.get("n_valid"))):
        if m:
            L.append(f"| {name} | {n} | {_f(1e3 * m.get('energy_rmse', np.nan), '{:.2f}')} | "
                     f"{_f(1e3 * m.get('energy_mae', np.nan), '{:.2f}')} | "
                     f"{_f(m.get('force_rmse'), '{:.3f}')} | {_f(m.get('force_mae'), '{:.3f}')} |")
    fa = fit.get("final_on_all")
    if fa:
        m = fa.get("metrics") or {}
        held_out = fit.get("init", "keep") != "keep"
        L += ["", "The errors above are those of `fit/pot_validated.mtp`, trained without the validation set "
              + (f"from scratch (`fit.init = \"{fit['init']}\"`): held-out errors. " if held_out else
                 "but continued from the learned potential, which was fitted to every label, so the validation "
                 "errors are optimistic (`fit.init = \"mlip3\"` fits from scratch for held-out errors; the "
                 "reference check on the production frames below is out of sample). ")
              + f"The production potential `fit/pot.mtp` continued from it on all {fa['n_configs']} configurations "
              f"({fa['iterations']} iterations; E RMSE {_f(1e3 * m.get('energy_rmse', np.nan), '{:.2f}')} meV/atom, "
              f"F RMSE {_f(m.get('force_rmse'), '{:.3f}')} eV/Å on them)."]
    L += ["", "Paper (PBE): MAE ≈ 4 meV/atom, 0.24 eV/Å.", ""]
    return L


def _learning(learn: dict, fit: dict, figs: dict) -> list:
    """Fig. 3: learning on the fly, the consolidated potential's errors and the learning figures."""
    L = ["## Learning on the fly and the consolidated potential (Fig. 3)", ""]
    if learn:
        L.append(f"LOTF: {learn.get('iterations')} iterations, {learn.get('labels')} labels "
                 f"({learn.get('labels_failed')} failed); stop: {learn.get('stop_reason')}. Time: " +
                 ", ".join(f"{k} {v:.0f} s" for k, v in (learn.get("timing_s") or {}).items()) + ".")
        L.append("")
    if fit:
        L += _fit_errors(fit)
    for f in ("fig3a_learning.png", "fig3b_parity.png", "fig3c_learning_curve.png"):
        if f in figs:
            L.append(f"![{f}]({f})")
    L.append("")
    return L


def _extrapolation(ex: dict) -> list:
    """Extrapolation grades γ of the production MD frames (quench, sweep)."""
    L = [f"Extrapolation grade γ ({ex['mode']} mode) of the production MD frames with respect to the "
         f"consolidated potential's active set (`fit/pot.almtp`): γ ≤ 1 interpolates, the learning selected "
         f"above {ex['select_threshold']:g} and stopped MD above {ex['break_threshold']:g}.", "",
         "| MD | frames | max γ | fraction γ > select | fraction γ > break |", "|---|---|---|---|---|"]
    for k in ("quench", "sweep"):
        if k in ex:
            v = ex[k]
            L.append(f"| {k} | {v['n_frames']} | {v['max']:.3g} | {v['frac_above_select']:.3f} | "
                     f"{v['frac_above_break']:.3f} |")
    L += ["", "Per run in results.json (`extrapolation.runs`).", ""]
    return L


def _reference_inherent(ri: dict) -> list:
    """The reference check on the inherent structures (the final frames relaxed at 0 K with the MTP)."""
    return ["", f"The same frames relaxed at 0 K with the MTP in their mean 300 K cell (inherent structures, "
            f"`analyze/inherent/`), "
            f"reference single points: RMS E_MTP − E_ref {ri['dE_rms_meV_atom']:.1f} meV/atom (max "
            f"{ri['dE_max_meV_atom']:.1f})"
            + (f"; interface energy {_pm(ri['interface_gamma_mJ_m2']['ref'])} mJ/m² with reference energies, "
               f"{_pm(ri['interface_gamma_mJ_m2']['mtp'])} mJ/m² with the MTP's."
               if ri.get("interface_gamma_mJ_m2") else ".")]


def _reference_check(rc: dict) -> list:
    """The reference calculator on the final frame of every quench run, against the MTP."""
    L = ["The reference calculator on the final frame of every quench run (the structures the numbers above "
         "and below come from):", "",
         "| frame | atoms | E_MTP − E_ref (meV/atom) | F RMSE (eV/Å) | F RMS of the reference (eV/Å) |",
         "|---|---|---|---|---|"]
    for k, v in rc["frames"].items():
        L.append(f"| {k} | {v['natoms']} | {v['dE_meV_atom']:.1f} | {v['F_rmse_eV_A']:.3f} | "
                 f"{v['F_rms_ref_eV_A']:.3f} |")
    if rc.get("failed"):
        errs = rc.get("errors", {})
        L.append("| failed labels | " + ", ".join(f"{k} ({errs.get(k, '?')})" for k in rc["failed"]) + " | | | |")
    g = rc.get("interface_gamma_mJ_m2")
    if g:
        L += ["", f"Interface energy from these single frames: {_pm(g['ref'])} mJ/m² with reference energies, "
              f"{_pm(g['mtp'])} mJ/m² with the MTP's (paper, PBE: 620 mJ/m²)."]
    ri = rc.get("inherent")
    if ri and ri.get("frames"):
        L += _reference_inherent(ri)
    L.append("")
    return L


def _trust(res: dict) -> list:
    """How far to trust the numbers: grades of the production MD and the reference on its final frames."""
    ex, rc = res.get("extrapolation") or {}, res.get("reference_check")
    L = []
    if ex or rc:
        L += ["## How far to trust the numbers", ""]
    if ex:
        L += _extrapolation(ex)
    if rc:
        L += _reference_check(rc)
    return L


def _structure(res: dict, cutoffs: dict) -> list:
    """Figs. 4–5: the structure table (density, E_pot, CN, BO4 fraction, GII) at 300 K, 1 atm."""
    L = ["## Structure at 300 K, 1 atm (Figs. 4–5)", "",
         "| composition | atoms | density (g/cm³) | E_pot (eV/atom) | P–S CN | B–O CN | BO4/(BO3+BO4) | GII (v.u.) |",
         "|---|---|---|---|---|---|---|---|"]
    for comp in res["compositions"]:
        r = res["compositions"][comp]
        cn = r["cn"]
        L.append(f"| {COMP_NAMES[comp]} | {r['per_structure'][0]['natoms']} | {_pm(r['density_g_cm3'])} | "
                 f"{_pm(r['epot_eV_per_atom'], '{:.4f}')} | "
                 f"{_pm(cn['P-S']['cutoff']) if 'P-S' in cn else '—'} | "
                 f"{_pm(cn['B-O']['cutoff']) if 'B-O' in cn else '—'} | {_pm(r.get('BO4_fraction'))} | "
                 f"{_pm(r['gii'])} |")
    L += ["", f"CN: running coordination number within {cutoffs.get('P-S')} Å (P–S) and {cutoffs.get('B-O')} Å "
          "(B–O), mean ± std over structures; the first minima of g(r) and the CN there are in results.json.", "",
          "![fig4](fig4_rdf.png)", "", "![fig5](fig5_density_bo4.png)", ""]
    return L


def _energetics(res: dict) -> list:
    """Interface energy (thermal and inherent), left-out inherent structures, amorphization energies; Fig. 8."""
    en = res["energetics"]
    L = ["## Energetics", ""]
    if en.get("interface"):
        L.append(f"Interface energy γ = (E_int − N_A E_A − N_B E_B) / 2A = {_pm(en['interface']['gamma_mJ_m2'])} "
                 f"mJ/m² ({_pm(en['interface']['gamma_meV_A2'])} meV/Å²); paper 620 mJ/m².")
    if en.get("interface_inherent"):
        L.append(f"From the inherent structures (the final frames relaxed at 0 K with the MTP in their mean "
                 f"300 K cell; no thermal noise): γ = {_pm(en['interface_inherent']['gamma_mJ_m2'])} mJ/m².")
    bad = {k: v.get("failed") or v["left_out"] for k, v in (res.get("inherent") or {}).items()
           if "failed" in v or "left_out" in v}
    if bad:
        L.append("Inherent structures left out (the MTP's relaxation left the trained domain): "
                 + "; ".join(f"{k}: {m}" for k, m in bad.items()) + ".")
    if en.get("amorphization_meV_atom"):
        for k, v in en["amorphization_meV_atom"].items():
            L.append(f"Amorphization energy {k}: {_pm(v)} meV/atom.")
    else:
        L.append("Amorphization energies: no crystal references given (`analysis.crystals`).")
    L += ["", "![fig8](fig8_gii_energy.png)", ""]
    return L


def _diffusion(res: dict, figs: dict) -> list:
    """Figs. 6–7: activation energies, D and σ at 300 K per composition and direction."""
    L = ["## Li diffusion and conductivity (Figs. 6–7)", "",
         "| composition | direction | E_a (eV) | D(300 K) (cm²/s) | σ(300 K) (mS/cm) | σ range (mS/cm) | hopping replicas |",
         "|---|---|---|---|---|---|---|"]
    for comp in res["compositions"]:
        dd = res["diffusion"][comp]
        for cdir in ("total", "parallel", "normal"):
            fit_ = dd.get(f"arrhenius_{cdir}")
            if fit_ is None:
                continue
            if "Ea_eV" not in fit_:
                L.append(f"| {comp} | {cdir} | — ({fit_.get('error')}) | | | | {dd['n_hopping']} |")
                continue
            rng = fit_["sigma_T0_range_mS_cm"]
            L.append(f"| {comp} | {cdir} | {fit_['Ea_eV']:.3f} ± {fit_['Ea_err_eV']:.3f} | {fit_['D_T0_cm2_s']:.3g} | "
                     f"{fit_['sigma_T0_mS_cm']:.3g} | [{rng[0]:.3g}, {rng[1]:.3g}] | {dd['n_hopping']} |")
    L += ["", "Errors: He et al. (2018) variance of each D; weighted Arrhenius fit; σ by Nernst–Einstein (Haven "
          "ratio 1) with the full-covariance range. Crosses in the figure: replicas without Li hopping "
          "(left out of the fit).", "", "![fig6](fig6_arrhenius.png)", ""]
    if "fig7_interface_diffusion.png" in figs:
        L += ["![fig7](fig7_interface_diffusion.png)", ""]
    return L


def _displacement(figs: dict) -> list:
    """Fig. 9: the Li displacement across the interface (when drawn)."""
    if "fig9_displacement.png" in figs:
        return ["## Li displacement across the interface (Fig. 9)", "", "![fig9](fig9_displacement.png)", ""]
    return []


def _paper() -> list:
    """The paper's values (PBE) for comparison."""
    L = ["## The paper's values (PBE, for comparison)", "", "| quantity | paper |", "|---|---|"]
    return L + [f"| {a} | {b} |" for a, b in PAPER_TABLE] + [""]


def write_report(wf) -> dict:
    """Write ``report/report.md``, the figures and ``report/report.json`` from ``analyze/results.json``.

    Returns ``{"report": path of report.md, "figures": sorted figure file names}``.
    """
    d = wf.workdir / "report"
    d.mkdir(exist_ok=True)
    res = json.loads((wf.workdir / "analyze" / "results.json").read_text())
    learn, fit = wf.done("learn") or {}, wf.done("fit") or {}
    figs = figures(res, wf, d)
    L = (_header(wf) + _stages(wf) + _sanity(res) + _learning(learn, fit, figs) + _trust(res)
         + _structure(res, wf.cfg.analysis.cutoffs_A) + _energetics(res) + _diffusion(res, figs)
         + _displacement(figs) + _paper())
    (d / "report.md").write_text("\n".join(L))
    atomic_write_json(d / "report.json", {"results": res, "learn": learn, "fit": fit, "figures": figs,
                                     "stages": {s: wf.done(s) for s in ("build", "quench", "sweep")}})
    wf.log(f"[report] {d / 'report.md'} ({len(figs)} figures); sanity checks: " +
           ", ".join(f"{c['check']}: {check_result(c)}" for c in res["sanity"]))
    return {"report": str(d / "report.md"), "figures": sorted(figs)}
