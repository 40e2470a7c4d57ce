"""After-run diagnostics of an MD run: the drift of the conserved energy per stage.

A symplectic integrator with a small enough timestep keeps its conserved quantity (NVE: the total energy;
Nosé–Hoover NVT and MTK NPT: the extended-system energy) bounded; a timestep too large for the potential's
stiffest motions makes it drift steadily. A stage whose conserved energy drifts by more than
:data:`DRIFT_WARN_MEV_ATOM_PS` (a linear fit over the stage's thermo rows, significant beyond
:data:`DRIFT_SIGMAS` standard errors) gets a warning naming the stage, the drift and the timestep. Langevin
stages (no conserved quantity) and temperature or pressure ramps (the target moves) are not judged.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DRIFT_WARN_MEV_ATOM_PS", "conserved_drift", "drift_warnings"]

#: the drift (meV/atom per ps) above which a stage is flagged: 0.04 k_B T per atom and ps at 300 K, i.e. the
#: run gains (NVE) or its thermostat removes (NVT) several k_B T per atom of spurious heat over 100 ps
DRIFT_WARN_MEV_ATOM_PS = 1.0
#: how many standard errors of the fitted slope the drift must exceed (thermal noise is not drift)
DRIFT_SIGMAS = 3.0
#: a stage needs this many thermo rows and this long (ps) to be judged
MIN_ROWS, MIN_TIME_PS = 10, 0.2


def _judged(stage) -> bool:
    ramp = stage.temperature_end_K is not None or getattr(stage, "pressure_end_bar_value", None) is not None
    return stage.ensemble in ("nve", "nvt", "npt") and not ramp


def conserved_drift(thermo: dict, stages, timestep_fs: float, n_atoms: int) -> list[dict]:
    """Per judged stage: ``{stage, name, ensemble, drift_meV_atom_ps, stderr_meV_atom_ps, rows}`` from the
    ``thermo`` columns (``step``, ``time_fs``, ``conserved_eV``; one system of ``n_atoms`` atoms) and the
    run's ``[[stage]]`` specs (user units)."""
    step = np.asarray(thermo.get("step", []), float)
    out, start = [], 0
    for k, s in enumerate(stages):
        n = s.n_steps(timestep_fs)
        lo, hi = start, start + n
        start = hi
        if not _judged(s):
            continue
        sel = (step >= lo) & (step <= hi)
        t_ps = np.asarray(thermo["time_fs"], float)[sel] / 1e3
        e = np.asarray(thermo["conserved_eV"], float)[sel] / n_atoms * 1e3  # meV/atom
        if len(t_ps) < MIN_ROWS or t_ps[-1] - t_ps[0] < MIN_TIME_PS or not np.all(np.isfinite(e)):
            continue
        A = np.vstack([t_ps - t_ps.mean(), np.ones_like(t_ps)]).T
        (slope, _), res, *_ = np.linalg.lstsq(A, e, rcond=None)
        dof = max(len(t_ps) - 2, 1)
        s2 = float(res[0]) / dof if len(res) else float(np.sum((e - A @ [slope, e.mean()]) ** 2)) / dof
        stderr = float(np.sqrt(s2 / np.sum((t_ps - t_ps.mean()) ** 2)))
        out.append({"stage": k + 1, "name": s.name, "ensemble": s.ensemble, "drift_meV_atom_ps": float(slope),
                    "stderr_meV_atom_ps": stderr, "rows": int(len(t_ps))})
    return out


def drift_warnings(thermo: dict, stages, timestep_fs: float, n_atoms: int) -> list[str]:
    """One line per stage whose conserved energy drifts beyond the threshold (see the module docstring)."""
    lines = []
    for d in conserved_drift(thermo, stages, timestep_fs, n_atoms):
        x = d["drift_meV_atom_ps"]
        if abs(x) > DRIFT_WARN_MEV_ATOM_PS and abs(x) > DRIFT_SIGMAS * d["stderr_meV_atom_ps"]:
            label = f"stage[{d['stage']}]" + (f" ({d['name']})" if d["name"] else "")
            lines.append(
                f"warning: {label}, {d['ensemble']}: the conserved energy drifts {x:+.3g} meV/atom/ps (more than "
                f"{DRIFT_WARN_MEV_ATOM_PS:g}): the timestep of {timestep_fs:g} fs is likely too large for this "
                "potential (halve it and compare), or the potential is extrapolating")
    return lines
