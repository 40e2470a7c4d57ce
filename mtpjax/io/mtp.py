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
    inconsistency.
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
    def E(reason, line=None, field=None):
        return FileFormatError(reason, path=path, line=line, field=field)

    # strip '<<<' comments and trailing whitespace
    clean = []
    for ln in lines:
        k = ln.find("<<<")
        if k >= 0:
            ln = ln[:k]
        clean.append(ln.rstrip())
    # line 1/2
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
    i += 1

    vals: dict = {}
    where: dict = {}
    global_scaling = None
    radial_scaling = 1.0
    in_radial_block = False
    radial_rows = None  # list of (header_line_no, (a, b), [(line_no, text), ...])
    radial_line = None

    while i < n:
        raw = clean[i]
        lineno = i + 1
        s = raw.strip()
        i += 1
        if not s:
            continue
        if s == "radial_coeffs":
            if radial_rows is not None:
                raise E("radial_coeffs given twice", line=lineno, field="radial_coeffs")
            radial_line = lineno
            radial_rows = []
            # consume blocks: header 'a-b' then K coefficient lines
            while i < n:
                t = clean[i].strip()
                if not t:
                    i += 1
                    continue
                m = _HEADER_RE.match(t)
                if m:
                    radial_rows.append((i + 1, (int(m.group(1)), int(m.group(2))), []))
                    i += 1
                    continue
                if t.startswith("{"):
                    if not radial_rows:
                        raise E("coefficient row before the first 'a-b' species-pair header",
                                line=i + 1, field="radial_coeffs")
                    radial_rows[-1][2].append((i + 1, t))
                    i += 1
                    continue
                break
            continue
        if "=" not in s:
            raise E(f"unexpected line {_short(s)!r} (expected 'key = value')", line=lineno,
                    field=s.split()[0])
        key, _, value = s.partition("=")
        key = key.strip()
        value = value.strip()
        key = _ALIASES.get(key, key) if in_radial_block or key in ("min_val", "max_val") else key
        if key == "magnetic_basis_type":
            raise E("magnetic MTP (magnetic_basis_type) is not supported", line=lineno, field=key)
        if key not in _KNOWN_KEYS:
            raise E(f"unknown key {key!r}", line=lineno, field=key)
        if key == "scaling":
            try:
                sc = float(value)
            except ValueError:
                raise E(f"scaling must be a number, got {value!r}", line=lineno, field=key) from None
            if in_radial_block:
                radial_scaling *= sc
            else:
                if global_scaling is not None:
                    raise E("scaling given twice", line=lineno, field=key)
                global_scaling = sc
            continue
        if key in vals:
            raise E(f"{key} given twice (first on line {where[key]})", line=lineno, field=key)
        if key == "radial_basis_type":
            in_radial_block = True
        elif key.startswith("alpha_") or key in ("species_coeffs", "moment_coeffs"):
            in_radial_block = False
        where[key] = lineno
        vals[key] = value

    def req(key):
        if key not in vals:
            raise E(f"required field {key} is missing", line=None, field=key)
        return vals[key]

    def as_int(key, minimum=0):
        v = req(key)
        try:
            iv = int(v)
        except ValueError:
            raise E(f"{key} must be an integer, got {v!r}", line=where[key], field=key) from None
        if iv < minimum:
            raise E(f"{key} must be >= {minimum}, got {iv}", line=where[key], field=key)
        return iv

    def as_float(key, default):
        if key not in vals:
            return default
        v = vals[key]
        try:
            return float(v)
        except ValueError:
            raise E(f"{key} must be a number, got {v!r}", line=where[key], field=key) from None

    def ferr(key):
        return lambda reason: E(reason, line=where[key], field=key)

    rb_type = vals.get("radial_basis_type", "RBChebyshev")
    if rb_type not in _SUPPORTED_RADIAL:
        raise E(f"radial_basis_type {rb_type!r} is not supported (only RBChebyshev is implemented)",
                line=where.get("radial_basis_type"), field="radial_basis_type")
    species_count = as_int("species_count", 1) if "species_count" in vals else None
    min_dist = as_float("min_dist", 2.0)
    max_dist = as_float("max_dist", 5.0)
    if not (max_dist > min_dist):
        raise E(f"max_dist ({max_dist}) must be larger than min_dist ({min_dist})",
                line=where.get("max_dist"), field="max_dist")
    nq = as_int("radial_basis_size", 1) if "radial_basis_size" in vals else 8
    K = as_int("radial_funcs_count", 1)
    n_moments = as_int("alpha_moments_count", 1)
    n_basic = as_int("alpha_index_basic_count", 1)
    n_times = as_int("alpha_index_times_count", 0)
    n_scalar = as_int("alpha_scalar_moments", 1)
    basic = _parse_int_list(req("alpha_index_basic"), 4, ferr("alpha_index_basic"))
    times = _parse_int_list(req("alpha_index_times"), 4, ferr("alpha_index_times"))
    mapping = _parse_int_list(req("alpha_moment_mapping"), None, ferr("alpha_moment_mapping"))

    def count_err(ckey, lkey, count, length):
        return E(f"{ckey} = {count} but {lkey} has {length} entries", line=where[ckey], field=ckey)

    if len(basic) != n_basic:
        raise count_err("alpha_index_basic_count", "alpha_index_basic", n_basic, len(basic))
    if len(times) != n_times:
        raise count_err("alpha_index_times_count", "alpha_index_times", n_times, len(times))
    if len(mapping) != n_scalar:
        raise count_err("alpha_scalar_moments", "alpha_moment_mapping", n_scalar, len(mapping))
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
    badm = np.nonzero((mapping < 0) | (mapping >= n_moments))[0]
    if len(badm):
        raise E(f"alpha_moment_mapping entry {badm[0]} = {mapping[badm[0]]} is outside "
                f"0..alpha_moments_count-1 ({n_moments - 1})",
                line=where["alpha_moment_mapping"], field="alpha_moment_mapping")

    # radial coefficients
    radial_coeffs = None
    species = None
    if radial_rows is not None:
        nblocks = len(radial_rows)
        if species_count is not None:
            C = species_count
            if nblocks != C * C:
                raise E(f"radial_coeffs has {nblocks} species-pair blocks, expected "
                        f"species_count^2 = {C * C}", line=radial_line, field="radial_coeffs")
        else:
            C = int(round(np.sqrt(nblocks)))
            if C < 1 or C * C != nblocks:
                raise E(f"radial_coeffs has {nblocks} species-pair blocks, which is not a square "
                        "number", line=radial_line, field="radial_coeffs")
        species = []
        for _, (a, b), _r in radial_rows:
            for lab in (a, b):
                if lab not in species:
                    species.append(lab)
        if len(species) != C:
            raise E(f"radial_coeffs headers name {len(species)} species {species}, expected "
                    f"{C}", line=radial_line, field="radial_coeffs")
        rc = np.empty((C, C, K, nq))
        for kb, (hline, (a, b), rows) in enumerate(radial_rows):
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
                rc[kb // C, kb % C, mu] = arr
        radial_coeffs = rc
        if species_count is None:
            species_count = C

    species_coeffs = None
    moment_coeffs = None
    if "species_coeffs" in vals:
        species_coeffs = _parse_float_list(vals["species_coeffs"], ferr("species_coeffs"))
    if "moment_coeffs" in vals:
        moment_coeffs = _parse_float_list(vals["moment_coeffs"], ferr("moment_coeffs"))
    present = {"radial_coeffs": radial_coeffs is not None, "species_coeffs": species_coeffs is not None,
               "moment_coeffs": moment_coeffs is not None}
    if any(present.values()) and not all(present.values()):
        missing = [k for k, v in present.items() if not v]
        have = [k for k, v in present.items() if v]
        raise E(f"{', '.join(have)} given but {', '.join(missing)} missing (a trained potential "
                "needs all three, an untrained one none)", line=None, field=missing[0])
    if species_coeffs is not None:
        if len(species_coeffs) != species_count:
            raise E(f"species_coeffs has {len(species_coeffs)} numbers, expected "
                    f"species_count = {species_count}", line=where["species_coeffs"],
                    field="species_coeffs")
        if len(moment_coeffs) != n_scalar:
            raise E(f"moment_coeffs has {len(moment_coeffs)} numbers, expected "
                    f"alpha_scalar_moments = {n_scalar}", line=where["moment_coeffs"],
                    field="moment_coeffs")
    scaling = (1.0 if global_scaling is None else global_scaling) * radial_scaling
    return MTPFile(
        alpha_index_basic=basic,
        alpha_index_times=times,
        alpha_moment_mapping=mapping,
        alpha_moments_count=n_moments,
        radial_funcs_count=K,
        min_dist=min_dist,
        max_dist=max_dist,
        radial_basis_size=nq,
        radial_basis_type=rb_type,
        scaling=scaling,
        species_count=species_count,
        potential_name=vals.get("potential_name"),
        potential_tag=vals.get("potential_tag", ""),
        radial_coeffs=radial_coeffs,
        species=species,
        species_coeffs=species_coeffs,
        moment_coeffs=moment_coeffs,
        extra=extra,
        source=path,
    )


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
    C = mtp.species_count
    if mtp.radial_coeffs is not None:
        rc = np.asarray(mtp.radial_coeffs, dtype=np.float64)
        if rc.ndim != 4 or rc.shape[0] != rc.shape[1]:
            raise ValueError(f"radial_coeffs must have shape (C, C, K, N_Q), got {rc.shape}")
        if C is None:
            C = rc.shape[0]
        if rc.shape != (C, C, mtp.radial_funcs_count, mtp.radial_basis_size):
            raise ValueError(f"radial_coeffs shape {rc.shape} does not match species_count={C}, "
                             f"radial_funcs_count={mtp.radial_funcs_count}, "
                             f"radial_basis_size={mtp.radial_basis_size}")
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
    if mtp.radial_coeffs is not None:
        labels = list(mtp.species) if mtp.species is not None else list(range(C))
        if len(labels) != C:
            raise ValueError(f"species has {len(labels)} labels, expected {C}")
        out.append("\tradial_coeffs")
        strs = _fmt_floats(rc, precision)
        nq = rc.shape[3]
        k = 0
        for a in range(C):
            for b in range(C):
                out.append(f"\t\t{int(labels[a])}-{int(labels[b])}")
                for _mu in range(rc.shape[2]):
                    out.append("\t\t\t{" + ", ".join(strs[k:k + nq]) + "}")
                    k += nq
    basic = np.asarray(mtp.alpha_index_basic, dtype=np.int64).reshape(-1, 4)
    times = np.asarray(mtp.alpha_index_times, dtype=np.int64).reshape(-1, 4)
    mapping = np.asarray(mtp.alpha_moment_mapping, dtype=np.int64).ravel()
    out.append(f"alpha_moments_count = {int(mtp.alpha_moments_count)}")
    out.append(f"alpha_index_basic_count = {len(basic)}")
    out.append(f"alpha_index_basic = {_fmt_int_rows(basic)}")
    out.append(f"alpha_index_times_count = {len(times)}")
    out.append(f"alpha_index_times = {_fmt_int_rows(times)}")
    out.append(f"alpha_scalar_moments = {len(mapping)}")
    out.append("alpha_moment_mapping = {" + ", ".join(str(int(v)) for v in mapping.tolist()) + "}")
    if mtp.species_coeffs is not None or mtp.moment_coeffs is not None:
        if mtp.species_coeffs is None or mtp.moment_coeffs is None or mtp.radial_coeffs is None:
            raise ValueError("a trained potential needs radial_coeffs, species_coeffs and moment_coeffs")
        if np.size(mtp.species_coeffs) != C:
            raise ValueError(f"species_coeffs has {np.size(mtp.species_coeffs)} values, expected {C}")
        if np.size(mtp.moment_coeffs) != len(mapping):
            raise ValueError(f"moment_coeffs has {np.size(mtp.moment_coeffs)} values, expected "
                             f"alpha_scalar_moments = {len(mapping)}")
        out.append(f"species_coeffs = {_fmt_float_list(mtp.species_coeffs, precision)}")
        out.append(f"moment_coeffs = {_fmt_float_list(mtp.moment_coeffs, precision)}")
    return "\n".join(out) + ("\n" if final_newline else "")


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
