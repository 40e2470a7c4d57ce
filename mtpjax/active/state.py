"""Active-set state files: MLIP-3 ``.almtp`` (``#MVS_v1.1``) and MLIP-2 ``.als``.

Layouts (``docs/spec/mtp.md`` §8.5), after the potential's ``.mtp`` text:

* MLIP-3 ``.almtp``: ``#MVS_v1.1\\n``, five lines ``energy_weight v``,
  ``force_weight v``, ``stress_weight v``, ``site_en_weight v``,
  ``weight_scaling p`` (for a set it built, mtpjax adds ``init_value v`` and
  ``threshold v``, the MaxVol start and swap threshold, under MLIP-3's setting
  names: MLIP-3 skips anything up to the next ``#``), then ``#``, A (n×n float64 little-endian, row-major),
  X with ``A·Xᵀ = I`` (i.e. A⁻¹ transposed, row-major), ``\\n#\\n``, n lines
  ``config_index equation_index`` (``-1 -1`` for rows still at init), ``#\\n``
  and the selected configurations (lossless .cfg, feature ``selected_eqn_inds``).
  Equation indices: energy row 0; neighbourhood row of atom i: ``1 + 3N + 9 + i``.
* MLIP-2 ``.als``: ``^``, 4 float64 weights (site energy, energy, force,
  stress), ``\\n#``, A, X, ``\\n``, n lines ``row_index config_number``, then
  the selected configurations.

Internally :class:`~mtpjax.active.maxvol.ActiveSet.owner` holds
(configuration index into ``ActiveSet.configs``, local equation index: 0 for
the energy row, the atom index in nbh mode).
"""
from __future__ import annotations

import io
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np

from mtpjax.io.atomic import atomic_write
from mtpjax.errors import FileFormatError
from mtpjax.io.cfg import format_cfg, read_cfg
from mtpjax.potential.model import MTP
from mtpjax.io.mtp import MTPFile, read_mtp, write_mtp
from mtpjax.active.maxvol import ActiveSet

__all__ = ["read_state", "parse_state", "write_state", "format_state"]


def init_rows(A: np.ndarray) -> np.ndarray:
    """Rows still equal to ``init·e_j`` (one nonzero entry ≤ 1e-3 in magnitude, in any column: a swap may have
    moved an initial row to another slot): MLIP-2's ``.als`` does not mark them."""
    nz = np.count_nonzero(A, axis=1)
    return (nz == 1) & (np.max(np.abs(A), axis=1) <= 1e-3)


def init_value(A: np.ndarray, free: np.ndarray, default: float = 1e-5) -> float:
    """The initial value of the free rows (the one nonzero entry of such a row, wherever the swaps left it)."""
    rows = np.abs(A[free])
    vals = rows.max(axis=1) if rows.size else np.zeros(0)
    vals = vals[vals > 0]
    return float(vals[0]) if vals.size else default


def parse_state(f: MTPFile, path=None) -> ActiveSet:
    """The :class:`ActiveSet` stored in ``f.extra`` (MLIP-2 or MLIP-3 layout).

    Raises :class:`FileFormatError` if there is none or it is malformed.
    """
    e = bytes(f.extra)
    if f.radial_coeffs is None:
        raise FileFormatError("an active-learning state needs a trained potential", path)
    model = MTP.from_mtpfile(f)
    n = model.n_params
    nn = 8 * n * n
    if e.startswith(b"#MVS_v1.1"):
        head_end = e.find(b"\n#", len(b"#MVS_v1.1"))
        if head_end < 0:
            raise FileFormatError("MVS_v1.1 state: missing '#' after the weights", path)
        w = {}
        for line in e[len(b"#MVS_v1.1") : head_end].decode("ascii", "replace").split("\n"):
            if line.strip():
                k, _, v = line.strip().partition(" ")
                try:
                    w[k] = float(v)
                except ValueError:
                    raise FileFormatError(f"MVS_v1.1 state: bad weight line {line!r}", path) from None
        for k in ("energy_weight", "site_en_weight", "weight_scaling"):
            if k not in w:
                raise FileFormatError(f"MVS_v1.1 state: missing '{k}'", path)
        o = head_end + 2
        if len(e) < o + 2 * nn:
            raise FileFormatError(f"MVS_v1.1 state: truncated matrices (expected {n}×{n} for {n} parameters)", path)
        A = np.frombuffer(e[o : o + nn], dtype="<f8").reshape(n, n).copy()
        X = np.frombuffer(e[o + nn : o + 2 * nn], dtype="<f8").reshape(n, n)
        rest = e[o + 2 * nn :]
        if not rest.startswith(b"\n#\n"):
            raise FileFormatError("MVS_v1.1 state: expected '#' after the matrices", path)
        rest = rest[3:]
        lines = rest.split(b"\n", n + 1)
        if len(lines) < n + 1 or not lines[n].startswith(b"#"):
            raise FileFormatError("MVS_v1.1 state: expected n row-owner lines then '#'", path)
        owner = np.array([[int(t) for t in lines[k].split()] for k in range(n)], dtype=np.int64).reshape(n, 2)
        cfg_text = lines[n + 1] if len(lines) > n + 1 else b""
        configs = read_cfg(io.StringIO(cfg_text.decode("utf-8"))) if cfg_text.strip() else []
        mode = "nbh" if w["site_en_weight"] > 0 and w["energy_weight"] == 0 else "cfg"
        # MLIP-3 equation index → local (energy row 0; nbh: atom index)
        for r in range(n):
            c, q = owner[r]
            if c >= 0 and mode == "nbh":
                nat = configs[c].natoms
                owner[r, 1] = q - (1 + 3 * nat + 9)
        free = owner[:, 0] < 0
        init = w["init_value"] if "init_value" in w else init_value(A, free, default=1e-6)
        return ActiveSet(A=A, inv=X.T.copy(), owner=owner, init=init, mode=mode,
                         weight_scaling=float(w["weight_scaling"]), configs=configs,
                         swap_threshold=w.get("threshold"))
    if e.startswith(b"^"):
        if len(e) < 35 + 2 * nn:
            raise FileFormatError(f".als state: truncated (expected {n}×{n} matrices)", path)
        wts = struct.unpack("<4d", e[1:33])
        if e[33:35] != b"\n#":
            raise FileFormatError(".als state: expected '#' after the weights", path)
        o = 35
        A = np.frombuffer(e[o : o + nn], dtype="<f8").reshape(n, n).copy()
        X = np.frombuffer(e[o + nn : o + 2 * nn], dtype="<f8").reshape(n, n)
        rest = e[o + 2 * nn :].lstrip(b"\n")
        lines = rest.split(b"\n", n)
        owner = np.array([[int(t) for t in lines[k].split()] for k in range(n)], dtype=np.int64)[:, ::-1].copy()
        cfg_text = lines[n] if len(lines) > n else b""
        configs = read_cfg(io.StringIO(cfg_text.decode("utf-8"))) if cfg_text.strip() else []
        free = init_rows(A)
        owner[:, 1] = 0
        owner[free] = -1
        mode = "nbh" if wts[0] > 0 and wts[1] == 0 else "cfg"
        return ActiveSet(A=A, inv=X.T.copy(), owner=owner, init=init_value(A, free), mode=mode,
                         weight_scaling=2.0, configs=configs)
    raise FileFormatError("no active-learning state after the potential (not an .almtp/.als file)", path)


def read_state(path) -> tuple[MTP, ActiveSet]:
    """Read an ``.almtp`` (MLIP-3) or ``.als`` (MLIP-2) file → (potential, state)."""
    f = read_mtp(path)
    return MTP.from_mtpfile(f), parse_state(f, path)


def format_state(state: ActiveSet, fmt: str = "almtp") -> bytes:
    """The state bytes that follow the potential's text (see module doc)."""
    A = np.ascontiguousarray(state.A, dtype="<f8")
    X = np.ascontiguousarray(state.inv.T, dtype="<f8")
    used = sorted({int(c) for c in state.owner[:, 0] if c >= 0})
    remap = {c: k for k, c in enumerate(used)}
    configs = [state.configs[c] for c in used]
    out = io.BytesIO()
    if fmt == "almtp":
        nbh = state.mode == "nbh"
        out.write(b"#MVS_v1.1\n")
        for k, v in (("energy_weight", 0.0 if nbh else 1.0), ("force_weight", 0.0), ("stress_weight", 0.0),
                     ("site_en_weight", 1.0 if nbh else 0.0)):
            out.write(f"{k} {v:.16e}\n".encode())
        p = state.weight_scaling
        out.write(f"weight_scaling {int(p) if float(p).is_integer() else p}\n".encode())
        if state.swap_threshold is not None:  # a set built here: record how (MLIP's own files stay byte for byte)
            out.write(f"init_value {float(state.init)!r}\nthreshold {float(state.swap_threshold)!r}\n".encode())
        out.write(b"#")
        out.write(A.tobytes())
        out.write(X.tobytes())
        out.write(b"\n#\n")
        eqs: dict = {}
        for c, q in state.owner:
            if c < 0:
                out.write(b"-1 -1\n")
                continue
            nat = state.configs[c].natoms
            eq = int(q) + (1 + 3 * nat + 9 if nbh else 0)
            eqs.setdefault(remap[int(c)], []).append(eq)
            out.write(f"{remap[int(c)]} {eq}\n".encode())
        out.write(b"#\n")
        for k, conf in enumerate(configs):
            feats = dict(conf.features)
            feats["selected_eqn_inds"] = ",".join(str(x) for x in sorted(eqs.get(k, [])))
            out.write(format_cfg(replace(conf, features=feats), lossless=True).encode())
    elif fmt == "als":
        nbh = state.mode == "nbh"
        out.write(b"^" + struct.pack("<4d", 1.0 if nbh else 0.0, 0.0 if nbh else 1.0, 0.0, 0.0) + b"\n#")
        out.write(A.tobytes())
        out.write(X.tobytes())
        out.write(b"\n")
        for r, (c, _q) in enumerate(state.owner):
            out.write(f"{r} {remap.get(int(c), 0)}\n".encode())
        for conf in configs:
            out.write(format_cfg(conf, lossless=True).encode())
    else:
        raise ValueError(f"fmt must be 'almtp' or 'als', got {fmt!r}")
    return out.getvalue()


def write_state(path, model: MTP, state: ActiveSet, fmt: str | None = None) -> None:
    """Write ``model`` followed by ``state`` (format from ``fmt`` or the suffix:
    ``.als`` → MLIP-2, anything else → MLIP-3 ``#MVS_v1.1``)."""
    path = Path(path)
    fmt = fmt or ("als" if path.suffix == ".als" else "almtp")
    if state.n != model.n_params:
        raise ValueError(f"state has {state.n} rows but the potential has {model.n_params} parameters")
    f = model.to_mtpfile()
    text = write_mtp(f, None)
    with atomic_write(path) as fh:
        fh.write(text.encode() + format_state(state, fmt))
