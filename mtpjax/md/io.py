"""MD output: H5MD trajectories, CSV thermo logs, atomic checkpoints, converters.

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

import json
import os
from pathlib import Path

import jax
import numpy as np

from ..errors import ConfigurationError, FileFormatError

PS = 1000.0  # fs per ps
ASE_TIME_PER_FS = 0.09822694788464063
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
        import h5py

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
            from .. import __version__

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
        t = float(time_fs) / PS
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


def state_frame(state, dof):
    """Host-side dict of one (unbatched) state's frame data for the writers."""
    masses = np.asarray(state.masses)
    p = np.asarray(state.momenta)
    cell = np.asarray(state.cell)
    vol = abs(np.linalg.det(cell))
    ek = 0.5 * float(np.sum(p**2 / masses[:, None]))
    kin = np.einsum("na,nb->ab", p / masses[:, None], p)
    pt = (kin + np.asarray(state.virial)) / vol
    bar = 6.241509125883258e-07
    kb = 8.617330337217213e-05
    e = float(state.energy)
    return dict(
        step=int(state.step),
        time_fs=float(state.time) / ASE_TIME_PER_FS,
        positions=np.asarray(state.positions),
        cell=cell,
        velocities=p / masses[:, None] * ASE_TIME_PER_FS * PS,  # Å/ps
        observables=dict(
            potential_energy=e,
            kinetic_energy=ek,
            total_energy=e + ek,
            temperature=2.0 * ek / dof / kb,
            pressure=float(np.trace(pt)) / 3.0 / bar,
            volume=vol,
            stress=-np.array([pt[0, 0], pt[1, 1], pt[2, 2], pt[1, 2], pt[0, 2], pt[0, 1]]) / bar,
        ),
    )


# ------------------------------------------------------------------ thermo
class ThermoLog:
    """CSV thermo log (step, time_fs, T, P, E_pot, E_kin, conserved, volume, density...).

    ``offset``: resume by truncating the file to that many bytes.
    """

    def __init__(self, path, columns, mass_amu: float, mode="w", offset=None):
        self.path = Path(path)
        self.columns = list(columns)
        self.mass = float(mass_amu)
        if mode == "a" and self.path.exists():
            with open(self.path, "r+b") as fh:
                fh.truncate(offset if offset is not None else fh.seek(0, 2))
            self.fh = open(self.path, "a")
        else:
            self.fh = open(self.path, "w")
            self.fh.write(",".join(self.columns + ["density_g_cm3"]) + "\n")
            self.fh.flush()

    def write(self, rows):
        for r in np.atleast_2d(rows):
            vals = list(r)
            vals[0] = int(round(vals[0]))
            dens = self.mass / r[self.columns.index("volume_A3")] * 1.66053906660
            self.fh.write(",".join(f"{v}" if isinstance(v, int) else f"{v:.10g}" for v in vals) + f",{dens:.8g}\n")
        self.fh.flush()

    def tell(self) -> int:
        self.fh.flush()
        return self.fh.tell()

    def close(self):
        self.fh.close()


def read_thermo(path) -> dict:
    """Read a thermo CSV into {column: array}."""
    import csv

    with open(path) as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    data = np.array([[float(x) for x in r] for r in rows[1:]]) if len(rows) > 1 else np.zeros((0, len(head)))
    return {h: data[:, k] for k, h in enumerate(head)}


# -------------------------------------------------------------- checkpoints
def save_checkpoint(path, trees: dict, meta: dict):
    """Write ``trees`` (name → pytree of arrays) and JSON ``meta`` atomically.

    The file is written to ``path.tmp``, fsync-ed and renamed over ``path``,
    so a kill at any moment leaves either the old or the new checkpoint.
    """
    path = Path(path)
    arrays = {}
    for name, tree in trees.items():
        leaves = jax.tree_util.tree_leaves(tree)
        for k, leaf in enumerate(leaves):
            arrays[f"{name}__{k}"] = np.asarray(leaf)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    except OSError:  # pragma: no cover
        pass


def load_checkpoint(path, templates: dict):
    """Read a checkpoint; ``templates`` (name → pytree) give the tree structures."""
    path = Path(path)
    try:
        z = np.load(path)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"unreadable checkpoint ({e})", path=path) from None
    meta = json.loads(bytes(z["__meta__"]).decode())
    out = {}
    for name, tmpl in templates.items():
        leaves, treedef = jax.tree_util.tree_flatten(tmpl)
        new = [z[f"{name}__{k}"] for k in range(len(leaves))]
        out[name] = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a) for a in new])
    return out, meta


def load_checkpoint_meta(path) -> dict:
    z = np.load(path)
    return json.loads(bytes(z["__meta__"]).decode())


# ------------------------------------------------------------- converters
def read_h5md(path, frames=slice(None)):
    """Return (species (N,), positions (F,N,3), cells (F,3,3), steps, times_ps, velocities or None)."""
    import h5py

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


def convert(path_in, path_out, fmt=None, frames=slice(None), type_map=None):
    """Convert an H5MD trajectory to extxyz (``fmt='extxyz'``) or a LAMMPS dump (``'lammps-dump'``).

    extxyz keeps the full cell (Lattice), pbc, time/step and energies;
    the LAMMPS dump uses the triclinic ``ITEM: BOX BOUNDS xy xz yz`` form of
    the cell (after rotating it to LAMMPS' lower-triangular convention).
    ``type_map``: atomic number → LAMMPS type (default: order of first appearance).
    """
    path_in, path_out = Path(path_in), Path(path_out)
    if not path_in.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path_in))
    if fmt is None:
        suf = path_out.suffix.lower()
        fmt = {".xyz": "extxyz", ".extxyz": "extxyz", ".dump": "lammps-dump", ".lammpstrj": "lammps-dump"}.get(suf)
        if fmt is None:
            raise ConfigurationError(f"cannot infer the output format from {path_out.name!r}; give --format")
    sp, pos, cells, steps, times, vel, obs = read_h5md(path_in, frames)
    if fmt == "extxyz":
        from ase import Atoms
        from ase.io import write

        images = []
        for k in range(len(pos)):
            numbers = sp if np.all(sp > 0) else None
            a = Atoms(numbers=numbers if numbers is not None else np.ones(len(sp), int), positions=pos[k],
                      cell=cells[k], pbc=True)
            if numbers is None:
                a.set_array("mlip_type", np.asarray(sp, int))
            a.info["step"] = int(steps[k])
            a.info["time_fs"] = float(times[k]) * PS
            if "potential_energy" in obs:
                a.info["energy"] = float(obs["potential_energy"][k])
            if vel is not None:
                a.set_velocities(vel[k] / (ASE_TIME_PER_FS * PS))
            images.append(a)
        write(path_out, images, format="extxyz")
    elif fmt in ("lammps-dump", "lammps"):
        if type_map is None:
            uniq = list(dict.fromkeys(int(s) for s in sp))
            type_map = {s: k + 1 for k, s in enumerate(uniq)}
        types = np.array([type_map[int(s)] for s in sp])
        with open(path_out, "w") as fh:
            for k in range(len(pos)):
                _lammps_frame(fh, int(steps[k]), pos[k], cells[k], types)
    else:
        raise ConfigurationError(f"unknown output format {fmt!r} (extxyz or lammps-dump)")
    return path_out


def lammps_cell(cell):
    """Lower-triangular LAMMPS box (a along x, b in xy) and the rotation R: x_lmp = x @ R."""
    a, b, c = np.asarray(cell, float)
    ax = np.linalg.norm(a)
    bx = np.dot(b, a) / ax
    by = np.sqrt(max(np.dot(b, b) - bx * bx, 0.0))
    cx = np.dot(c, a) / ax
    cy = (np.dot(b, c) - bx * cx) / by
    cz = np.sqrt(max(np.dot(c, c) - cx * cx - cy * cy, 0.0))
    lmp = np.array([[ax, 0, 0], [bx, by, 0], [cx, cy, cz]])
    # rotation mapping the original cell onto the LAMMPS one: lmp = cell @ R
    R = np.linalg.solve(np.asarray(cell, float), lmp)
    return lmp, R


def _lammps_frame(fh, step, positions, cell, types):
    lmp, R = lammps_cell(cell)
    x = positions @ R
    xy, xz, yz = lmp[1, 0], lmp[2, 0], lmp[2, 1]
    lx, ly, lz = lmp[0, 0], lmp[1, 1], lmp[2, 2]
    xlo, ylo, zlo = 0.0, 0.0, 0.0
    xlo_b = xlo + min(0.0, xy, xz, xy + xz)
    xhi_b = xlo + lx + max(0.0, xy, xz, xy + xz)
    ylo_b = ylo + min(0.0, yz)
    yhi_b = ylo + ly + max(0.0, yz)
    n = len(positions)
    fh.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{n}\n")
    fh.write("ITEM: BOX BOUNDS xy xz yz pp pp pp\n")
    fh.write(f"{xlo_b:.10f} {xhi_b:.10f} {xy:.10f}\n{ylo_b:.10f} {yhi_b:.10f} {xz:.10f}\n{zlo:.10f} {zlo + lz:.10f} {yz:.10f}\n")
    fh.write("ITEM: ATOMS id type x y z\n")
    for i in range(n):
        fh.write(f"{i + 1} {types[i]} {x[i, 0]:.10f} {x[i, 1]:.10f} {x[i, 2]:.10f}\n")
