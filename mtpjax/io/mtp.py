"""MLIP ``.mtp`` / ``.almtp`` files: the in-memory record and its reader/writer.

The record :class:`MTPFile` holds every field of the text format exactly as
MLIP writes it (see ``docs/spec/mtp.md`` §6.1). Arrays are numpy; the JAX
model (:mod:`mtpjax.potential.model`) is built from this record.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtpjax.errors import FileFormatError


@dataclass
class MTPFile:
    """Everything an MLIP ``.mtp`` file holds.

    Shapes: ``radial_coeffs`` (C, C, K, N_Q) indexed [central species,
    neighbour species, radial function μ, Chebyshev index β];
    ``alpha_index_basic`` (n_basic, 4) int rows {μ, a, b, c};
    ``alpha_index_times`` (n_times, 4) int rows {i, j, mult, k};
    ``alpha_moment_mapping`` (S,) int; ``species_coeffs`` (C,);
    ``moment_coeffs`` (S,).  ``radial_coeffs``/``species_coeffs``/
    ``moment_coeffs`` are ``None`` for an untrained template.
    ``species`` is the ordered list of type labels from the ``a-b`` headers of
    the radial block (MLIP-3 may write atomic numbers there); ``None`` when the
    file has no radial coefficients. ``extra`` is everything after
    ``moment_coeffs`` verbatim (bytes; e.g. the MLIP-3 active-learning state of
    an ``.almtp``).
    """

    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    alpha_moments_count: int
    radial_funcs_count: int
    min_dist: float = 2.0
    max_dist: float = 5.0
    radial_basis_size: int = 8
    radial_basis_type: str = "RBChebyshev"
    scaling: float = 1.0
    species_count: int | None = None
    potential_name: str | None = None
    potential_tag: str = ""
    radial_coeffs: np.ndarray | None = None
    species: list[int] | None = None
    species_coeffs: np.ndarray | None = None
    moment_coeffs: np.ndarray | None = None
    extra: bytes = b""
    source: str | None = field(default=None, compare=False)

    @property
    def is_trained(self) -> bool:
        return self.radial_coeffs is not None and self.moment_coeffs is not None

    @property
    def alpha_scalar_moments(self) -> int:
        return int(len(self.alpha_moment_mapping))

    @property
    def alpha_index_basic_count(self) -> int:
        return int(len(self.alpha_index_basic))

    @property
    def alpha_index_times_count(self) -> int:
        return int(len(self.alpha_index_times))

    @classmethod
    def read(cls, path_or_text) -> "MTPFile":
        """Same as :func:`read_mtp`."""
        return read_mtp(path_or_text)

    def write(self, path=None, precision: int | None = None, write_extra: bool = True,
              final_newline: bool = True) -> str:
        """Same as :func:`write_mtp`."""
        return write_mtp(self, path, precision=precision, write_extra=write_extra,
                         final_newline=final_newline)

    def to_text(self, precision: int | None = None) -> str:
        """The ``.mtp`` text (without ``extra``)."""
        return format_mtp(self, precision=precision)


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

_INT_KEYS = {
    "species_count", "radial_basis_size", "radial_funcs_count",
    "alpha_moments_count", "alpha_index_basic_count",
    "alpha_index_times_count", "alpha_scalar_moments",
}
_FLOAT_KEYS = {"scaling", "min_dist", "max_dist"}
# aliases accepted on read (MLIP-3 ``min_val``/``max_val``; motep's grouped
# ``min``/``max``/``size`` keys inside the radial-basis block)
_ALIASES = {
    "min_val": "min_dist", "max_val": "max_dist",
    "min": "min_dist", "max": "max_dist", "size": "radial_basis_size",
    "basis_size": "radial_basis_size",
}
_KNOWN_KEYS = _INT_KEYS | _FLOAT_KEYS | {
    "potential_name", "potential_tag", "radial_basis_type",
    "alpha_index_basic", "alpha_index_times", "alpha_moment_mapping",
    "species_coeffs", "moment_coeffs",
}
_SUPPORTED_RADIAL = ("RBChebyshev",)
_HEADER_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_MOMENT_LINE_RE = re.compile(rb"^[ \t]*moment_coeffs[ \t]*=[^\r\n]*(\r\n|\r|\n)?", re.M)


def _strict_fromstring(text: str, dtype, sep: str) -> np.ndarray:
    """``np.fromstring`` that raises ValueError on any unparsable token."""
    if not text.strip():
        return np.zeros(0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            arr = np.fromstring(text, dtype=dtype, sep=sep)
        except (DeprecationWarning, ValueError) as exc:  # pragma: no branch
            raise ValueError(str(exc)) from None
    return arr


def _load_source(path_or_text) -> tuple[bytes, str | None]:
    """Return (raw bytes, path or None) for a path, text or bytes argument."""
    if isinstance(path_or_text, (bytes, bytearray, memoryview)):
        return bytes(path_or_text), None
    if isinstance(path_or_text, os.PathLike):
        p = Path(path_or_text)
        return p.read_bytes(), str(p)
    if isinstance(path_or_text, str):
        # a file's text has several lines; a one-line string is a path
        if "\n" in path_or_text or "\r" in path_or_text:
            return path_or_text.encode("utf-8"), None
        p = Path(path_or_text)
        return p.read_bytes(), str(p)
    if hasattr(path_or_text, "read"):
        data = path_or_text.read()
        name = getattr(path_or_text, "name", None)
        if isinstance(data, str):
            data = data.encode("utf-8")
        return data, (str(name) if isinstance(name, (str, os.PathLike)) else None)
    raise TypeError(f"read_mtp: expected a path, text, bytes or file object, got {type(path_or_text)!r}")


def _split_text_extra(data: bytes) -> tuple[bytes, bytes]:
    """Split the raw file into the text part (up to and including the
    ``moment_coeffs`` line, without its line terminator) and everything after
    that line (the active-learning state of an ``.almtp``/``.als``)."""
    m = _MOMENT_LINE_RE.search(data)
    if m is None:
        return data, b""
    end = m.end()
    term = m.group(1)
    text_end = end - (len(term) if term else 0)
    return data[:text_end], data[end:]


def _parse_int_list(value: str, ncols: int, err) -> np.ndarray:
    """Parse ``{{a, b, c, d}, {...}}`` (ncols=4) or ``{a, b, ...}`` (ncols=None)."""
    v = value.strip()
    if not (v.startswith("{") and v.endswith("}")):
        raise err("expected a list in braces {...}")
    inner = v[1:-1].strip()
    if ncols is None:
        if "{" in inner or "}" in inner:
            raise err("expected a flat list {i, j, ...}")
        try:
            return _strict_fromstring(inner, np.int64, ",")
        except ValueError:
            raise err(f"non-integer entry in {_short(v)}") from None
    if not inner:
        return np.zeros((0, ncols), dtype=np.int64)
    if not (inner.startswith("{") and inner.endswith("}")):
        raise err("expected a list of rows {{...}, {...}}")
    groups = re.split(r"\}\s*,\s*\{", inner[1:-1])
    for gi, g in enumerate(groups):
        if g.count(",") != ncols - 1 or "{" in g or "}" in g:
            raise err(f"row {gi} {{{_short(g)}}} does not have {ncols} integers")
    try:
        arr = _strict_fromstring(inner.replace("{", " ").replace("}", " "), np.int64, ",")
    except ValueError:
        raise err("non-integer entry") from None
    if arr.size != ncols * len(groups):
        raise err(f"expected {ncols} integers per row")
    return arr.reshape(len(groups), ncols)


def _parse_float_list(value: str, err) -> np.ndarray:
    v = value.strip()
    if not (v.startswith("{") and v.endswith("}")) or "{" in v[1:-1] or "}" in v[1:-1]:
        raise err("expected a list of numbers in braces {x, y, ...}")
    try:
        return _strict_fromstring(v[1:-1], np.float64, ",")
    except ValueError:
        raise err(f"non-numeric entry in {_short(v)}") from None


def _short(s: str, n: int = 60) -> str:
    s = s.strip()
    return s if len(s) <= n else s[: n - 3] + "..."


def read_mtp(path_or_text) -> MTPFile:
    """Read an MLIP ``.mtp``/``.almtp`` (or the potential part of an ``.als``).

    ``path_or_text``: a path (str or PathLike), the file text (a str with at
    least one line break), raw bytes, or a file object. Untrained
    templates (incl. MLIP-3 ``<<<`` comments, missing ``species_count``) and
    trained potentials are accepted; CR/CRLF line ends are tolerated.
    Everything after the ``moment_coeffs`` line (its line terminator
    excluded) is kept verbatim in ``MTPFile.extra`` (bytes).
    Raises :class:`FileFormatError` (with path, line and field) on any
    inconsistency: every number must be finite, ``scaling`` > 0 (given at
    most once globally and once in the radial-basis block, where it is
    multiplied in), 0 <= ``min_dist`` < ``max_dist``, each
    ``alpha_index_times`` row {i, j, mult, k} with mult >= 1 and i, j basic
    moments or moments written by earlier rows.
    """
    data, path = _load_source(path_or_text)
    text_b, extra = _split_text_extra(data)
    try:
        text = text_b.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text_b[: exc.start].count(b"\n") + 1
        raise FileFormatError("the text part of the potential file is not valid UTF-8 text",
                              path=path, line=line) from None
    lines = text.splitlines()
    return _parse_mtp_lines(lines, path, extra)


def _parse_mtp_lines(lines: list[str], path, extra: bytes) -> MTPFile:
    """Parse the text lines of a potential file, phase by phase.

    1. :func:`_strip_comments` and :func:`_read_header` (``MTP``,
       ``version = 1.1.0``);
    2. :func:`_scan_fields`: the ``key = value`` lines and the
       ``radial_coeffs`` block as raw text with their line numbers;
    3. :func:`_convert_scalars`: the basis type, cutoffs and counts;
    4. :func:`_convert_alpha_tables`: ``alpha_index_basic``/``times``/
       ``alpha_moment_mapping`` and their consistency;
    5. :func:`_convert_radial_coeffs` and :func:`_convert_coeffs`: the
       trained coefficients (all three or none);
    6. the :class:`MTPFile`.
    """
    E = _error_maker(path)
    clean = _strip_comments(lines)
    raw = _scan_fields(clean, _read_header(clean, E), E)
    s = _convert_scalars(raw)
    tables = _convert_alpha_tables(raw, s)
    radial_coeffs, species, species_count = _convert_radial_coeffs(raw, s)
    species_coeffs, moment_coeffs = _convert_coeffs(raw, s, radial_coeffs, species_count)
    scaling = (1.0 if raw.global_scaling is None else raw.global_scaling) * raw.radial_scaling
    return MTPFile(
        alpha_index_basic=tables["alpha_index_basic"],
        alpha_index_times=tables["alpha_index_times"],
        alpha_moment_mapping=tables["alpha_moment_mapping"],
        alpha_moments_count=s["alpha_moments_count"],
        radial_funcs_count=s["radial_funcs_count"],
        min_dist=s["min_dist"],
        max_dist=s["max_dist"],
        radial_basis_size=s["radial_basis_size"],
        radial_basis_type=s["radial_basis_type"],
        scaling=scaling,
        species_count=species_count,
        potential_name=raw.vals.get("potential_name"),
        potential_tag=raw.vals.get("potential_tag", ""),
        radial_coeffs=radial_coeffs,
        species=species,
        species_coeffs=species_coeffs,
        moment_coeffs=moment_coeffs,
        extra=extra,
        source=path,
    )


def _error_maker(path):
    """``E(reason, line, field)``: the :class:`FileFormatError` of this file."""
    def E(reason, line=None, field=None):
        return FileFormatError(reason, path=path, line=line, field=field)
    return E


# -- phase 1: comments and the two header lines --------------------------------

def _strip_comments(lines: list[str]) -> list[str]:
    """The lines without their MLIP-3 ``<<<`` comments and trailing whitespace."""
    clean = []
    for ln in lines:
        k = ln.find("<<<")
        if k >= 0:
            ln = ln[:k]
        clean.append(ln.rstrip())
    return clean


def _read_header(clean: list[str], E) -> int:
    """Check the ``MTP`` and ``version = 1.1.0`` lines (leading blank lines
    skipped); return the index of the line after them."""
    i = 0
    n = len(clean)
    while i < n and not clean[i].strip():
        i += 1
    if i >= n or clean[i].strip().lstrip("\ufeff") != "MTP":
        raise E("the first line must be 'MTP'", line=i + 1 if i < n else 1, field="MTP")
    i += 1
    if i >= n or "=" not in clean[i] or clean[i].split("=", 1)[0].strip() != "version":
        raise E("the second line must be 'version = 1.1.0'", line=i + 1, field="version")
    ver = clean[i].split("=", 1)[1].strip()
    if ver != "1.1.0":
        raise E(f"unsupported version {ver!r} (only 1.1.0 is known)", line=i + 1, field="version")
    return i + 1


# -- phase 2: the fields as raw text with their line numbers ------------------

class _RawFields:
    """What :func:`_scan_fields` collects: ``vals`` (key → value text) and
    ``where`` (key → 1-based line), the global and radial-block ``scaling``
    factors, and the ``radial_coeffs`` block as ``radial_rows`` = [(header
    line, (a, b), [(line, row text), ...]), ...] starting on ``radial_line``.
    Its methods do the per-field checks of phases 3-5."""

    def __init__(self, E):
        self.E = E
        self.vals: dict = {}
        self.where: dict = {}
        self.global_scaling = None
        self.radial_scaling = 1.0
        self.scaling_line = {}  # "global" / "radial" → line of that scaling
        self.n_lines = 0
        self.in_radial_block = False
        self.radial_rows = None
        self.radial_line = None

    def at(self, key):
        """``err(reason)`` for a field: the error on the field's line."""
        return lambda reason: self.E(reason, line=self.where[key], field=key)

    def req(self, key):
        """The value text of a required field."""
        if key not in self.vals:
            # the last required field missing too: the file was cut short
            cut = "" if "alpha_moment_mapping" in self.vals else \
                f" (the file ends at line {self.n_lines}: is it truncated?)"
            raise self.E(f"required field {key} is missing{cut}", line=None, field=key)
        return self.vals[key]

    def scalar(self, key, kind, minimum, default):
        """The field converted to ``kind`` (int or float; floats finite), at least
        ``minimum``; ``default`` when absent (``_REQUIRED``: must be present)."""
        if default is not _REQUIRED and key not in self.vals:
            return default
        v = self.req(key)
        if kind is float:
            x = _finite(v, key, self.E, self.where[key])
            if minimum is not None and x < minimum:
                raise self.E(f"{key} must be >= {minimum:g} Å, got {v}", line=self.where[key], field=key)
            return x
        try:
            iv = int(v)
        except ValueError:
            raise self.E(f"{key} must be an integer, got {v!r}", line=self.where[key],
                         field=key) from None
        if iv < minimum:
            raise self.E(f"{key} must be >= {minimum}, got {iv}", line=self.where[key], field=key)
        return iv


def _finite(value: str, key: str, E, line) -> float:
    """The number ``value`` of field ``key``: finite, else the error of that line."""
    try:
        x = float(value)
    except ValueError:
        raise E(f"{key} must be a number, got {value!r}", line=line, field=key) from None
    if not np.isfinite(x):
        raise E(f"{key} must be a finite number, got {value!r}", line=line, field=key)
    return x


def _check_finite(arr: np.ndarray, what: str, E, line, field) -> np.ndarray:
    """``arr`` (numbers of one line), every one finite, else the error of that line."""
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise E(f"{what}: entry {bad[0] + 1} is {float(arr[bad[0]])!r} (every coefficient must be a finite number)",
                line=line, field=field)
    return arr


def _scan_fields(clean: list[str], i: int, E) -> _RawFields:
    """Collect the ``key = value`` lines and the ``radial_coeffs`` block from
    line index ``i`` on, without converting any value."""
    raw = _RawFields(E)
    n = len(clean)
    raw.n_lines = n
    while i < n:
        lineno = i + 1
        s = clean[i].strip()
        i += 1
        if not s:
            continue
        if s == "radial_coeffs":
            if raw.radial_rows is not None:
                raise E("radial_coeffs given twice", line=lineno, field="radial_coeffs")
            raw.radial_line = lineno
            raw.radial_rows, i = _scan_radial_block(clean, i, E)
            continue
        _scan_key_value(raw, s, lineno)
    return raw


def _scan_radial_block(clean: list[str], i: int, E):
    """The ``radial_coeffs`` block from line index ``i``: ``a-b`` species-pair
    headers, each followed by its ``{...}`` coefficient rows. Returns (rows,
    index of the first line after the block)."""
    rows: list = []
    n = len(clean)
    while i < n:
        t = clean[i].strip()
        if not t:
            i += 1
            continue
        m = _HEADER_RE.match(t)
        if m:
            rows.append((i + 1, (int(m.group(1)), int(m.group(2))), []))
            i += 1
            continue
        if t.startswith("{"):
            if not rows:
                raise E("coefficient row before the first 'a-b' species-pair header",
                        line=i + 1, field="radial_coeffs")
            rows[-1][2].append((i + 1, t))
            i += 1
            continue
        break
    return rows, i


def _scan_key_value(raw: _RawFields, s: str, lineno: int) -> None:
    """One ``key = value`` line: resolve aliases (inside the radial-basis
    block), reject unknown/unsupported/repeated keys, multiply ``scaling``
    factors, and store the value text."""
    E = raw.E
    if "=" not in s:
        raise E(f"unexpected line {_short(s)!r} (expected 'key = value')", line=lineno,
                field=s.split()[0])
    key, _, value = s.partition("=")
    key = key.strip()
    value = value.strip()
    key = _ALIASES.get(key, key) if raw.in_radial_block or key in ("min_val", "max_val") else key
    if key == "magnetic_basis_type":
        raise E("magnetic MTP (magnetic_basis_type) is not supported", line=lineno, field=key)
    if key not in _KNOWN_KEYS:
        raise E(f"unknown key {key!r}", line=lineno, field=key)
    if key == "scaling":
        sc = _finite(value, key, E, lineno)
        if not sc > 0:
            raise E(f"scaling must be a number > 0, got {value!r}", line=lineno, field=key)
        block = "radial" if raw.in_radial_block else "global"
        if block in raw.scaling_line:
            where = " in the radial-basis block" if block == "radial" else ""
            raise E(f"scaling given twice{where} (first on line {raw.scaling_line[block]})", line=lineno,
                    field=key)
        raw.scaling_line[block] = lineno
        if block == "radial":  # multiplied into the global one
            raw.radial_scaling = sc
        else:
            raw.global_scaling = sc
        return
    if key in raw.vals:
        raise E(f"{key} given twice (first on line {raw.where[key]})", line=lineno, field=key)
    if key == "radial_basis_type":
        raw.in_radial_block = True
    elif key.startswith("alpha_") or key in ("species_coeffs", "moment_coeffs"):
        raw.in_radial_block = False
    raw.where[key] = lineno
    raw.vals[key] = value


# -- phase 3: basis type, cutoffs and counts ----------------------------------

_REQUIRED = object()
# (field, type, minimum, default or _REQUIRED), converted and checked in this
# order (max_dist > min_dist is checked right after max_dist)
_SCALAR_FIELDS = (
    ("species_count", int, 1, None),
    ("min_dist", float, 0.0, 2.0),
    ("max_dist", float, None, 5.0),
    ("radial_basis_size", int, 1, 8),
    ("radial_funcs_count", int, 1, _REQUIRED),
    ("alpha_moments_count", int, 1, _REQUIRED),
    ("alpha_index_basic_count", int, 1, _REQUIRED),
    ("alpha_index_times_count", int, 0, _REQUIRED),
    ("alpha_scalar_moments", int, 1, _REQUIRED),
)


def _convert_scalars(raw: _RawFields) -> dict:
    """``radial_basis_type`` (only RBChebyshev) and the :data:`_SCALAR_FIELDS`,
    as a dict field → value."""
    E = raw.E
    rb_type = raw.vals.get("radial_basis_type", "RBChebyshev")
    if rb_type not in _SUPPORTED_RADIAL:
        raise E(f"radial_basis_type {rb_type!r} is not supported (only RBChebyshev is implemented)",
                line=raw.where.get("radial_basis_type"), field="radial_basis_type")
    s = {"radial_basis_type": rb_type}
    for key, kind, minimum, default in _SCALAR_FIELDS:
        s[key] = raw.scalar(key, kind, minimum, default)
        if key == "max_dist" and not (s["max_dist"] > s["min_dist"]):
            raise E(f"max_dist ({s['max_dist']:g} Å) must be larger than min_dist ({s['min_dist']:g} Å)",
                    line=raw.where.get("max_dist"), field="max_dist")
    return s


# -- phase 4: the alpha tables -------------------------------------------------

# (field, integers per row or None for a flat list, the field holding its length)
_ALPHA_TABLES = (
    ("alpha_index_basic", 4, "alpha_index_basic_count"),
    ("alpha_index_times", 4, "alpha_index_times_count"),
    ("alpha_moment_mapping", None, "alpha_scalar_moments"),
)


def _convert_alpha_tables(raw: _RawFields, s: dict) -> dict:
    """Parse the :data:`_ALPHA_TABLES`, check each against its count field and
    the indices against each other (:func:`_check_alpha_indices`)."""
    tables = {key: _parse_int_list(raw.req(key), ncols, raw.at(key))
              for key, ncols, _ in _ALPHA_TABLES}
    for key, _, ckey in _ALPHA_TABLES:
        count, length = s[ckey], len(tables[key])
        if length != count:
            raise raw.E(f"{ckey} = {count} but {key} has {length} entries", line=raw.where[ckey],
                        field=ckey)
    _check_alpha_indices(raw, s, tables)
    return tables


def _check_alpha_indices(raw: _RawFields, s: dict, tables: dict) -> None:
    """The index ranges: basic rows {μ, a, b, c} with μ up to
    radial_funcs_count-1, times rows {i, j, mult, k} with i, j < k and k a
    non-basic moment, mapping entries inside 0..alpha_moments_count-1."""
    E, where = raw.E, raw.where
    n_moments, n_basic = s["alpha_moments_count"], s["alpha_index_basic_count"]
    K = s["radial_funcs_count"]
    basic, times = tables["alpha_index_basic"], tables["alpha_index_times"]
    mapping = tables["alpha_moment_mapping"]
    if n_basic > n_moments:
        raise E(f"alpha_index_basic_count ({n_basic}) exceeds alpha_moments_count ({n_moments})",
                line=where["alpha_moments_count"], field="alpha_moments_count")
    if (basic < 0).any():
        raise E("negative entry in alpha_index_basic", line=where["alpha_index_basic"],
                field="alpha_index_basic")
    if basic[:, 0].max() != K - 1:
        raise E(f"the largest radial-function index in alpha_index_basic is {basic[:, 0].max()} "
                f"but radial_funcs_count = {K} (must be radial_funcs_count-1)",
                line=where["alpha_index_basic"], field="alpha_index_basic")
    if len(times):
        src = times[:, :2]
        tgt = times[:, 3]
        bad = np.nonzero((src < 0).any(axis=1) | (tgt >= n_moments) | (tgt < n_basic)
                         | (src.max(axis=1) >= tgt))[0]
        if len(bad):
            r = times[bad[0]]
            raise E(f"alpha_index_times row {bad[0]} {{{', '.join(map(str, r))}}}: indices must "
                    f"satisfy 0 <= i, j < k, {n_basic} <= k < alpha_moments_count ({n_moments})",
                    line=where["alpha_index_times"], field="alpha_index_times")
        bad = np.flatnonzero(times[:, 2] < 1)
        if len(bad):
            r = times[bad[0]]
            raise E(f"alpha_index_times row {bad[0]} {{{', '.join(map(str, r))}}}: the multiplicity mult "
                    f"(3rd entry of {{i, j, mult, k}}) must be a positive integer",
                    line=where["alpha_index_times"], field="alpha_index_times")
        # a moment i, j > basic is read only after every row that writes it (MLIP evaluates the rows in order)
        rows = np.arange(len(times))
        last = np.full(n_moments, len(times))
        written = np.zeros(n_moments, dtype=bool)
        written[tgt] = True
        last[tgt] = -1
        np.maximum.at(last, tgt, rows)
        late = (src >= n_basic) & (~written[src] | (last[src] >= rows[:, None]))
        bad = np.flatnonzero(late.any(axis=1))
        if len(bad):
            r = times[bad[0]]
            m = int(src[bad[0]][late[bad[0]]][0])
            raise E(f"alpha_index_times row {bad[0]} {{{', '.join(map(str, r))}}} reads moment {m} before "
                    f"{'the rows that write it' if written[m] else 'any row writes it'}",
                    line=where["alpha_index_times"], field="alpha_index_times")
    badm = np.nonzero((mapping < 0) | (mapping >= n_moments))[0]
    if len(badm):
        raise E(f"alpha_moment_mapping entry {badm[0]} = {mapping[badm[0]]} is outside "
                f"0..alpha_moments_count-1 ({n_moments - 1})",
                line=where["alpha_moment_mapping"], field="alpha_moment_mapping")


# -- phase 5: the trained coefficients ----------------------------------------

def _convert_radial_coeffs(raw: _RawFields, s: dict):
    """The ``radial_coeffs`` block as a (C, C, K, N_Q) array. Returns
    (radial_coeffs, species labels, species_count); the first two are None
    without the block, and species_count is C when the file does not give it."""
    species_count = s["species_count"]
    if raw.radial_rows is None:
        return None, None, species_count
    C, species = _radial_species(raw, species_count)
    K, nq = s["radial_funcs_count"], s["radial_basis_size"]
    E = raw.E
    rc = np.empty((C, C, K, nq))
    for kb, (hline, (a, b), rows) in enumerate(raw.radial_rows):
        ea, eb = species[kb // C], species[kb % C]
        if (a, b) != (ea, eb):
            raise E(f"species-pair block {a}-{b} out of order: expected {ea}-{eb}",
                    line=hline, field="radial_coeffs")
        if len(rows) != K:
            raise E(f"block {a}-{b} has {len(rows)} coefficient rows, expected "
                    f"radial_funcs_count = {K}", line=hline, field="radial_coeffs")
        for mu, (rl, t) in enumerate(rows):
            arr = _parse_float_list(t, lambda r, rl=rl: E(r, line=rl, field="radial_coeffs"))
            if arr.size != nq:
                raise E(f"coefficient row has {arr.size} numbers, expected "
                        f"radial_basis_size = {nq}", line=rl, field="radial_coeffs")
            rc[kb // C, kb % C, mu] = _check_finite(arr, f"block {a}-{b}, row {mu + 1}", E, rl, "radial_coeffs")
    return rc, species, (C if species_count is None else species_count)


def _radial_species(raw: _RawFields, species_count):
    """The number of species C (species_count, or the square root of the
    number of ``a-b`` blocks) and the species labels in header order."""
    E = raw.E
    nblocks = len(raw.radial_rows)
    if species_count is not None:
        C = species_count
        if nblocks != C * C:
            raise E(f"radial_coeffs has {nblocks} species-pair blocks, expected "
                    f"species_count^2 = {C * C}", line=raw.radial_line, field="radial_coeffs")
    else:
        C = int(round(np.sqrt(nblocks)))
        if C < 1 or C * C != nblocks:
            raise E(f"radial_coeffs has {nblocks} species-pair blocks, which is not a square "
                    "number", line=raw.radial_line, field="radial_coeffs")
    species = []
    for _, (a, b), _r in raw.radial_rows:
        for lab in (a, b):
            if lab not in species:
                species.append(lab)
    if len(species) != C:
        raise E(f"radial_coeffs headers name {len(species)} species {species}, expected "
                f"{C}", line=raw.radial_line, field="radial_coeffs")
    return C, species


def _convert_coeffs(raw: _RawFields, s: dict, radial_coeffs, species_count):
    """``species_coeffs`` and ``moment_coeffs`` (None when absent): a trained
    potential has them and ``radial_coeffs``, an untrained one none of the
    three; their lengths are species_count and alpha_scalar_moments."""
    E = raw.E
    species_coeffs = None
    moment_coeffs = None
    if "species_coeffs" in raw.vals:
        species_coeffs = _check_finite(_parse_float_list(raw.vals["species_coeffs"], raw.at("species_coeffs")),
                                       "species_coeffs", E, raw.where["species_coeffs"], "species_coeffs")
    if "moment_coeffs" in raw.vals:
        moment_coeffs = _check_finite(_parse_float_list(raw.vals["moment_coeffs"], raw.at("moment_coeffs")),
                                      "moment_coeffs", E, raw.where["moment_coeffs"], "moment_coeffs")
    present = {"radial_coeffs": radial_coeffs is not None, "species_coeffs": species_coeffs is not None,
               "moment_coeffs": moment_coeffs is not None}
    if any(present.values()) and not all(present.values()):
        missing = [k for k, v in present.items() if not v]
        have = [k for k, v in present.items() if v]
        raise E(f"{', '.join(have)} given but {', '.join(missing)} missing (a trained potential "
                "needs all three, an untrained one none)", line=None, field=missing[0])
    if species_coeffs is not None:
        n_scalar = s["alpha_scalar_moments"]
        if len(species_coeffs) != species_count:
            raise E(f"species_coeffs has {len(species_coeffs)} numbers, expected "
                    f"species_count = {species_count}", line=raw.where["species_coeffs"],
                    field="species_coeffs")
        if len(moment_coeffs) != n_scalar:
            raise E(f"moment_coeffs has {len(moment_coeffs)} numbers, expected "
                    f"alpha_scalar_moments = {n_scalar}", line=raw.where["moment_coeffs"],
                    field="moment_coeffs")
    return species_coeffs, moment_coeffs


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------

def _fmt_floats(values, precision: int | None) -> list[str]:
    """Format floats in MLIP's ``%.15e`` style.

    ``precision=None`` (default): ``%.15e`` (16 significant digits, MLIP's
    own format) for every value it represents exactly, ``%.16e`` (17 digits,
    always exact for float64) for the others -- lossless and identical to
    MLIP's text for values that came from an MLIP file.  An integer
    ``precision`` forces ``%.{precision}e`` (``15`` = MLIP byte for byte).
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if precision is not None:
        f = f"%.{int(precision)}e"
        return [f % v for v in arr.tolist()]
    out = ["%.15e" % v for v in arr.tolist()]
    if out:
        back = np.array(out, dtype=np.float64)
        bad = np.nonzero(~((back == arr) | (np.isnan(back) & np.isnan(arr))))[0]
        for k in bad.tolist():
            out[k] = "%.16e" % arr[k]
    return out


def _fmt_float_list(values, precision) -> str:
    return "{" + ", ".join(_fmt_floats(values, precision)) + "}"


def _fmt_int_rows(arr) -> str:
    arr = np.asarray(arr, dtype=np.int64).reshape(-1, 4)
    if len(arr) == 0:
        return "{}"
    return "{" + ", ".join("{%d, %d, %d, %d}" % tuple(r) for r in arr.tolist()) + "}"


def format_mtp(mtp: MTPFile, precision: int | None = None, final_newline: bool = True) -> str:
    """The text of ``mtp`` in MLIP's layout (without ``extra``); see :func:`write_mtp`."""
    out = ["MTP", "version = 1.1.0"]
    if mtp.potential_name is not None:
        out.append(f"potential_name = {mtp.potential_name}")
    if float(mtp.scaling) != 1.0:
        out.append(f"scaling = {_fmt_floats([mtp.scaling], precision)[0]}")
    rc, C = _checked_radial_coeffs(mtp)
    out.extend(_format_basis_lines(mtp, C, precision))
    if rc is not None:
        out.extend(_format_radial_block(mtp, rc, C, precision))
    out.extend(_format_alpha_lines(mtp))
    out.extend(_format_coeff_lines(mtp, C, precision))
    return "\n".join(out) + ("\n" if final_newline else "")


def _checked_radial_coeffs(mtp: MTPFile):
    """``radial_coeffs`` as a float64 (C, C, K, N_Q) array (None for a
    template) and the species count C (``species_count``, else from the array)."""
    C = mtp.species_count
    if mtp.radial_coeffs is None:
        return None, C
    rc = np.asarray(mtp.radial_coeffs, dtype=np.float64)
    if rc.ndim != 4 or rc.shape[0] != rc.shape[1]:
        raise ValueError(f"radial_coeffs must have shape (C, C, K, N_Q), got {rc.shape}")
    if C is None:
        C = rc.shape[0]
    if rc.shape != (C, C, mtp.radial_funcs_count, mtp.radial_basis_size):
        raise ValueError(f"radial_coeffs shape {rc.shape} does not match species_count={C}, "
                         f"radial_funcs_count={mtp.radial_funcs_count}, "
                         f"radial_basis_size={mtp.radial_basis_size}")
    return rc, C


def _format_basis_lines(mtp: MTPFile, C, precision) -> list[str]:
    """``species_count`` (if known), ``potential_tag`` and the tab-indented
    radial-basis lines."""
    out = []
    if C is not None:
        out.append(f"species_count = {int(C)}")
    out.append(f"potential_tag = {mtp.potential_tag or ''}")
    if mtp.radial_basis_type not in _SUPPORTED_RADIAL:
        raise ValueError(f"radial_basis_type {mtp.radial_basis_type!r} is not supported")
    out.append(f"radial_basis_type = {mtp.radial_basis_type}")
    out.append(f"\tmin_dist = {_fmt_floats([mtp.min_dist], precision)[0]}")
    out.append(f"\tmax_dist = {_fmt_floats([mtp.max_dist], precision)[0]}")
    out.append(f"\tradial_basis_size = {int(mtp.radial_basis_size)}")
    out.append(f"\tradial_funcs_count = {int(mtp.radial_funcs_count)}")
    return out


def _format_radial_block(mtp: MTPFile, rc: np.ndarray, C: int, precision) -> list[str]:
    """The ``radial_coeffs`` block: an ``a-b`` header per species pair, then
    one ``{...}`` row of N_Q numbers per radial function."""
    labels = list(mtp.species) if mtp.species is not None else list(range(C))
    if len(labels) != C:
        raise ValueError(f"species has {len(labels)} labels, expected {C}")
    out = ["\tradial_coeffs"]
    strs = _fmt_floats(rc, precision)
    nq = rc.shape[3]
    k = 0
    for a in range(C):
        for b in range(C):
            out.append(f"\t\t{int(labels[a])}-{int(labels[b])}")
            for _mu in range(rc.shape[2]):
                out.append("\t\t\t{" + ", ".join(strs[k:k + nq]) + "}")
                k += nq
    return out


def _format_alpha_lines(mtp: MTPFile) -> list[str]:
    """``alpha_moments_count`` and the alpha tables with their counts."""
    basic = np.asarray(mtp.alpha_index_basic, dtype=np.int64).reshape(-1, 4)
    times = np.asarray(mtp.alpha_index_times, dtype=np.int64).reshape(-1, 4)
    mapping = np.asarray(mtp.alpha_moment_mapping, dtype=np.int64).ravel()
    return [
        f"alpha_moments_count = {int(mtp.alpha_moments_count)}",
        f"alpha_index_basic_count = {len(basic)}",
        f"alpha_index_basic = {_fmt_int_rows(basic)}",
        f"alpha_index_times_count = {len(times)}",
        f"alpha_index_times = {_fmt_int_rows(times)}",
        f"alpha_scalar_moments = {len(mapping)}",
        "alpha_moment_mapping = {" + ", ".join(str(int(v)) for v in mapping.tolist()) + "}",
    ]


def _format_coeff_lines(mtp: MTPFile, C, precision) -> list[str]:
    """``species_coeffs`` and ``moment_coeffs`` of a trained potential
    (none for a template; a trained one needs all three coefficient sets)."""
    if mtp.species_coeffs is None and mtp.moment_coeffs is None:
        return []
    if mtp.species_coeffs is None or mtp.moment_coeffs is None or mtp.radial_coeffs is None:
        raise ValueError("a trained potential needs radial_coeffs, species_coeffs and moment_coeffs")
    n_scalar = len(np.asarray(mtp.alpha_moment_mapping, dtype=np.int64).ravel())
    if np.size(mtp.species_coeffs) != C:
        raise ValueError(f"species_coeffs has {np.size(mtp.species_coeffs)} values, expected {C}")
    if np.size(mtp.moment_coeffs) != n_scalar:
        raise ValueError(f"moment_coeffs has {np.size(mtp.moment_coeffs)} values, expected "
                         f"alpha_scalar_moments = {n_scalar}")
    return [f"species_coeffs = {_fmt_float_list(mtp.species_coeffs, precision)}",
            f"moment_coeffs = {_fmt_float_list(mtp.moment_coeffs, precision)}"]


def write_mtp(mtp: MTPFile, path=None, precision: int | None = None,
              write_extra: bool = True, final_newline: bool = True) -> str:
    """Write ``mtp`` in MLIP's ``.mtp`` layout; return the text.

    The layout is MLIP's: ``MTP``, ``version = 1.1.0``, ``potential_name``
    (if not None), ``scaling`` (only if != 1), ``species_count`` (if known),
    ``potential_tag``, the tab-indented radial-basis block, ``radial_coeffs``
    (trained only), the ``alpha_*`` lines, ``species_coeffs`` and
    ``moment_coeffs`` (trained only). Every line ends with ``\\n``
    (``final_newline=False`` omits the last one, as MLIP-2 does in the
    ``.mtp`` files it writes).

    Numbers: ``precision=None`` writes MLIP's ``%.15e`` wherever that is
    exact and ``%.16e`` otherwise, so the round trip is lossless and a file
    read from MLIP is reproduced byte for byte. ``precision=15`` reproduces MLIP's formatting exactly
    (lossy for some float64 values).

    If ``path`` is given the text is written there as bytes, followed by
    ``mtp.extra`` (the active-learning state of an ``.almtp``) unless
    ``write_extra=False``. The returned string never contains ``extra``.
    Note that ``extra`` is only meaningful for the coefficients it was built
    with.
    """
    if mtp.extra and write_extra and path is not None and not final_newline:
        raise ValueError("final_newline=False cannot be combined with an active-learning state "
                         "(extra)")
    text = format_mtp(mtp, precision=precision, final_newline=final_newline)
    if path is not None:
        payload = text.encode("utf-8")
        if write_extra and mtp.extra:
            payload += bytes(mtp.extra)
        Path(path).write_bytes(payload)
    return text
