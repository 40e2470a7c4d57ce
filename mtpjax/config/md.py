"""The MD run file (``mtpjax md RUN.toml``) and the MD stage tables shared with learn and workflow files.

User units (fs, ps, K, bar or GPa, Å) as written; the MD driver (:mod:`mtpjax.md.run`) converts them to ASE
units once. Every key, its default and its check::

    structure = "start.cfg"          # any ASE-readable file or an MLIP .cfg (first configuration); read and
                                     # checked (periodic, proper cell, elements) when the file is loaded
    elements = ["Cu", "Ag", "Au"]    # MLIP type i ↔ element (masses; species in the output)
    potential = "pot.mtp"            # or {type = "lj", epsilon = 0.0104, sigma = 3.4, cutoff = 8.5}
                                     #    {type = "morse", D = .., alpha = .., r0 = .., cutoff = ..}
    output = "run1"                  # folder (not an existing file): traj.h5md, thermo.csv, checkpoint.npz, …
    timestep_fs = 1.0
    temperature_K = 1000             # initial Maxwell–Boltzmann velocities (zero total momentum); < max_temperature_K
    seed = 1
    skin = 1.0                       # Å
    thermo_every = 10                # steps
    traj_every = 100                 # steps (a multiple of thermo_every)
    checkpoint_every = 1000          # steps (rounded up to a multiple of traj_every)
    velocities = false               # also store velocities in the H5MD file
    max_temperature_K = 100000       # explosion guard
    min_distance = 0.5               # Å; closer atoms are an input error

    [[stage]]
    name = "melt"
    ensemble = "npt"                 # nve | nvt | langevin | npt
    time_ps = 20                     # or time_fs, or steps = 20000
    temperature_K = 1000             # temperature_end_K = 300 for a linear ramp
    pressure_bar = 1.01325           # or pressure_GPa; pressure_end_bar/GPa for a ramp
    barostat = "iso"                 # iso | aniso | tri
    tdamp_fs = 100                   # LAMMPS Tdamp (default 100 timesteps)
    pdamp_fs = 1000                  # LAMMPS Pdamp (default 1000 timesteps)
    tchain = 3                       # Nosé–Hoover chain lengths (the same in every stage)

    [replicas]                       # optional: batched copies in one jitted run
    temperatures_K = [600, 700, 800] # one per replica (every stage's T scaled by T_r / T_stage)
    seeds = [1, 2, 3]                # default: seed + replica index
    structures = ["a.extxyz", ...]   # optional; equal atom counts
    count = 4                        # when no list sets the number
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from ase.data import atomic_numbers
from pydantic import Field, PrivateAttr, model_validator

from mtpjax.config.base import (Float, Int, NonNegFloat, PosFloat, PosInt, Table, check, parse, require_file,
                                require_folder, with_base)
from mtpjax.errors import ConfigurationError
from mtpjax.io.structure import read_structure
from mtpjax.io.toml import read_toml
from mtpjax.units import BAR, GPA

#: the highest temperature (K) a stage may ask for: hotter is no material any potential describes
MAX_STAGE_TEMPERATURE_K = 1e5
#: the largest |pressure| (bar) a stage may ask for (10 TPa)
MAX_PRESSURE_BAR = 1e8
ENSEMBLES = ("nve", "nvt", "langevin", "npt")
#: a temperature of an MD stage (K): positive, below MAX_STAGE_TEMPERATURE_K
StageTemperature = Annotated[Float, Field(gt=0, lt=MAX_STAGE_TEMPERATURE_K)]
#: a pressure (bar) within ±MAX_PRESSURE_BAR
PressureBar = Annotated[Float, Field(ge=-MAX_PRESSURE_BAR, le=MAX_PRESSURE_BAR)]
BAROSTATS = ("iso", "aniso", "tri")


def check_pressure(p_bar, key: str) -> None:
    """A pressure (bar) within ±:data:`MAX_PRESSURE_BAR` (for model validators: ``key`` names it)."""
    if p_bar is not None and abs(p_bar) > MAX_PRESSURE_BAR:
        raise ValueError(f"{key} {p_bar:g} bar is beyond ±{MAX_PRESSURE_BAR:g} bar (10 TPa)")


def stage_label(k: int, name) -> str:
    """How an error names the ``k``-th (0-based) ``[[stage]]``: ``stage[2] (cool)``."""
    return f"stage[{k + 1}]" + (f" ({name})" if name else "")


class StageSpec(Table):
    """One ``[[stage]]`` table (user units)."""

    name: Optional[str] = None
    ensemble: Literal["nve", "nvt", "langevin", "npt"]
    steps: Optional[PosInt] = None
    time_ps: Optional[PosFloat] = None
    time_fs: Optional[PosFloat] = None
    temperature_K: Optional[PosFloat] = None
    temperature_end_K: Optional[PosFloat] = None
    pressure_bar: Optional[Float] = None
    pressure_GPa: Optional[Float] = None
    pressure_end_bar: Optional[Float] = None
    pressure_end_GPa: Optional[Float] = None
    barostat: Literal["iso", "aniso", "tri"] = "iso"
    tdamp_fs: Optional[PosFloat] = None
    pdamp_fs: Optional[PosFloat] = None
    tchain: PosInt = 3
    pchain: PosInt = 3
    tloop: PosInt = 1
    ploop: PosInt = 1

    @model_validator(mode="after")
    def _rules(self):
        given = [k for k in ("steps", "time_ps", "time_fs") if getattr(self, k) is not None]
        check(len(given) > 0, "give 'steps' or 'time_ps' (or time_fs)")
        check(len(given) == 1, f"give only one of {', '.join(given)}")
        for k in ("temperature_K", "temperature_end_K"):
            t = getattr(self, k)
            if t is not None and t > MAX_STAGE_TEMPERATURE_K:
                raise ValueError(f"{k} = {t:g} K is above {MAX_STAGE_TEMPERATURE_K:g} K (no material survives that)")
        if self.ensemble != "nve":
            check(self.temperature_K is not None, f"{self.ensemble} needs temperature_K")
        for a, b in (("pressure_bar", "pressure_GPa"), ("pressure_end_bar", "pressure_end_GPa")):
            check(getattr(self, a) is None or getattr(self, b) is None, f"give {a} or {b}, not both")
        if self.ensemble == "npt":
            check(self.pressure_bar is not None or self.pressure_GPa is not None,
                  "npt needs pressure_bar or pressure_GPa")
        for k, p in (("pressure", self.pressure_bar_value), ("pressure_end", self.pressure_end_bar_value)):
            check_pressure(p, k)
        return self

    @property
    def pressure_bar_value(self) -> Optional[float]:
        """The stage's (starting) pressure in bar, whichever unit it was given in."""
        if self.pressure_GPa is not None:
            return self.pressure_GPa * 1e4
        return self.pressure_bar

    @property
    def pressure_end_bar_value(self) -> Optional[float]:
        if self.pressure_end_GPa is not None:
            return self.pressure_end_GPa * 1e4
        return self.pressure_end_bar

    def pressure_ev_A3(self, end: bool = False) -> Optional[float]:
        """The (starting, or with ``end`` the final) pressure in eV/Å³, converted from the unit it was given in."""
        gpa, bar = (self.pressure_end_GPa, self.pressure_end_bar) if end else (self.pressure_GPa, self.pressure_bar)
        if gpa is not None:
            return gpa * GPA
        return None if bar is None else bar * BAR

    def n_steps(self, timestep_fs: float) -> int:
        """The stage's length in time steps of ``timestep_fs`` (``time_ps``/``time_fs`` rounded)."""
        if self.steps is not None:
            return int(self.steps)
        t_fs = self.time_ps * 1000.0 if self.time_ps is not None else self.time_fs
        return int(round(t_fs / timestep_fs))


class PairPotential(Table):
    """``potential = {type = "lj", ...}`` (shifted-force Lennard-Jones: epsilon eV, sigma Å, cutoff Å; default
    argon) or ``{type = "morse", ...}`` (D eV, alpha 1/Å, r0 Å, cutoff Å; default Cu)."""

    type: Literal["lj", "morse"]
    epsilon: Optional[PosFloat] = None
    sigma: Optional[PosFloat] = None
    D: Optional[PosFloat] = None
    alpha: Optional[PosFloat] = None
    r0: Optional[PosFloat] = None
    cutoff: Optional[PosFloat] = None

    @model_validator(mode="after")
    def _keys(self):
        allowed = {"lj": {"epsilon", "sigma", "cutoff"}, "morse": {"D", "alpha", "r0", "cutoff"}}[self.type]
        extra = sorted(k for k, v in self.kwargs().items() if k not in allowed)
        check(not extra, f"{', '.join(extra)}: not a parameter of {self.type} (allowed: {', '.join(sorted(allowed))})")
        return self

    def kwargs(self) -> dict:
        """The given parameters (for the force field's factory)."""
        return {k: v for k, v in self.model_dump().items() if k != "type" and v is not None}


class Replicas(Table):
    """``[replicas]``: batched copies of the run (lists of length 1 are broadcast)."""

    temperatures_K: Optional[list[PosFloat]] = Field(None, min_length=1)
    seeds: Optional[list[Int]] = Field(None, min_length=1)
    structures: Optional[list[str]] = Field(None, min_length=1)
    count: Optional[PosInt] = None

    @model_validator(mode="after")
    def _lengths(self):
        lens = {len(v) for v in (self.temperatures_K, self.seeds, self.structures) if v is not None and len(v) > 1}
        check(len(lens) <= 1, f"lists of different lengths {sorted(lens)} (give equal lengths or 1)")
        if self.count is not None and lens and self.count not in lens:
            raise ValueError(f"count = {self.count} but the lists have {next(iter(lens))} entries")
        return self

    @property
    def n(self) -> int:
        lens = [len(v) for v in (self.temperatures_K, self.seeds, self.structures) if v is not None]
        return max([x for x in lens if x > 1], default=self.count or max(lens, default=1))


class MDRun(Table):
    """An MD run file (see the module docstring). ``base`` is the folder relative paths are resolved in."""

    structure: str
    elements: Optional[list[str]] = None
    potential: Union[str, PairPotential] = Field(union_mode="left_to_right")
    output: str = "md_out"
    timestep_fs: PosFloat = 1.0
    temperature_K: Optional[PosFloat] = None
    seed: Int = 0
    skin: NonNegFloat = 1.0
    thermo_every: PosInt = 10
    traj_every: PosInt = 100
    checkpoint_every: Optional[PosInt] = None
    velocities: bool = False
    max_temperature_K: PosFloat = 1e5
    min_distance: NonNegFloat = 0.5
    neighbor_method: Optional[Literal["dense", "cell"]] = None
    capacity_multiplier: Float = Field(1.25, ge=1.0)
    chunk_atoms: Optional[PosInt] = None
    stage: list[StageSpec] = Field(min_length=1)
    replicas: Optional[Replicas] = None
    _base: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _rules(self):
        check(self.traj_every % self.thermo_every == 0,
              f"traj_every ({self.traj_every}) must be a multiple of thermo_every ({self.thermo_every})")
        for e in self.elements or []:
            check(e in atomic_numbers, f"elements: unknown chemical symbol {e!r}")
        check(len({s.tchain for s in self.stage}) == 1 and len({s.pchain for s in self.stage}) == 1,
              "all stages must use the same tchain and pchain")
        guard = f"max_temperature_K ({self.max_temperature_K:g} K, the explosion guard)"
        if self.temperature_K is not None and not self.temperature_K < self.max_temperature_K:
            raise ValueError(f"temperature_K = {self.temperature_K:g} K is not below {guard}")
        for k, s in enumerate(self.stage):
            n = s.n_steps(self.timestep_fs)
            check(n > 0, f"{stage_label(k, s.name)}: lasts less than one time step of {self.timestep_fs:g} fs")
            for key in ("temperature_K", "temperature_end_K"):
                t = getattr(s, key)
                if t is not None and t >= self.max_temperature_K:
                    raise ValueError(f"{stage_label(k, s.name)}: {key} = {t:g} K is not below {guard}")
        if self.replicas is not None and self.replicas.temperatures_K is not None:
            check(all(s.temperature_K is not None for s in self.stage if s.ensemble != "nve"),
                  "[replicas] temperatures_K needs temperature_K in every thermostatted stage")
            hot = max(self.replicas.temperatures_K)
            if not hot < self.max_temperature_K:
                raise ValueError(f"replicas.temperatures_K: {hot:g} K is not below {guard}")
        return self

    def structure_files(self) -> list[tuple[str, str]]:
        """(key, file) of every starting structure the run names."""
        out = [("structure", self.structure)]
        if self.replicas is not None and self.replicas.structures:
            out += [(f"replicas.structures[{k + 1}]", s) for k, s in enumerate(self.replicas.structures)]
        return out

    def check_files(self) -> None:
        """The files the run names exist (structures, potential file); ``output`` is not an existing file."""
        for key, s in self.structure_files():
            require_file(self.path(s), f"{key} = {s!r}")
        if isinstance(self.potential, str):
            require_file(self.path(self.potential), f"potential = {self.potential!r}")
        require_folder(self.path(self.output), f"output = {self.output!r}")

    def check_structures(self) -> None:
        """Every starting structure is usable (:func:`mtpjax.io.structure.read_structure`: readable, fully periodic,
        a proper cell, every element in ``elements``); errors name the structure file."""
        for s in dict.fromkeys(s for _, s in self.structure_files()):
            read_structure(self.path(s), self.elements)

    def path(self, p) -> Path:
        """``p`` resolved against the run file's folder."""
        p = Path(p)
        return p if p.is_absolute() else self._base / p

    @property
    def checkpoint_steps(self) -> int:
        """Steps between checkpoints: ``checkpoint_every`` (default 10 × traj_every) rounded up to a multiple
        of ``traj_every``."""
        every = self.checkpoint_every or 10 * self.traj_every
        return max(self.traj_every, -(-every // self.traj_every) * self.traj_every)

    def stage_names(self) -> list[str]:
        return [s.name or f"stage{k + 1}" for k, s in enumerate(self.stage)]


def load_md_run(path, overrides=()) -> MDRun:
    """The MD run file ``path`` (+ ``KEY=VALUE`` overrides), validated, its files and starting structures
    checked (:meth:`MDRun.check_files`, :meth:`MDRun.check_structures`); paths in it are relative to it."""
    path = Path(path)
    run = with_base(parse(MDRun, read_toml(path, overrides), path), path.resolve().parent)
    try:
        run.check_files()
    except ConfigurationError as e:
        raise ConfigurationError(f"{path}: {e}") from None
    run.check_structures()
    return run
