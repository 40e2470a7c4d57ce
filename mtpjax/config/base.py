"""Typed, validated configuration tables (pydantic), read once at the edge of every command.

Every run file (MD, learn, train, workflow) is a tree of :class:`Table` models: strict types (a TOML string is
never taken for a number, a float never for a count), no unknown keys, finite numbers, ranges and cross-field
rules checked when the file is read — before any expensive work. :func:`parse` turns pydantic's errors into one
line that names the file, the table and the key, in the units the user wrote::

    run.toml: stage[2].tdamp_fs must be > 0, got -5
    learn.toml: md.ensemble = 'nph' (allowed: nvt, npt, langevin, nve)
    learn.toml: md: unknown key 'temprature_K' (allowed: barostat, ensemble, …)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from mtpjax.errors import ConfigurationError, MTPJaxError


class Table(BaseModel):
    """A TOML table: strict types, no unknown keys, finite numbers, immutable once read."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False,
                              validate_default=True, arbitrary_types_allowed=True)

    def replace(self, **changes):
        """A copy with ``changes`` applied and validated again (private attributes, e.g. the folder relative
        paths are resolved in, are kept)."""
        new = type(self).model_validate({**self.model_dump(), **changes})
        for k, v in (self.__pydantic_private__ or {}).items():
            setattr(new, k, v)
        return new


def with_base(table: Table, base: Path) -> Table:
    """``table`` with the folder its relative paths are resolved in (a file's folder) set."""
    table._base = Path(base)
    return table


def _integral(v):
    """A TOML float with an integral value (``1e6``) is a count too; 2.5, strings and booleans are not."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


def _number(v):
    """A TOML integer is a number too (``timestep_fs = 2``)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


Int = Annotated[int, BeforeValidator(_integral)]
Float = Annotated[float, BeforeValidator(_number)]
PosInt = Annotated[int, BeforeValidator(_integral), Field(gt=0)]
NonNegInt = Annotated[int, BeforeValidator(_integral), Field(ge=0)]
PosFloat = Annotated[float, BeforeValidator(_number), Field(gt=0)]
NonNegFloat = Annotated[float, BeforeValidator(_number), Field(ge=0)]


def _loc(loc, names=None) -> str:
    """pydantic's error location as the TOML path the user wrote: ``stage[2].tdamp_fs`` (``names``: how the
    top-level keys are shown, e.g. a command-line flag ``--max-iter`` for ``max_iter``)."""
    out = ""
    tags = _table_names()
    if names and loc and loc[0] in names:
        out, loc = names[loc[0]], loc[1:]
    for part in loc:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        elif part in tags or "[" in str(part) or part in ("str", "int", "float", "bool", "list", "dict", "none"):
            continue  # a union member's tag, not a key
        else:
            out += ("." if out else "") + str(part)
    return out


def _table_names() -> set[str]:
    names, todo = set(), [Table]
    while todo:
        c = todo.pop()
        names.add(c.__name__)
        todo += c.__subclasses__()
    return names


def _allowed(model, loc) -> list[str]:
    """The keys of the table at ``loc`` (for 'unknown key' messages)."""
    cls = model
    for part in loc:
        if isinstance(part, int):
            continue
        fld = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if fld is None:
            return []
        ann = fld.annotation
        cls = _table_type(ann)
        if cls is None:
            return []
    return sorted(cls.model_fields) if isinstance(cls, type) and issubclass(cls, BaseModel) else []


def _table_type(ann):
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        t = _table_type(arg)
        if t is not None:
            return t
    return None


def _field_annotation(model, loc):
    """The annotation of the field at ``loc`` (through nested tables and lists), or None."""
    cls, ann = model, None
    for part in loc:
        if isinstance(part, int):
            continue
        fld = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if fld is None:
            continue
        ann = fld.annotation
        cls = _table_type(ann) or cls
    return ann


def _is_int_field(model, loc) -> bool:
    ann = _field_annotation(model, loc)
    todo = [ann]
    while todo:
        a = todo.pop()
        if a is int:
            return True
        todo += list(getattr(a, "__args__", ()) or ())
    return False


def _message(model, err: dict, names=None) -> str:
    loc = err["loc"]
    path = _loc(loc, names)
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        table = _loc(loc[:-1], names) or "top level"
        allowed = _allowed(model, loc[:-1])
        return f"{table}: unknown key '{loc[-1]}'" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        table = _loc(loc[:-1], names)
        return f"{table + ': ' if table else ''}missing key '{loc[-1]}'"
    if kind == "literal_error":
        choices = ctx.get("expected", "").replace(chr(39), "").replace(" or ", ", ")
        keys = [p for p in path.replace("[", ".").split(".") if p and not p.rstrip("]").isdigit()]
        what = " ".join(keys[-2:]) if keys[-1] in ("type", "kind") and len(keys) > 1 else keys[-1]
        return f"{path} = {value!r} (allowed: {choices}): unknown {what}"
    if kind in ("value_error", "assertion_error"):
        msg = err["msg"].split(", ", 1)[1] if err["msg"].startswith(("Value error, ", "Assertion failed, ")) \
            else err["msg"]
        return f"{path}: {msg}" if path and not msg.startswith(path) else msg
    what = "an integer" if _is_int_field(model, loc) else "a number"
    bounds = {"greater_than": "> {gt}", "greater_than_equal": "≥ {ge}", "less_than": "< {lt}",
              "less_than_equal": "≤ {le}"}
    if kind == "greater_than" and ctx.get("gt") == 0:
        return f"{path} must be a positive {what.split()[-1]}, got {value!r}"
    if kind in bounds:
        ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        return f"{path} must be {what} {bounds[kind].format(**ctx)}, got {value!r}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{path} must be an integer, got {value!r}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"{path} must be a finite number, got {value!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{path} must be true or false, got {value!r}"
    if kind in ("string_type",):
        return f"{path} must be a string, got {value!r}"
    if kind == "too_short":
        return f"{path} must have at least {ctx.get('min_length')} entries, got {value!r}"
    if kind in ("list_type", "tuple_type"):
        return f"{path} must be a list, got {value!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{path} must be a table, got {value!r}"
    return f"{path}: {err['msg'].lower()}, got {value!r}" if path else err["msg"]


def parse(model: type[Table], data: dict, source: Path | str | None = None, names: dict | None = None) -> Any:
    """``model`` validated from ``data`` (a dict read from TOML); errors become one-line
    :class:`ConfigurationError` messages naming ``source`` (the file), the table and the key (a top-level key
    shown as ``names[key]`` when given: the command-line flag that set it)."""
    try:
        return model.model_validate(data)
    except MTPJaxError as e:  # raised by a validator that checks the environment (e.g. a reference's package)
        raise type(e)(f"{source}: {e}" if source else str(e)) from None
    except ValidationError as e:
        # the first key in the file's order; within it the most specific error (for a union, e.g. a path or a
        # table, the member the input was meant for)
        errors = e.errors(include_url=False)
        first = errors[0]["loc"][:1]
        type_errors = ("string_type", "model_type", "model_attributes_type", "dict_type")
        err = max((x for x in errors if x["loc"][:1] == first),
                  key=lambda x: (len(x["loc"]), x["type"] not in type_errors))
        msg = _message(model, err, names)
        raise ConfigurationError(f"{source}: {msg}" if source else msg) from None


def check(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` (for model validators: pydantic reports it with the key)."""
    if not condition:
        raise ValueError(message)


def require_file(path: Path, what: str) -> None:
    """``path`` is an existing file, else a :class:`ConfigurationError` naming ``what`` (the key that names it)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigurationError(f"{what}: {path} is a folder, not a file")
    if not path.is_file():
        raise ConfigurationError(f"{what}: file {path} not found")


def require_folder(path: Path, what: str) -> None:
    """``path`` (an output folder, created when missing) is not an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"{what}: {path} is a file, not a folder (give another name or remove it)")
