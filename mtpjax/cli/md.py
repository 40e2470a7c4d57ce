"""``mtpjax md RUN.toml`` and ``mtpjax convert TRAJ.h5md OUT.{xyz,dump}``.

    mtpjax md RUN.toml [--output DIR] [--overwrite] [--no-progress] [--set KEY=VALUE ...]
        Run (or resume, when DIR holds a checkpoint of the same run file) the
        stages of RUN.toml; see :mod:`mtpjax.md.run` for the file format.
    mtpjax convert TRAJ.h5md OUT.xyz|OUT.extxyz|OUT.dump [--format extxyz|lammps-dump] [--every K]
        H5MD → extended XYZ (cell, pbc, step, time, energy) or LAMMPS dump.
"""
from __future__ import annotations

import argparse

import mtpjax.io.convert as conversion
from mtpjax.config.md import load_md_run
from mtpjax.md.run import run_md
from mtpjax.errors import ConfigurationError



def md(argv) -> int:
    p = argparse.ArgumentParser(prog="mtpjax md", description="molecular dynamics from a TOML run file")
    p.add_argument("run_file")
    p.add_argument("-o", "--output", help="output folder (default: 'output' of the run file)")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if a checkpoint exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the run file, e.g. --set stage.0.time_ps=1 or --set timestep_fs=0.5")
    a = p.parse_args(argv)

    out = run_md(load_md_run(a.run_file, a.set), output=a.output, overwrite=a.overwrite, progress=not a.no_progress)
    print(f"md: done → {out}")
    return 0


def convert(argv) -> int:
    p = argparse.ArgumentParser(prog="mtpjax convert",
                                description="H5MD trajectory → extxyz, LAMMPS dump or LAMMPS data file")
    p.add_argument("input")
    p.add_argument("output", help="*.xyz/*.extxyz, *.dump/*.lammpstrj or *.data/*.lmp (or give --format)")
    p.add_argument("--format", choices=["extxyz", "lammps-dump", "lammps-data"])
    p.add_argument("--every", type=int, default=1, help="keep every K-th frame")
    p.add_argument("--type-order", nargs="+", default=None, metavar="ELEMENT",
                   help="LAMMPS type 1, 2, ... (default: the MD run's species order)")
    a = p.parse_args(argv)
    if a.every < 1:
        raise ConfigurationError("--every must be ≥ 1")
    conversion.convert(a.input, a.output, a.format, frames=slice(None, None, a.every), type_order=a.type_order)
    print(f"convert: {a.input} → {a.output}")
    return 0
