"""H5MD trajectories: the writer of MD runs and a reader.

H5MD 1.1 (https://www.nongnu.org/h5md/h5md.html), written so that MDAnalysis, znh5md (ASE) and
:mod:`mtpjax.analysis` read the same distances, velocities, temperatures and energies::

    /h5md                          version [1, 1]; author/name; creator/name, version
    /h5md/modules/units            version [1, 0], system "SI" (unit attributes as in the H5MD units module)
    /particles/trajectory          the one particle group (MDAnalysis and znh5md take the first/only group)
      box                          dimension 3, boundary ["periodic"]*3
      box/edges/value   (F, 3, 3)  Å, lattice vectors as rows, LOWER-TRIANGULAR (a ∥ x, b in the xy plane;
                                   the orientation of LAMMPS and MDAnalysis)
      box/rotation/value (F, 3, 3) R of each frame: written = original @ R (original = written @ Rᵀ)
      position/{value (F, N, 3) Å, step (F,), time (F,) ps}         (rotated with the box)
      velocity/value    (F, N, 3)  Å/ps (rotated; optional)
      velocities/value  (F, N, 3)  the same in ASE units (Å per ASE time unit, for znh5md, which calls
                                   ``Atoms.set_velocities`` with the stored numbers; attribute
                                   ASE_ENTRY_ORIGIN "arrays"; ``velocity`` is marked "info")
      species/value     (F, N)     atomic numbers (MLIP types when the elements are unknown)
      mass/value        (F, N)     amu
    /observables/trajectory/<name>/value (F,) or (F, 6): potential_energy, kinetic_energy, total_energy,
                                   conserved_energy (eV), temperature (K), pressure (bar), volume (Å³),
                                   stress (eV/Å³, ASE's Voigt order xx yy zz yz xz xy and sign, rotated)
    /observables/dt/value (F,)     ps between stored frames (MDAnalysis' ``trajectory.dt``)
    /parameters/mtpjax             species_order: the atomic number of MLIP type 0, 1, ... (LAMMPS type k+1)

Every element but ``position`` links its ``step``/``time`` to position's (H5MD's shared clock). Every
append is flushed; a resumed run truncates every dataset to the frame count stored in its checkpoint, so
a killed run leaves neither gaps nor duplicates. The writer opens the file without HDF5's advisory lock, so
readers (MDAnalysis, znh5md, h5py in a notebook, :func:`read_h5md`) can open it while it is written; they
see the frames flushed up to then.

Elements and masses in MDAnalysis: its H5MD reader builds no topology from this file; add them with
``u.add_TopologyAttr("elements", ...)`` from ``species`` (:func:`mdanalysis_universe` does it).
OVITO does not read H5MD: convert to extxyz or a LAMMPS dump (``mtpjax convert``).
"""
from __future__ import annotations

from pathlib import Path

import ase.units
import h5py
import numpy as np
from ase.data import chemical_symbols

from mtpjax import __version__
from mtpjax.errors import FileFormatError
from mtpjax.io.hdf5 import open_h5
from mtpjax.units import FS_PER_PS

__all__ = ["H5MDWriter", "read_h5md", "particle_group", "lower_triangular", "ASE_VELOCITY_UNIT",
           "mdanalysis_universe", "species_order"]

VLEN = h5py.string_dtype("ascii")
#: Å/ps per Å/(ASE time unit): 1 Å per ASE time unit = 98.2269 Å/ps
ASE_VELOCITY_UNIT = 1000.0 * ase.units.fs

OBSERVABLES = {
    "potential_energy": ("eV", ()),
    "kinetic_energy": ("eV", ()),
    "total_energy": ("eV", ()),
    "conserved_energy": ("eV", ()),
    "temperature": ("K", ()),
    "pressure": ("bar", ()),
    "volume": ("Angstrom+3", ()),
    "stress": ("eV Angstrom-3", (6,)),
}


def lower_triangular(cell) -> tuple[np.ndarray, np.ndarray]:
    """``(L, R)``: the lattice ``cell`` (rows, Å) rotated to lower-triangular form ``L = cell @ R`` (a along
    x, b in the xy plane; LAMMPS' and MDAnalysis' orientation), R a proper rotation (a left-handed cell
    keeps its handedness: ``L[2, 2] < 0``)."""
    cell = np.asarray(cell, float)
    a, b, c = cell
    ax = np.linalg.norm(a)
    bx = b @ a / ax
    by = np.sqrt(max(b @ b - bx * bx, 0.0))
    cx = c @ a / ax
    cy = (b @ c - bx * cx) / by
    cz = np.sqrt(max(c @ c - cx * cx - cy * cy, 0.0)) * np.sign(np.linalg.det(cell) or 1.0)
    L = np.array([[ax, 0.0, 0.0], [bx, by, 0.0], [cx, cy, cz]])
    return L, np.linalg.solve(cell, L)


def _voigt_to_matrix(s):
    return np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])


def _matrix_to_voigt(S):
    return np.array([S[0, 0], S[1, 1], S[2, 2], S[1, 2], S[0, 2], S[0, 1]])


class H5MDWriter:
    """Append frames to an H5MD file (``mode='w'`` new, ``'a'`` resume at ``n_frames``).

    ``numbers`` (N,) atomic numbers (or MLIP types when the elements are unknown), ``masses`` (N,) amu,
    ``species_order`` the atomic number of each MLIP type, ``frame_dt_ps`` the time between stored frames."""

    def __init__(self, path, numbers, masses=None, species_order=None, frame_dt_ps=None, pbc=(True, True, True),
                 velocities=False, mode="w", n_frames=None, author="mtpjax"):
        self.path = Path(path)
        self.numbers = np.asarray(numbers, dtype="i4")
        n = len(self.numbers)
        self.masses = np.asarray(masses if masses is not None else np.zeros(n), dtype="f8")
        self.frame_dt_ps = float(frame_dt_ps) if frame_dt_ps is not None else np.nan
        try:
            self.f = open_h5(self.path, mode)
        except OSError as e:
            if "already open" in str(e):
                raise OSError(f"{self.path}: open for reading in this process (an H5MDTrajectory?): close() it "
                              "before writing this trajectory") from None
            raise
        f = self.f
        if "h5md" not in f:
            self._header(author, species_order)
        p = f.require_group("particles/trajectory")
        box = p.require_group("box")
        if "dimension" not in box.attrs:
            box.attrs["dimension"] = np.int32(3)
            box.attrs.create("boundary", ["periodic" if b else "none" for b in pbc], dtype=VLEN)
        self.position = self._element(p, "position", (n, 3), "f8", "Angstrom", own_clock=True)
        self.edges = self._element(box, "edges", (3, 3), "f8", "Angstrom")
        self.rotation = self._element(box, "rotation", (3, 3), "f8", None)
        self.species = self._element(p, "species", (n,), "i4", None)
        self.mass = self._element(p, "mass", (n,), "f8", "u")
        self.velocity = self.velocities_ase = None
        if velocities:
            self.velocity = self._element(p, "velocity", (n, 3), "f8", "Angstrom ps-1")
            self.velocity.attrs["ASE_ENTRY_ORIGIN"] = "info"
            self.velocities_ase = self._element(p, "velocities", (n, 3), "f8", f"{ASE_VELOCITY_UNIT!r} Angstrom ps-1")
            self.velocities_ase.attrs["ASE_ENTRY_ORIGIN"] = "arrays"
        obs = f.require_group("observables/trajectory")
        self.obs = {k: self._element(obs, k, shape, "f8", unit) for k, (unit, shape) in OBSERVABLES.items()}
        self.dt = self._element(f["observables"], "dt", (), "f8", "ps")
        if n_frames is not None:
            self.truncate(n_frames)

    def _header(self, author, species_order):
        h = self.f.create_group("h5md")
        h.attrs["version"] = np.array([1, 1], dtype="i4")
        h.create_group("author").attrs.create("name", author, dtype=VLEN)
        c = h.create_group("creator")
        c.attrs.create("name", "mtpjax", dtype=VLEN)
        c.attrs.create("version", __version__, dtype=VLEN)
        u = h.create_group("modules/units")
        u.attrs["version"] = np.array([1, 0], dtype="i4")
        u.attrs.create("system", "SI", dtype=VLEN)
        prm = self.f.create_group("parameters/mtpjax")
        if species_order is not None:
            prm.attrs["species_order"] = np.asarray(species_order, dtype="i4")

    def _element(self, parent, name, shape, dtype, unit, own_clock=False):
        """A time-dependent H5MD element ``parent/name`` (created, or opened on resume)."""
        if name in parent:
            return parent[name]
        g = parent.create_group(name)
        frames = max(1, min(64, 2 ** 20 // max(1, 8 * int(np.prod(shape)))))
        d = g.create_dataset("value", shape=(0,) + shape, maxshape=(None,) + shape, dtype=dtype,
                             chunks=(frames,) + shape)
        if unit:
            d.attrs.create("unit", unit, dtype=VLEN)
        if own_clock:
            g.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
            t = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
            t.attrs.create("unit", "ps", dtype=VLEN)
        else:  # equal sampling: hard links to the position's step and time (H5MD)
            g["step"] = self.position["step"]
            g["time"] = self.position["time"]
        return g

    def _elements(self):
        return [self.position, self.edges, self.rotation, self.species, self.mass, self.dt, *self.obs.values()] + \
            [g for g in (self.velocity, self.velocities_ase) if g is not None]

    @property
    def n_frames(self) -> int:
        return int(self.position["value"].shape[0])

    def _resize(self, n: int):
        for g in self._elements():
            g["value"].resize(n, axis=0)
        for k in ("step", "time"):  # the shared clock, once
            self.position[k].resize(n, axis=0)

    def truncate(self, n_frames: int):
        if self.n_frames > n_frames:
            self._resize(n_frames)
        self.f.flush()

    def append(self, step, time_fs, positions, cell, velocities=None, observables=None):
        """One frame: ``positions`` (N, 3) Å and ``cell`` (3, 3) rows in the run's orientation, ``velocities``
        (N, 3) Å/ps, ``observables`` {name: value} (stress: ASE's Voigt stress in eV/Å³)."""
        L, R = lower_triangular(cell)
        k = self.n_frames
        self._resize(k + 1)
        self.position["step"][k] = int(step)
        self.position["time"][k] = float(time_fs) / FS_PER_PS
        self.position["value"][k] = np.asarray(positions, float) @ R
        self.edges["value"][k] = L
        self.rotation["value"][k] = R
        self.species["value"][k] = self.numbers
        self.mass["value"][k] = self.masses
        self.dt["value"][k] = self.frame_dt_ps
        if self.velocity is not None:
            v = np.asarray(velocities, float) @ R if velocities is not None else np.full((len(self.numbers), 3), np.nan)
            self.velocity["value"][k] = v
            self.velocities_ase["value"][k] = v / ASE_VELOCITY_UNIT
        for name, g in self.obs.items():  # every observable has a row per frame (NaN when not given)
            val = (observables or {}).get(name)
            if val is None:
                val = np.full(OBSERVABLES[name][1], np.nan)
            elif name == "stress":
                val = _matrix_to_voigt(R.T @ _voigt_to_matrix(np.asarray(val, float)) @ R)
            g["value"][k] = val
        self.f.flush()

    def close(self):
        if self.f:
            self.f.close()
            self.f = None


def particle_group(f: h5py.File, path=None) -> h5py.Group:
    """The particle group of an H5MD file: ``trajectory`` (this writer), ``all`` (earlier mtpjax versions) or
    the only one there is."""
    parts = f.get("particles")
    if parts is None or not len(parts):
        raise FileFormatError("no /particles group", path=path, field="particles")
    for name in ("trajectory", "all"):
        if name in parts:
            return parts[name]
    if len(parts) > 1:
        raise FileFormatError(f"several particle groups ({', '.join(parts)}); none named 'trajectory'",
                              path=path, field="particles")
    return parts[next(iter(parts))]


def _unrotate(x, R):
    """Rows of ``x`` (F, ..., 3) back to the original orientation: x @ Rᵀ per frame."""
    return np.einsum("f...j,fij->f...i", x, R)


def read_h5md(path, frames=slice(None)):
    """``(species (N,), positions (F, N, 3) Å, cells (F, 3, 3) Å rows, steps (F,), times (F,) ps,
    velocities (F, N, 3) Å/ps or None, observables {name: (F,) or (F, 6)})`` in the orientation of the run
    (the writer's rotation undone; stress in eV/Å³ as ASE). Reads files of earlier versions too."""
    with open_h5(path, "r") as f:
        p = particle_group(f, path)
        sp = p["species"]
        sp = sp["value"][0] if isinstance(sp, h5py.Group) else sp[()]
        pos = p["position/value"][frames]
        cells = p["box/edges/value"][frames]
        steps = p["position/step"][frames]
        times = p["position/time"][frames]
        vel = p["velocity/value"][frames] if "velocity" in p else None
        R = p["box/rotation/value"][frames] if "rotation" in p["box"] else None
        og = f.get("observables/trajectory", f.get("observables"))
        obs = {}
        if og is not None:
            for k in og:
                if isinstance(og[k], h5py.Group) and "value" in og[k]:
                    obs[k] = og[k]["value"][frames]
    if R is not None:
        pos, cells = _unrotate(pos, R), _unrotate(cells, R)
        vel = _unrotate(vel, R) if vel is not None else None
        if "stress" in obs:
            S = np.stack([_voigt_to_matrix(s) for s in obs["stress"]]) if len(obs["stress"]) else np.zeros((0, 3, 3))
            S = np.einsum("fij,fjk,flk->fil", R, S, R)
            obs["stress"] = np.stack([_matrix_to_voigt(s) for s in S]) if len(S) else obs["stress"]
    return sp, pos, cells, steps, times, vel, obs


def mdanalysis_universe(path):
    """An MDAnalysis ``Universe`` of an mtpjax H5MD file with elements, names, types and masses (MDAnalysis'
    H5MD reader builds no topology from the file). Positions as MDAnalysis reads them: in the file's
    lower-triangular orientation; observables in ``ts.data["trajectory/<name>"]``, the frame spacing in
    ``u.trajectory.dt`` (ps). Needs ``pip install MDAnalysis``."""
    import MDAnalysis as mda

    try:
        u = mda.Universe(str(path), format="H5MD", to_guess=())  # nothing to guess: set below
    except TypeError:  # MDAnalysis < 2.8
        u = mda.Universe(str(path), format="H5MD")
    with open_h5(path, "r") as f:
        p = particle_group(f, path)
        z = p["species/value"][0]
        masses = p["mass/value"][0] if "mass" in p else None
    symbols = [chemical_symbols[int(x)] for x in z]
    for attr in ("elements", "names", "types"):
        u.add_TopologyAttr(attr, symbols)
    if masses is not None:
        u.add_TopologyAttr("masses", masses)
    return u


def species_order(path) -> list[int] | None:
    """The atomic number of each MLIP type (type k ↔ LAMMPS type k+1) recorded by the writer, or None."""
    with open_h5(path, "r") as f:
        order = f.get("parameters/mtpjax")
        if order is None or "species_order" not in order.attrs:
            return None
        return [int(z) for z in order.attrs["species_order"]]
