"""MD from Python on an ``ase.Atoms``: ``mtpjax.md.simulate(atoms, potential, stages)``.

The run-file driver (:func:`mtpjax.md.run.run_md`) behind a call that takes what a Python user has::

    from ase.build import bulk
    from mtpjax.md import simulate
    traj = simulate(bulk("Ar", "fcc", a=5.26, cubic=True).repeat(3),
                    {"type": "lj", "epsilon": 0.0104, "sigma": 3.4, "cutoff": 8.0},
                    [{"ensemble": "nvt", "temperature_K": 80, "time_ps": 2}], timestep_fs=2.0, output="ar_md")
    traj.thermo["temperature_K"], traj.final, traj.atoms(-1)        # and any mtpjax.analysis function

``potential``: an MTP (``.mtp`` path or :class:`~mtpjax.potential.MTP`) or a pair potential table
(``{"type": "lj" | "morse", ...}``); ``stages``: the ``[[stage]]`` tables of a run file (user units: fs, ps,
K, bar); other keyword arguments are run-file keys (``timestep_fs``, ``temperature_K``, ``traj_every``,
``thermo_every``, ``velocities``, ``seed``, ``elements``...). Everything a run file gives is there: the same
checks, outputs (``traj.h5md``, ``thermo.csv``, ``final.extxyz``, checkpoints), resuming (call again with
the same output folder), and the folder's lock.
"""
from __future__ import annotations

import tempfile
import weakref
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from mtpjax.analysis.trajectory import H5MDTrajectory
from mtpjax.errors import ConfigurationError
from mtpjax.io.thermo import read_thermo
from mtpjax.md.run import run_md
from mtpjax.potential.model import MTP

__all__ = ["simulate", "MDTrajectory"]


class MDTrajectory(H5MDTrajectory):
    """The trajectory of a finished (or stopped) run: an analysis source (``mtpjax.analysis`` functions take it
    as they take a path) with the run's ``path`` (folder), ``thermo`` ({column: (rows,) array}, the
    ``thermo.csv`` columns in user units), ``final`` (the last state as ``ase.Atoms``) and :meth:`atoms`."""

    def __init__(self, folder):
        self.folder = Path(folder).resolve()
        super().__init__(self.folder / "traj.h5md")
        _OPEN.add(self)
        self.thermo = read_thermo(self.folder / "thermo.csv")
        self.final = read(self.folder / "final.extxyz") if (self.folder / "final.extxyz").exists() else None

    def atoms(self, k: int) -> Atoms:
        """Frame ``k`` (negative from the end) as ``ase.Atoms`` in the run's orientation."""
        k = range(self.n_frames)[k]
        pos, cell = self.frames(k, k + 1)
        a = Atoms(numbers=self.species, positions=pos[0], cell=cell[0], pbc=True)
        a.info["time_fs"] = float(self.times_fs[k])
        return a


#: trajectories returned by simulate and not yet closed: a new run into the same folder closes them first (HDF5
#: cannot open a file for writing that this process holds open for reading; notebooks re-run cells)
_OPEN: "weakref.WeakSet[MDTrajectory]" = weakref.WeakSet()


def _close_open_trajectories(folder: Path) -> None:
    for t in list(_OPEN):
        if t.folder == folder:
            t.close()
            _OPEN.discard(t)


def _elements(atoms: Atoms, potential, elements):
    """MLIP type order: given, or the atoms' species (an MTP needs it when the atoms hold several)."""
    if elements is not None:
        return list(elements)
    symbols = sorted(set(atoms.get_chemical_symbols()), key=lambda s: atoms.get_chemical_symbols().index(s))
    if not isinstance(potential, dict) and len(symbols) > 1:
        raise ConfigurationError(f"simulate: the atoms hold {', '.join(symbols)}: give elements=[...] (the element "
                                 "of MLIP type 0, 1, ... of the potential)")
    return symbols


def simulate(atoms: Atoms, potential, stages, *, output=None, overwrite: bool = False, progress: bool = False,
             elements=None, **options) -> MDTrajectory:
    """Run MD of ``atoms`` with ``potential`` through ``stages`` (see the module docstring); returns its
    :class:`MDTrajectory`. ``output``: the run folder (default: a new temporary folder); a folder holding a
    checkpoint of the same run is resumed (``overwrite=True`` starts afresh). A trajectory an earlier call returned
    for the same folder is closed before the run (read the new result instead)."""
    if not isinstance(atoms, Atoms):
        raise ConfigurationError(f"simulate: atoms must be an ase.Atoms, got {type(atoms).__name__}")
    out = Path(output) if output is not None else Path(tempfile.mkdtemp(prefix="mtpjax_md_"))
    out.mkdir(parents=True, exist_ok=True)
    start = out / "start.extxyz"
    if not start.exists() or overwrite:
        write(start, atoms, format="extxyz")
    elif not np.allclose(read(start).positions, atoms.positions):
        raise ConfigurationError(f"simulate: {out} holds the run of other atoms; give another output folder or "
                                 "overwrite=True")
    if isinstance(potential, MTP):
        potential.save(out / "potential.mtp")
        potential = str(out / "potential.mtp")
    elif isinstance(potential, (str, Path)):
        potential = str(Path(potential).resolve())
    run = {"structure": str(start), "potential": potential, "output": str(out), "elements": _elements(
        atoms, potential, elements), "stage": [stages] if isinstance(stages, dict) else list(stages), **options}
    _close_open_trajectories(out.resolve())
    run_md(run, overwrite=overwrite, progress=progress, log=print if progress else (lambda *a: None))
    return MDTrajectory(out)
