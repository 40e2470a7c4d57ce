"""WORKFLOW.toml: every key, its default and its validation.

Units as LAMMPS/MLIP users give them: fs, ps, K, bar, Å, g/cm³. A missing or
misspelt key is reported with the section and the allowed keys.
"""
from __future__ import annotations

from pathlib import Path

from ..active.learn import check_anchor_weight
from ..errors import ConfigurationError

#: the paper's protocol (Wang, Aykol & Mueller, Chem. Mater. 2023) as defaults;
#: ``examples/quick.toml`` shrinks it to minutes.
DEFAULTS = {
    "workdir": "workflow_out",
    "seed": 0,
    "title": "amorphous Li3PS4, Li3B11O18 and their interface",
    "n_structures": 4,  # independent random cells per composition
    "species": ["Li", "B", "O", "P", "S"],  # MLIP type t ↔ species[t]
    "build": {
        "a_A": 12.0,  # in-plane a = b of every cell (the interface stacks along c)
        "lps_formula_units": 12,  # Li3PS4: 96 atoms
        "lbo_formula_units": 4,  # Li3B11O18: 128 atoms
        "lps_density_g_cm3": 1.677,  # the paper's 12 × 12 × 14.87 Å cell
        "lbo_density_g_cm3": 1.854,  # the paper's 12 × 12 × 10.64 Å cell
        "lbo_builder": "random",  # "random": every atom packed at random (B–O coordination ≈ 1.5 to start with,
        # −27 GPa by xTB for 32 atoms: the cell collapses, then settles); "network": a B–O network, all O
        # bridging, bridges between neighbouring borons (mtpjax.build.borate_network; minimised before the
        # melt, see production.minimize_steps)
        "interface": True,
        "gaps_A": [1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5],
        "min_cross_LiLi_A": 2.5,
    },
    "potential": {"level": 12, "cutoff": 5.0, "min_dist": 1.5, "radial_basis_size": 8,
                  "init": ""},  # optional starting .mtp (e.g. pre-fitted to bootstrap.data); "" = untrained
    "reference": {"kind": "tblite", "method": "GFN1-xTB"},
    "labels": {"executor": "process", "max_workers": 1, "retries": 2, "timeout_s": 3600.0, "submitit": {}},
    "learn": {
        "max_iterations": 30,
        "ensembles": ["nvt", "npt"],  # LOTF runs per structure (the paper: NVT, then NPT; "production":
        # along the melt → quench → relax protocol of [production], + NVT at the hottest sweep T for hot_ps)
        "hot_ps": 1.0,
        "walkers": 1,  # independent trajectories per system and iteration (more candidates per retraining)
        "structures_per_composition": 4,
        "temperature_K": 1000.0,
        "pressure_bar": 1.01325,
        "timestep_fs": 2.0,
        "steps": 1_000_000,  # target length without extrapolation (2 ns at 2 fs)
        "tdamp_fs": 100.0,
        "pdamp_fs": 1000.0,
        "select_threshold": 1.5,
        "break_threshold": 10.0,
        "max_select": 50,
        "candidate_every": 10,
        "active_init": "auto",
        "anchors_per_stage": 0,  # "production" LOTF: label n frames of every stage whatever their grade
        "bootstrap": {"method": "md", "n_configs": 8, "rattle": 0.1, "strain": 0.03, "min_distance": 1.0, "md_steps": 7500,
                      "md_every": 5, "md_temperature_K": 1000.0, "relax_steps": 12, "relax_every": 1,
                      "relax_fmax": 0.5, "data": []},
        "train": {"max_iter": 300, "init_max_iter": 1000, "energy_weight": 100.0, "force_weight": 0.1,
                  "stress_weight": 1.0, "conv_tol": 1e-3, "optimizer": "lm", "n_starts": 4, "start_iter": 8,
                  "anchor_weight": 1.0},
    },
    "fit": {"max_iter": 1000, "energy_weight": 100.0, "force_weight": 0.1, "stress_weight": 1.0,
            "valid_fraction": 0.1, "final_on_all": True, "anchor_weight": None,
            "init": "keep"},  # keep: pot_validated continues from the learned potential (fast; it has seen the
    # validation labels, so its validation errors are optimistic); mlip3 | orth | random | same: fitted from scratch
    # (n_starts LM starts) on the training split only, i.e. held-out validation errors
    "production": {
        "supercell": True,  # 2×2×2 bulk, 2×2×1 interface
        "timestep_fs": 2.0,
        "melt_K": 1000.0,
        "melt_ps": 20.0,
        "quench_end_K": 300.0,
        "quench_ps": 2000.0,  # 1000 → 300 K in 2 ns = 3.5e11 K/s
        "relax_ps": 1000.0,
        "pressure_bar": 1.01325,
        "tdamp_fs": 100.0,
        "pdamp_fs": 1000.0,
        "barostat": "iso",  # iso | aniso | tri (LAMMPS npt iso / aniso / tri) for every NPT run, learning included
        "thermo_every": 50,
        "traj_every": 500,
        "minimize_steps": 300,  # FIRE steps (atoms only, fixed cell, fmax minimize_fmax) on every starting cell
        # before the hot NPT, with the consolidated potential (and, for the learning, with potential.init when
        # given), as a LAMMPS user runs `minimize` first: built cells are not minima of any real potential
        # (a B–O network cell at the glass density: tens of GPa, and the melt blows the cell open); 0 = off
        "minimize_fmax": 0.05,  # eV/Å
    },
    "sweep": {
        "temperatures_K": [720.0, 710.0, 700.0, 690.0],  # first round; more rounds go down by step_K
        "step_K": 10.0,
        "max_rounds": 1,  # extra rounds while the lowest T still shows hopping
        "time_ps": 100_000.0,
        "timestep_fs": 2.0,
        "tdamp_fs": 100.0,
        "traj_every": 500,
        "thermo_every": 500,
        "hop_msd_A2": 9.0,  # Li "hops" at T when its MSD at the end exceeds this (site distance²)
    },
    "analysis": {
        "T0_K": 300.0,
        "site_distance_A": 3.0,
        "rdf_r_max_A": 6.0,
        "cutoffs_A": {"P-S": 2.6, "B-O": 2.0, "Li-S": 3.0, "Li-O": 2.6},
        "crystals": {},  # {"Li3PS4": "gamma.cif", "Li3B11O18": "lbo.cif"} for amorphization energies
        "relax_fraction": 0.5,  # last fraction of the 300 K NPT stage averaged for densities/energies
        "reference_check": False,  # label the final quench frames with the reference (a DFT call per cell)
        "reference_check_inherent": True,  # … and their inherent structures too (a second call per cell)
    },
}

STAGES = ("build", "learn", "fit", "quench", "sweep", "analyze", "report")
COMPOSITIONS = {"lps": "Li3PS4", "lbo": "Li3B11O18"}
FREE_TABLES = {"reference", "submitit", "crystals", "cutoffs_A"}


def _merge(base: dict, new: dict, where: str) -> dict:
    from ..active.learn import _merge as merge

    return merge(base, new, where, FREE_TABLES, "workflow file", defaults_kept=("cutoffs_A",))


def load_workflow(path, overrides=()) -> dict:
    """Read and validate WORKFLOW.toml (+ ``section.key=value`` overrides) into a dict."""
    from ..config import read_toml

    path = Path(path)
    if not path.exists():
        raise ConfigurationError(f"{path}: workflow file not found")
    raw = read_toml(path, overrides)
    cfg = _merge(DEFAULTS, raw, "workflow file")
    cfg["_dir"] = str(path.resolve().parent)
    cfg["_path"] = str(path.resolve())
    validate(cfg)
    return cfg


def _resolve(cfg: dict, p) -> Path:
    """A path of the workflow file: absolute, or relative to the file's folder."""
    return Path(p) if Path(p).is_absolute() else Path(cfg["_dir"]) / p


def validate(cfg: dict) -> None:
    from ase.data import atomic_numbers

    def pos(section, key, integer=False):
        v = cfg[section][key] if section else cfg[key]
        name = f"{section}.{key}" if section else key
        try:
            ok = float(v) > 0 and (not integer or int(v) == v)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigurationError(f"{name} must be a positive {'integer' if integer else 'number'}, got {v!r}")

    pos(None, "n_structures", True)
    for s in cfg["species"]:
        if s not in atomic_numbers:
            raise ConfigurationError(f"species: unknown chemical symbol {s!r}")
    need = {"Li", "B", "O", "P", "S"}
    if not need <= set(cfg["species"]):
        raise ConfigurationError(f"species must contain {sorted(need)} (got {cfg['species']})")
    b = cfg["build"]
    for k in ("a_A", "lps_formula_units", "lbo_formula_units", "lps_density_g_cm3", "lbo_density_g_cm3"):
        pos("build", k, integer=k.endswith("units"))
    if b["lbo_builder"] not in ("network", "random"):
        raise ConfigurationError(f"build.lbo_builder = {b['lbo_builder']!r} (allowed: \"network\", \"random\")")
    ln = cfg["learn"]
    bad = [e for e in ln["ensembles"] if e not in ("nvt", "npt", "langevin", "production")]
    if bad or not ln["ensembles"]:
        raise ConfigurationError(f"learn.ensembles = {ln['ensembles']} (allowed: nvt, npt, langevin, production; "
                                 "at least one)")
    for k in ("temperature_K", "timestep_fs", "steps", "tdamp_fs", "pdamp_fs", "max_iterations",
              "structures_per_composition"):
        pos("learn", k)
    if not ln["break_threshold"] > ln["select_threshold"] >= 1.0:
        raise ConfigurationError("learn: need break_threshold > select_threshold ≥ 1 "
                                 f"(got {ln['select_threshold']}, {ln['break_threshold']})")
    for k in ("timestep_fs", "melt_K", "melt_ps", "quench_end_K", "quench_ps", "relax_ps", "tdamp_fs", "pdamp_fs",
              "thermo_every", "traj_every"):
        pos("production", k)
    pr = cfg["production"]
    if not (isinstance(pr["minimize_steps"], int) and pr["minimize_steps"] >= 0):
        raise ConfigurationError(f"production.minimize_steps must be an integer ≥ 0, got {pr['minimize_steps']!r}")
    pos("production", "minimize_fmax")
    if pr["barostat"] not in ("iso", "aniso", "tri"):
        raise ConfigurationError(f"production.barostat = {pr['barostat']!r} (allowed: iso, aniso, tri)")
    if int(pr["traj_every"]) % int(pr["thermo_every"]):
        raise ConfigurationError("production.traj_every must be a multiple of production.thermo_every")
    sw = cfg["sweep"]
    if not sw["temperatures_K"] or any(not float(t) > 0 for t in sw["temperatures_K"]):
        raise ConfigurationError(f"sweep.temperatures_K must be a non-empty list of positive K, got {sw['temperatures_K']}")
    for k in ("time_ps", "timestep_fs", "tdamp_fs", "traj_every", "thermo_every", "step_K", "max_rounds"):
        pos("sweep", k)
    if int(sw["traj_every"]) % int(sw["thermo_every"]):
        raise ConfigurationError("sweep.traj_every must be a multiple of sweep.thermo_every")
    check_anchor_weight(cfg["learn"]["train"]["anchor_weight"], "learn.train.anchor_weight")
    if cfg["fit"]["anchor_weight"] is not None:  # None: as learn.train.anchor_weight
        check_anchor_weight(cfg["fit"]["anchor_weight"], "fit.anchor_weight")
    for k in ("reference_check", "reference_check_inherent"):
        if not isinstance(cfg["analysis"][k], bool):
            raise ConfigurationError(f"analysis.{k} must be true or false, got {cfg['analysis'][k]!r}")
    from ..train.init import INIT_METHODS

    if cfg["fit"]["init"] not in INIT_METHODS:
        raise ConfigurationError(f"fit.init = {cfg['fit']['init']!r} (allowed: {', '.join(INIT_METHODS)})")
    fv = float(cfg["fit"]["valid_fraction"])
    if not 0.0 <= fv < 0.5:
        raise ConfigurationError(f"fit.valid_fraction must be in [0, 0.5), got {fv}")
    for name, p in cfg["analysis"]["crystals"].items():
        if name not in COMPOSITIONS.values():
            raise ConfigurationError(f"analysis.crystals: unknown composition {name!r} "
                                     f"(allowed: {', '.join(COMPOSITIONS.values())})")
        q = _resolve(cfg, p)
        if not q.exists():
            raise ConfigurationError(f"analysis.crystals.{name}: file {q} not found")
    ini = cfg["potential"]["init"]
    if ini:
        q = _resolve(cfg, ini)
        if not q.exists():
            raise ConfigurationError(f"potential.init: file {q} not found")
    data = cfg["learn"]["bootstrap"]["data"]
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigurationError(f"learn.bootstrap.data must be a list of file names, got {data!r}")
    for f in data:
        q = _resolve(cfg, f)
        if not q.exists():
            raise ConfigurationError(f"learn.bootstrap.data: file {q} not found")
    from ..active.reference import check_spec

    cfg["reference"] = check_spec(cfg["reference"])
