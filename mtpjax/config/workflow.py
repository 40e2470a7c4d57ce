"""The workflow file (``mtpjax run WORKFLOW.toml``): every table, key, default and check.

Units as LAMMPS/MLIP users give them: fs, ps, K, bar, Å, g/cm³. The defaults are the paper's protocol
(Wang, Aykol & Mueller, *Chem. Mater.* 2023); ``examples/quick.toml`` shrinks it to minutes and
``examples/paper.toml`` spells it out. The stages are :mod:`mtpjax.workflow.stages`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import Field, PrivateAttr, field_validator, model_validator

from mtpjax.config.base import (Float, Int, NonNegFloat, NonNegInt, PosFloat, PosInt, Table, check, parse,
                                require_folder, with_base)
from mtpjax.config.learn import (BootstrapSpec, LabelsSpec, LearnTrainSpec, PotentialSpec, check_active_init,
                                 check_species)
from mtpjax.config.md import MAX_STAGE_TEMPERATURE_K, PressureBar, StageTemperature
from mtpjax.config.reference import check_spec
from mtpjax.io.toml import read_toml
from mtpjax.errors import ConfigurationError

STAGES = ("build", "learn", "fit", "quench", "sweep", "analyze", "report")
#: the bulk compositions by formula (crystal references for amorphization energies)
COMPOSITIONS = {"lps": "Li3PS4", "lbo": "Li3B11O18"}
INIT_METHODS = ("keep", "orth", "mlip3", "same", "random")


class BuildSpec(Table):
    """``[build]``: the random starting cells (the interface stacks LBO on LPS along c)."""

    a_A: PosFloat = 12.0  # in-plane a = b of every cell
    lps_formula_units: PosInt = 12  # Li3PS4: 96 atoms
    lbo_formula_units: PosInt = 4  # Li3B11O18: 128 atoms
    lps_density_g_cm3: PosFloat = 1.677  # the paper's 12 × 12 × 14.87 Å cell
    lbo_density_g_cm3: PosFloat = 1.854  # the paper's 12 × 12 × 10.64 Å cell
    # "random": every atom packed at random (B–O coordination ≈ 1.5 to start with, −27 GPa by xTB for 32 atoms:
    # the cell collapses, then settles); "network": a B–O network, all O bridging, bridges between neighbouring
    # borons (mtpjax.builders.borate_network; minimised before the melt, see production.minimize_steps)
    lbo_builder: Literal["random", "network"] = "random"
    interface: bool = True
    gaps_A: list[PosFloat] = Field(default_factory=lambda: [1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5], min_length=1)
    min_cross_LiLi_A: PosFloat = 2.5


class WorkflowPotentialSpec(PotentialSpec):
    """``[potential]``: as the learn file's, level 12 by default; ``init`` an optional starting ``.mtp``
    (e.g. pre-fitted to ``learn.bootstrap.data``), ``""`` = untrained."""

    level: PosInt = 12
    init: str = ""


class WorkflowLabelsSpec(LabelsSpec):
    timeout_s: PosFloat = 3600.0


class WorkflowLearnTrainSpec(LearnTrainSpec):
    max_iter: NonNegInt = 300
    init_max_iter: Optional[NonNegInt] = 1000
    energy_weight: NonNegFloat = 100.0
    force_weight: NonNegFloat = 0.1
    stress_weight: NonNegFloat = 1.0


class WorkflowBootstrapSpec(BootstrapSpec):
    method: Literal["rattle", "relax", "md", "none"] = "md"
    md_steps: PosInt = 7500
    md_every: PosInt = 5


class LearnStageSpec(Table):
    """``[learn]``: learning on the fly on the built cells (:mod:`mtpjax.active.learn`)."""

    max_iterations: PosInt = 30
    # LOTF runs per structure (the paper: NVT, then NPT; "production": along the melt → quench → relax protocol
    # of [production], + NVT at the hottest sweep T for hot_ps)
    ensembles: list[Literal["nvt", "npt", "langevin", "production"]] = Field(
        default_factory=lambda: ["nvt", "npt"], min_length=1)
    hot_ps: NonNegFloat = 1.0
    walkers: Int = Field(1, ge=1)  # independent trajectories per system and iteration
    structures_per_composition: PosInt = 4
    temperature_K: PosFloat = 1000.0
    pressure_bar: PressureBar = 1.01325
    timestep_fs: PosFloat = 2.0
    steps: PosInt = 1_000_000  # target length without extrapolation (2 ns at 2 fs)
    tdamp_fs: PosFloat = 100.0
    pdamp_fs: PosFloat = 1000.0
    select_threshold: Float = Field(1.5, ge=1.0)
    break_threshold: Float = 10.0
    max_select: PosInt = 50
    candidate_every: PosInt = 10
    active_init: Union[PosFloat, str, None] = None  # None: MLIP-3's 1e-6 (nbh mode); "auto" regularised
    anchors_per_stage: NonNegInt = 0  # "production" LOTF: label n frames of every stage whatever their grade
    bootstrap: WorkflowBootstrapSpec = Field(default_factory=WorkflowBootstrapSpec)
    train: WorkflowLearnTrainSpec = Field(default_factory=WorkflowLearnTrainSpec)

    @field_validator("active_init")
    @classmethod
    def _active_init(cls, v):
        return check_active_init(v)

    @model_validator(mode="after")
    def _rules(self):
        check(self.break_threshold > self.select_threshold,
              f"need break_threshold > select_threshold ≥ 1 (got {self.select_threshold}, {self.break_threshold})")
        check(self.temperature_K < MAX_STAGE_TEMPERATURE_K, f"temperature_K = {self.temperature_K:g} K is too hot")
        if any(e != "production" for e in self.ensembles):
            check(self.candidate_every <= self.steps,
                  f"candidate_every ({self.candidate_every}) exceeds learn.steps ({self.steps}): no frame would "
                  "ever be a candidate")
        return self


class FitSpec(Table):
    """``[fit]``: one consolidated potential on every label of the learning stage."""

    max_iter: NonNegInt = 1000
    energy_weight: NonNegFloat = 100.0
    force_weight: NonNegFloat = 0.1
    stress_weight: NonNegFloat = 1.0
    valid_fraction: Float = Field(0.1, ge=0.0, lt=0.5)
    final_on_all: bool = True
    anchor_weight: Optional[NonNegFloat] = None  # None: as learn.train.anchor_weight
    # keep: pot_validated continues from the learned potential (fast; it has seen the validation labels, so its
    # validation errors are optimistic); mlip3 | orth | random | same: fitted from scratch (n_starts LM starts)
    # on the training split only, i.e. held-out validation errors
    init: Literal["keep", "orth", "mlip3", "same", "random"] = "keep"


class ProductionSpec(Table):
    """``[production]``: melt → linear quench → relax (NPT) of the production supercells."""

    supercell: bool = True  # 2×2×2 bulk, 2×2×1 interface
    timestep_fs: PosFloat = 2.0
    melt_K: PosFloat = 1000.0
    melt_ps: PosFloat = 20.0
    quench_end_K: StageTemperature = 300.0
    quench_ps: PosFloat = 2000.0  # 1000 → 300 K in 2 ns = 3.5e11 K/s
    relax_ps: PosFloat = 1000.0
    pressure_bar: PressureBar = 1.01325
    tdamp_fs: PosFloat = 100.0
    pdamp_fs: PosFloat = 1000.0
    barostat: Literal["iso", "aniso", "tri"] = "iso"  # LAMMPS npt iso / aniso / tri, learning included
    thermo_every: PosInt = 50
    traj_every: PosInt = 500
    # FIRE steps (atoms only, fixed cell, fmax minimize_fmax) on every starting cell before the hot NPT, with the
    # consolidated potential (and, for the learning, with potential.init when given), as a LAMMPS user runs
    # `minimize` first: built cells are not minima of any real potential; 0 = off
    minimize_steps: NonNegInt = 300
    minimize_fmax: PosFloat = 0.05  # eV/Å

    @model_validator(mode="after")
    def _rules(self):
        check(self.traj_every % self.thermo_every == 0,
              "production.traj_every must be a multiple of production.thermo_every")
        check(self.melt_K < MAX_STAGE_TEMPERATURE_K, f"melt_K = {self.melt_K:g} K is too hot")
        for k in ("melt_ps", "quench_ps", "relax_ps"):
            check(self.stage_steps(getattr(self, k)) > 0,
                  f"{k} = {getattr(self, k):g} ps is less than one time step of {self.timestep_fs:g} fs")
        return self

    def stage_steps(self, time_ps: float) -> int:
        """Time steps of a stage of ``time_ps`` (as the MD run file rounds them)."""
        return int(round(time_ps * 1000.0 / self.timestep_fs))


class SweepSpec(Table):
    """``[sweep]``: NVT at descending temperatures from the quenched cells (replicas batched)."""

    temperatures_K: list[PosFloat] = Field(default_factory=lambda: [720.0, 710.0, 700.0, 690.0], min_length=1)
    step_K: PosFloat = 10.0
    max_rounds: PosInt = 1  # extra rounds while the lowest T still shows hopping
    time_ps: PosFloat = 100_000.0
    timestep_fs: PosFloat = 2.0
    tdamp_fs: PosFloat = 100.0
    traj_every: PosInt = 500
    thermo_every: PosInt = 500
    hop_msd_A2: PosFloat = 9.0  # Li "hops" at T when its MSD at the end exceeds this (site distance²)

    @model_validator(mode="after")
    def _rules(self):
        check(self.traj_every % self.thermo_every == 0, "sweep.traj_every must be a multiple of sweep.thermo_every")
        check(max(self.temperatures_K) < MAX_STAGE_TEMPERATURE_K, "sweep.temperatures_K: too hot")
        check(round(self.time_ps * 1000.0 / self.timestep_fs) > 0,
              f"time_ps = {self.time_ps:g} ps is less than one time step of {self.timestep_fs:g} fs")
        return self


class AnalysisSpec(Table):
    """``[analysis]``: what the report computes from the production runs."""

    T0_K: PosFloat = 300.0
    site_distance_A: PosFloat = 3.0
    rdf_r_max_A: PosFloat = 6.0
    cutoffs_A: dict[str, PosFloat] = Field(default_factory=lambda: {"P-S": 2.6, "B-O": 2.0, "Li-S": 3.0,
                                                                   "Li-O": 2.6})
    crystals: dict[str, str] = Field(default_factory=dict)  # {"Li3PS4": "gamma.cif"} for amorphization energies
    relax_fraction: Float = Field(0.5, gt=0.0, le=1.0)  # last fraction of the 300 K NPT stage averaged
    reference_check: bool = False  # label the final quench frames with the reference (a DFT call per cell)
    reference_check_inherent: bool = True  # … and their inherent structures too (a second call per cell)

    @field_validator("cutoffs_A", mode="before")
    @classmethod
    def _cutoffs(cls, v):
        """Pairs given are added to (or replace) the default cut-offs."""
        return {"P-S": 2.6, "B-O": 2.0, "Li-S": 3.0, "Li-O": 2.6, **v} if isinstance(v, dict) else v

    @field_validator("crystals")
    @classmethod
    def _crystals(cls, v):
        for name in v:
            if name not in COMPOSITIONS.values():
                raise ValueError(f"unknown composition {name!r} (allowed: {', '.join(COMPOSITIONS.values())})")
        return v


class WorkflowConfig(Table):
    """A WORKFLOW.toml (see the module docstring)."""

    workdir: str = "workflow_out"
    seed: Int = 0
    title: str = "amorphous Li3PS4, Li3B11O18 and their interface"
    n_structures: PosInt = 4  # independent random cells per composition
    species: list[str] = Field(default_factory=lambda: ["Li", "B", "O", "P", "S"])  # MLIP type t ↔ species[t]
    build: BuildSpec = Field(default_factory=BuildSpec)
    potential: WorkflowPotentialSpec = Field(default_factory=WorkflowPotentialSpec)
    reference: dict = Field(default_factory=lambda: {"kind": "tblite", "method": "GFN1-xTB"})
    labels: WorkflowLabelsSpec = Field(default_factory=WorkflowLabelsSpec)
    learn: LearnStageSpec = Field(default_factory=LearnStageSpec)
    fit: FitSpec = Field(default_factory=FitSpec)
    production: ProductionSpec = Field(default_factory=ProductionSpec)
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    _base: Path = PrivateAttr(default=Path("."))
    _source: Optional[Path] = PrivateAttr(default=None)

    @field_validator("species")
    @classmethod
    def _species(cls, v):
        check_species(v)
        need = {"Li", "B", "O", "P", "S"}
        if not need <= set(v):
            raise ValueError(f"species must contain {sorted(need)} (got {v})")
        return v

    @field_validator("reference")
    @classmethod
    def _reference(cls, v):
        return check_spec(v)

    @model_validator(mode="after")
    def _rules(self):
        ln, p = self.learn, self.production
        if "production" in ln.ensembles:  # LOTF along melt → quench → relax (+ hot) at production.timestep_fs
            hot = ln.hot_ps if max(self.sweep.temperatures_K) > p.melt_K else 0.0
            check(hot == 0 or p.stage_steps(hot) > 0,
                  f"learn.hot_ps = {hot:g} ps is less than one time step of production.timestep_fs "
                  f"({p.timestep_fs:g} fs)")
            n = sum(p.stage_steps(t) for t in (p.melt_ps, p.quench_ps, p.relax_ps, hot))
            check(ln.candidate_every <= n,
                  f"learn.candidate_every ({ln.candidate_every}) exceeds the {n} steps of the production protocol "
                  "it learns along: no frame would ever be a candidate")
        return self

    def path(self, p) -> Path:
        """``p`` resolved against the workflow file's folder."""
        p = Path(p)
        return p if p.is_absolute() else self._base / p

    @property
    def workdir_path(self) -> Path:
        return self.path(self.workdir)

    @property
    def source(self) -> Optional[Path]:
        """The workflow file this config was read from (None when built in Python)."""
        return self._source

    def check_files(self) -> None:
        """Every file the workflow names exists (crystals, potential.init, learn.bootstrap.data); ``workdir``
        is not an existing file."""
        require_folder(self.workdir_path, f"workdir = {self.workdir!r}")
        for name, p in self.analysis.crystals.items():
            if not self.path(p).exists():
                raise ConfigurationError(f"analysis.crystals.{name}: file {self.path(p)} not found")
        if self.potential.init and not self.path(self.potential.init).exists():
            raise ConfigurationError(f"potential.init: file {self.path(self.potential.init)} not found")
        for f in self.learn.bootstrap.data:
            if not self.path(f).exists():
                raise ConfigurationError(f"learn.bootstrap.data: file {self.path(f)} not found")


def load_workflow(path, overrides=()) -> WorkflowConfig:
    """WORKFLOW.toml (+ ``section.key=value`` overrides), validated; its files exist."""
    path = Path(path)
    if not path.exists():
        raise ConfigurationError(f"{path}: workflow file not found")
    cfg = with_base(parse(WorkflowConfig, read_toml(path, overrides), path), path.resolve().parent)
    cfg._source = path.resolve()
    try:
        cfg.check_files()
    except ConfigurationError as e:
        raise ConfigurationError(f"{path}: {e}") from None
    return cfg
