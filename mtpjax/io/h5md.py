"""H5MD trajectories: the writer of MD runs and a reader.

H5MD 1.1 layout (what MDAnalysis, znh5md and :mod:`mtpjax.analysis` read)::

    /h5md                     attrs version=[1, 1]; /h5md/author (name), /h5md/creator (name, version)
    /particles/all/box        attrs dimension=3, boundary=['periodic']*3
    /particles/all/box/edges/{value (F,3,3) lattice rows Å, step (F,), time (F,) ps}
    /particles/all/position/{value (F,N,3) Å, step, time}
    /particles/all/velocity/{value (F,N,3) Å/ps, step, time}     (optional)
    /particles/all/species/{value (F,N), step, time}  atomic numbers (MLIP types when elements are
                              unknown); time-dependent form because znh5md reads only that
    /particles/trajectory     hard link to /particles/all (MDAnalysis' minimal topology looks there)
    /observables/<name>/{value (F,) or (F,6), step, time}   potential_energy, kinetic_energy,
                              total_energy, conserved_energy, temperature, pressure, volume, stress

Every append is flushed; a resumed run truncates all datasets to the frame
count stored in the checkpoint, so a killed run leaves neither gaps nor
duplicates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mtpjax.units import FS_PER_PS
import h5py
from mtpjax import __version__

_OBS = {
    "potential_energy": "eV",
    "kinetic_energy": "eV",
    "total_energy": "eV",
    "conserved_energy": "eV",
    "temperature": "K",
    "pressure": "bar",
    "volume": "Angstrom^3",
    "stress": "bar",
}


def _series(parent, name, shape, dtype, unit=None, chunks_frames=16):
    g = parent.require_group(name)
    if "value" not in g:
        g.create_dataset(
            "value", shape=(0,) + tuple(shape), maxshape=(None,) + tuple(shape), dtype=dtype,
            chunks=(chunks_frames,) + tuple(shape),
        )
        g.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(256,))
        g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
        g["time"].attrs["unit"] = "ps"
        if unit:
            g["value"].attrs["unit"] = unit
    return g


def _append(g, value, step, time_ps):
    n = g["value"].shape[0]
    for k in ("value", "step", "time"):
        g[k].resize(n + 1, axis=0)
    g["value"][n] = value
    g["step"][n] = step
    g["time"][n] = time_ps


class H5MDWriter:
    """Append frames to an H5MD file (``mode='w'`` new, ``'a'`` resume at ``n_frames``)."""

    def __init__(self, path, species, pbc=(True, True, True), velocities=False, mode="w", n_frames=None,
                 author="mtpjax", elements_known=True):
        self.path = Path(path)
        self.velocities = velocities
        self.f = h5py.File(self.path, mode)
        f = self.f
        if "h5md" not in f:
            h = f.create_group("h5md")
            h.attrs["version"] = np.array([1, 1], dtype="i4")
            h.create_group("author").attrs["name"] = author
            c = h.create_group("creator")
            c.attrs["name"] = "mtpjax"

            c.attrs["version"] = __version__
        p = f.require_group("particles/all")
        n = len(species)
        box = p.require_group("box")
        box.attrs["dimension"] = 3
        box.attrs["boundary"] = np.array(["periodic" if b else "none" for b in pbc], dtype="S8")
        self.species = np.asarray(species, dtype="i4")
        self.species_grp = _series(p, "species", (n,), "i4")
        if "trajectory" not in f["particles"]:
            # MDAnalysis builds its minimal topology from /particles/trajectory only: hard link, no copy
            f["particles/trajectory"] = p
        self.edges = _series(box, "edges", (3, 3), "f8", "Angstrom")
        self.position = _series(p, "position", (n, 3), "f8", "Angstrom")
        self.velocity = _series(p, "velocity", (n, 3), "f8", "Angstrom ps-1") if velocities else None
        obs = f.require_group("observables")
        self.obs = {k: _series(obs, k, (6,) if k == "stress" else (), "f8", u, 256) for k, u in _OBS.items()}
        if n_frames is not None:
            self.truncate(n_frames)

    @property
    def n_frames(self) -> int:
        return int(self.position["value"].shape[0])

    def truncate(self, n_frames: int):
        groups = [self.edges, self.position, self.species_grp] + ([self.velocity] if self.velocity is not None else [])
        groups += list(self.obs.values())
        for g in groups:
            for k in ("value", "step", "time"):
                if g[k].shape[0] > n_frames:
                    g[k].resize(n_frames, axis=0)
        self.f.flush()

    def append(self, step, time_fs, positions, cell, velocities=None, observables=None):
        t = float(time_fs) / FS_PER_PS
        step = int(step)
        _append(self.edges, np.asarray(cell, float), step, t)
        _append(self.position, np.asarray(positions, float), step, t)
        _append(self.species_grp, self.species, step, t)
        if self.velocity is not None and velocities is not None:
            _append(self.velocity, np.asarray(velocities, float), step, t)
        for k, v in (observables or {}).items():
            if k in self.obs:
                _append(self.obs[k], v, step, t)
        self.f.flush()

    def close(self):
        if self.f:
            self.f.close()
            self.f = None



def read_h5md(path, frames=slice(None)):
    """Return (species (N,), positions (F,N,3), cells (F,3,3), steps, times_ps, velocities or None)."""
    with h5py.File(path, "r") as f:
        p = f["particles/all"]
        sp = p["species"]
        sp = sp["value"][0] if isinstance(sp, h5py.Group) else sp[()]
        pos = p["position/value"][frames]
        cells = p["box/edges/value"][frames]
        steps = p["position/step"][frames]
        times = p["position/time"][frames]
        vel = p["velocity/value"][frames] if "velocity" in p else None
        obs = {}
        if "observables" in f:
            for k in f["observables"]:
                obs[k] = f["observables"][k]["value"][frames]
    return sp, pos, cells, steps, times, vel, obs


