"""H5MD trajectories to extended XYZ or LAMMPS dumps (``mtpjax convert``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.io.h5md import read_h5md
from mtpjax.units import FS, FS_PER_PS
from ase import Atoms
from ase.io import write


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
        images = []
        for k in range(len(pos)):
            numbers = sp if np.all(sp > 0) else None
            a = Atoms(numbers=numbers if numbers is not None else np.ones(len(sp), int), positions=pos[k],
                      cell=cells[k], pbc=True)
            if numbers is None:
                a.set_array("mlip_type", np.asarray(sp, int))
            a.info["step"] = int(steps[k])
            a.info["time_fs"] = float(times[k]) * FS_PER_PS
            if "potential_energy" in obs:
                a.info["energy"] = float(obs["potential_energy"][k])
            if vel is not None:
                a.set_velocities(vel[k] / (FS * FS_PER_PS))
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
