"""Trajectory sources that stream frames in chunks.

Every source exposes the same small interface (duck-typed, see
:class:`ArrayTrajectory`):

``n_frames``, ``n_atoms`` (ints); ``species`` (N,) atomic numbers;
``times_fs`` (F,) in fs; ``iter_chunks(chunk, atoms=None)`` yielding
``(start, positions (f, n, 3) Å, cells (f, 3, 3) Å)`` with lattice vectors as
rows, for frames ``start .. start+f-1`` and the atoms ``atoms`` (all if None).

Sources:

* :class:`ArrayTrajectory` — in-memory arrays;
* :func:`from_ase` — a list of ``ase.Atoms`` or any ASE-readable file
  (extxyz, XDATCAR, ...) read frame by frame with ``ase.io.iread``;
* :class:`H5MDTrajectory` — an H5MD 1.1 file (``/particles/<group>/position``,
  ``box/edges``, ``species``; mtpjax's own files in the run's orientation, see
  :mod:`mtpjax.io.h5md`) read lazily with h5py, a chunk of frames at a time.

:func:`open_trajectory` picks one from a path.  A trajectory without a
periodic box raises :class:`mtpjax.errors.ConfigurationError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from mtpjax.errors import ConfigurationError, FileFormatError
from mtpjax.io.h5md import particle_group
from mtpjax.io.hdf5 import open_h5
from ase.data import atomic_numbers
from ase.data import chemical_symbols
import h5py
import h5py as _h
import ase.io

__all__ = [
    "ArrayTrajectory",
    "H5MDTrajectory",
    "from_ase",
    "open_trajectory",
    "species_indices",
    "atomic_numbers_of",
]


def atomic_numbers_of(symbols) -> np.ndarray:
    """Atomic numbers (N,) int from symbols or numbers."""
    arr = np.asarray(symbols)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    out = []
    for s in arr.tolist():
        if isinstance(s, bytes):
            s = s.decode()
        if isinstance(s, (int, np.integer)):
            out.append(int(s))
            continue
        if s not in atomic_numbers:
            raise ConfigurationError(f"unknown chemical symbol {s!r}")
        out.append(atomic_numbers[s])
    return np.asarray(out, dtype=np.int64)


def species_indices(species: np.ndarray, select) -> np.ndarray:
    """Indices (n,) of atoms whose species is in ``select``.

    ``select``: a symbol ("Li"), an atomic number, a list of either; or an
    explicit index array given as an integer ``np.ndarray`` (indices, not
    atomic numbers).  Raises ConfigurationError if nothing matches.
    """
    species = np.asarray(species)
    if isinstance(select, np.ndarray) and select.dtype.kind in "iu":
        idx = np.unique(select.astype(np.int64).ravel())
        if idx.size == 0 or idx.min() < 0 or idx.max() >= len(species):
            raise ConfigurationError(f"atom indices out of range for {len(species)} atoms")
        return idx
    items = [select] if isinstance(select, (str, int, np.integer)) else list(select)
    wanted = atomic_numbers_of(items)
    idx = np.flatnonzero(np.isin(species, wanted))
    if idx.size == 0:
        present = sorted({chemical_symbols[z] for z in np.unique(species)})
        names = [chemical_symbols[z] for z in wanted]
        raise ConfigurationError(
            f"species {names} not present in the trajectory (present: {present})"
        )
    return idx


def _check_cells(cells: np.ndarray, where: str = "trajectory") -> None:
    vol = np.abs(np.linalg.det(cells))
    if not np.all(np.isfinite(cells)) or np.any(vol < 1e-6):
        raise ConfigurationError(
            f"{where}: missing or degenerate periodic box (cell volume "
            f"{float(vol.min()):.3g} Å^3); diffusion/RDF analysis needs the box of every frame"
        )


@dataclass
class ArrayTrajectory:
    """In-memory trajectory.

    positions: (F, N, 3) Å (wrapped or not); cells: (F, 3, 3) or (3, 3) Å,
    rows = lattice vectors; species: (N,) symbols or atomic numbers;
    times_fs: (F,) fs (or pass ``timestep_fs``).
    """

    positions: np.ndarray
    cells: np.ndarray
    species: np.ndarray
    times_fs: np.ndarray

    def __init__(self, positions, cells, species, times_fs=None, timestep_fs=None):
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[2] != 3:
            raise ConfigurationError(f"positions must have shape (F, N, 3), got {pos.shape}")
        F, N, _ = pos.shape
        if cells is None:
            raise ConfigurationError("trajectory has no box (cells is None)")
        c = np.asarray(cells, dtype=np.float64)
        if c.shape == (3,):
            c = np.diag(c)
        if c.shape == (3, 3):
            c = np.broadcast_to(c, (F, 3, 3))
        if c.shape != (F, 3, 3):
            raise ConfigurationError(f"cells must have shape (F, 3, 3) or (3, 3), got {c.shape} for F={F}")
        _check_cells(c)
        sp = atomic_numbers_of(species)
        if sp.shape != (N,):
            raise ConfigurationError(f"species has {sp.shape[0]} entries for {N} atoms")
        if times_fs is None:
            if timestep_fs is None:
                raise ConfigurationError("give times_fs (F,) or timestep_fs")
            times_fs = np.arange(F) * float(timestep_fs)
        t = np.asarray(times_fs, dtype=np.float64)
        if t.shape != (F,):
            raise ConfigurationError(f"times_fs has shape {t.shape}, expected ({F},)")
        self.positions, self.cells, self.species, self.times_fs = pos, c, sp, t

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    def iter_chunks(self, chunk: int = 1024, atoms=None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        sel = slice(None) if atoms is None else np.asarray(atoms)
        for s in range(0, self.n_frames, chunk):
            e = min(s + chunk, self.n_frames)
            yield s, self.positions[s:e][:, sel], np.asarray(self.cells[s:e])


def from_ase(images, timestep_fs: float | None = None, index=":", format=None) -> ArrayTrajectory:
    """Trajectory from a sequence of ``ase.Atoms`` or an ASE-readable file.

    Files are read with ``ase.io.iread`` (frame by frame).  Frame times come
    from ``atoms.info['time_fs']`` / ``info['time']`` (fs) when every frame has
    one, else from ``timestep_fs`` (fs between stored frames).
    """
    if isinstance(images, (str, Path)):
        it = ase.io.iread(str(images), index=index, format=format)
    else:
        it = iter(images)
    pos, cells, times, species = [], [], [], None
    for k, at in enumerate(it):
        if species is None:
            species = at.get_atomic_numbers()
        elif len(at) != len(species):
            raise ConfigurationError(f"frame {k} has {len(at)} atoms, frame 0 has {len(species)}")
        if not np.any(at.pbc) or abs(at.cell.volume) < 1e-6:
            raise ConfigurationError(f"frame {k} has no periodic box (pbc={at.pbc.tolist()}, volume={at.cell.volume:.3g})")
        pos.append(at.get_positions())
        cells.append(np.asarray(at.cell[:]))
        t = at.info.get("time_fs", at.info.get("time"))
        times.append(None if t is None else float(t))
    if species is None:
        raise ConfigurationError("trajectory has no frames")
    if timestep_fs is not None:
        tt = np.arange(len(pos)) * float(timestep_fs)
    elif all(t is not None for t in times):
        tt = np.asarray(times)
    else:
        raise ConfigurationError("frame times unknown: pass timestep_fs (fs between stored frames)")
    return ArrayTrajectory(np.stack(pos), np.stack(cells), species, tt)


class H5MDTrajectory:
    """Lazy reader of an H5MD 1.1 file written by the MD engine.

    Layout read: ``/particles/<group>/position/value`` (F, N, 3) Å with
    ``time`` (F,) or scalar + ``step``; ``/particles/<group>/box/edges``
    either a time-dependent group with ``value`` (F, 3, 3) (or (F, 3) for an
    orthorhombic box) or a fixed dataset (3, 3) / (3,); box ``boundary``
    attribute must be periodic; species from ``species/value`` (F, N) or a
    fixed dataset ``species`` (N,) of atomic numbers.
    Time unit: the ``unit`` attribute of ``time`` ('fs' or 'ps'; fs assumed).
    """

    def __init__(self, path, group: str | None = None):
        self.path = str(path)
        self._f = open_h5(self.path, "r")  # readable while an MD run writes it
        if group is None:
            g = particle_group(self._f, self.path)
            group = g.name.rsplit("/", 1)[-1]
        else:
            g = self._f.get(f"particles/{group}")
        if g is None:
            raise FileFormatError("no /particles/%s group" % group, path=self.path, field="particles")
        if "position" not in g or "value" not in g["position"]:
            raise FileFormatError("missing position/value", path=self.path, field=f"particles/{group}/position")
        self._pos = g["position/value"]
        if self._pos.ndim != 3 or self._pos.shape[2] != 3:
            raise FileFormatError(f"position/value has shape {self._pos.shape}", path=self.path, field="position/value")
        F, N = self._pos.shape[:2]
        if "box" not in g or "edges" not in g["box"]:
            raise ConfigurationError(f"{self.path}: trajectory has no box (/particles/{group}/box/edges missing)")
        box = g["box"]
        bnd = box.attrs.get("boundary")
        if bnd is not None:
            b = [x.decode() if isinstance(x, bytes) else str(x) for x in np.atleast_1d(bnd)]
            if any(x != "periodic" for x in b):
                raise ConfigurationError(f"{self.path}: box boundary {b} is not periodic")
        edges = box["edges"]
        # mtpjax's writer stores lower-triangular boxes with the positions rotated alike and the rotation R
        # (written = original @ R): frames are returned in the run's own orientation
        self._rot = box["rotation/value"] if "rotation" in box and isinstance(box["rotation"], _h.Group) else None

        if isinstance(edges, _h.Group):
            self._edges = edges["value"]
            self._edges_fixed = None
            if self._edges.shape[0] != F:
                raise FileFormatError(f"box has {self._edges.shape[0]} frames, positions {F}", path=self.path, field="box/edges/value")
        else:
            e = np.asarray(edges[()], dtype=np.float64)
            self._edges_fixed = np.diag(e) if e.shape == (3,) else e
            self._edges = None
            _check_cells(self._edges_fixed[None], self.path)
        if "species" in g:
            sp = g["species"]
            arr = np.asarray(sp["value"][0] if isinstance(sp, _h.Group) else sp[()])
            self.species = atomic_numbers_of(arr)
        else:
            raise FileFormatError("no species dataset", path=self.path, field=f"particles/{group}/species")
        if self.species.shape != (N,):
            raise FileFormatError(f"species has shape {self.species.shape} for {N} atoms", path=self.path, field="species")
        pg = g["position"]
        if "time" in pg:
            t = np.asarray(pg["time"][()], dtype=np.float64)
            unit = pg["time"].attrs.get("unit", "fs")
            unit = unit.decode() if isinstance(unit, bytes) else str(unit)
            scale = {"fs": 1.0, "ps": 1000.0}.get(unit)
            if scale is None:
                raise FileFormatError(f"time unit {unit!r} (expected fs or ps)", path=self.path, field="position/time")
            if t.ndim == 0:  # fixed time step: time(i) = step(i) * dt
                steps = np.asarray(pg["step"][()]) if "step" in pg else np.arange(F)
                t = (np.arange(F) if steps.ndim == 0 else steps) * float(t)
            self.times_fs = t * scale
        else:
            raise FileFormatError("no time dataset", path=self.path, field="position/time")
        if self.times_fs.shape != (F,):
            raise FileFormatError(f"time has shape {self.times_fs.shape}, expected ({F},)", path=self.path, field="position/time")
        self.n_frames, self.n_atoms = int(F), int(N)

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def iter_chunks(self, chunk: int = 1024, atoms=None):
        for s in range(0, self.n_frames, chunk):
            e = min(s + chunk, self.n_frames)
            yield (s, *self.frames(s, e, atoms))

    def frames(self, start: int, stop: int, atoms=None) -> tuple[np.ndarray, np.ndarray]:
        """Positions (f, n, 3) Å and cells (f, 3, 3) Å rows of frames ``start:stop`` (atoms ``atoms``, all if
        None), in the run's orientation."""
        p = np.asarray(self._pos[start:stop], dtype=np.float64)
        if atoms is not None:
            p = p[:, np.asarray(atoms)]
        if self._edges is not None:
            c = np.asarray(self._edges[start:stop], dtype=np.float64)
            if c.ndim == 2:
                c = np.stack([np.diag(x) for x in c])  # orthorhombic (f,3) -> (f,3,3)
            _check_cells(c, self.path)
        else:
            c = np.broadcast_to(self._edges_fixed, (len(p), 3, 3))
        if self._rot is not None:
            R = np.asarray(self._rot[start:stop], dtype=np.float64)
            p, c = np.einsum("fnj,fij->fni", p, R), np.einsum("fkj,fij->fki", c, R)
        return p, c


def open_trajectory(path, timestep_fs: float | None = None, index=":", format=None):
    """Open ``path``: H5MD (``.h5``, ``.h5md``, ``.hdf5``) lazily, else via ASE."""
    p = Path(path)
    if not p.exists():
        raise ConfigurationError(f"trajectory file {p} does not exist")
    if p.suffix.lower() in (".h5", ".h5md", ".hdf5"):
        return H5MDTrajectory(p)
    return from_ase(p, timestep_fs=timestep_fs, index=index, format=format)


def load_all(traj, atoms=None, chunk: int = 4096):
    """Positions (F, n, 3) and cells (F, 3, 3) of a source, in memory."""
    P, C = [], []
    for _, p, c in traj.iter_chunks(chunk, atoms):
        P.append(p)
        C.append(np.asarray(c))
    return np.concatenate(P), np.concatenate(C)


def as_trajectory(obj, timestep_fs=None):
    """Coerce a path, a list of Atoms, or a source into a source."""
    if hasattr(obj, "iter_chunks"):
        return obj
    if isinstance(obj, (str, Path)):
        return open_trajectory(obj, timestep_fs=timestep_fs)
    if isinstance(obj, Sequence):
        return from_ase(obj, timestep_fs=timestep_fs)
    raise ConfigurationError(f"cannot read a trajectory from {type(obj).__name__}")
