"""Atomic writes: a file is either its old or its new content, whatever moment the process is killed.

The content goes to a temporary file beside the target, is fsync-ed, then renamed over the target
(``os.replace``, atomic on POSIX and Windows); the folder is fsync-ed too where the system allows.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, keep_suffix: bool = False):
    """``with atomic_path(path) as tmp: write(tmp)`` — ``path`` appears complete, or not at all.

    ``tmp`` is ``NAME.tmp`` beside ``path`` (``STEM.tmp.SUFFIX`` with ``keep_suffix``, for writers that infer
    the format from the name, e.g. ASE's). The folder of ``path`` is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}" if keep_suffix else f"{path.name}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp.exists():
            tmp.unlink()
        if isinstance(e, OSError) and e.filename is None and e.errno:  # e.g. disk full in write(): name the file
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_write(path, mode: str = "wb"):
    """``with atomic_write(path) as fh: fh.write(...)``; ``mode`` ``"wb"`` or ``"w"`` (UTF-8 text)."""
    kw = {} if "b" in mode else {"encoding": "utf-8"}
    with atomic_path(path) as tmp, open(tmp, mode, **kw) as fh:
        yield fh


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


def json_default(o):
    """JSON for numpy scalars and arrays (``tolist``); anything else as its ``str``."""
    return o.tolist() if hasattr(o, "tolist") else str(o)


def atomic_write_json(path, obj, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (numpy values as numbers/lists)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, default=json_default))
