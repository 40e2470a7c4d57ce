"""The conserved-energy drift warning of an MD run (issue #19): a timestep too large for the potential is
flagged per stage; a good one, a Langevin stage and a temperature ramp are not."""
import numpy as np
from ase.build import bulk

from mtpjax.config.md import StageSpec
from mtpjax.md.diagnostics import DRIFT_WARN_MEV_ATOM_PS, conserved_drift, drift_warnings
from mtpjax.md.run import run_md

from refdata import REF


def thermo_of(slope_meV_atom_ps, n_atoms=10, rows=101, dt_fs=1.0, every=10, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    step = np.arange(rows) * every
    t_fs = step * dt_fs
    e = n_atoms * 1e-3 * (slope_meV_atom_ps * t_fs / 1e3 + rng.normal(0, noise, rows))
    return {"step": step.astype(float), "time_fs": t_fs, "conserved_eV": -100.0 + e}


def test_drift_is_the_fitted_slope_and_only_steady_stages_are_judged():
    st = [StageSpec(ensemble="nvt", steps=1000, temperature_K=300)]
    d = conserved_drift(thermo_of(2.5), st, 1.0, 10)
    assert len(d) == 1 and abs(d[0]["drift_meV_atom_ps"] - 2.5) < 5 * d[0]["stderr_meV_atom_ps"]
    assert drift_warnings(thermo_of(2.5), st, 1.0, 10)[0].startswith("warning: stage[1], nvt: the conserved energy "
                                                                     "drifts +2.")
    assert drift_warnings(thermo_of(0.2), st, 1.0, 10) == []  # below the threshold
    assert drift_warnings(thermo_of(2.5, noise=50.0), st, 1.0, 10) == []  # not significant over thermal noise
    for other in (StageSpec(ensemble="langevin", steps=1000, temperature_K=300),
                  StageSpec(ensemble="nvt", steps=1000, temperature_K=300, temperature_end_K=600)):
        assert conserved_drift(thermo_of(5.0), [other], 1.0, 10) == []
    # two stages: each judged on its own rows
    two = [StageSpec(ensemble="nve", steps=500), StageSpec(ensemble="nvt", steps=500, temperature_K=300, name="hold")]
    th = thermo_of(0.0)
    late = th["step"] > 500
    th["conserved_eV"][late] += 10 * 1e-3 * 4.0 * (th["time_fs"][late] - 500) / 1e3
    w = drift_warnings(th, two, 1.0, 10)
    assert len(w) == 1 and w[0].startswith("warning: stage[2] (hold), nvt")
    assert DRIFT_WARN_MEV_ATOM_PS == 1.0


def test_a_too_large_timestep_is_flagged_in_the_run_log(tmp_path):
    """Cu at 1500 K with MLIP-2's trained level-8 MTP: 20 fs drifts ~7 meV/atom/ps (flagged), 4 fs does not."""
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    a.write(tmp_path / "cu.extxyz")
    logs = {}
    for dt in (20.0, 4.0):
        lines = []
        run_md({"structure": str(tmp_path / "cu.extxyz"), "potential": str(REF / "potentials/m2_l08_trained.mtp"),
                "elements": ["Cu", "Ag", "Au"], "timestep_fs": dt, "temperature_K": 1500, "seed": 1,
                "thermo_every": 2, "traj_every": 50, "checkpoint_every": 50,
                "stage": [{"ensemble": "nvt", "time_ps": 3.0, "temperature_K": 1500}]},
               output=tmp_path / f"dt{dt:g}", progress=False, log=lines.append)
        logs[dt] = [x for x in lines if "drifts" in x]
    assert len(logs[20.0]) == 1 and "the timestep of 20 fs is likely too large" in logs[20.0][0]
    assert logs[4.0] == []
