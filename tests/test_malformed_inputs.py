"""Malformed inputs, one case each: every one must end in ONE line of error that names the file (and the
line / table.key / field where it applies) in the user's units, raised before any expensive work (no JAX
compilation, no MD, no training, no reference calculation). No traceback, no silent acceptance.

Each case builds its input from a small valid template (written below, or a reference potential of
``tests/data``) with one edit, and calls the cheapest entry point a user hits that validates it: the run-file
loaders (``load_md_run``, ``load_learn``, ``load_workflow``), the file readers (``read_mtp`` + ``MTP.from_file``,
``read_cfg``, ``read_structure``), or the command line (``mtpjax md | learn | run | calc-efs | train``), whose
expensive functions are replaced by ones that fail the test if they are called.

``python tests/test_malformed_inputs.py`` prints the outcome of every case (clear / vague / traceback / silent /
late) without asserting: the table of the report.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from refdata import REF

from mtpjax.errors import MTPJaxError

POT1 = REF / "potentials/synth_l08_s1.mtp"  # 1 species (type 0)
POT3 = REF / "potentials/synth_l08_s3.mtp"  # 3 species (types 0, 1, 2)

# an internal name of a work folder in a message means the user was told about our files, not theirs
INTERNAL = re.compile(r"it\d{3}[/\\]|pot\.almtp|\.ckpt\.npz|train\.h5")


class ExpensiveWorkStarted(Exception):
    """Raised by the stand-ins of MD, training, labelling and force evaluation in the command-line cases."""


# ---------------------------------------------------------------------------------------------------------
# templates (valid as they are: see test_templates_are_valid)
# ---------------------------------------------------------------------------------------------------------

MD = """\
structure = "ar.extxyz"
potential = {type = "lj"}
output = "out"
timestep_fs = 2.0
temperature_K = 80
seed = 3
skin = 1.0
thermo_every = 10
traj_every = 50
checkpoint_every = 100
velocities = true
min_distance = 0.5

[[stage]]
name = "compress"
ensemble = "npt"
steps = 200
temperature_K = 80
pressure_bar = 10
barostat = "tri"
tdamp_fs = 100
pdamp_fs = 1000

[[stage]]
name = "cool"
ensemble = "nvt"
time_ps = 0.4
temperature_K = 80
temperature_end_K = 40
tdamp_fs = 100
"""

LEARN = """\
workdir = "learn_out"
seed = 0
max_iterations = 2
species = ["Cu"]

[potential]
level = 6
cutoff = 4.5
min_dist = 1.9

[reference]
kind = "emt"

[labels]
executor = "inline"
retries = 1
timeout_s = 60

[train]
max_iter = 5

[active]
mode = "nbh"
select_threshold = 1.5
break_threshold = 10.0
max_select = 8
candidate_every = 10

[md]
timestep_fs = 2.0
steps = 400
ensemble = "nvt"
temperature_K = 600.0
pressure_bar = 0.0
tdamp_fs = 50.0

[bootstrap]
method = "rattle"
n_configs = 6
rattle = 0.08
md_temperature_K = 1000.0

[[system]]
name = "cu8"
structure = {symbols = "Cu4", cell = [[3.61, 0, 0], [0, 3.61, 0], [0, 0, 3.61]], \
scaled_positions = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], repeat = [2, 1, 1]}
"""

WORKFLOW = """\
workdir = "wf_out"
seed = 0
n_structures = 2
species = ["Li", "B", "O", "P", "S"]

[build]
a_A = 7.0
lps_formula_units = 2
lbo_formula_units = 1
gaps_A = [1.2, 1.5]

[potential]
level = 8
cutoff = 5.0
min_dist = 1.2

[reference]
kind = "emt"

[labels]
executor = "inline"
retries = 1
timeout_s = 300

[learn]
max_iterations = 4
ensembles = ["production"]
structures_per_composition = 2
temperature_K = 1000
pressure_bar = 1.0
timestep_fs = 1.0
steps = 300
tdamp_fs = 50
max_select = 16
candidate_every = 5

[learn.bootstrap]
method = "none"

[learn.train]
max_iter = 5

[fit]
max_iter = 12
valid_fraction = 0.15

[production]
timestep_fs = 1.0
melt_K = 1000
melt_ps = 1.0
quench_end_K = 300
quench_ps = 2
relax_ps = 2
pressure_bar = 1.0
thermo_every = 20
traj_every = 100

[sweep]
temperatures_K = [1300, 1100, 900]
time_ps = 2.5
timestep_fs = 1.0
thermo_every = 20
traj_every = 20

[analysis]
T0_K = 300
relax_fraction = 0.5
"""

TRAIN_TOML = """\
[train]
potential = "pot.mtp"
train_cfgs = "train.cfg"
trained_pot_name = "out.mtp"
max_iter = 0
energy_weight = 1.0
force_weight = 0.01
"""

CFG = """\
BEGIN_CFG
 Size
    2
 Supercell
    5.0 0.0 0.0
    0.0 5.0 0.0
    0.0 0.0 5.0
 AtomData:  id type cartes_x cartes_y cartes_z fx fy fz
    1 0 0.0 0.0 0.0 0.1 0.0 0.0
    2 1 2.5 2.5 2.5 -0.1 0.0 0.0
 Energy
    -7.5
 PlusStress:  xx yy zz yz xz xy
    0.1 0.1 0.1 0.0 0.0 0.0
 Feature   EFS_by  test
END_CFG
"""

GARBAGE = bytes(range(256)) * 4  # not UTF-8


def sub(text: str, old: str, new: str) -> str:
    """``text`` with the first ``old`` replaced by ``new`` (``old`` must be there: templates are checked)."""
    assert old in text, f"the template has no {old!r}"
    return text.replace(old, new, 1)


def argon(path: Path, cell=None, pbc=True, symbol="Ar", shift_second=None) -> Path:
    """A 32-atom fcc argon box as extended XYZ (``cell`` replaces the cell, atoms kept)."""
    from ase.io import write
    from ase.lattice.cubic import FaceCenteredCubic

    a = FaceCenteredCubic(symbol, size=(2, 2, 2), latticeconstant=5.3)
    if shift_second is not None:
        a.positions[1] = a.positions[0] + shift_second
    if cell is not None:
        a.set_cell(cell, scale_atoms=False)
    a.pbc = pbc
    write(path, a, format="extxyz")
    return path


# ---------------------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """``make(tmp_path)`` writes the input and returns ``run``: a callable that should raise; ``fname`` is the
    file the message must name (basename), ``needles`` what else it must say (``line@TEXT``: the number of the
    first line of the written file holding TEXT, as 'line N')."""

    id: str
    kind: str  # md | learn | run | train | mtp | cfg | structure
    make: Callable
    fname: str
    needles: tuple
    cli: bool = False


CASES: list[Case] = []


def _written(tmp: Path, name: str, content) -> Path:
    p = tmp / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


def _resolve(needles, path: Path | None):
    out = []
    for n in needles:
        if n.startswith("line@"):
            lines = path.read_text().splitlines()
            k = next(i for i, ln in enumerate(lines) if n[5:] in ln)
            n = f"line {k + 1}"
        out.append(n)
    return tuple(out)


# --- MD run files ------------------------------------------------------------------------------------------

def md_case(id, old=None, new=None, *needles, text=None, overrides=(), setup=None):
    def make(tmp):
        from mtpjax.config.md import load_md_run

        argon(tmp / "ar.extxyz")
        if setup is not None:
            setup(tmp)
        p = _written(tmp, "run.toml", text if text is not None else sub(MD, old, new))
        return lambda: load_md_run(p, overrides), p
    CASES.append(Case(f"md-{id}", "md", make, "run.toml", needles))


md_case("timestep-string", "timestep_fs = 2.0", 'timestep_fs = "two"', "timestep_fs", "'two'")
md_case("timestep-zero", "timestep_fs = 2.0", "timestep_fs = 0", "timestep_fs")
md_case("timestep-negative", "timestep_fs = 2.0", "timestep_fs = -1.0", "timestep_fs")
md_case("timestep-nan", "timestep_fs = 2.0", "timestep_fs = nan", "timestep_fs")
md_case("timestep-inf", "timestep_fs = 2.0", "timestep_fs = inf", "timestep_fs")
md_case("timestep-bool", "timestep_fs = 2.0", "timestep_fs = true", "timestep_fs")
md_case("timestep-override-string", "timestep_fs = 2.0", "timestep_fs = 2.0", "timestep_fs",
        overrides=["timestep_fs=two"])
md_case("override-bad-stage-index", "seed = 3", "seed = 3", "--set", "stage", "'5'", overrides=["stage.5.steps=10"])
md_case("override-not-a-table", "seed = 3", "seed = 3", "--set", "seed", overrides=["seed.x=1"])
md_case("override-without-value", "seed = 3", "seed = 3", "--set", "KEY=VALUE", overrides=["timestep_fs"])
md_case("traj-every-zero", "traj_every = 50", "traj_every = 0", "traj_every")
md_case("traj-not-multiple", "traj_every = 50", "traj_every = 55", "traj_every", "thermo_every")
md_case("traj-float", "traj_every = 50", "traj_every = 50.5", "traj_every")
md_case("thermo-every-zero", "thermo_every = 10", "thermo_every = 0", "thermo_every")
md_case("thermo-every-negative", "thermo_every = 10", "thermo_every = -10", "thermo_every")
md_case("checkpoint-every-zero", "checkpoint_every = 100", "checkpoint_every = 0", "checkpoint_every")
md_case("checkpoint-every-string", "checkpoint_every = 100", 'checkpoint_every = "often"', "checkpoint_every")
md_case("steps-fraction", "steps = 200", "steps = 2.5", "stage[1].steps", "2.5")
md_case("steps-zero", "steps = 200", "steps = 0", "stage[1].steps")
md_case("steps-negative", "steps = 200", "steps = -200", "stage[1].steps")
md_case("steps-string", "steps = 200", 'steps = "200"', "stage[1].steps")
md_case("stage-too-short", "time_ps = 0.4", "time_ps = 0.0001", "stage[2]", "time step")
md_case("stage-steps-and-time", "steps = 200", "steps = 200\ntime_ps = 1.0", "stage[1]", "steps")
md_case("stage-no-length", "steps = 200\n", "", "stage[1]", "steps")
md_case("skin-negative", "skin = 1.0", "skin = -0.5", "skin")
md_case("skin-string", "skin = 1.0", 'skin = "big"', "skin")
md_case("lj-sigma-negative", '{type = "lj"}', '{type = "lj", sigma = -3.4}', "potential.sigma")
md_case("lj-epsilon-negative", '{type = "lj"}', '{type = "lj", epsilon = -0.01}', "potential.epsilon")
md_case("lj-epsilon-zero", '{type = "lj"}', '{type = "lj", epsilon = 0}', "potential.epsilon")
md_case("lj-cutoff-negative", '{type = "lj"}', '{type = "lj", cutoff = -8.5}', "potential.cutoff")
md_case("lj-with-morse-key", '{type = "lj"}', '{type = "lj", D = 0.3}', "potential", "D")
md_case("morse-r0-negative", '{type = "lj"}', '{type = "morse", r0 = -2.5}', "potential.r0")
md_case("potential-type-unknown", '{type = "lj"}', '{type = "buckingham"}', "potential.type", "buckingham")
md_case("potential-unknown-key", '{type = "lj"}', '{type = "lj", sigmaa = 3.4}', "potential", "sigmaa")
md_case("potential-number", '{type = "lj"}', "12", "potential")
md_case("potential-file-missing", '{type = "lj"}', '"missing.mtp"', "potential", "missing.mtp")
md_case("velocities-string", "velocities = true", 'velocities = "no"', "velocities", "'no'")
md_case("velocities-int", "velocities = true", "velocities = 1", "velocities")
md_case("start-temperature-huge", "temperature_K = 80\nseed", "temperature_K = 1e12\nseed", "temperature_K", "K")
md_case("start-temperature-negative", "temperature_K = 80\nseed", "temperature_K = -80\nseed", "temperature_K")
md_case("stage-temperature-huge", "temperature_K = 80\npressure", "temperature_K = 1e12\npressure",
        "stage[1]", "temperature_K", "K")
md_case("stage-temperature-negative", "temperature_K = 80\npressure", "temperature_K = -80\npressure",
        "stage[1].temperature_K")
md_case("stage-temperature-end-zero", "temperature_end_K = 40", "temperature_end_K = 0", "stage[2].temperature_end_K")
md_case("nvt-without-temperature", "temperature_K = 80\ntemperature_end_K = 40\n", "", "stage[2]", "temperature_K")
md_case("pressure-huge-negative", "pressure_bar = 10", "pressure_bar = -1e9", "stage[1]", "bar")
md_case("pressure-gpa-huge", "pressure_bar = 10", "pressure_GPa = 1e6", "stage[1]", "bar")
md_case("pressure-nan", "pressure_bar = 10", "pressure_bar = nan", "stage[1].pressure_bar")
md_case("pressure-bar-and-gpa", "pressure_bar = 10", "pressure_bar = 10\npressure_GPa = 0.001", "stage[1]",
        "pressure_GPa")
md_case("npt-without-pressure", "pressure_bar = 10\n", "", "stage[1]", "pressure")
md_case("ensemble-unknown", 'ensemble = "nvt"', 'ensemble = "nvx"', "stage[2].ensemble", "nvx")
md_case("barostat-unknown", 'barostat = "tri"', 'barostat = "xyz"', "stage[1].barostat", "xyz")
md_case("tdamp-zero", "tdamp_fs = 100\npdamp", "tdamp_fs = 0\npdamp", "stage[1].tdamp_fs")
md_case("pdamp-negative", "pdamp_fs = 1000", "pdamp_fs = -5", "stage[1].pdamp_fs")
md_case("tchain-zero", 'barostat = "tri"', 'barostat = "tri"\ntchain = 0', "stage[1].tchain")
md_case("tchain-differs", 'barostat = "tri"', 'barostat = "tri"\ntchain = 5', "stage", "tchain")
md_case("min-distance-negative", "min_distance = 0.5", "min_distance = -0.5", "min_distance")
md_case("max-temperature-zero", "seed = 3", "seed = 3\nmax_temperature_K = 0", "max_temperature_K")
md_case("max-temperature-below-stage", "seed = 3", "seed = 3\nmax_temperature_K = 50", "max_temperature_K")
md_case("capacity-multiplier-small", "seed = 3", "seed = 3\ncapacity_multiplier = 0.5", "capacity_multiplier")
md_case("neighbor-method-unknown", "seed = 3", 'seed = 3\nneighbor_method = "verlet"', "neighbor_method", "verlet")
md_case("chunk-atoms-zero", "seed = 3", "seed = 3\nchunk_atoms = 0", "chunk_atoms")
md_case("seed-fraction", "seed = 3", "seed = 1.5", "seed")
md_case("unknown-key", "seed = 3", "seed = 3\ntemprature_K = 80", "temprature_K", "unknown key")
md_case("unknown-stage-key", 'barostat = "tri"', 'barostat = "tri"\ndamping = 3', "stage[1]", "damping")
md_case("missing-structure", 'structure = "ar.extxyz"\n', "", "structure", "missing")
md_case("structure-number", 'structure = "ar.extxyz"', "structure = 5", "structure")
md_case("structure-file-missing", '"ar.extxyz"', '"missing.xyz"', "structure", "missing.xyz")
md_case("no-stage", None, None, "stage", text=MD.split("[[stage]]")[0])
md_case("stage-as-table", None, None, "stage", text=MD.split("[[stage]]")[0] +
        '[stage]\nensemble = "nve"\nsteps = 10\n')
md_case("elements-unknown", "seed = 3", 'seed = 3\nelements = ["Xx"]', "elements", "Xx")
md_case("elements-not-list", "seed = 3", 'seed = 3\nelements = "Ar"', "elements")
md_case("output-is-a-file", 'output = "out"', 'output = "taken.txt"', "output", "taken.txt",
        setup=lambda tmp: (tmp / "taken.txt").write_text("x"))
md_case("replicas-empty-list", "seed = 3", "seed = 3\nreplicas = {temperatures_K = []}", "replicas.temperatures_K")
md_case("replicas-negative-temperature", "seed = 3", "seed = 3\nreplicas = {temperatures_K = [60, -70]}",
        "replicas.temperatures_K[2]")
md_case("replicas-length-mismatch", "seed = 3", "seed = 3\nreplicas = {temperatures_K = [60, 70], seeds = [1, 2, 3]}",
        "replicas", "lengths")
md_case("replicas-count-zero", "seed = 3", "seed = 3\nreplicas = {count = 0}", "replicas.count")
md_case("replicas-count-mismatch", "seed = 3", "seed = 3\nreplicas = {count = 3, seeds = [1, 2]}", "replicas", "count")
md_case("replicas-structure-missing", "seed = 3", 'seed = 3\nreplicas = {structures = ["ar.extxyz", "gone.xyz"]}',
        "replicas.structures", "gone.xyz")
md_case("invalid-toml", "timestep_fs = 2.0", "timestep_fs = = 2.0", "TOML")
md_case("empty-file", None, None, "structure", text="")


def md_binary():
    def make(tmp):
        from mtpjax.config.md import load_md_run

        p = _written(tmp, "run.toml", GARBAGE)
        return lambda: load_md_run(p), p
    CASES.append(Case("md-binary-garbage", "md", make, "run.toml", ("UTF-8",)))


md_binary()


# --- structures of MD runs (read when the run file is loaded) ---------------------------------------------

def structure_case(id, write, fname, *needles, elements=None):
    def make(tmp):
        from mtpjax.config.md import load_md_run

        write(tmp)
        text = sub(MD, '"ar.extxyz"', f'"{fname}"')
        if elements is not None:
            text = sub(text, "seed = 3", f"seed = 3\nelements = {elements}")
        p = _written(tmp, "run.toml", text)
        return lambda: load_md_run(p), p
    CASES.append(Case(f"structure-{id}", "structure", make, fname, needles))


def _cfg_structure(text):
    return lambda tmp: _written(tmp, "start.cfg", text)


structure_case("zero-cell-row", lambda tmp: argon(tmp / "flat.extxyz", cell=[[10.6, 0, 0], [0, 0, 0], [0, 0, 10.6]]),
               "flat.extxyz", "lattice vector 2")
structure_case("singular-cell", lambda tmp: argon(tmp / "sing.extxyz", cell=[[10.6, 0, 0], [10.6, 0, 0], [0, 0, 10.6]]),
               "sing.extxyz", "linearly dependent")
structure_case("not-periodic", lambda tmp: argon(tmp / "mol.extxyz", pbc=False), "mol.extxyz", "periodic")
structure_case("element-not-in-elements", lambda tmp: argon(tmp / "ne.extxyz", symbol="Ne"), "ne.extxyz", "Ne",
               "elements", elements='["Ar"]')
structure_case("garbage", lambda tmp: _written(tmp, "junk.extxyz", GARBAGE), "junk.extxyz", "structure")
structure_case("cfg-without-elements", _cfg_structure(CFG), "start.cfg", "elements")
structure_case("cfg-type-not-in-elements", _cfg_structure(CFG), "start.cfg", "type 1", "elements", elements='["Ar"]')
structure_case("cfg-singular-supercell", _cfg_structure(sub(CFG, "0.0 5.0 0.0", "5.0 0.0 0.0")), "start.cfg",
               "Supercell", "line 6", elements='["Ar", "Ne"]')
structure_case("cfg-zero-supercell-row", _cfg_structure(sub(CFG, "0.0 5.0 0.0", "0.0 0.0 0.0")), "start.cfg",
               "Supercell", "line 6", elements='["Ar", "Ne"]')
structure_case("cfg-two-supercell-rows", _cfg_structure(sub(CFG, "    0.0 0.0 5.0\n", "")), "start.cfg", "periodic",
               elements='["Ar", "Ne"]')


# --- learn files -----------------------------------------------------------------------------------------

def learn_case(id, old=None, new=None, *needles, text=None, setup=None):
    def make(tmp):
        from mtpjax.config.learn import load_learn

        if setup is not None:
            setup(tmp)
        p = _written(tmp, "learn.toml", text if text is not None else sub(LEARN, old, new))
        return lambda: load_learn(p), p
    CASES.append(Case(f"learn-{id}", "learn", make, "learn.toml", needles))


def _inline(cell=None, positions=None, symbols="Cu4", extra=""):
    cell = cell or "[[3.61, 0, 0], [0, 3.61, 0], [0, 0, 3.61]]"
    positions = positions or "scaled_positions = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]"
    return f'structure = {{symbols = "{symbols}", cell = {cell}, {positions}{extra}}}\n'


def learn_structure(id, *needles, **kw):
    learn_case(id, None, None, *needles, text=LEARN.split("structure = ")[0] + _inline(**kw))


learn_case("max-iterations-zero", "max_iterations = 2", "max_iterations = 0", "max_iterations")
learn_case("max-iterations-negative", "max_iterations = 2", "max_iterations = -1", "max_iterations")
learn_case("max-iterations-string", "max_iterations = 2", 'max_iterations = "5"', "max_iterations")
learn_case("max-iterations-fraction", "max_iterations = 2", "max_iterations = 2.5", "max_iterations")
learn_case("seed-string", "seed = 0", 'seed = "zero"', "seed")
learn_case("md-temperature-huge", "temperature_K = 600.0", "temperature_K = 1e12", "md", "temperature", "K")
learn_case("md-temperature-string", "temperature_K = 600.0", 'temperature_K = "hot"', "md.temperature_K")
learn_case("md-temperature-end-huge", "temperature_K = 600.0", "temperature_K = 600.0\ntemperature_end_K = 1e9",
           "md", "temperature", "K")
learn_case("md-max-temperature-zero", "temperature_K = 600.0", "temperature_K = 600.0\nmax_temperature_K = 0",
           "md.max_temperature_K")
learn_case("md-timestep-zero", "timestep_fs = 2.0", "timestep_fs = 0", "md.timestep_fs")
learn_case("md-timestep-string", "timestep_fs = 2.0", 'timestep_fs = "two"', "md.timestep_fs")
learn_case("md-timestep-nan", "timestep_fs = 2.0", "timestep_fs = nan", "md.timestep_fs")
learn_case("md-tdamp-zero", "tdamp_fs = 50.0", "tdamp_fs = 0", "md.tdamp_fs")
learn_case("md-tdamp-negative", "tdamp_fs = 50.0", "tdamp_fs = -50", "md.tdamp_fs")
learn_case("md-pdamp-zero", "tdamp_fs = 50.0", "tdamp_fs = 50.0\npdamp_fs = 0", "md.pdamp_fs")
learn_case("md-steps-fraction", "steps = 400", "steps = 2.5", "md.steps")
learn_case("md-steps-zero", "steps = 400", "steps = 0", "md.steps")
learn_case("md-pressure-huge", "pressure_bar = 0.0", "pressure_bar = -1e9", "md", "pressure", "bar")
learn_case("md-pressure-string", "pressure_bar = 0.0", 'pressure_bar = "1 atm"', "md.pressure_bar")
learn_case("md-skin-negative", "tdamp_fs = 50.0", "tdamp_fs = 50.0\nskin = -1", "md.skin")
learn_case("md-ensemble-unknown", 'ensemble = "nvt"', 'ensemble = "nph"', "md.ensemble", "nph")
learn_case("md-barostat-unknown", 'ensemble = "nvt"', 'ensemble = "nvt"\nbarostat = "xyz"', "md.barostat")
learn_case("md-walkers-zero", 'ensemble = "nvt"', 'ensemble = "nvt"\nwalkers = 0', "md.walkers")
learn_case("md-schedule-steps-fraction", 'ensemble = "nvt"',
           'ensemble = "nvt"\nschedule = [{ensemble = "nvt", temperature_K = 300.0, steps = 2.5}]',
           "md.schedule[1].steps")
learn_case("md-schedule-empty", 'ensemble = "nvt"', 'ensemble = "nvt"\nschedule = []', "md.schedule")
learn_case("md-schedule-too-hot", 'ensemble = "nvt"',
           'ensemble = "nvt"\nschedule = [{ensemble = "nvt", temperature_K = 1e12, steps = 100}]',
           "md.schedule[1]", "temperature_K")
learn_case("md-unknown-key", "[md]\n", "[md]\ntemprature_K = 900\n", "md", "temprature_K")
learn_case("potential-level-odd", "level = 6", "level = 7", "potential", "level")
learn_case("potential-level-too-high", "level = 6", "level = 30", "potential", "level")
learn_case("potential-level-string", "level = 6", 'level = "high"', "potential.level")
learn_case("potential-cutoff-below-min-dist", "cutoff = 4.5", "cutoff = 1.5", "potential", "cutoff", "Å")
learn_case("potential-cutoff-equals-min-dist", "cutoff = 4.5", "cutoff = 1.9", "potential", "cutoff")
learn_case("potential-min-dist-negative", "min_dist = 1.9", "min_dist = -1", "potential.min_dist")
learn_case("potential-radial-basis-size-one", "min_dist = 1.9", "min_dist = 1.9\nradial_basis_size = 1",
           "potential.radial_basis_size")
learn_case("potential-init-missing", "min_dist = 1.9", 'min_dist = 1.9\ninit = "start.mtp"', "potential.init",
           "start.mtp")
learn_case("labels-timeout-zero", "timeout_s = 60", "timeout_s = 0", "labels.timeout_s")
learn_case("labels-retries-negative", "retries = 1", "retries = -1", "labels.retries")
learn_case("labels-max-workers-zero", "retries = 1", "retries = 1\nmax_workers = 0", "labels.max_workers")
learn_case("labels-executor-unknown", 'executor = "inline"', 'executor = "slurm"', "labels.executor", "slurm")
learn_case("labels-backoff-negative", "retries = 1", "retries = 1\nbackoff_s = -1", "labels.backoff_s")
learn_case("active-max-select-negative", "max_select = 8", "max_select = -5", "active.max_select")
learn_case("active-max-select-zero", "max_select = 8", "max_select = 0", "active.max_select")
learn_case("active-candidate-every-zero", "candidate_every = 10", "candidate_every = 0", "active.candidate_every")
learn_case("active-candidate-every-beyond-steps", "candidate_every = 10", "candidate_every = 1000",
           "active.candidate_every", "md.steps")
learn_case("active-grade-every-zero", "candidate_every = 10", "candidate_every = 10\ngrade_every = 0",
           "active.grade_every")
learn_case("active-select-threshold-below-one", "select_threshold = 1.5", "select_threshold = 0.5",
           "active.select_threshold")
learn_case("active-break-below-select", "break_threshold = 10.0", "break_threshold = 1.2", "active",
           "break_threshold")
learn_case("active-mode-unknown", 'mode = "nbh"', 'mode = "atoms"', "active.mode", "atoms")
learn_case("active-init-bad", 'mode = "nbh"', 'mode = "nbh"\ninit = "foo"', "active.init", "foo")
learn_case("active-swap-threshold-one", 'mode = "nbh"', 'mode = "nbh"\nswap_threshold = 1.0', "active.swap_threshold")
learn_case("active-min-distance-factor", 'mode = "nbh"', 'mode = "nbh"\nmin_distance_factor = 1.5',
           "active", "min_distance_factor")
learn_case("train-max-iter-negative", "max_iter = 5", "max_iter = -1", "train.max_iter")
learn_case("train-optimizer-unknown", "max_iter = 5", 'max_iter = 5\noptimizer = "sgd"', "train.optimizer", "sgd")
learn_case("train-energy-weight-negative", "max_iter = 5", "max_iter = 5\nenergy_weight = -1",
           "train.energy_weight")
learn_case("train-n-starts-zero", "max_iter = 5", "max_iter = 5\nn_starts = 0", "train.n_starts")
learn_case("bootstrap-method-unknown", 'method = "rattle"', 'method = "dft"', "bootstrap.method", "dft")
learn_case("bootstrap-n-configs-negative", "n_configs = 6", "n_configs = -1", "bootstrap.n_configs")
learn_case("bootstrap-rattle-negative", "rattle = 0.08", "rattle = -0.08", "bootstrap.rattle")
learn_case("bootstrap-temperature-huge", "md_temperature_K = 1000.0", "md_temperature_K = 1e12",
           "bootstrap.md_temperature_K", "K")
learn_case("bootstrap-data-missing", "rattle = 0.08", 'rattle = 0.08\ndata = ["labels.cfg"]', "bootstrap.data",
           "labels.cfg")
learn_case("species-unknown", 'species = ["Cu"]', 'species = ["Cx"]', "species", "Cx")
learn_case("species-repeated", 'species = ["Cu"]', 'species = ["Cu", "Cu"]', "species")
learn_case("species-empty", 'species = ["Cu"]', "species = []", "species")
learn_case("species-missing", 'species = ["Cu"]\n', "", "species")
learn_case("system-missing", None, None, "system", text=LEARN.split("[[system]]")[0])
learn_case("system-without-name", 'name = "cu8"\n', "", "system", "name")
learn_case("system-names-repeated", None, None, "system", "unique",
           text=LEARN + LEARN[LEARN.index("[[system]]"):])
learn_case("system-structure-missing", None, None, "structure", "cu.extxyz",
           text=LEARN.split("structure = ")[0] + 'structure = "cu.extxyz"\n')
learn_case("system-md-override-negative", 'name = "cu8"', 'name = "cu8"\nmd = {temperature_K = -5.0}',
           "system[1].md.temperature_K")
learn_case("system-active-override-bad", 'name = "cu8"', 'name = "cu8"\nactive = {max_select = 0}',
           "system[1].active.max_select")
learn_case("reference-kind-unknown", 'kind = "emt"', 'kind = "gaussian"', "reference", "gaussian")
learn_case("reference-unknown-key", 'kind = "emt"', 'kind = "emt"\nmethod = "x"', "reference", "method")
learn_case("unknown-top-level-key", "seed = 0", "seed = 0\nmax_iteration = 3", "max_iteration")
learn_case("workdir-is-a-file", 'workdir = "learn_out"', 'workdir = "taken.txt"', "workdir", "taken.txt",
           setup=lambda tmp: (tmp / "taken.txt").write_text("x"))
learn_structure("inline-zero-cell-row", "system[1].structure", "cell", cell="[[3.61, 0, 0], [0, 0, 0], [0, 0, 3.61]]")
learn_structure("inline-singular-cell", "system[1].structure", "cell",
                cell="[[3.61, 0, 0], [3.61, 0, 0], [0, 0, 3.61]]")
learn_structure("inline-two-cell-rows", "system[1].structure", "cell", cell="[[3.61, 0, 0], [0, 3.61, 0]]")
learn_structure("inline-cell-nan", "system[1].structure.cell", cell="[[3.61, 0, 0], [0, nan, 0], [0, 0, 3.61]]")
learn_structure("inline-atom-count-mismatch", "system[1].structure", "Cu3", symbols="Cu3")
learn_structure("inline-unknown-element", "system[1].structure", "Qq", symbols="Qq4")
learn_structure("inline-element-not-in-species", "system[1].structure", "Ag", symbols="Ag4")
learn_structure("inline-position-two-numbers", "system[1].structure", "positions",
                positions="positions = [[0, 0], [0, 1.8, 1.8], [1.8, 0, 1.8], [1.8, 1.8, 0]]")
learn_structure("inline-both-positions", "system[1].structure", "positions",
                extra=", positions = [[0, 0, 0], [0, 1.8, 1.8], [1.8, 0, 1.8], [1.8, 1.8, 0]]")
learn_structure("inline-repeat-zero", "system[1].structure.repeat", extra=", repeat = [0, 1, 1]")


def learn_binary():
    def make(tmp):
        from mtpjax.config.learn import load_learn

        p = _written(tmp, "learn.toml", GARBAGE)
        return lambda: load_learn(p), p
    CASES.append(Case("learn-binary-garbage", "learn", make, "learn.toml", ("UTF-8",)))


learn_binary()


# --- workflow files (mtpjax run) ----------------------------------------------------------------------------

def wf_case(id, old=None, new=None, *needles, text=None, setup=None):
    def make(tmp):
        from mtpjax.config.workflow import load_workflow

        if setup is not None:
            setup(tmp)
        p = _written(tmp, "workflow.toml", text if text is not None else sub(WORKFLOW, old, new))
        return lambda: load_workflow(p), p
    CASES.append(Case(f"run-{id}", "run", make, "workflow.toml", needles))


wf_case("learn-max-iterations-zero", "max_iterations = 4", "max_iterations = 0", "learn.max_iterations")
wf_case("learn-temperature-huge", "temperature_K = 1000", "temperature_K = 1e12", "learn", "temperature_K", "K")
wf_case("learn-timestep-string", "timestep_fs = 1.0\nsteps", 'timestep_fs = "one"\nsteps', "learn.timestep_fs")
wf_case("learn-tdamp-zero", "tdamp_fs = 50", "tdamp_fs = 0", "learn.tdamp_fs")
wf_case("learn-pressure-huge", "pressure_bar = 1.0\ntimestep", "pressure_bar = -1e9\ntimestep", "learn",
        "pressure", "bar")
wf_case("learn-ensemble-unknown", 'ensembles = ["production"]', 'ensembles = ["nph"]', "learn.ensembles[1]", "nph")
wf_case("learn-ensembles-empty", 'ensembles = ["production"]', "ensembles = []", "learn.ensembles")
wf_case("learn-walkers-zero", "max_iterations = 4", "max_iterations = 4\nwalkers = 0", "learn.walkers")
wf_case("learn-max-select-negative", "max_select = 16", "max_select = -5", "learn.max_select")
wf_case("learn-candidate-every-zero", "candidate_every = 5", "candidate_every = 0", "learn.candidate_every")
wf_case("learn-candidate-every-beyond-steps", None, None, "learn", "candidate_every", "learn.steps",
        text=sub(sub(WORKFLOW, "candidate_every = 5", "candidate_every = 500"), '["production"]', '["nvt"]'))
wf_case("learn-candidate-every-beyond-protocol", "candidate_every = 5", "candidate_every = 10000",
        "learn.candidate_every", "production protocol")
wf_case("learn-hot-ps-below-one-step", "max_iterations = 4", "max_iterations = 4\nhot_ps = 0.0001", "learn.hot_ps")
wf_case("production-relax-below-one-step", "relax_ps = 2", "relax_ps = 0.0001", "production", "relax_ps")
wf_case("sweep-time-below-one-step", "time_ps = 2.5", "time_ps = 0.0001", "sweep", "time_ps")
wf_case("learn-steps-fraction", "steps = 300", "steps = 2.5", "learn.steps")
wf_case("learn-hot-ps-negative", "max_iterations = 4", "max_iterations = 4\nhot_ps = -1", "learn.hot_ps")
wf_case("learn-structures-zero", "structures_per_composition = 2", "structures_per_composition = 0",
        "learn.structures_per_composition")
wf_case("learn-break-below-select", "max_select = 16", "max_select = 16\nbreak_threshold = 1.1", "learn",
        "break_threshold")
wf_case("learn-active-init-bad", "max_select = 16", 'max_select = 16\nactive_init = "x"', "learn.active_init")
wf_case("learn-bootstrap-method-unknown", 'method = "none"', 'method = "dft"', "learn.bootstrap.method", "dft")
wf_case("learn-bootstrap-data-missing", 'method = "none"', 'method = "none"\ndata = ["seed.cfg"]',
        "learn.bootstrap.data", "seed.cfg")
wf_case("learn-train-max-iter-negative", "max_iter = 5", "max_iter = -1", "learn.train.max_iter")
wf_case("labels-timeout-zero", "timeout_s = 300", "timeout_s = 0", "labels.timeout_s")
wf_case("labels-retries-negative", "retries = 1", "retries = -1", "labels.retries")
wf_case("potential-level-odd", "level = 8", "level = 9", "potential", "level")
wf_case("potential-cutoff-below-min-dist", "cutoff = 5.0", "cutoff = 1.0", "potential", "cutoff")
wf_case("potential-init-missing", "min_dist = 1.2", 'min_dist = 1.2\ninit = "seed.mtp"', "potential.init",
        "seed.mtp")
wf_case("production-traj-not-multiple", "traj_every = 100", "traj_every = 110", "production.traj_every")
wf_case("production-thermo-zero", "thermo_every = 20\ntraj_every = 100", "thermo_every = 0\ntraj_every = 100",
        "production.thermo_every")
wf_case("production-melt-huge", "melt_K = 1000", "melt_K = 1e12", "production", "melt_K")
wf_case("production-quench-end-huge", "quench_end_K = 300", "quench_end_K = 1e12", "production", "quench_end_K")
wf_case("production-pressure-huge", "pressure_bar = 1.0\nthermo", "pressure_bar = 1e10\nthermo", "production",
        "pressure", "bar")
wf_case("production-timestep-zero", "timestep_fs = 1.0\nmelt_K", "timestep_fs = 0\nmelt_K", "production.timestep_fs")
wf_case("production-barostat-unknown", "melt_K = 1000", 'melt_K = 1000\nbarostat = "xyz"', "production.barostat")
wf_case("production-minimize-fmax-zero", "melt_K = 1000", "melt_K = 1000\nminimize_fmax = 0",
        "production.minimize_fmax")
wf_case("production-melt-ps-zero", "melt_ps = 1.0", "melt_ps = 0", "production.melt_ps")
wf_case("sweep-temperatures-empty", "temperatures_K = [1300, 1100, 900]", "temperatures_K = []",
        "sweep.temperatures_K")
wf_case("sweep-temperature-negative", "temperatures_K = [1300, 1100, 900]", "temperatures_K = [1300, -5]",
        "sweep.temperatures_K[2]")
wf_case("sweep-temperature-huge", "temperatures_K = [1300, 1100, 900]", "temperatures_K = [1e12]", "sweep",
        "temperatures_K")
wf_case("sweep-traj-zero", "traj_every = 20", "traj_every = 0", "sweep.traj_every")
wf_case("sweep-traj-not-multiple", "traj_every = 20", "traj_every = 30", "sweep.traj_every")
wf_case("sweep-time-string", "time_ps = 2.5", 'time_ps = "long"', "sweep.time_ps")
wf_case("fit-valid-fraction-big", "valid_fraction = 0.15", "valid_fraction = 0.7", "fit.valid_fraction")
wf_case("fit-init-unknown", "valid_fraction = 0.15", 'valid_fraction = 0.15\ninit = "bogus"', "fit.init", "bogus")
wf_case("build-a-zero", "a_A = 7.0", "a_A = 0", "build.a_A")
wf_case("build-gaps-empty", "gaps_A = [1.2, 1.5]", "gaps_A = []", "build.gaps_A")
wf_case("build-builder-unknown", "a_A = 7.0", 'a_A = 7.0\nlbo_builder = "crystal"', "build.lbo_builder")
wf_case("analysis-crystal-unknown", "T0_K = 300", 'T0_K = 300\ncrystals = {Foo = "x.cif"}', "analysis.crystals", "Foo")
wf_case("analysis-crystal-missing", "T0_K = 300", 'T0_K = 300\ncrystals = {Li3PS4 = "gamma.cif"}',
        "analysis.crystals", "gamma.cif")
wf_case("analysis-relax-fraction-zero", "relax_fraction = 0.5", "relax_fraction = 0", "analysis.relax_fraction")
wf_case("analysis-cutoff-negative", "T0_K = 300", 'T0_K = 300\ncutoffs_A = {"P-S" = -1}', "analysis.cutoffs_A")
wf_case("species-without-sulfur", 'species = ["Li", "B", "O", "P", "S"]', 'species = ["Li", "B", "O", "P"]',
        "species")
wf_case("n-structures-zero", "n_structures = 2", "n_structures = 0", "n_structures")
wf_case("unknown-table", "[sweep]", "[swep]", "swep")
wf_case("workdir-is-a-file", 'workdir = "wf_out"', 'workdir = "taken.txt"', "workdir", "taken.txt",
        setup=lambda tmp: (tmp / "taken.txt").write_text("x"))


def wf_binary():
    def make(tmp):
        from mtpjax.config.workflow import load_workflow

        p = _written(tmp, "workflow.toml", GARBAGE)
        return lambda: load_workflow(p), p
    CASES.append(Case("run-binary-garbage", "run", make, "workflow.toml", ("UTF-8",)))


wf_binary()


# --- potentials (.mtp) ---------------------------------------------------------------------------------------

def mtp_case(id, edit, *needles, template=POT1):
    def make(tmp):
        from mtpjax.potential import MTP

        text = template.read_text()
        p = _written(tmp, "pot.mtp", edit(text) if callable(edit) else sub(text, *edit))
        return lambda: MTP.from_file(p), p
    CASES.append(Case(f"mtp-{id}", "mtp", make, "pot.mtp", needles))


def _first_number(key):
    """An edit that replaces the first number after ``key`` (a ``{...}`` list or the row after a header)."""
    def edit(value):
        def f(text):
            k = text.index(key)
            m = re.compile(r"-?\d\.\d+e[+-]\d+").search(text, k)
            return text[:m.start()] + value + text[m.end():]
        return f
    return edit


def _times_row(row, col, value):
    def f(text):
        line = next(ln for ln in text.splitlines() if ln.startswith("alpha_index_times ="))
        rows = re.findall(r"\{(\d+), (\d+), (\d+), (\d+)\}", line)
        r = list(rows[row])
        r[col] = value
        rows[row] = tuple(r)
        new = "alpha_index_times = {" + ", ".join("{%s}" % ", ".join(x) for x in rows) + "}"
        return text.replace(line, new)
    return f


mtp_case("radial-coeff-nan", lambda t: _first_number("0-0")("nan")(t), "radial_coeffs", "line@\t\t\t{")
mtp_case("radial-coeff-inf", lambda t: _first_number("0-0")("inf")(t), "radial_coeffs", "line@\t\t\t{")
mtp_case("radial-coeff-overflow", lambda t: _first_number("0-0")("1e400")(t), "radial_coeffs")
mtp_case("species-coeff-nan", lambda t: _first_number("species_coeffs")("nan")(t), "species_coeffs",
         "line@species_coeffs")
mtp_case("species-coeff-inf", lambda t: _first_number("species_coeffs")("-inf")(t), "species_coeffs")
mtp_case("moment-coeff-nan", lambda t: _first_number("moment_coeffs")("nan")(t), "moment_coeffs",
         "line@moment_coeffs")
mtp_case("moment-coeff-inf", lambda t: _first_number("moment_coeffs")("inf")(t), "moment_coeffs")
mtp_case("scaling-nan", ("scaling = 3.000000000000000e-02", "scaling = nan"), "scaling", "line 4")
mtp_case("scaling-inf", ("scaling = 3.000000000000000e-02", "scaling = inf"), "scaling", "line 4")
mtp_case("scaling-zero", ("scaling = 3.000000000000000e-02", "scaling = 0"), "scaling", "line 4")
mtp_case("scaling-negative", ("scaling = 3.000000000000000e-02", "scaling = -0.03"), "scaling", "line 4")
mtp_case("scaling-string", ("scaling = 3.000000000000000e-02", "scaling = small"), "scaling", "line 4")
mtp_case("scaling-twice", ("potential_tag", "scaling = 2.0\npotential_tag"), "scaling", "line 6")
mtp_case("radial-scaling-twice", ("\tmin_dist", "\tscaling = 2.0\n\tscaling = 3.0\n\tmin_dist"), "scaling", "line 9")
mtp_case("radial-scaling-nan", ("\tmin_dist", "\tscaling = nan\n\tmin_dist"), "scaling", "line 8")
mtp_case("min-dist-negative", ("min_dist = 1.400000000000000e+00", "min_dist = -1"), "min_dist", "line 8")
mtp_case("min-dist-nan", ("min_dist = 1.400000000000000e+00", "min_dist = nan"), "min_dist", "line 8")
mtp_case("min-dist-string", ("min_dist = 1.400000000000000e+00", "min_dist = near"), "min_dist", "line 8")
mtp_case("max-dist-below-min-dist", ("max_dist = 5.000000000000000e+00", "max_dist = 1.0"), "max_dist", "line 9")
mtp_case("max-dist-equals-min-dist", ("max_dist = 5.000000000000000e+00", "max_dist = 1.4"), "max_dist", "line 9")
mtp_case("max-dist-inf", ("max_dist = 5.000000000000000e+00", "max_dist = inf"), "max_dist", "line 9")
mtp_case("species-count-zero", ("species_count = 1", "species_count = 0"), "species_count", "line 5")
mtp_case("species-count-negative", ("species_count = 1", "species_count = -1"), "species_count", "line 5")
mtp_case("species-count-fraction", ("species_count = 1", "species_count = 1.5"), "species_count", "line 5")
mtp_case("species-count-mismatch", ("species_count = 3", "species_count = 2"), "radial_coeffs", template=POT3)
mtp_case("radial-basis-size-zero", ("radial_basis_size = 8", "radial_basis_size = 0"), "radial_basis_size",
         "line 10")
mtp_case("radial-basis-size-mismatch", ("radial_basis_size = 8", "radial_basis_size = 7"), "radial_coeffs",
         "radial_basis_size")
mtp_case("radial-funcs-count-zero", ("radial_funcs_count = 2", "radial_funcs_count = 0"), "radial_funcs_count")
mtp_case("radial-funcs-count-mismatch", ("radial_funcs_count = 2", "radial_funcs_count = 3"), "radial_funcs_count")
mtp_case("radial-basis-type-unknown", ("RBChebyshev", "RBShapeev"), "radial_basis_type", "line 7")
mtp_case("radial-row-non-numeric", lambda t: _first_number("0-0")("x1")(t), "radial_coeffs")
mtp_case("radial-row-short", lambda t: re.sub(r"\{(-?\d\.\d+e[+-]\d+), ", "{", t, count=1), "radial_coeffs",
         "line 14")
mtp_case("radial-block-order", ("\t\t0-1", "\t\t1-0"), "radial_coeffs", template=POT3)
mtp_case("radial-row-before-header", ("\t\t0-0\n", ""), "radial_coeffs")
mtp_case("alpha-moments-count-zero", ("alpha_moments_count = 18", "alpha_moments_count = 0"), "alpha_moments_count")
mtp_case("alpha-moments-count-small", ("alpha_moments_count = 18", "alpha_moments_count = 12"), "alpha_index_times")
mtp_case("alpha-basic-count-wrong", ("alpha_index_basic_count = 11", "alpha_index_basic_count = 10"),
         "alpha_index_basic_count")
mtp_case("alpha-times-count-wrong", ("alpha_index_times_count = 14", "alpha_index_times_count = 15"),
         "alpha_index_times_count")
mtp_case("alpha-scalar-moments-wrong", ("alpha_scalar_moments = 9", "alpha_scalar_moments = 8"),
         "alpha_scalar_moments")
mtp_case("alpha-basic-negative", ("{0, 1, 0, 0}", "{0, -1, 0, 0}"), "alpha_index_basic")
mtp_case("alpha-basic-row-short", ("{0, 1, 0, 0}", "{0, 1, 0}"), "alpha_index_basic")
mtp_case("alpha-times-mult-zero", _times_row(0, 2, "0"), "alpha_index_times", "mult")
mtp_case("alpha-times-mult-negative", _times_row(5, 2, "-2"), "alpha_index_times", "mult")
mtp_case("alpha-times-target-basic", _times_row(0, 3, "5"), "alpha_index_times")
mtp_case("alpha-times-source-unwritten", ("{0, 12, 1, 16}, {0, 15, 1, 17}", "{0, 16, 1, 17}, {0, 12, 1, 16}"),
         "alpha_index_times")
mtp_case("alpha-mapping-out-of-range", ("{0, 10, 11, 12", "{0, 10, 11, 99"), "alpha_moment_mapping")
mtp_case("alpha-mapping-non-integer", ("{0, 10, 11, 12", "{0, 10, 11.5, 12"), "alpha_moment_mapping")
mtp_case("species-coeffs-count", lambda t: _first_number("species_coeffs")("1.0, 2.0")(t), "species_coeffs")
mtp_case("moment-coeffs-count", lambda t: re.sub(r"(moment_coeffs = \{)[^,]*, ", r"\1", t), "moment_coeffs")
mtp_case("moment-coeffs-missing", lambda t: t[:t.index("moment_coeffs")], "moment_coeffs")
mtp_case("moment-coeffs-unclosed", lambda t: t.rstrip().rstrip("}") + "\n", "moment_coeffs")
mtp_case("truncated-in-radial-block", lambda t: t[:t.index("\t\t\t{") + 40], "truncated", "line 14")
mtp_case("truncated-before-mapping", lambda t: t[:t.index("alpha_scalar_moments")], "alpha_scalar_moments",
         "truncated")
mtp_case("missing-header", ("MTP\n", ""), "MTP", "line 1")
mtp_case("version-unknown", ("version = 1.1.0", "version = 2.0"), "version", "line 2")
mtp_case("unknown-key", ("potential_tag", "cutoff = 5\npotential_tag"), "cutoff", "line 6")
mtp_case("key-twice", ("\tradial_funcs_count = 2", "\tradial_funcs_count = 2\n\tradial_funcs_count = 2"),
         "radial_funcs_count", "line 12")
mtp_case("magnetic", ("potential_tag", "magnetic_basis_type = RBChebyshev\npotential_tag"), "magnetic_basis_type")
mtp_case("empty-file", lambda t: "", "MTP")


def mtp_binary():
    def make(tmp):
        from mtpjax.potential import MTP

        p = _written(tmp, "pot.mtp", GARBAGE)
        return lambda: MTP.from_file(p), p
    CASES.append(Case("mtp-binary-garbage", "mtp", make, "pot.mtp", ("UTF-8",)))


mtp_binary()


# --- configurations (.cfg) ------------------------------------------------------------------------------------

def cfg_case(id, old, new, *needles, text=None):
    def make(tmp):
        from mtpjax.io.cfg import read_cfg

        p = _written(tmp, "data.cfg", text if text is not None else sub(CFG, old, new))
        return lambda: read_cfg(p), p
    CASES.append(Case(f"cfg-{id}", "cfg", make, "data.cfg", needles))


ROW1 = "    1 0 0.0 0.0 0.0 0.1 0.0 0.0"
ROW2 = "    2 1 2.5 2.5 2.5 -0.1 0.0 0.0"
SUPERCELL = " Supercell\n    5.0 0.0 0.0\n    0.0 5.0 0.0\n    0.0 0.0 5.0\n"
STRESS = " PlusStress:  xx yy zz yz xz xy\n    0.1 0.1 0.1 0.0 0.0 0.0\n"

cfg_case("type-inf", ROW2, "    2 inf 2.5 2.5 2.5 -0.1 0.0 0.0", "type", "line 10")
cfg_case("type-huge", ROW2, "    2 1e30 2.5 2.5 2.5 -0.1 0.0 0.0", "type", "line 10")
cfg_case("type-negative", ROW2, "    2 -1 2.5 2.5 2.5 -0.1 0.0 0.0", "type", "line 10")
cfg_case("type-fraction", ROW2, "    2 0.5 2.5 2.5 2.5 -0.1 0.0 0.0", "type", "line 10")
cfg_case("type-nan", ROW2, "    2 nan 2.5 2.5 2.5 -0.1 0.0 0.0", "type", "line 10")
cfg_case("id-out-of-order", ROW2, "    3 1 2.5 2.5 2.5 -0.1 0.0 0.0", "id", "line 10")
cfg_case("ghost-huge", None, None, "ghost", "line 10",
         text=sub(sub(sub(CFG, "fx fy fz", "fx fy fz ghost"), ROW1, ROW1 + " 0"), ROW2, ROW2 + " 1e300"))
cfg_case("ghost-fraction", None, None, "ghost", "line 9",
         text=sub(sub(sub(CFG, "fx fy fz", "fx fy fz ghost"), ROW1, ROW1 + " 0.5"), ROW2, ROW2 + " 1"))
cfg_case("position-nan", ROW2, "    2 1 2.5 nan 2.5 -0.1 0.0 0.0", "cartes_y", "line 10")
cfg_case("position-inf", ROW1, "    1 0 inf 0.0 0.0 0.1 0.0 0.0", "cartes_x", "line 9")
cfg_case("position-overflow", ROW1, "    1 0 1e400 0.0 0.0 0.1 0.0 0.0", "cartes_x", "line 9")
cfg_case("force-nan", ROW2, "    2 1 2.5 2.5 2.5 -0.1 nan 0.0", "fy", "line 10")
cfg_case("energy-nan", "    -7.5", "    nan", "Energy", "line 12")
cfg_case("energy-inf", "    -7.5", "    -inf", "Energy", "line 12")
cfg_case("energy-two-numbers", "    -7.5", "    -7.5 1.0", "Energy", "line 12")
cfg_case("energy-string", "    -7.5", "    low", "Energy", "line 12")
cfg_case("plusstress-nan", "0.1 0.1 0.1 0.0", "0.1 nan 0.1 0.0", "PlusStress", "line 14")
cfg_case("plusstress-five-values", "0.1 0.1 0.1 0.0 0.0 0.0", "0.1 0.1 0.1 0.0 0.0", "PlusStress", "line 14")
cfg_case("plusstress-bad-names", "xx yy zz yz xz xy", "xx yy zz yz xz zx", "PlusStress", "line 13")
cfg_case("virial-nan", "PlusStress:  xx yy zz yz xz xy\n    0.1 0.1 0.1",
         "Virial:  xx yy zz yz xz xy\n    0.1 0.1 nan", "Virial", "line 14")
cfg_case("both-stress-and-virial", " Feature", " Virial:  xx yy zz yz xz xy\n    0 0 0 0 0 0\n Feature",
         "Virial", "line 15")
cfg_case("old-stress", "PlusStress:", "Stress:", "Stress", "line 13")
cfg_case("supercell-nan", "0.0 5.0 0.0", "0.0 nan 0.0", "Supercell", "line 6")
cfg_case("supercell-singular", "0.0 5.0 0.0", "5.0 0.0 0.0", "Supercell", "line 6")
cfg_case("supercell-zero-row", "0.0 5.0 0.0", "0.0 0.0 0.0", "Supercell", "line 6")
cfg_case("supercell-two-numbers", "0.0 5.0 0.0", "0.0 5.0", "Supercell", "line 6")
cfg_case("supercell-four-rows", "    0.0 0.0 5.0\n", "    0.0 0.0 5.0\n    1.0 1.0 1.0\n", "Supercell", "line 8")
cfg_case("supercell-empty", "    5.0 0.0 0.0\n    0.0 5.0 0.0\n    0.0 0.0 5.0\n", "", "Supercell", "line 4")
cfg_case("size-larger", "    2\n", "    3\n", "AtomData")
cfg_case("size-smaller", "    2\n", "    1\n", "AtomData", "line 10")
cfg_case("size-negative", "    2\n", "    -2\n", "Size", "line 3")
cfg_case("size-fraction", "    2\n", "    2.5\n", "Size", "line 3")
cfg_case("size-missing", " Size\n    2\n", "", "Size")
cfg_case("size-twice", " Supercell", " Size\n    2\n Supercell", "Size", "line 4")
cfg_case("missing-end", "END_CFG\n", "", "END_CFG")
cfg_case("missing-begin", "BEGIN_CFG\n", "", "BEGIN_CFG", "line 1")
cfg_case("nested-begin", " Energy", "BEGIN_CFG\n Energy", "END_CFG", "line 11")
cfg_case("unknown-keyword", " Energy", " Charge\n    0\n Energy", "Charge", "line 11")
cfg_case("row-missing-value", ROW2, "    2 1 2.5 2.5 2.5 -0.1 0.0", "AtomData", "line 10")
cfg_case("row-non-numeric", ROW2, "    2 1 2.5 2.5 two -0.1 0.0 0.0", "cartes_z", "line 10")
cfg_case("row-underscore-number", ROW2, "    2 1 2.5 2.5 2.5 -0.1 0.0 1_000", "fz", "line 10")
cfg_case("size-huge", "    2\n", "    1000000000000\n", "AtomData", "Size")
cfg_case("energy-without-value", "    -7.5\n", "", "Energy", "line 12")
cfg_case("column-missing", None, None, "cartes_z", "line 8", text=sub(sub(sub(CFG, "cartes_z fx", "fx"), ROW1, (
    "    1 0 0.0 0.0 0.1 0.0 0.0")), ROW2, "    2 1 2.5 2.5 -0.1 0.0 0.0"))
cfg_case("column-twice", "cartes_z fx", "cartes_z cartes_z fx", "cartes_z", "line 8")
cfg_case("forces-partial", None, None, "fz", "line 8", text=sub(sub(sub(CFG, "fx fy fz", "fx fy"), ROW1, (
    "    1 0 0.0 0.0 0.0 0.1 0.0")), ROW2, "    2 1 2.5 2.5 2.5 -0.1 0.0"))
cfg_case("direct-without-supercell", None, None, "direct_x",
         text=sub(sub(sub(CFG, "cartes_x cartes_y cartes_z", "direct_x direct_y direct_z"), SUPERCELL, ""), STRESS, ""))
cfg_case("virial-without-supercell", None, None, "Virial",
         text=sub(sub(CFG, SUPERCELL, ""), "PlusStress:", "Virial:"))
cfg_case("feature-without-name", " Feature   EFS_by  test", " Feature", "Feature", "line 15")
cfg_case("atomdata-before-size", None, None, "Size",
         text="BEGIN_CFG\n AtomData:  id type cartes_x cartes_y cartes_z\n    1 0 0 0 0\nEND_CFG\n")
cfg_case("second-config-broken", None, None, "type", "line 26",
         text=CFG + sub(CFG, ROW2, "    2 inf 2.5 2.5 2.5 -0.1 0.0 0.0"))


def cfg_binary():
    def make(tmp):
        from mtpjax.io.cfg import read_cfg

        p = _written(tmp, "data.cfg", GARBAGE)
        return lambda: read_cfg(p), p
    CASES.append(Case("cfg-binary-garbage", "cfg", make, "data.cfg", ("UTF-8",)))


cfg_binary()


# --- the command line ---------------------------------------------------------------------------------------

def cli_case(id, kind, make_argv, fname, *needles):
    """``make_argv(tmp)`` writes the files and returns the argument list of ``mtpjax``."""
    def make(tmp):
        argv = make_argv(tmp)
        return argv, None
    CASES.append(Case(f"cli-{id}", kind, make, fname, needles, cli=True))


def _md_files(tmp, edit=lambda t: t, structure=None):
    argon(tmp / "ar.extxyz", **(structure or {}))
    return _written(tmp, "run.toml", edit(MD))


cli_case("md-traj-every-zero", "md", lambda tmp: ["md", str(_md_files(tmp, lambda t: sub(t, "traj_every = 50",
                                                                                               "traj_every = 0"))),
                                                  "--no-progress"], "run.toml", "traj_every")
cli_case("md-velocities-string", "md", lambda tmp: ["md", str(_md_files(tmp, lambda t: sub(
    t, "velocities = true", 'velocities = "no"'))), "--no-progress"], "run.toml", "velocities")
cli_case("md-set-steps-fraction", "md", lambda tmp: ["md", str(_md_files(tmp)), "--set", "stage.0.steps=2.5",
                                                     "--no-progress"], "run.toml", "stage[1].steps")
cli_case("md-singular-cell", "structure", lambda tmp: ["md", str(_md_files(tmp, structure=dict(
    cell=[[10.6, 0, 0], [10.6, 0, 0], [0, 0, 10.6]]))), "--no-progress"], "ar.extxyz", "linearly dependent")
cli_case("md-overlapping-atoms", "structure", lambda tmp: ["md", str(_md_files(tmp, structure=dict(
    shift_second=[0.1, 0, 0]))), "--no-progress"], "ar.extxyz", "overlap", "min_distance")
cli_case("md-output-is-a-file", "md", lambda tmp: (_written(tmp, "taken", "x"), [
    "md", str(_md_files(tmp, lambda t: sub(t, 'output = "out"', 'output = "taken"'))), "--no-progress"])[1],
    "run.toml", "output")
cli_case("learn-temperature-huge", "learn", lambda tmp: ["learn", str(_written(tmp, "learn.toml", sub(
    LEARN, "temperature_K = 600.0", "temperature_K = 1e12")))], "learn.toml", "temperature")
cli_case("learn-candidate-every-zero", "learn", lambda tmp: ["learn", str(_written(tmp, "learn.toml", sub(
    LEARN, "candidate_every = 10", "candidate_every = 0")))], "learn.toml", "active.candidate_every")
cli_case("learn-binary", "learn", lambda tmp: ["learn", str(_written(tmp, "learn.toml", GARBAGE))], "learn.toml",
         "UTF-8")
cli_case("run-timeout-zero", "run", lambda tmp: ["run", str(_written(tmp, "workflow.toml", sub(
    WORKFLOW, "timeout_s = 300", "timeout_s = 0")))], "workflow.toml", "labels.timeout_s")
cli_case("run-set-max-select", "run", lambda tmp: ["run", str(_written(tmp, "workflow.toml", WORKFLOW)), "--set",
                                                   "learn.max_select=-5"], "workflow.toml", "learn.max_select")


def untrained(text: str) -> str:
    """The potential ``text`` without its coefficients (a template)."""
    head, rest = text.split("\tradial_coeffs\n")
    return head + "alpha_moments_count" + rest.split("alpha_moments_count", 1)[1].split("species_coeffs")[0]


def _efs(tmp, pot=None, cfg=None):
    p = _written(tmp, "pot.mtp", pot if pot is not None else POT3.read_text())
    c = _written(tmp, "in.cfg", cfg if cfg is not None else CFG)
    return ["calc-efs", str(p), str(c), str(tmp / "out.cfg")]


cli_case("calc-efs-nan-moment-coeff", "mtp", lambda tmp: _efs(
    tmp, pot=_first_number("moment_coeffs")("nan")(POT3.read_text())), "pot.mtp", "moment_coeffs")
cli_case("calc-efs-nan-scaling", "mtp", lambda tmp: _efs(
    tmp, pot=sub(POT3.read_text(), "scaling = 2.000000000000000e-02", "scaling = nan")), "pot.mtp", "scaling")
cli_case("calc-efs-negative-min-dist", "mtp", lambda tmp: _efs(
    tmp, pot=sub(POT3.read_text(), "min_dist = 1.400000000000000e+00", "min_dist = -1")), "pot.mtp", "min_dist")
cli_case("calc-efs-untrained", "mtp", lambda tmp: _efs(tmp, pot=untrained(POT3.read_text())), "pot.mtp", "untrained")
cli_case("calc-efs-cfg-type-inf", "cfg", lambda tmp: _efs(tmp, cfg=sub(
    CFG, ROW2, "    2 inf 2.5 2.5 2.5 -0.1 0.0 0.0")), "in.cfg", "type", "line 10")
cli_case("calc-efs-cfg-type-not-a-species", "cfg", lambda tmp: _efs(tmp, cfg=sub(
    CFG, ROW2, "    2 7 2.5 2.5 2.5 -0.1 0.0 0.0")), "in.cfg", "type 7")
cli_case("calc-efs-cfg-garbage", "cfg", lambda tmp: _efs(tmp, cfg=GARBAGE), "in.cfg", "UTF-8")
cli_case("calc-efs-cfg-singular-supercell", "cfg", lambda tmp: _efs(tmp, cfg=sub(CFG, "0.0 5.0 0.0", "5.0 0.0 0.0")),
         "in.cfg", "Supercell")
cli_case("calc-efs-cfg-missing", "cfg", lambda tmp: _efs(tmp)[:2] + [str(tmp / "nope.cfg"), str(tmp / "o.cfg")],
         "nope.cfg")


def _train(tmp, *flags, pot=None, cfg=None):
    p = _written(tmp, "pot.mtp", pot if pot is not None else POT3.read_text())
    c = _written(tmp, "train.cfg", cfg if cfg is not None else CFG)
    return ["train", str(p), str(c), "--trained-pot-name", str(tmp / "out.mtp"), "--max-iter", "0", "-q",
            *flags]


def _train_toml(tmp, edit=lambda t: t):
    _written(tmp, "pot.mtp", POT3.read_text())
    _written(tmp, "train.cfg", CFG)
    t = _written(tmp, "train.toml", edit(TRAIN_TOML))
    return ["train", "--config", str(t), "-q"]


def train_case(id, make_argv, fname, *needles):
    cli_case(f"train-{id}", "train", make_argv, fname, *needles)


train_case("max-iter-negative", lambda tmp: _train(tmp, "--max-iter", "-1"), "train", "max-iter")
train_case("energy-weight-negative", lambda tmp: _train(tmp, "--energy-weight", "-1"), "train", "energy-weight")
train_case("force-weight-nan", lambda tmp: _train(tmp, "--force-weight", "nan"), "train", "force-weight")
train_case("weighting-unknown", lambda tmp: _train(tmp, "--weighting", "atoms"), "train", "weighting", "atoms")
train_case("optimizer-unknown", lambda tmp: _train(tmp, "--optimizer", "sgd"), "train", "optimizer", "sgd")
train_case("init-params-unknown", lambda tmp: _train(tmp, "--init-params", "zeros"), "train", "init-params")
train_case("n-starts-zero", lambda tmp: _train(tmp, "--n-starts", "0"), "train", "n-starts")
train_case("learning-rate-zero", lambda tmp: _train(tmp, "--learning-rate", "0"), "train", "learning-rate")
train_case("min-dist-negative", lambda tmp: _train(tmp, "--min-dist", "-1"), "train", "min-dist")
train_case("precondition-unknown", lambda tmp: _train(tmp, "--precondition", "jacobi"), "train", "precondition")
train_case("train-set-missing", lambda tmp: _train(tmp)[:2] + [str(tmp / "nope.cfg")] + _train(tmp)[3:], "nope.cfg")
train_case("potential-missing", lambda tmp: ["train", str(tmp / "nope.mtp")] + _train(tmp)[2:], "nope.mtp")
train_case("valid-set-missing", lambda tmp: _train(tmp, "--valid-cfgs", str(tmp / "valid.cfg")), "valid.cfg")
train_case("output-folder-is-a-file", lambda tmp: (_written(tmp, "taken", "x"), _train(tmp)[:4] + [
    str(tmp / "taken/out.mtp")] + _train(tmp)[5:])[1], "taken", "--trained-pot-name")
train_case("log-folder-is-a-file", lambda tmp: (_written(tmp, "taken", "x"), _train(
    tmp, "--log", str(tmp / "taken/sub/log.jsonl")))[1], "taken", "--log")
train_case("output-is-a-folder", lambda tmp: (tmp / "outdir").mkdir() or
           _train(tmp)[:4] + [str(tmp / "outdir")] + _train(tmp)[5:], "outdir", "--trained-pot-name")
train_case("potential-nan", lambda tmp: _train(tmp, pot=_first_number("species_coeffs")("nan")(POT3.read_text())),
           "pot.mtp", "species_coeffs")
train_case("potential-garbage", lambda tmp: _train(tmp, pot=GARBAGE), "pot.mtp", "UTF-8")
train_case("train-energy-nan", lambda tmp: _train(tmp, cfg=sub(CFG, "    -7.5", "    nan")), "train.cfg", "Energy")
train_case("train-type-inf", lambda tmp: _train(tmp, cfg=sub(CFG, ROW2, "    2 inf 2.5 2.5 2.5 -0.1 0.0 0.0")),
           "train.cfg", "type")
train_case("train-garbage", lambda tmp: _train(tmp, cfg=GARBAGE), "train.cfg", "UTF-8")
train_case("train-empty", lambda tmp: _train(tmp, cfg=""), "train.cfg", "empty")
train_case("train-unlabelled", lambda tmp: _train(tmp, cfg=sub(sub(sub(
    CFG, " Energy\n    -7.5\n", ""), STRESS, ""),
    "fx fy fz", "").replace(" 0.1 0.0 0.0\n", "\n").replace(" -0.1 0.0 0.0\n", "\n")), "train.cfg", "labels")
train_case("train-type-not-a-species", lambda tmp: _train(tmp, cfg=sub(CFG, ROW2, "    2 7 2.5 2.5 2.5 -0.1 0.0 0.0")),
           "train.cfg", "type 7")
train_case("config-unknown-key", lambda tmp: _train_toml(tmp, lambda t: t + "max_iters = 3\n"), "train.toml",
           "max_iters")
train_case("config-max-iter-string", lambda tmp: _train_toml(tmp, lambda t: sub(t, "max_iter = 0", 'max_iter = "ten"')),
           "train.toml", "max_iter")
train_case("config-energy-weight-nan", lambda tmp: _train_toml(tmp, lambda t: sub(
    t, "energy_weight = 1.0", "energy_weight = nan")), "train.toml", "energy_weight")
train_case("config-train-set-missing", lambda tmp: _train_toml(tmp, lambda t: sub(t, '"train.cfg"', '"gone.cfg"')),
           "train.toml", "gone.cfg")
train_case("config-garbage", lambda tmp: _train_toml(tmp, lambda t: "[train\nmax_iter = 1\n"), "train.toml", "TOML")
train_case("config-missing", lambda tmp: ["train", "--config", str(tmp / "none.toml")], "none.toml")


# ---------------------------------------------------------------------------------------------------------
# running a case
# ---------------------------------------------------------------------------------------------------------


def _expensive(*a, **k):
    raise ExpensiveWorkStarted("expensive work started before the input was rejected")


class _StubLearner:
    def __init__(self, *a, **k):
        _expensive()


def stub_expensive(monkeypatch):
    """Replace what costs time (MD set-up, learning, the workflow, force evaluation, training) by
    :func:`_expensive`."""
    import mtpjax.cli.learn
    import mtpjax.cli.potential
    import mtpjax.cli.train
    import mtpjax.cli.workflow
    import mtpjax.md.run
    import mtpjax.potential.evaluate

    monkeypatch.setattr(mtpjax.md.run, "Simulation", _expensive)
    monkeypatch.setattr(mtpjax.cli.learn, "Learner", _StubLearner)
    monkeypatch.setattr(mtpjax.cli.workflow, "Workflow", _expensive)
    monkeypatch.setattr(mtpjax.potential.evaluate, "efs_batch", _expensive)
    monkeypatch.setattr(mtpjax.cli.train, "train", _expensive)


def outcome(case: Case, tmp: Path) -> tuple[str, str]:
    """(clear | vague | traceback | silent | late, the message): clear = an MTPJaxError (or exit status 2 with
    one line on stderr) naming ``case.fname`` and every needle, on one line, without internal file names."""
    if case.cli:
        from mtpjax.cli import main

        argv, _ = case.make(tmp)
        err, out = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                rc = main(argv)
        except ExpensiveWorkStarted as e:
            return "late", str(e)
        except SystemExit as e:  # argparse
            return "vague", f"SystemExit({e.code}): {err.getvalue()!r}"
        except Exception as e:  # noqa: BLE001
            return "traceback", f"{type(e).__name__}: {e}"
        if rc == 0:
            return "silent", out.getvalue()
        text = err.getvalue()
        lines = text.strip().splitlines()
        if rc != 2 or len(lines) != 1 or not lines[0].startswith("mtpjax: error: ") or "Traceback" in text:
            return "vague", f"rc={rc}: {text!r}"
        msg = lines[0]
        path = None
    else:
        run, path = case.make(tmp)
        try:
            run()
        except MTPJaxError as e:
            msg = str(e)
        except ExpensiveWorkStarted as e:
            return "late", str(e)
        except Exception as e:  # noqa: BLE001
            return "traceback", f"{type(e).__name__}: {e}"
        else:
            return "silent", ""
    needles = _resolve(case.needles, path)
    if "\n" in msg or case.fname not in msg or not all(n in msg for n in needles) or INTERNAL.search(msg):
        return "vague", msg
    return "clear", msg


@pytest.fixture(autouse=True)
def _no_expensive_work(monkeypatch):
    stub_expensive(monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_one_clear_line(case, tmp_path):
    kind, msg = outcome(case, tmp_path)
    assert kind == "clear", f"{case.id}: {kind}: {msg}\n(needs {case.fname!r} and {case.needles})"
    if case.cli:  # nothing written by the command (beyond the inputs); the output folder of an MD run is made
        # (and locked) before its structures are checked against each other (overlaps), so not for that case
        written = {"traj.h5md", "thermo.csv", "checkpoint.npz", "out.cfg", "out.mtp", "learn_out", "wf_out"}
        if not case.id.endswith("overlapping-atoms"):
            written.add("out")
        assert not [p for p in tmp_path.rglob("*") if p.name in written]


def test_enough_cases_of_every_kind():
    counts = Counter(c.kind for c in CASES)
    assert len(CASES) >= 150 and len({c.id for c in CASES}) == len(CASES)
    assert all(counts[k] >= 5 for k in ("md", "learn", "run", "train", "mtp", "cfg", "structure")), counts


def test_templates_are_valid(tmp_path):
    """The templates the cases edit are accepted (so every error above comes from its one edit)."""
    from mtpjax.config.learn import load_learn
    from mtpjax.config.md import load_md_run
    from mtpjax.config.train import train_options
    from mtpjax.config.workflow import load_workflow
    from mtpjax.io.cfg import read_cfg
    from mtpjax.potential import MTP

    argon(tmp_path / "ar.extxyz")
    assert load_md_run(_written(tmp_path, "run.toml", MD)).stage[1].n_steps(2.0) == 200
    assert load_learn(_written(tmp_path, "learn.toml", LEARN)).system[0].name == "cu8"
    assert load_workflow(_written(tmp_path, "workflow.toml", WORKFLOW)).learn.max_iterations == 4
    assert read_cfg(_written(tmp_path, "data.cfg", CFG))[0].energy == -7.5
    assert np.isfinite(MTP.from_file(POT3).moment_coeffs).all()
    _written(tmp_path, "pot.mtp", POT3.read_text())
    _written(tmp_path, "train.cfg", CFG)
    o = train_options({}, str(_written(tmp_path, "train.toml", TRAIN_TOML)))
    assert o.max_iter == 0 and o.train.endswith("train.cfg")


if __name__ == "__main__":  # the outcome of every case, by kind (no assertions)
    import tempfile

    mp = pytest.MonkeyPatch()
    stub_expensive(mp)
    table = Counter()
    for case in CASES:
        with tempfile.TemporaryDirectory() as d:
            kind, msg = outcome(case, Path(d))
        table[case.kind, kind] += 1
        print(f"{kind:9s} {case.id:45s} {msg[:160]!r}")
    mp.undo()
    kinds = sorted({k for k, _ in table})
    print("\nkind       " + " ".join(f"{o:>9s}" for o in ("clear", "vague", "traceback", "silent", "late", "total")))
    for k in kinds:
        row = [table[k, o] for o in ("clear", "vague", "traceback", "silent", "late")]
        print(f"{k:10s} " + " ".join(f"{n:9d}" for n in row) + f" {sum(row):9d}")
    tot = [sum(table[k, o] for k in kinds) for o in ("clear", "vague", "traceback", "silent", "late")]
    print(f"{'all':10s} " + " ".join(f"{n:9d}" for n in tot) + f" {sum(tot):9d}")
    sys.exit(0)
