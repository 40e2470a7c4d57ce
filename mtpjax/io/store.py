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

Concurrent readers. One process writes a store (the learner, which holds its work folder's lock,
:mod:`mtpjax.io.lock`); any number may read it while it runs. HDF5's own file locks would make a reader that
keeps the file open (a notebook's ``h5py.File(..., "r")``) block the writer, so the store ignores them:
the writer opens the file with ``locking=False`` for each record and closes it, and a reader never
disturbs it. Read through this class (``TrainingStore(path).configurations()``, ``keys()``...): each call
opens the file, reads and closes it, and retries (for up to :data:`READ_RETRY_S` s) when it caught the
writer between two writes of one record. A reader that keeps its own ``h5py.File`` open sees the file as
it was when it opened it (reopen to see new labels). HDF5 SWMR does not fit this layout (a group per record;
SWMR only appends to existing datasets).
"""
from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase.io import write

from mtpjax.errors import MTPJaxError
from mtpjax.io.cfg import Configuration, write_cfg
from mtpjax.io.hdf5 import open_h5

__all__ = ["TrainingStore", "READ_RETRY_S", "non_finite", "is_anchor", "ANCHOR_FEATURE"]

#: the .cfg feature that marks an anchor label in exported sets (``Feature anchor 1``)
ANCHOR_FEATURE = "anchor"
#: the store key (or a name ending in it) of a learner's anchor label: ``itNNN/<system>/aNNN``
_ANCHOR_KEY = re.compile(r"(^|/)it\d{3}/[^/]+/a\d+$")


def is_anchor(features: dict) -> bool:
    """Whether a configuration read from a file is an anchor label (the glasses labelled at the end of each
    schedule stage, which ``anchor_weight`` weights): ``Feature anchor 1`` (what :meth:`TrainingStore.to_cfg`
    writes), or a ``key`` / ``name`` feature ending in a learner's anchor key (files of older versions)."""
    if str(features.get(ANCHOR_FEATURE, "")).strip().lower() in ("1", "true", "yes"):
        return True
    return any(_ANCHOR_KEY.search(str(features.get(k, ""))) for k in ("key", "name"))


READ_RETRY_S = 10.0  # a reader retries this long when it meets a record half written


def _open(path: Path, mode: str):
    """``h5py.File`` without HDF5's advisory file locks (see the module docstring)."""
    return open_h5(path, mode)


def _reading(fn):
    """Run the reader ``fn(store, ...)``; retry on errors from a file caught in the middle of a write."""

    @functools.wraps(fn)
    def wrapped(self, *args, **kwargs):
        deadline = time.monotonic() + READ_RETRY_S
        while True:
            try:
                return fn(self, *args, **kwargs)
            except (OSError, KeyError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    return wrapped


def non_finite(conf: Configuration) -> list[str]:
    """Names of the arrays of ``conf`` that hold NaN or inf (positions, cell, energy, forces, stress)."""
    arrays = {"positions": conf.positions, "cell": conf.cell, "energy": conf.energy, "forces": conf.forces,
              "stress": conf.plus_stress}
    return [k for k, v in arrays.items() if v is not None and not np.all(np.isfinite(np.asarray(v, float)))]


def _esc(key: str) -> str:
    return key.replace("/", "|")


def _unesc(name: str) -> str:
    return name.replace("|", "/")


class TrainingStore:
    """Append-only store at ``path`` (created if missing)."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            try:
                with _open(self.path, "w-") as f:  # never truncates a store another process just created
                    f.create_group("labels")
                    f.create_group("failed")
                    f.attrs["format"] = "mtpjax-training-store/1"
            except OSError as e:  # FileExistsError: another process created it first
                if not self.path.exists():
                    raise MTPJaxError(f"{self.path}: cannot create the training store: {e.strerror or e}") from None
        try:
            with _open(self.path, "r") as f:
                if "labels" not in f:
                    raise MTPJaxError(f"{self.path}: not an mtpjax training store (no /labels)")
        except OSError as e:
            raise MTPJaxError(f"{self.path}: cannot open the training store: {e}") from None

    # ------------------------------------------------------------ writing
    def add(self, key: str, conf: Configuration, provenance: dict | None = None) -> bool:
        """Append a labelled configuration; False (nothing written) if ``key`` exists."""
        if conf.energy is None or conf.forces is None:
            raise MTPJaxError(f"store: configuration {key!r} has no energy/forces")
        bad = non_finite(conf)
        if bad:
            raise MTPJaxError(f"store: configuration {key!r} not stored: non-finite {', '.join(bad)}")
        with _open(self.path, "a") as f:
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
        with _open(self.path, "a") as f:
            g = f["failed"]
            name = _esc(key)
            if name in g:
                del g[name]
            c = g.create_group(name)
            c.attrs["errors"] = json.dumps(list(errors), default=str)
            c.attrs["provenance"] = json.dumps(dict(provenance or {}), default=_json_default)
            f.flush()

    # ------------------------------------------------------------ reading
    @_reading
    def keys(self) -> list[str]:
        with _open(self.path, "r") as f:
            g = f["labels"]
            names = sorted(g, key=lambda n: int(g[n].attrs["index"]))
            return [_unesc(n) for n in names]

    @_reading
    def failed(self) -> dict:
        with _open(self.path, "r") as f:
            return {_unesc(n): json.loads(f["failed"][n].attrs["errors"]) for n in f["failed"]}

    @_reading
    def __contains__(self, key: str) -> bool:
        with _open(self.path, "r") as f:
            return _esc(key) in f["labels"]

    @_reading
    def __len__(self) -> int:
        with _open(self.path, "r") as f:
            return len(f["labels"])

    @_reading
    def configurations(self, where=None, order: str = "insertion") -> list[Configuration]:
        """All labelled configurations (``where(prov)`` filters) in insertion order, or sorted by
        key with ``order="key"``: labels computed in parallel are inserted in the order they finish,
        so training on the key order makes a run independent of the workers' timing."""
        if order not in ("insertion", "key"):
            raise ValueError(f"order must be 'insertion' or 'key', got {order!r}")
        out = []
        with _open(self.path, "r") as f:
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

    @_reading
    def provenance(self) -> dict:
        with _open(self.path, "r") as f:
            return {_unesc(n): json.loads(f["labels"][n].attrs["provenance"]) for n in f["labels"]}

    @_reading
    def non_finite(self) -> dict:
        """``{key: [names of non-finite arrays]}`` of the labels that hold NaN or inf (none, unless an older
        mtpjax wrote them: :meth:`add` refuses them)."""
        out = {}
        with _open(self.path, "r") as f:
            for n, c in f["labels"].items():
                bad = [k for k in ("positions", "cell", "energy", "forces", "plus_stress")
                       if k in c and not np.all(np.isfinite(c[k][()]))]
                if bad:
                    out[_unesc(n)] = bad
        return out

    def repair(self) -> list[str]:
        """Move every label holding NaN/inf to ``/failed`` (errors: which arrays); returns their keys. The one
        edit of an append-only store, for files written before labels were checked (``mtpjax store repair``)."""
        bad = self.non_finite()
        with _open(self.path, "a") as f:
            for key, arrays in bad.items():
                name = _esc(key)
                prov = f["labels"][name].attrs.get("provenance", "{}")
                if name in f["failed"]:
                    del f["failed"][name]
                g = f["failed"].create_group(name)
                g.attrs["errors"] = json.dumps([f"non-finite {', '.join(arrays)} (moved from /labels by repair)"])
                g.attrs["provenance"] = prov
                del f["labels"][name]
            g = f["labels"]
            for k, n in enumerate(sorted(g, key=lambda n: int(g[n].attrs["index"]))):
                g[n].attrs["index"] = k  # insertion order kept, no gaps
            f.flush()
        return sorted(bad)

    # ------------------------------------------------------------ export
    def to_cfg(self, path) -> int:
        """All labels as an MLIP ``.cfg`` (``Feature key``; anchors also ``Feature anchor 1``)."""
        anchors = {k for k, p in self.provenance().items() if p.get("anchor")}
        confs = [c if c.features["key"] not in anchors else replace(c, features={**c.features, ANCHOR_FEATURE: "1"})
                 for c in self.configurations()]
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
