"""Helpers shared by the benchmark cases: timing statistics, paths, JSON output."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _load_refdata():
    """``tests/refdata.py`` (the repository's MLIP reference data, unpacked once into a cache folder)."""
    spec = importlib.util.spec_from_file_location("refdata", HERE.parent / "tests" / "refdata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: MLIP's reference inputs, potentials, outputs and timings (``tests/data/mlip_ref``, unpacked)
MLIP_REF = _load_refdata().REF


def stats(times) -> tuple[float, float]:
    """(min, median) of a list of seconds."""
    ts = np.asarray(list(times), dtype=float)
    return float(ts.min()), float(np.median(ts))


def repeat_time(fn, repeats: int, block=None) -> tuple[float, float]:
    """Call ``fn`` ``repeats`` times (after the caller's warm-up) → (min, median) seconds.

    ``block``: applied to the result (e.g. ``jax.block_until_ready``)."""
    ts = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        if block is not None:
            block(out)
        ts.append(time.perf_counter() - t0)
    return stats(ts)


def put(row: dict, key: str, mm: tuple[float, float]) -> None:
    """``row[key_min_s], row[key_median_s] = mm``."""
    row[f"{key}_min_s"], row[f"{key}_median_s"] = float(mm[0]), float(mm[1])


def write_json(path, rows, meta=None, **extra) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta or {}, "rows": rows}
    doc.update(extra)
    path.write_text(json.dumps(doc, indent=2, default=_default))


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
