"""The learning-on-the-fly file (``mtpjax learn LEARN.toml``): every table, key, default and check.

Units as MLIP/LAMMPS users give them (fs, K, bar, Å). The loop itself is :mod:`mtpjax.active.learn`. Each
``[[system]]`` may override keys of ``[md]`` and ``[active]`` for itself (``md = {temperature_K = 900.0}``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
from ase.data import atomic_numbers
from ase.symbols import string2symbols
from pydantic import Field, PrivateAttr, field_validator, model_validator

from mtpjax.config.base import (Float, Int, NonNegFloat, NonNegInt, PosFloat, PosInt, Table, check, parse,
                                require_file, require_folder, with_base)
from mtpjax.config.md import MAX_STAGE_TEMPERATURE_K, PressureBar, StageSpec, StageTemperature
from mtpjax.config.reference import check_spec
from mtpjax.errors import ConfigurationError
from mtpjax.io.structure import lattice_problem
from mtpjax.io.toml import read_toml


def check_species(species: list[str]) -> list[str]:
    """Chemical symbols, known and unique (type t ↔ species[t])."""
    for s in species:
        if s not in atomic_numbers:
            raise ValueError(f"unknown chemical symbol {s!r}")
    if len(set(species)) != len(species):
        raise ValueError(f"species must be unique, got {species}")
    return species


def check_active_init(v):
    """``active.init``: a number > 0 (MLIP-3's regularisation), ``"auto"`` or ``"auto:<scale>"``."""
    if isinstance(v, str) and v:
        head, _, scale = v.partition(":")
        ok = head == "auto"
        if ok and scale:
            try:
                ok = float(scale) > 0
            except ValueError:
                ok = False
        if not ok:
            raise ValueError(f"init = {v!r} (allowed: a number > 0, e.g. 1e-6 as MLIP-3, or \"auto\" / "
                             "\"auto:<scale>\" for a regularised start)")
    return v


def check_lattice(cell) -> None:
    """Three lattice vectors (Å rows), none zero, not linearly dependent (for model validators)."""
    problem = lattice_problem(cell)
    if problem:
        raise ValueError(f"cell: {problem}")


class PotentialSpec(Table):
    """``[potential]``: the MTP to learn (a fresh level-``level`` potential, or ``init``, a starting file)."""

    level: PosInt = 8
    cutoff: PosFloat = 5.0
    min_dist: PosFloat = 1.5
    radial_basis_size: Int = Field(8, ge=2)
    init: Optional[str] = None

    @model_validator(mode="after")
    def _rules(self):
        check(self.level % 2 == 0 and 2 <= self.level <= 28, f"level must be even, 2 … 28, got {self.level}")
        check(self.min_dist < self.cutoff, f"min_dist ({self.min_dist} Å) must be below cutoff ({self.cutoff} Å)")
        return self


class LabelsSpec(Table):
    """``[labels]``: how reference jobs run (executor, parallel jobs, retries, timeout in s)."""

    executor: Literal["process", "submitit", "submitit-local", "inline"] = "process"
    max_workers: PosInt = 1
    retries: NonNegInt = 2
    timeout_s: PosFloat = 1800.0
    backoff_s: NonNegFloat = 1.0
    min_wall_s: NonNegFloat = 0.0
    submitit: dict = Field(default_factory=dict)


class LearnTrainSpec(Table):
    """``[train]``: the retraining of every iteration (MLIP's loss weights; LM steps from the last potential)."""

    max_iter: NonNegInt = 300
    energy_weight: NonNegFloat = 1.0
    force_weight: NonNegFloat = 0.01
    stress_weight: NonNegFloat = 0.001
    weighting: Literal["vibrations", "structures", "molecules"] = "vibrations"
    conv_tol: NonNegFloat = 1e-3
    init_max_iter: Optional[NonNegInt] = None
    optimizer: Literal["lm", "lbfgs", "adam"] = "lm"
    anchor_weight: NonNegFloat = 1.0
    n_starts: PosInt = 4
    start_iter: NonNegInt = 8


class ActiveSpec(Table):
    """``[active]``: the D-optimality grade (MaxVol active set) and what MD does with it."""

    mode: Literal["cfg", "nbh"] = "nbh"
    select_threshold: Float = Field(1.5, ge=1.0)
    break_threshold: Float = 10.0
    # None: the settings of the MLIP generation the mode follows (mtpjax.active.grade.mlip_settings):
    # nbh 1e-6 / 1.001 (MLIP-3), cfg 1e-5 / 1.0000001 (MLIP-2)
    init: Union[PosFloat, str, None] = None
    swap_threshold: Optional[Float] = Field(None, gt=1.0)
    max_select: PosInt = 20
    grade_every: PosInt = 1
    candidate_every: PosInt = 10
    max_candidate_grade: Optional[PosFloat] = None
    min_distance_factor: Float = 0.5
    done_when: Literal["no-candidates", "no-break"] = "no-candidates"
    anchors_per_stage: NonNegInt = 0

    @field_validator("init")
    @classmethod
    def _init(cls, v):
        return check_active_init(v)

    @model_validator(mode="after")
    def _rules(self):
        check(self.break_threshold > self.select_threshold,
              f"need break_threshold > select_threshold ≥ 1 (got {self.select_threshold}, {self.break_threshold})")
        check(0.0 <= self.min_distance_factor < 1.0,
              f"min_distance_factor must be in [0, 1), got {self.min_distance_factor!r}")
        return self


class LearnMDSpec(Table):
    """``[md]``: the exploration MD of every system (one stage from these keys, or ``schedule``)."""

    timestep_fs: PosFloat = 1.0
    steps: PosInt = 1000
    ensemble: Literal["nvt", "npt", "langevin", "nve"] = "nvt"
    temperature_K: PosFloat = 1000.0
    temperature_end_K: Optional[PosFloat] = None
    pressure_bar: PressureBar = 0.0
    tdamp_fs: PosFloat = 100.0
    pdamp_fs: PosFloat = 1000.0
    barostat: Literal["iso", "aniso", "tri"] = "iso"
    skin: NonNegFloat = 1.0
    max_temperature_K: PosFloat = 1e5
    schedule: Optional[list[StageSpec]] = Field(None, min_length=1)
    walkers: Int = Field(1, ge=1)

    @model_validator(mode="after")
    def _rules(self):
        for t in (self.temperature_K, self.temperature_end_K):
            if t is not None and not t < min(self.max_temperature_K, MAX_STAGE_TEMPERATURE_K):
                raise ValueError(f"temperature {t:g} K is not below max_temperature_K ({self.max_temperature_K:g} K)")
        for k, s in enumerate(self.schedule or []):
            check(s.n_steps(self.timestep_fs) > 0,
                  f"schedule stage {s.name or k + 1}: lasts less than one time step of {self.timestep_fs:g} fs")
        return self

    @property
    def total_steps(self) -> int:
        """The length of one exploration run in time steps (``steps``, or the whole ``schedule``)."""
        if self.schedule is None:
            return int(self.steps)
        return sum(s.n_steps(self.timestep_fs) for s in self.schedule)


class BootstrapSpec(Table):
    """``[bootstrap]``: the first labels (rattled copies, a reference relaxation, reference MD, files)."""

    method: Literal["rattle", "relax", "md", "none"] = "rattle"
    n_configs: NonNegInt = 8
    rattle: NonNegFloat = 0.1
    strain: NonNegFloat = 0.03
    min_distance: NonNegFloat = 1.0
    md_steps: PosInt = 100
    md_every: PosInt = 10
    md_temperature_K: StageTemperature = 1000.0
    relax_steps: PosInt = 12
    relax_every: PosInt = 1
    relax_fmax: PosFloat = 0.5
    data: list[str] = Field(default_factory=list)


class InlineStructure(Table):
    """A structure written in the file: symbols, cell (Å rows), positions or scaled_positions, repeat."""

    symbols: str
    cell: list[list[Float]]
    positions: Optional[list[list[Float]]] = None
    scaled_positions: Optional[list[list[Float]]] = None
    repeat: Optional[list[PosInt]] = None

    @model_validator(mode="after")
    def _rules(self):
        check((self.positions is None) != (self.scaled_positions is None),
              "inline structure needs positions or scaled_positions (one of them)")
        check(len(self.cell) == 3 and all(len(r) == 3 for r in self.cell), "cell must be 3 rows of 3 numbers")
        check_lattice(self.cell)
        key = "positions" if self.positions is not None else "scaled_positions"
        rows = getattr(self, key)
        check(all(len(r) == 3 for r in rows), f"{key}: every row must be 3 numbers (x, y, z)")
        symbols = self.element_list
        n = len(symbols) * (int(np.prod(self.repeat)) if self.repeat else 1)
        check(len(symbols) == len(rows),
              f"symbols = {self.symbols!r} is {len(symbols)} atoms but {key} has {len(rows)} rows")
        check(n > 0, "the structure has no atoms")
        return self

    @property
    def element_list(self) -> list[str]:
        """The chemical symbol of every atom (before ``repeat``)."""
        try:
            symbols = string2symbols(self.symbols)
        except ValueError:
            raise ValueError(f"symbols = {self.symbols!r} is not a chemical formula (e.g. \"Li3PS4\")") from None
        for e in symbols:
            check(e in atomic_numbers, f"symbols = {self.symbols!r}: unknown chemical symbol {e!r}")
        return symbols


class SystemSpec(Table):
    """One ``[[system]]``: a name, a structure (file or inline) and its md/active settings (the global ones
    with this system's overrides)."""

    name: str
    structure: Union[str, InlineStructure] = Field(union_mode="left_to_right")
    md: LearnMDSpec
    active: ActiveSpec

    @model_validator(mode="after")
    def _rules(self):
        n, every = self.md.total_steps, self.active.candidate_every
        check(every <= n, f"active.candidate_every ({every}) exceeds the {n} steps of an MD run "
                          f"({'md.schedule' if self.md.schedule is not None else 'md.steps'}): "
                          "no frame would ever be a candidate")
        return self


class LearnConfig(Table):
    """A LEARN.toml (see :mod:`mtpjax.active.learn` for the loop)."""

    workdir: str = "learn_out"
    seed: Int = 0
    max_iterations: PosInt = 20
    species: list[str] = Field(min_length=1)
    potential: PotentialSpec = Field(default_factory=PotentialSpec)
    reference: dict = Field(default_factory=lambda: {"kind": "tblite"})
    labels: LabelsSpec = Field(default_factory=LabelsSpec)
    train: LearnTrainSpec = Field(default_factory=LearnTrainSpec)
    active: ActiveSpec = Field(default_factory=ActiveSpec)
    md: LearnMDSpec = Field(default_factory=LearnMDSpec)
    bootstrap: BootstrapSpec = Field(default_factory=BootstrapSpec)
    system: list[SystemSpec] = Field(min_length=1)
    _base: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="before")
    @classmethod
    def _systems(cls, data):
        """Each system's md/active: the global tables with the system's overrides on top."""
        if not isinstance(data, dict):
            return data
        if "species" not in data:
            raise ValueError("missing key 'species' (list of chemical symbols, e.g. [\"Li\", \"P\", \"S\"])")
        if not data.get("system"):
            raise ValueError("missing [[system]] table(s) with keys name, structure")
        systems = data["system"]
        if not isinstance(systems, list):
            return data
        md, act = data.get("md", {}), data.get("active", {})
        out = []
        for k, s in enumerate(systems):
            if not isinstance(s, dict):
                out.append(s)
                continue
            for req in ("name", "structure"):
                if req not in s:
                    raise ValueError(f"system {k + 1}: missing key '{req}'")
            out.append({**s, "md": {**md, **s.get("md", {})}, "active": {**act, **s.get("active", {})}})
        return {**data, "system": out}

    @field_validator("species")
    @classmethod
    def _species(cls, v):
        return check_species(v)

    @field_validator("reference")
    @classmethod
    def _reference(cls, v):
        return check_spec(v)

    @model_validator(mode="after")
    def _rules(self):
        names = [s.name for s in self.system]
        check(len(set(names)) == len(names), f"system names must be unique, got {names}")
        check(len({s.active.mode for s in self.system}) == 1,
              "active.mode must be the same for every system (one shared active set)")
        for k, s in enumerate(self.system):
            if isinstance(s.structure, InlineStructure):
                bad = sorted(set(s.structure.element_list) - set(self.species))
                check(not bad, f"system[{k + 1}].structure: elements {bad} are not in species {self.species}")
        return self

    def check_files(self) -> None:
        """The files the learn file names exist (structures, ``potential.init``, ``bootstrap.data``) and
        ``workdir`` is not an existing file. Run by :func:`load_learn`, before any labelling."""
        for k, s in enumerate(self.system):
            if isinstance(s.structure, str):
                require_file(self.path(s.structure), f"system[{k + 1}].structure = {s.structure!r}")
        if self.potential.init:
            require_file(self.path(self.potential.init), f"potential.init = {self.potential.init!r}")
        for k, f in enumerate(self.bootstrap.data):
            require_file(self.path(f), f"bootstrap.data[{k + 1}] = {f!r}")
        require_folder(self.workdir_path, f"workdir = {self.workdir!r}")

    def path(self, p) -> Path:
        """``p`` resolved against the learn file's folder."""
        p = Path(p)
        return p if p.is_absolute() else self._base / p

    @property
    def workdir_path(self) -> Path:
        return self.path(self.workdir)


def load_learn(path, overrides=()) -> LearnConfig:
    """A LEARN.toml (+ ``KEY=VALUE`` overrides), validated, its files checked (:meth:`LearnConfig.check_files`);
    paths in it are relative to it."""
    path = Path(path)
    cfg = with_base(parse(LearnConfig, read_toml(path, overrides), path), path.resolve().parent)
    try:
        cfg.check_files()
    except ConfigurationError as e:
        raise ConfigurationError(f"{path}: {e}") from None
    return cfg
