"""Reading TOML run files: one reader for every command, with ``--set`` overrides.

Errors are one line naming the file (and TOML's own line/column), never a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover  (python < 3.11)
    import tomli as tomllib

from mtpjax.errors import ConfigurationError, FileFormatError


def apply_override(cfg: dict, item: str) -> None:
    """Apply one ``section.key=VALUE`` override to ``cfg`` in place.

    ``VALUE`` is read as a TOML value (``2.0``, ``true``, ``[1, 2]``, ``"text"``); anything that is not
    valid TOML is taken as a plain string. Missing tables on the way are created; an array of tables is
    indexed by number (``stage.0.time_ps=1`` sets the first ``[[stage]]``'s ``time_ps``)."""
    key, sep, val = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigurationError(f"--set expects KEY=VALUE, got {item!r}")
    try:
        v = tomllib.loads(f"x = {val}")["x"]
    except tomllib.TOMLDecodeError:
        v = val
    d = cfg
    parts = key.split(".")
    for k, p in enumerate(parts):
        last = k == len(parts) - 1
        if isinstance(d, list):
            if not (p.isdigit() and int(p) < len(d)):
                raise ConfigurationError(f"--set {item}: '{'.'.join(parts[:k])}' has {len(d)} entries; "
                                         f"'{p}' is not one of 0..{len(d) - 1}")
            p = int(p)
            if last:
                d[p] = v
            else:
                d = d[p]
            continue
        if not isinstance(d, dict):
            raise ConfigurationError(f"--set {item}: '{'.'.join(parts[:k])}' is not a table")
        if last:
            d[p] = v
        else:
            d = d.setdefault(p, {})


def read_toml(path, overrides=()) -> dict:
    """The TOML file ``path`` as a dict, with ``overrides`` (``KEY=VALUE`` strings) applied.

    Raises :class:`FileNotFoundError` for a missing file, :class:`FileFormatError` (naming the file) for
    text that is not TOML or not UTF-8 and :class:`ConfigurationError` (naming the file) for an override that
    does not fit the file's tables."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise FileFormatError("is a folder, not a TOML file", path=path)
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        cfg = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise FileFormatError("not a text (UTF-8) file", path=path) from None
    except tomllib.TOMLDecodeError as e:
        raise FileFormatError(f"invalid TOML: {e}", path=path) from None
    for o in overrides:
        try:
            apply_override(cfg, o)
        except ConfigurationError as e:
            raise ConfigurationError(f"{path}: {e}") from None
    return cfg


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) or type(v).__name__.startswith("int"):
        return str(int(v))
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        return repr(float(v))
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(d: dict) -> str:
    """TOML text of ``d``: scalars first, then ``[tables]``, then ``[[arrays of tables]]``; None values dropped.

    For the record files mtpjax writes beside a run (the learn file of a workflow, the MD run files of its
    production stages): reading the text back gives ``d``."""
    lines, tables, arrays = [], [], []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{k} = {_value(v)}")
    for k, v in tables:
        lines += ["", f"[{k}]"] + [f"{kk} = {_value(x)}" for kk, x in v.items() if x is not None]
    for k, items in arrays:
        for it in items:
            lines += ["", f"[[{k}]]"] + [f"{kk} = {_value(x)}" for kk, x in it.items() if x is not None]
    return "\n".join(lines) + "\n"
