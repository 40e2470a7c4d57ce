"""H5MD trajectories to extended XYZ, LAMMPS dumps and LAMMPS data files (``mtpjax convert``).

* extxyz: the full cell (``Lattice``), pbc, step and time (``info``), potential energy, velocities (ASE's
  ``momenta``): ASE, OVITO and most viewers read it;
* LAMMPS dump (``units metal``): ``ITEM: TIME`` (ps) and ``ITEM: TIMESTEP``, the triclinic box in LAMMPS'
  restricted form (``ITEM: BOX BOUNDS xy xz yz pp pp pp``, positions rotated with it), and the columns
  ``id type element x y z ix iy iz vx vy vz`` (wrapped positions, image flags, Å/ps): LAMMPS' ``read_dump``
  (``box yes``, ``format native``), ASE (``lammps-dump-text`` reads the elements) and OVITO read it;
* LAMMPS data file (``atom_style atomic``, ``units metal``): ``Atom Type Labels`` (element names, LAMMPS
  ≥ 2023), ``Masses``, ``Atoms`` with image flags and ``Velocities``, for ``read_data``.

LAMMPS types are MLIP's types + 1 (the potential's species order, as ``pair_style mlip`` expects), taken
from the species order the MD run recorded (``/parameters/mtpjax/species_order``) or, for other files,
``type_order`` (atomic numbers or symbols in type order; default: ascending atomic number).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols
from ase.io import write

from mtpjax.errors import ConfigurationError
from mtpjax.io.atomic import atomic_write
from mtpjax.io.h5md import ASE_VELOCITY_UNIT, lower_triangular, read_h5md, species_order
from mtpjax.units import FS_PER_PS

__all__ = ["convert", "lammps_cell", "write_lammps_dump", "write_lammps_data", "FORMATS"]

FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".dump": "lammps-dump", ".lammpstrj": "lammps-dump",
           ".data": "lammps-data", ".lmp": "lammps-data"}


def lammps_cell(cell):
    """LAMMPS' restricted triclinic box (lower-triangular rows: a along x, b in xy) and the rotation R
    with ``lmp = cell @ R`` (positions: ``x_lmp = x @ R``)."""
    return lower_triangular(cell)


def _type_numbers(sp, order) -> tuple[np.ndarray, list[int]]:
    """LAMMPS types (N,) of atoms with atomic numbers ``sp`` and the atomic number of each type."""
    if order is None:
        order = sorted({int(z) for z in sp})
    order = [atomic_numbers[z] if isinstance(z, str) else int(z) for z in order]
    lut = {z: k + 1 for k, z in enumerate(order)}
    missing = sorted({int(z) for z in sp} - set(lut))
    if missing:
        raise ConfigurationError(f"type order {order} lacks atomic numbers {missing}")
    return np.array([lut[int(z)] for z in sp]), order


def _wrapped(positions, L):
    """Positions wrapped into the box ``L`` (rows) and their image flags."""
    s = np.linalg.solve(L.T, np.asarray(positions, float).T).T
    img = np.floor(s)
    return (s - img) @ L, img.astype(int)


def _box_bounds(L) -> str:
    lx, ly, lz = L[0, 0], L[1, 1], L[2, 2]
    xy, xz, yz = L[1, 0], L[2, 0], L[2, 1]
    xlo_b, xhi_b = min(0.0, xy, xz, xy + xz), lx + max(0.0, xy, xz, xy + xz)
    ylo_b, yhi_b = min(0.0, yz), ly + max(0.0, yz)
    return (f"ITEM: BOX BOUNDS xy xz yz pp pp pp\n{xlo_b:.16g} {xhi_b:.16g} {xy:.16g}\n"
            f"{ylo_b:.16g} {yhi_b:.16g} {xz:.16g}\n0 {lz:.16g} {yz:.16g}\n")


def write_lammps_dump(fh, step, time_ps, positions, cell, types, order, velocities=None) -> None:
    """One dump frame (``units metal``) of positions (N, 3) Å, cell rows (3, 3) Å and velocities (N, 3) Å/ps
    in any orientation; LAMMPS ``types`` (N,) 1-based, ``order`` the atomic number of each type."""
    L, R = lammps_cell(cell)
    x, img = _wrapped(np.asarray(positions, float) @ R, L)
    fh.write(f"ITEM: TIME\n{time_ps:.16g}\nITEM: TIMESTEP\n{int(step)}\nITEM: NUMBER OF ATOMS\n{len(x)}\n")
    fh.write(_box_bounds(L))
    names = [chemical_symbols[order[t - 1]] for t in types]
    if velocities is None:
        fh.write("ITEM: ATOMS id type element x y z ix iy iz\n")
        fh.writelines(f"{i + 1} {types[i]} {names[i]} {x[i, 0]:.16g} {x[i, 1]:.16g} {x[i, 2]:.16g} "
                      f"{img[i, 0]} {img[i, 1]} {img[i, 2]}\n" for i in range(len(x)))
        return
    v = np.asarray(velocities, float) @ R
    fh.write("ITEM: ATOMS id type element x y z ix iy iz vx vy vz\n")
    fh.writelines(f"{i + 1} {types[i]} {names[i]} {x[i, 0]:.16g} {x[i, 1]:.16g} {x[i, 2]:.16g} "
                  f"{img[i, 0]} {img[i, 1]} {img[i, 2]} {v[i, 0]:.16g} {v[i, 1]:.16g} {v[i, 2]:.16g}\n"
                  for i in range(len(x)))


def write_lammps_data(path, positions, cell, types, order, velocities=None, title="mtpjax") -> None:
    """A LAMMPS data file (``atom_style atomic``, ``units metal``) of one frame (see :func:`write_lammps_dump`
    for the arguments): type labels, masses, atoms with image flags, velocities (Å/ps)."""
    L, R = lammps_cell(cell)
    x, img = _wrapped(np.asarray(positions, float) @ R, L)
    lines = [f"{title} (units metal)", "", f"{len(x)} atoms", f"{len(order)} atom types", "",
             f"0 {L[0, 0]:.16g} xlo xhi", f"0 {L[1, 1]:.16g} ylo yhi", f"0 {L[2, 2]:.16g} zlo zhi",
             f"{L[1, 0]:.16g} {L[2, 0]:.16g} {L[2, 1]:.16g} xy xz yz", "", "Atom Type Labels", ""]
    lines += [f"{k + 1} {chemical_symbols[z]}" for k, z in enumerate(order)]
    lines += ["", "Masses", ""] + [f"{k + 1} {atomic_masses[z]:.16g}  # {chemical_symbols[z]}"
                                   for k, z in enumerate(order)]
    lines += ["", "Atoms  # atomic", ""] + [f"{i + 1} {types[i]} {x[i, 0]:.16g} {x[i, 1]:.16g} {x[i, 2]:.16g} "
                                            f"{img[i, 0]} {img[i, 1]} {img[i, 2]}" for i in range(len(x))]
    if velocities is not None:
        v = np.asarray(velocities, float) @ R
        lines += ["", "Velocities", ""] + [f"{i + 1} {v[i, 0]:.16g} {v[i, 1]:.16g} {v[i, 2]:.16g}"
                                           for i in range(len(x))]
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def convert(path_in, path_out, fmt=None, frames=slice(None), type_order=None):
    """Convert an H5MD trajectory to extxyz (``fmt='extxyz'``), a LAMMPS dump (``'lammps-dump'``) or a LAMMPS
    data file of the last selected frame (``'lammps-data'``); ``fmt`` None: from the output's suffix."""
    path_in, path_out = Path(path_in), Path(path_out)
    if not path_in.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path_in))
    if fmt is None:
        fmt = FORMATS.get(path_out.suffix.lower())
        if fmt is None:
            raise ConfigurationError(f"cannot infer the output format from {path_out.name!r}; give --format "
                                     f"(extxyz, lammps-dump, lammps-data)")
    sp, pos, cells, steps, times, vel, obs = read_h5md(path_in, frames)
    if len(pos) == 0:
        raise ConfigurationError(f"{path_in}: no frames selected")
    if fmt == "extxyz":
        images = []
        for k in range(len(pos)):
            a = Atoms(numbers=sp if np.all(sp > 0) else np.ones(len(sp), int), positions=pos[k], cell=cells[k],
                      pbc=True)
            if not np.all(sp > 0):
                a.set_array("mlip_type", np.asarray(sp, int))
            a.info["step"] = int(steps[k])
            a.info["time_fs"] = float(times[k]) * FS_PER_PS
            if "potential_energy" in obs:
                a.info["energy"] = float(obs["potential_energy"][k])
            if vel is not None:
                a.set_velocities(vel[k] / ASE_VELOCITY_UNIT)
            images.append(a)
        with atomic_write(path_out, "w") as fh:
            write(fh, images, format="extxyz")
        return path_out
    types, order = _type_numbers(sp, type_order or species_order(path_in))
    if fmt == "lammps-dump":
        with atomic_write(path_out, "w") as fh:
            for k in range(len(pos)):
                write_lammps_dump(fh, steps[k], float(times[k]), pos[k], cells[k], types, order,
                                  None if vel is None else vel[k])
    elif fmt == "lammps-data":
        write_lammps_data(path_out, pos[-1], cells[-1], types, order, None if vel is None else vel[-1],
                          title=f"mtpjax {path_in.name} step {int(steps[-1])} time {float(times[-1]):.6g} ps")
    else:
        raise ConfigurationError(f"unknown output format {fmt!r} (extxyz, lammps-dump, lammps-data)")
    return path_out
