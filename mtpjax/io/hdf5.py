"""Opening HDF5 files that another process may be writing or reading.

mtpjax's writers (the training store, H5MD trajectories) and its readers open files without HDF5's advisory
file locks (``locking=False``), so that a reader that keeps a file open (a notebook, MDAnalysis) never
blocks a running writer, and a reader can open a file being written. HDF5 refuses to open one file twice
*in one process* with different locking settings; :func:`open_h5` then falls back to the settings already in
use.
"""
from __future__ import annotations

import h5py

__all__ = ["open_h5"]


def open_h5(path, mode: str = "r") -> h5py.File:
    """``h5py.File(path, mode)`` without HDF5's file locks (with them, when this process already holds the
    file open with locking)."""
    try:
        return h5py.File(path, mode, locking=False)
    except OSError as e:
        if "locking flag values don't match" not in str(e):
            raise
        return h5py.File(path, mode)
