"""Append-only HDF5 training-set store with provenance.

Layout (h5py)::

    /labels/<key>     group per labelled configuration: datasets positions (N,3) Å,
                      types (N,) int, cell (3,3) Å rows, pbc (3,), energy () eV,
                      forces (N,3) eV/Å, plus_stress (6,) eV (absent for open cells);
                      attrs: index (insertion order), provenance (JSON: iteration,
                      system, md_run, frame, grade, calculator spec, attempts, wall, time)
    /failed/<key>     group per failed label: attrs provenance + errors (JSON)

Keys are unique strings ('it003/lps0/run1/f000153'; '/' is escaped), so a
resumed run that relabels a key it already holds is a no-op (no duplicates).
The file is opened, appended and closed (flushed) for every record, so a kill
loses nothing already recorded. Export to MLIP ``.cfg`` or extxyz.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from mtpjax.errors import MTPJaxError
from mtpjax.io.cfg import Configuration, write_cfg
from ase.io import write
import h5py

__all__ = ["TrainingStore"]


def _esc(key: str) -> str:
    return key.replace("/", "|")


def _unesc(name: str) -> str:
    return name.replace("|", "/")


class TrainingStore:
    """Append-only store at ``path`` (created if missing)."""

    def __init__(self, path):
        self.path = Path(path)
        self._h5 = h5py
        if not self.path.exists():
            with h5py.File(self.path, "w") as f:
                f.create_group("labels")
                f.create_group("failed")
                f.attrs["format"] = "mtpjax-training-store/1"
        else:
            try:
                with h5py.File(self.path, "r") as f:
                    if "labels" not in f:
                        raise MTPJaxError(f"{self.path}: not an mtpjax training store (no /labels)")
            except OSError as e:
                raise MTPJaxError(f"{self.path}: cannot open the training store: {e}") from None

    # ------------------------------------------------------------ writing
    def add(self, key: str, conf: Configuration, provenance: dict | None = None) -> bool:
        """Append a labelled configuration; False (nothing written) if ``key`` exists."""
        if conf.energy is None or conf.forces is None:
            raise MTPJaxError(f"store: configuration {key!r} has no energy/forces")
        with self._h5.File(self.path, "a") as f:
            g = f["labels"]
            name = _esc(key)
            if name in g:
                return False
            c = g.create_group(name)
            c.create_dataset("positions", data=np.asarray(conf.positions, float))
            c.create_dataset("types", data=np.asarray(conf.types, np.int64))
            c.create_dataset("cell", data=np.asarray(conf.cell, float))
            c.create_dataset("pbc", data=np.asarray(conf.pbc, bool))
            c.create_dataset("energy", data=float(conf.energy))
            c.create_dataset("forces", data=np.asarray(conf.forces, float))
            if conf.plus_stress is not None:
                c.create_dataset("plus_stress", data=np.asarray(conf.plus_stress, float))
            c.attrs["index"] = len(g) - 1
            prov = dict(provenance or {})
            prov.setdefault("time", time.time())
            c.attrs["provenance"] = json.dumps(prov, default=_json_default)
            f.flush()
        return True

    def add_failed(self, key: str, errors, provenance: dict | None = None) -> None:
        with self._h5.File(self.path, "a") as f:
            g = f["failed"]
            name = _esc(key)
            if name in g:
                del g[name]
            c = g.create_group(name)
            c.attrs["errors"] = json.dumps(list(errors), default=str)
            c.attrs["provenance"] = json.dumps(dict(provenance or {}), default=_json_default)
            f.flush()

    # ------------------------------------------------------------ reading
    def keys(self) -> list[str]:
        with self._h5.File(self.path, "r") as f:
            g = f["labels"]
            names = sorted(g, key=lambda n: int(g[n].attrs["index"]))
            return [_unesc(n) for n in names]

    def failed(self) -> dict:
        with self._h5.File(self.path, "r") as f:
            return {_unesc(n): json.loads(f["failed"][n].attrs["errors"]) for n in f["failed"]}

    def __contains__(self, key: str) -> bool:
        with self._h5.File(self.path, "r") as f:
            return _esc(key) in f["labels"]

    def __len__(self) -> int:
        with self._h5.File(self.path, "r") as f:
            return len(f["labels"])

    def configurations(self, where=None, order: str = "insertion") -> list[Configuration]:
        """All labelled configurations (``where(prov)`` filters) in insertion order, or sorted by
        key with ``order="key"``: labels computed in parallel are inserted in the order they finish,
        so training on the key order makes a run independent of the workers' timing."""
        if order not in ("insertion", "key"):
            raise ValueError(f"order must be 'insertion' or 'key', got {order!r}")
        out = []
        with self._h5.File(self.path, "r") as f:
            g = f["labels"]
            names = sorted(g, key=(lambda n: int(g[n].attrs["index"])) if order == "insertion" else _unesc)
            for n in names:
                c = g[n]
                prov = json.loads(c.attrs["provenance"])
                if where is not None and not where(prov):
                    continue
                out.append(
                    Configuration(
                        positions=c["positions"][()],
                        types=c["types"][()],
                        cell=c["cell"][()],
                        pbc=c["pbc"][()],
                        energy=float(c["energy"][()]),
                        forces=c["forces"][()],
                        plus_stress=c["plus_stress"][()] if "plus_stress" in c else None,
                        features={"key": _unesc(n)},
                    )
                )
        return out

    def provenance(self) -> dict:
        with self._h5.File(self.path, "r") as f:
            return {_unesc(n): json.loads(f["labels"][n].attrs["provenance"]) for n in f["labels"]}

    # ------------------------------------------------------------ export
    def to_cfg(self, path) -> int:
        confs = self.configurations()
        write_cfg(path, confs)
        return len(confs)

    def to_extxyz(self, path, type_to_symbol=None) -> int:
        confs = self.configurations()
        write(str(path), [c.to_atoms(type_to_symbol) for c in confs], format="extxyz")
        return len(confs)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)
