"""MLIP's remaining commands, each checked against MLIP-3's output (MLIP-3 spelling in brackets).

    mtpjax calc-errors POT.mtp DB.cfg [--log FILE] [--report-to FILE] [--layout mlip3|mlip2]   (check_errors)
    mtpjax mindist DB.cfg [--no-types] [--no-overwrite] [--output OUT.cfg]                      (mindist)
    mtpjax convert-cfg IN OUT [--input-format F] [--output-format F] [--save-nonconverged]      (convert)
    mtpjax filter-nonconv IN.cfg [OUT.cfg]                                                      (filter_nonconv)
    mtpjax cut-extrapolative-nbh IN.cfg OUT.cfg [--cutoff 7]                                    (cut_extrapolative_nbh)
    mtpjax relax POT.mtp IN.cfg OUT.cfg [--force-tolerance 1e-4] [--stress-tolerance 1e-3]    (relax)

Options take MLIP's underscore spelling too (``--save_nonconverged``, ``--no_types=true``, ``--log=FILE``).
Numbers printed as MLIP prints them (C++ streams: 6 significant digits; ``to_string``: 6 decimals). ``.cfg``
outputs are lossless (17 digits) unless ``--rounded`` asks for MLIP's rounded layout. ``docs/cli.md`` lists
MLIP's commands next to these and what each does differently.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase.constraints import FixAtoms
from ase.data import atomic_numbers, chemical_symbols
from ase.filters import FrechetCellFilter
from ase.io import read as ase_read
from ase.io import write as ase_write
from ase.io.formats import UnknownFileTypeError, filetype
from ase.optimize import BFGS, FIRE, LBFGS
from ase.units import GPa

try:  # the optimisers' small BLAS calls, threaded, stall against JAX's threads (25x slower on 2 cores)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

from mtpjax.cli.md import convert as h5md_convert
from mtpjax.errors import ConfigurationError, FileFormatError, MTPJaxError
from mtpjax.io.atomic import atomic_write
from mtpjax.io.cfg import Configuration, read_cfg, write_cfg
from mtpjax.io.mtp import read_mtp
from mtpjax.potential import MTP, MTPCalculator
from mtpjax.potential import calc_efs as compute_efs

__all__ = ["calc_errors", "mindist", "convert_cfg", "convert", "filter_nonconv", "cut_extrapolative_nbh", "relax",
           "type_mindists", "config_mindist", "ErrorMonitor", "mlip3_calc_efs_args", "read_outcar", "outcar_elements", "mlip_neighbourhood"]

#: MLIP's HUGE_DOUBLE (a type pair with no distance in a configuration)
HUGE = 9.9e99
#: MLIP's eVA3_to_GPa
EVA3_TO_GPA = 160.2176487


def g6(x) -> str:
    """A number as a C++ stream prints it by default (``%g``, 6 significant digits)."""
    return f"{float(x):g}"


def _add(p: argparse.ArgumentParser, name: str, *aliases: str, **kw):
    """``--a-b`` with MLIP's spelling ``--a_b`` (and further ``aliases``) as synonyms."""
    names = [name] + ([name[:2] + name[2:].replace("-", "_")] if "-" in name[2:] else []) + list(aliases)
    return p.add_argument(*dict.fromkeys(names), **kw)


#: the switches of these commands (``--x``; MLIP writes ``--x=true``: see :func:`_parse`)
_SWITCHES: set = set()


def _flag(p: argparse.ArgumentParser, name: str, *aliases: str, help: str):
    """A switch ``--x`` (also ``--x_y``); MLIP's ``--x=true`` / ``--x=false`` are read by :func:`_parse`."""
    _SWITCHES.add(name)
    _add(p, name, *aliases, action="store_true", help=help + " (MLIP's --name=true/false also accepted)")


def _true(value) -> bool:
    if str(value).lower() in ("true", "1", "yes", "on", ""):
        return True
    if str(value).lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"expected true or false, got {value!r}")


def _parse(p: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """``p.parse_args(argv)`` with MLIP's ``--switch=true`` read as ``--switch`` and ``--switch=false`` dropped."""
    out = []
    for a in argv:
        name, eq, value = a.partition("=")
        if eq and name[:2] + name[2:].replace("_", "-") in _SWITCHES:
            try:
                on = _true(value)
            except ConfigurationError as e:
                raise ConfigurationError(f"{name}: {e}") from None
            out += [name] if on else []
        else:
            out.append(a)
    return p.parse_args(out)


def _read_configs(path, what: str = "configurations") -> list[Configuration]:
    configs = read_cfg(path)
    if not configs:
        raise ConfigurationError(f"{path}: no {what} in the file")
    return configs


def _trained_model(path) -> MTP:
    f = read_mtp(path)
    if not f.is_trained:
        raise MTPJaxError(f"{path}: potential is untrained (no radial_coeffs / moment_coeffs)")
    return MTP.from_mtpfile(f)


def _sorted_features(c: Configuration) -> Configuration:
    """``c`` with its features in MLIP's order (an ``std::map``: sorted by key)."""
    return replace(c, features=dict(sorted(c.features.items())))


def _save(dest, configs, rounded: bool = False) -> None:
    """``configs`` to the .cfg ``dest`` atomically (a file rewritten in place is never left half-written);
    17 digits, or MLIP's rounded layout."""
    with atomic_write(dest, "w") as fh:
        write_cfg(fh, configs, lossless=not rounded)


def _open_out(dest: str):
    """A text stream for MLIP's ``stdout`` / ``stderr`` / file name options."""
    if dest == "stdout":
        return sys.stdout, False
    if dest == "stderr":
        return sys.stderr, False
    return open(dest, "w", encoding="utf-8"), True


# ==================================================== MLIP-3's calculate_efs
def mlip3_calc_efs_args(argv: list[str]) -> list[str]:
    """MLIP-3's ``calculate_efs POT CFG [--output_filename=OUT]`` as ``calc-efs POT CFG OUT``; without OUT the
    configurations are rewritten in place, as MLIP-3 does. Other arguments pass through."""
    out, rest, k = None, [], 0
    while k < len(argv):
        a = argv[k]
        if a.startswith(("--output_filename=", "--output-filename=")):
            out = a.split("=", 1)[1]
        elif a in ("--output_filename", "--output-filename") and k + 1 < len(argv):
            out, k = argv[k + 1], k + 1
        else:
            rest.append(a)
        k += 1
    valued = {"--min-dist", "--min_dist"}
    positional = [a for i, a in enumerate(rest) if not a.startswith("-") and (i == 0 or rest[i - 1] not in valued)]
    if len(positional) == 2 or out is not None:
        rest.append(out if out is not None else positional[1])
    return rest


# ============================================================== calc-errors
def _full(s) -> np.ndarray:
    """The symmetric 3×3 matrix of MLIP's (xx, yy, zz, yz, xz, xy)."""
    xx, yy, zz, yz, xz, xy = np.asarray(s, dtype=float)
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _cmax(a, b):
    """MLIP's ``__max(a, b)`` element-wise (``a > b ? a : b``: a NaN never wins)."""
    return np.where(a > b, a, b)


class _Accumulator:
    """MLIP's ErrorMonitor::Accumulator: count, and the maximum and sum of (value, delta, value², delta², rel)."""

    def __init__(self):
        self.count, self.max, self.sum = 0, np.zeros(5), np.zeros(5)

    def add(self, q, count: int = 1) -> None:
        self.max = _cmax(self.max, q)
        self.sum = self.sum + q
        self.count += count

    def merge(self, other: "_Accumulator") -> None:
        self.max = _cmax(self.max, other.max)
        self.sum = self.sum + other.sum
        self.count += other.count


VALUE, DELTA, VALSQ, DLTSQ, RELTV = range(5)


class ErrorMonitor:
    """MLIP-3's error monitor: :meth:`add` compares a labelled configuration with the potential's prediction
    and returns MLIP's per-configuration log line; :meth:`report` gives the integral report (MLIP-3's layout, or
    MLIP-2's section titles with ``layout="mlip2"``). Energies in eV, forces eV/Å, stresses eV (PlusStress,
    Frobenius norm of the 3×3 tensor) and GPa (virial stresses, PlusStress/V)."""

    def __init__(self):
        self.acc = {k: _Accumulator() for k in ("ene", "epa", "frc", "str", "vir")}
        self.n = 0

    def add(self, valid: Configuration, check: Configuration) -> str:
        with np.errstate(all="ignore"):
            return self._add(valid, check)

    def _add(self, valid: Configuration, check: Configuration) -> str:
        n = valid.natoms
        ene, epa = np.zeros(5), np.zeros(5)
        e_ok = valid.energy is not None and check.energy is not None and n > 0
        if e_ok:
            d, v = np.float64(abs(valid.energy - check.energy)), np.float64(valid.energy)
            ene = np.array([v, d, 0.0, d * d, d / v])
            epa = np.array([v / n, d / n, 0.0, (d / n) ** 2, d / v])
        frc = _Accumulator()
        if valid.forces is not None and check.forces is not None:
            fv = np.asarray(valid.forces, dtype=float)
            df = np.asarray(check.forces, dtype=float) - fv
            valsq, dltsq = np.sum(fv * fv, axis=1), np.sum(df * df, axis=1)
            value, delta = np.sqrt(valsq), np.sqrt(dltsq)
            for q in zip(value, delta, valsq, dltsq, delta / (value + 1e-300)):
                frc.add(np.array(q))
            frc.sum[RELTV] /= n
        st, vir = np.zeros(5), np.zeros(5)
        s_ok = valid.plus_stress is not None and check.plus_stress is not None and n > 0
        if s_ok:
            sv, sc = _full(valid.plus_stress), _full(check.plus_stress)
            st = self._quantity(sv, sc)
            volume = abs(np.linalg.det(np.asarray(valid.cell, dtype=float))) / EVA3_TO_GPA
            vir = self._quantity(sv / volume, sc / volume)
        self.acc["ene"].add(ene, int(e_ok))
        self.acc["epa"].add(epa, int(e_ok))
        self.acc["frc"].merge(frc)
        self.acc["str"].add(st, int(s_ok))
        self.acc["vir"].add(vir, int(s_ok))
        self.n += 1
        e_valid = valid.energy if valid.energy is not None else 0.0
        line = f"Errors: cfg# {self.n}\t#atoms: {n}"
        if check.energy is not None:
            line += f"\tDiff(ene):{g6(check.energy - e_valid)}\tDiff(epa):{g6(abs(check.energy - e_valid) / n)}"
        if check.forces is not None:
            line += (f"\tRMS(force): {g6(np.sqrt(frc.sum[DLTSQ] / n))}\tMAX(force): {g6(frc.max[DELTA])}"
                     f"\tRel(force): {g6(frc.sum[RELTV])}")
        if check.plus_stress is not None:
            line += f"\tDiff(stress): {g6(vir[DELTA])}\tRel(stress): {g6(st[RELTV])}"
        return line + "\n"

    @staticmethod
    def _quantity(valid, check) -> np.ndarray:
        valsq, dltsq = np.sum(valid * valid), np.sum((check - valid) ** 2)
        value, delta = np.sqrt(valsq), np.sqrt(dltsq)
        return np.array([value, delta, valsq, dltsq, delta / (value + 1e-300)])

    def _section(self, title: str, key: str, unit: str, ratio: str | None, per: int = 1) -> list[str]:
        a = self.acc[key]
        c = per * a.count + 1e-300
        lines = [f"{title}:", f"\tErrors checked for {a.count} {unit}",
                 f"\tMaximal absolute difference = {g6(a.max[DELTA])}",
                 f"\tAverage absolute difference = {g6(a.sum[DELTA] / c)}",
                 f"\tRMS     absolute difference = {g6(np.sqrt(a.sum[DLTSQ] / c))}"]
        if ratio:
            lines += [f"\tMax({ratio}Diff) / Max({ratio}) = {g6(a.max[DELTA] / (a.max[VALUE] + 1e-300))}",
                      f"\tRMS({ratio}Diff) / RMS({ratio}) = {g6(np.sqrt(a.sum[DLTSQ] / (a.sum[VALSQ] + 1e-300)))}"]
        return lines

    def report(self, layout: str = "mlip3") -> str:
        """MLIP's "Errors report" (ends with a newline). ``layout="mlip2"``: MLIP-2's section titles, and its
        average and RMS force and stress differences, which are per component (sums over 3 force components
        and 9 stress components divided by 3 × atoms and 9 × configurations; MLIP-3 divides by the counts)."""
        mlip2 = layout == "mlip2"
        s_eV, s_GPa = (("Stresses (in eV)", "Stresses (in GPa)") if mlip2 else
                       ("Stresses (in energy units)", "Virial stresses (in pressure units)"))
        with np.errstate(all="ignore"):
            parts = [self._section("Energy", "ene", "configurations", None),
                     self._section("Energy per atom", "epa", "configurations", None),
                     self._section("Forces", "frc", "atoms", "Force", 3 if mlip2 else 1),
                     # "Stres": MLIP's spelling
                     self._section(s_eV, "str", "configurations", "Stres", 9 if mlip2 else 1),
                     self._section(s_GPa, "vir", "configurations", "Stres", 9 if mlip2 else 1)]
        body = "\n\n".join("\n".join(p) for p in parts)
        return f"{'Errors report':_^47}\n{body}\n{'':_^47}\n"


def calc_errors(argv) -> int:
    """``mtpjax calc-errors POT DB.cfg`` (MLIP-3: ``check_errors``): errors of a potential on labelled data."""
    p = argparse.ArgumentParser(prog="mtpjax calc-errors", description="errors of a potential's energies, forces "
                                "and stresses on labelled configurations (like mlp calc-errors / check_errors)")
    p.add_argument("potential")
    p.add_argument("cfgs", help="labelled configurations (.cfg)")
    _add(p, "--log", metavar="FILE", default=None,
         help="one line per configuration to FILE (or stdout / stderr), as check_errors --log")
    _add(p, "--report-to", metavar="FILE", default="stdout", help="the integral report (default stdout)")
    p.add_argument("--layout", choices=("mlip3", "mlip2"), default="mlip3",
                   help="the report of MLIP-3's check_errors (default) or of MLIP-2's calc-errors (its titles; its "
                        "force and stress averages are per component)")
    _add(p, "--min-dist", type=float, default=0.5, help="refuse atoms closer than this (Å); default 0.5")
    args = _parse(p, argv)
    model = _trained_model(args.potential)
    valid = _read_configs(args.cfgs)
    check = compute_efs(model, valid, min_distance=args.min_dist, source=str(args.cfgs))
    mon = ErrorMonitor()
    lines = [mon.add(v, c) for v, c in zip(valid, check)]
    if args.log:
        out, close = _open_out(args.log)
        try:
            out.writelines(lines)
        finally:
            if close:
                out.close()
    head = (f"MTPR from {args.potential}, Database: {args.cfgs}\n\n\t\t* * * TRAIN ERRORS * * *\n\n"
            if args.layout == "mlip2" else "")
    out, close = _open_out(args.report_to)
    try:
        out.write(head + mon.report(args.layout) + "\n")
    finally:
        if close:
            out.close()
    return 0


# ================================================================ mindist
def _image_shifts(cell) -> tuple[np.ndarray, list]:
    """MLIP's images: ±1 along every periodic lattice vector (a non-zero row of the cell)."""
    L = np.asarray(cell, dtype=float)
    rng = [(-1, 0, 1) if np.any(L[a] != 0.0) else (0,) for a in range(3)]
    return L, [(i, j, k) for i in rng[0] for j in rng[1] for k in rng[2]]


def type_mindists(conf: Configuration, chunk: int = 512) -> dict:
    """MLIP's ``Configuration::GetTypeMindists``: {(t1, t2): minimal distance} over every pair of the
    configuration's types (symmetric), images ±1 along each periodic direction only (as MLIP: in a very small
    or skewed cell a shorter distance through a farther image is missed); ``HUGE`` (9.9e99) for a pair that has
    no distance."""
    pos = np.asarray(conf.positions, dtype=float)
    types = np.asarray(conf.types, dtype=np.int64).reshape(-1)
    typeset = sorted({int(t) for t in types})
    L, shifts = _image_shifts(conf.cell)
    best = {(a, b): HUGE for a in typeset for b in typeset}
    masks = {t: types == t for t in typeset}
    n = len(pos)
    for i, j, k in shifts:
        cand = pos + (i * L[0] + j * L[1] + k * L[2])
        for r0 in range(0, n, chunk):
            d = np.sqrt(np.sum((pos[r0:r0 + chunk, None, :] - cand[None, :, :]) ** 2, axis=-1))
            if (i, j, k) == (0, 0, 0):
                rows = np.arange(r0, min(n, r0 + chunk))
                d[rows - r0, rows] = np.inf
            for a in typeset:
                da = d[masks[a][r0:r0 + chunk]]
                if da.size == 0:
                    continue
                for b in typeset:
                    m = da[:, masks[b]]
                    if m.size:
                        best[(a, b)] = min(best[(a, b)], float(m.min()))
    return {(a, b): min(best[(a, b)], best[(b, a)]) for a in typeset for b in typeset}


def config_mindist(conf: Configuration) -> float:
    """MLIP's ``Configuration::MinDist``: the minimal interatomic distance (images ±1, as :func:`type_mindists`)."""
    md = type_mindists(conf)
    return min(md.values()) if md else HUGE


def mindists_feature(md: dict) -> str:
    """MLIP's ``mindists`` feature: ``{(0,0):2.527331,(0,1):...}``."""
    return "{" + ",".join(f"({a},{b}):{v:f}" for (a, b), v in sorted(md.items()) if a <= b) + "}"


def mindist(argv) -> int:
    """``mtpjax mindist DB.cfg``: global and per type-pair minimal distances, as ``mlp mindist``."""
    p = argparse.ArgumentParser(prog="mtpjax mindist", description="minimal interatomic distances, global and per "
                                "type pair; adds Feature mindists to every configuration (like mlp mindist)")
    p.add_argument("cfgs")
    _flag(p, "--no-overwrite", help="only print the distances; do not rewrite the file (MLIP: --no_overwrite)")
    _flag(p, "--no-types", help="Feature mindists is one number per configuration (MLIP: --no_types)")
    p.add_argument("-o", "--output", default=None,
                   help="write the configurations with the feature here instead of rewriting DB.cfg in place")
    p.add_argument("--rounded", action="store_true", help="MLIP's rounded .cfg layout instead of 17 digits")
    args = _parse(p, argv)
    configs = _read_configs(args.cfgs)
    no_types, write = args.no_types, not args.no_overwrite
    out, glob, global_md = [], {}, HUGE
    for c in configs:
        md = type_mindists(c)
        local = min(md.values()) if md else HUGE
        global_md = min(global_md, local)
        for key, v in md.items():
            glob[key] = min(v, glob.get(key, HUGE))
        feats = dict(c.features)
        feats["mindists"] = f"{local:f}" if no_types else mindists_feature(md)
        out.append(_sorted_features(replace(c, features=feats)))
    if write:
        _save(args.output or args.cfgs, out, args.rounded)
    print(f"Global mindist: {g6(global_md)}")
    for (a, b), v in sorted(glob.items()):
        if a <= b:
            print(f"mindist({a}, {b}) = {g6(v)}")
    return 0


# ========================================================= filter-nonconv
def filter_nonconv(argv) -> int:
    """``mtpjax filter-nonconv IN.cfg [OUT.cfg]``: drop the configurations MLIP marks non-converged."""
    p = argparse.ArgumentParser(prog="mtpjax filter-nonconv", description="drop configurations whose Feature "
                                "EFS_by contains 'not_converged' (VASP runs that hit NELM; like mlp filter_nonconv)")
    p.add_argument("input")
    p.add_argument("output", nargs="?", help="default: rewrite IN.cfg in place, as MLIP-3 does")
    p.add_argument("--rounded", action="store_true", help="MLIP's rounded .cfg layout instead of 17 digits")
    args = _parse(p, argv)
    configs = read_cfg(args.input)
    keep = [c for c in configs if "not_converged" not in c.features.get("EFS_by", "")]
    dest = args.output or args.input
    _save(dest, keep, args.rounded)
    print(f"filter-nonconv: kept {len(keep)} of {len(configs)} configurations "
          f"({len(configs) - len(keep)} not converged) → {dest}")
    return 0


# ================================================== cut-extrapolative-nbh
def _ghost_atoms(pos: np.ndarray, L: np.ndarray, cutoff: float):
    """MLIP's ``InitNbhs_AddGhostAtoms``: periodic images within ``cutoff`` of the configuration, shell by
    shell (max(|i|,|j|,|k|) = 1, 2, … until a shell adds none), in MLIP's order; (positions, original index)."""
    periodic = [bool(np.any(L[a] != 0.0)) for a in range(3)]
    lo, hi = pos.min(axis=0) - cutoff, pos.max(axis=0) + cutoff
    gpos, gorig = [np.zeros((0, 3))], [np.zeros(0, dtype=np.int64)]
    level = 1
    while True:
        added = False
        ll = [level if p else 0 for p in periodic]
        for i in range(-ll[0], ll[0] + 1):
            for j in range(-ll[1], ll[1] + 1):
                for k in range(-ll[2], ll[2] + 1):
                    if max(abs(i), abs(j), abs(k)) != level:
                        continue
                    cand = pos + (i * L[0] + j * L[1] + k * L[2])
                    idx = np.nonzero(~(np.any(cand < lo, axis=1) | np.any(cand > hi, axis=1)))[0]
                    if idx.size == 0:
                        continue
                    d = np.sqrt(np.sum((cand[idx, None, :] - pos[None, :, :]) ** 2, axis=-1))
                    sel = idx[np.any(d <= cutoff, axis=1)]
                    if sel.size:
                        gpos.append(cand[sel])
                        gorig.append(sel)
                        added = True
        if not added:
            break
        level += 1
    return np.concatenate(gpos), np.concatenate(gorig)


def mlip_neighbourhood(conf: Configuration, c: int, cutoff: float):
    """Atom ``c``'s neighbours closer than ``cutoff`` as MLIP-3's ``InitNbhs`` lists them (same order):
    (types (M,), vectors (M, 3) from atom ``c``)."""
    pos = np.asarray(conf.positions, dtype=float)
    types = np.asarray(conf.types, dtype=np.int64).reshape(-1)
    gpos, gorig = _ghost_atoms(pos, np.asarray(conf.cell, dtype=float), cutoff)
    n = len(pos)
    allpos, orig = np.concatenate([pos, gpos]), np.concatenate([np.arange(n), gorig])
    # pairs (i < c, j ∈ {c and its images}) enter c's list as −(x_j − x_i), i-major
    js = np.concatenate([[c], n + np.nonzero(gorig == c)[0]]).astype(np.int64)
    v1 = allpos[js][None, :, :] - pos[:c][:, None, :]
    ii, jj = np.nonzero(np.sqrt(np.sum(v1 * v1, axis=-1)) < cutoff)
    # then pairs (c, j > c) with orig(j) ≥ c as x_j − x_c
    j2 = np.arange(c + 1, len(allpos))
    j2 = j2[orig[j2] >= c]
    v2 = allpos[j2] - pos[c]
    j2 = j2[np.sqrt(np.sum(v2 * v2, axis=-1)) < cutoff]
    vecs = np.concatenate([-v1[ii, jj], allpos[j2] - pos[c]])
    return np.concatenate([types[ii], types[orig[j2]]]), vecs


def cut_extrapolative_nbh(argv) -> int:
    """``mtpjax cut-extrapolative-nbh IN.cfg OUT.cfg``: the most extrapolative neighbourhood of every graded
    configuration as a non-periodic cluster (``mlp cut_extrapolative_nbh``)."""
    p = argparse.ArgumentParser(prog="mtpjax cut-extrapolative-nbh", description="for every configuration whose "
                                "largest per-atom grade (nbh_grades, from calc-grade --mode nbh) is at least "
                                "--threshold, cut the sphere of --cutoff around that atom into a non-periodic "
                                "configuration (like mlp cut_extrapolative_nbh)")
    p.add_argument("input", help="graded configurations (.cfg with the nbh_grades column)")
    p.add_argument("output")
    _add(p, "--cutoff", type=float, default=7.0, help="radius of the sphere, Å (MLIP default 7)")
    _add(p, "--threshold", type=float, default=1.1,
         help="skip configurations whose largest grade is below this (MLIP: fixed 1.1)")
    p.add_argument("--rounded", action="store_true", help="MLIP's rounded .cfg layout instead of 17 digits")
    args = _parse(p, argv)
    if not args.cutoff > 0:
        raise ConfigurationError(f"--cutoff must be positive, got {args.cutoff}")
    configs = read_cfg(args.input)
    out = []
    for k, conf in enumerate(configs):
        if "nbh_grades" not in conf.atom_data:
            raise ConfigurationError(f"{args.input}: configuration {k + 1} has no nbh_grades column (grade it "
                                     "with calc-grade --mode nbh, or MLIP-3's calculate_grade of an nbh state)")
        grades = np.asarray(conf.atom_data["nbh_grades"], dtype=float)
        i = int(np.argmax(grades)) if grades.size else -1
        if i < 0 or not grades[i] > 0.0 or grades[i] < args.threshold:
            continue
        t, vecs = mlip_neighbourhood(conf, i, args.cutoff)
        feats = {"cfg#": str(len(out)), "extrapolation_grade": f"{grades[i]:f}", "nbh#": str(i)}
        out.append(Configuration(positions=np.concatenate([np.zeros((1, 3)), vecs]),
                                 types=np.concatenate([[int(conf.types[i])], t]).astype(np.int64), features=feats))
        # MLIP's line: "cfg#" counts the neighbourhoods cut so far, not the input configurations
        print(f"from cfg#{len(out)} cut nbh#{i} with grade={g6(grades[i])} (atoms count is {len(vecs)})")
    _save(args.output, out, args.rounded)
    print(f"cut-extrapolative-nbh: {len(out)} of {len(configs)} configurations had a neighbourhood graded "
          f"≥ {args.threshold:g} → {args.output}", file=sys.stderr)
    return 0


# ================================================================= convert
#: MLIP's and ASE's names of the formats convert-cfg handles itself
_FORMAT_ALIASES = {"txt": "cfg", "cfg": "cfg", "mlip": "cfg", "outcar": "outcar", "vasp-outcar": "outcar",
                   "vasp-out": "outcar", "poscar": "poscar", "vasp-poscar": "poscar", "vasp": "poscar",
                   "lammps-dump": "lammps-dump-text", "lammps-datafile": "lammps-data"}
_OUTCAR_ITER = re.compile(r"--- Iteration.*?\(\s*(-?\d+)")


def _format_name(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    f = fmt.strip().lower().replace("_", "-")
    return _FORMAT_ALIASES.get(f, f)


def _outcar_preamble(lines: list[str], path) -> tuple[int, list[int], list[int]]:
    """(index of the NELM line, ions per type, atomic numbers of the POTCAR lines) as MLIP reads them."""
    ions, elements = [], []
    for k, line in enumerate(lines):
        if line.startswith("   ions per type ="):
            ions = [int(x) for x in line[18:].split()]
        elif line.startswith(" POTCAR:"):
            for word in line[8:].split()[1:]:
                z = atomic_numbers.get(word.split("_")[0])
                if z is not None and z not in elements:
                    elements.append(z)
        elif line.startswith("   NELM   ="):
            m = re.match(r"\s*(-?\d+)", line[11:])
            if not m:
                raise FileFormatError("cannot read NELM", path, k + 1)
            return k, ions, elements
    raise FileFormatError("no NELM line (is this a VASP OUTCAR?)", path)


def _outcar_step(lines: list[str], k: int, path):
    """One ionic step from line ``k`` as MLIP's ``LoadNextFromOUTCAR``: (next line, electronic iterations,
    Configuration without types) or None at the end of the file."""
    n, it = len(lines), -1
    while k < n and not (lines[k].startswith("------------------------ aborting loop because EDIFF is reached")
                         or lines[k].startswith("                  Total CPU time used (sec)")):
        m = _OUTCAR_ITER.search(lines[k])
        if m:
            it = int(m.group(1))
        k += 1
    if k >= n or lines[k].startswith("                  Total CPU time used (sec)"):
        return None
    while k < n and not (lines[k].startswith("  FORCE on cell =-STRESS") or lines[k].startswith(
            "      direct lattice vectors                 reciprocal lattice vectors")):
        k += 1
    stress = None
    if k < n and lines[k].startswith("  FORCE on cell =-STRESS"):
        while k < n and not lines[k].startswith("  Total"):
            k += 1
        if k >= n:
            raise FileFormatError("cannot find the stresses ('  Total' line)", path)
        xx, yy, zz, xy, yz, zx = (float(x) for x in lines[k].split()[1:7])
        stress = np.array([xx, yy, zz, yz, zx, xy])
    while k < n and not lines[k].startswith("      direct lattice vectors"):
        k += 1
    if k + 3 >= n:
        raise FileFormatError("cannot find the lattice vectors", path)
    cell = np.array([[float(x) for x in lines[k + a].split()[:3]] for a in (1, 2, 3)])
    while k < n and not lines[k].startswith(" POSITION                                       TOTAL-FORCE"):
        k += 1
    rows, k = [], k + 2
    while k < n:
        try:
            row = [float(x) for x in lines[k].split()[:6]]
        except ValueError:
            break
        if len(row) < 6:
            break
        rows.append(row)
        k += 1
    while k < n and not lines[k].startswith("  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)"):
        k += 1
    if k + 2 >= n or len(lines[k + 2].split()) < 5:
        raise FileFormatError("cannot find the energy ('free  energy   TOTEN')", path, min(k + 3, n))
    rows = np.asarray(rows, dtype=float).reshape(-1, 6)
    conf = Configuration(positions=rows[:, :3], types=np.zeros(len(rows), dtype=np.int64), cell=cell,
                         pbc=np.ones(3, dtype=bool), energy=float(lines[k + 2].split()[4]), forces=rows[:, 3:],
                         plus_stress=stress)
    return k + 3, it, conf


def read_outcar(path, save_nonconverged: bool = False, absolute_types: bool = False, warn=None):
    """The ionic steps of a VASP OUTCAR as MLIP's ``convert --input_format=outcar`` reads them: positions,
    forces, lattice, the free energy (TOTEN), PlusStress from the ``Total`` line of "FORCE on cell" (eV),
    ``Feature EFS_by`` = ``VASP``, or ``VASP_not_converged`` when the electronic loop took NELM iterations or
    more (such steps are skipped unless ``save_nonconverged``). Types: 0, 1, … in POTCAR order (atomic numbers
    with ``absolute_types``). ``warn(message)`` is called for every non-converged step, and for a step that
    cannot be read (a truncated file: the steps before it are returned, as MLIP does)."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    k, ions, elements = _outcar_preamble(lines, path)
    nelm = int(re.match(r"\s*(-?\d+)", lines[k][11:]).group(1))
    out, step = [], 0
    while True:
        try:
            res = _outcar_step(lines, k + 1 if step == 0 else k, path)
        except (FileFormatError, ValueError, IndexError) as e:  # MLIP keeps the steps before a broken one
            if warn is not None:
                warn(f"{path}: ionic step {step + 1} cannot be read ({e}); the {len(out)} configurations before it "
                     "are kept")
            return out
        if res is None:
            return out
        k, it, conf = res
        step += 1
        types = [z if absolute_types else t for t, (z, m) in enumerate(zip(elements, ions)) for _ in range(m)]
        if len(types) != conf.natoms:
            raise FileFormatError(f"ionic step {step}: ions per type {ions} (POTCAR elements "
                                  f"{[chemical_symbols[z] for z in elements]}) do not match the {conf.natoms} "
                                  "atoms", path)
        conv = not (nelm != 0 and it >= nelm)
        conf = replace(conf, types=np.asarray(types, dtype=np.int64),
                       features={"EFS_by": "VASP" if conv else "VASP_not_converged"})
        if not conv and warn is not None:
            warn(f"{path}: ionic step {step}: non-converged calculation detected ({it} electronic iterations, "
                 f"NELM = {nelm})" + ("" if save_nonconverged else "; skipped (--save-nonconverged keeps it)"))
        if conv or save_nonconverged:
            out.append(conf)


def outcar_elements(path) -> list[int]:
    """The atomic numbers of an OUTCAR's types 0, 1, … (its POTCAR lines, as MLIP reads them)."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return _outcar_preamble(lines, path)[2]


def _warn(message: str) -> None:
    print(f"mtpjax: warning: {message}", file=sys.stderr)


def _elements(type_order) -> list[int] | None:
    if not type_order:
        return None
    items = [x for part in type_order for x in str(part).replace(",", " ").split()]
    try:
        return [int(x) if x.lstrip("-").isdigit() else atomic_numbers[x] for x in items]
    except KeyError as e:
        raise ConfigurationError(f"--type-order: unknown element {e.args[0]!r}") from None


def _read_ase(path, fmt, type_order, absolute_types) -> list[Configuration]:
    try:
        images = ase_read(str(path), index=":", format=fmt)
    except UnknownFileTypeError as e:
        raise ConfigurationError(f"{path}: unknown input format ({e}); give --input-format") from None
    except (ValueError, KeyError, IndexError, StopIteration, AttributeError, TypeError) as e:
        raise FileFormatError(f"ASE cannot read it as {fmt or 'its guessed format'}: {e}", path) from None
    if type_order is not None:
        return [Configuration.from_atoms(a, symbol_to_type=type_order) for a in images]
    if all("mlip_type" in a.arrays for a in images) or absolute_types:
        return [Configuration.from_atoms(a, symbol_to_type=None if "mlip_type" in a.arrays else
                                         {z: z for z in set(a.numbers.tolist())}) for a in images]
    zs = sorted({int(z) for a in images for z in a.numbers})
    print("convert-cfg: types " + ", ".join(f"{t} = {chemical_symbols[z]}" for t, z in enumerate(zs))
          + " (ascending atomic number; --type-order or --absolute-types to choose)", file=sys.stderr)
    return [Configuration.from_atoms(a, symbol_to_type=zs) for a in images]


def _atoms(conf: Configuration, elements):
    """``conf`` as ase.Atoms: type t → ``elements[t]``, or atomic number t when the types are atomic numbers
    (MLIP's 'absolute numeration'), else the dummy element X (types kept in ``mlip_type``)."""
    types = sorted({int(t) for t in conf.types})
    if elements is not None:
        if max(types) >= len(elements) or min(types) < 0:
            raise ConfigurationError(f"--type-order gives {len(elements)} elements, the configuration has types "
                                     f"{types}")
        return conf.to_atoms(type_to_symbol=elements)
    if types != list(range(len(types))) and all(1 <= t <= 118 for t in types):
        return conf.to_atoms(type_to_symbol={t: t for t in types})
    return conf.to_atoms()


def _write_converted(configs, out: str, fmt: str, args) -> None:
    if fmt == "cfg":
        if args.append:
            write_cfg(out, configs, lossless=not args.rounded, append=True)
        else:
            _save(out, configs, args.rounded)
        return
    elements = _elements(args.type_order)
    images = [_atoms(c, elements) for c in configs]
    if fmt == "poscar":  # MLIP: OUT for one configuration, OUT0, OUT1, … for several
        names = [out] if len(images) == 1 else [f"{out}{k}" for k in range(len(images))]
        for name, a in zip(names, images):
            ase_write(name, a, format="vasp")
        return
    try:
        ase_write(out, images, format=fmt)
    except UnknownFileTypeError as e:
        raise ConfigurationError(f"{out}: unknown output format ({e}); give --output-format") from None


def _guess_format(path: str, output: bool) -> str | None:
    name = Path(path).name
    if name.lower().endswith(".cfg"):
        return "cfg"
    if not output and "OUTCAR" in name:
        return "outcar"
    if output and ("POSCAR" in name or name.lower().endswith((".poscar", ".vasp"))):
        return "poscar"
    return None


def convert_cfg(argv) -> int:
    """``mtpjax convert-cfg IN OUT`` (MLIP-3: ``convert``): configurations between MLIP's .cfg, VASP's OUTCAR
    and POSCAR and every format ASE reads or writes."""
    p = argparse.ArgumentParser(prog="mtpjax convert-cfg", description="convert configurations: VASP OUTCAR or any "
                                "ASE format → .cfg, .cfg → extxyz, POSCAR or any ASE format (like mlp convert-cfg)")
    p.add_argument("input")
    p.add_argument("output")
    _add(p, "--input-format", default=None, help="cfg (txt), outcar (vasp-outcar), or an ASE format name "
         "(default: from the file name; ASE guesses the rest)")
    _add(p, "--output-format", default=None, help="cfg (txt), poscar (vasp-poscar: OUT, or OUT0, OUT1, … for "
         "several), or an ASE format name such as extxyz (default: from the file name)")
    _flag(p, "--save-nonconverged", help="keep OUTCAR steps whose electronic loop reached NELM (marked "
          "Feature EFS_by VASP_not_converged); skipped with a warning otherwise")
    _flag(p, "--absolute-types", help="types are atomic numbers instead of 0, 1, … (OUTCAR: POTCAR order)")
    _add(p, "--type-order", nargs="+", default=None, metavar="ELEMENT", help="elements of types 0, 1, … "
         "(symbols or atomic numbers, commas or spaces): written to ASE formats, read from them")
    _flag(p, "--append", help="append to a .cfg output")
    _flag(p, "--last", help="only the last configuration (useful with relaxations)")
    p.add_argument("--rounded", action="store_true", help="MLIP's rounded .cfg layout instead of 17 digits")
    args = _parse(p, argv)
    fin = _format_name(args.input_format) or _guess_format(args.input, False)
    fout = _format_name(args.output_format) or _guess_format(args.output, True)
    if fin == "poscar":
        fin = "vasp"  # ASE reads POSCARs (MLIP does not)
    if fout == "outcar":
        raise ConfigurationError("OUTCAR is an input format only")
    if not Path(args.input).is_file():
        raise FileNotFoundError(2, "No such file or directory", str(args.input))
    if fin == "cfg":
        configs = read_cfg(args.input)
    elif fin == "outcar":
        configs = read_outcar(args.input, args.save_nonconverged, args.absolute_types, _warn)
        if args.type_order is None and not args.absolute_types:
            args.type_order = [str(z) for z in outcar_elements(args.input)]
    else:
        configs = _read_ase(args.input, fin, _elements(args.type_order), args.absolute_types)
    if args.last:
        configs = configs[-1:]
    if fout is None:  # ASE's guess from the name (out.xyz → extxyz), else MLIP's default: .cfg
        try:
            fout = filetype(args.output, read=False)
        except (UnknownFileTypeError, ValueError, OSError):
            fout = "cfg"
    if not configs:
        _warn("no configurations will be saved")
    _write_converted(configs, args.output, fout, args)
    print(f"Processed {len(configs)} configurations")
    return 0


def _is_hdf5(path: str) -> bool:
    if path.lower().endswith((".h5md", ".h5", ".hdf5")):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def convert(argv) -> int:
    """``mtpjax convert``: an H5MD trajectory (``.h5md``/HDF5 input) → extxyz / LAMMPS (``mtpjax.cli.md.convert``);
    any other input → :func:`convert_cfg` (MLIP-3's ``convert``)."""
    if not argv or argv[0] in ("-h", "--help"):
        print("mtpjax convert: H5MD trajectories (.h5md / HDF5 input) as below; any other input is converted as "
              "by 'mtpjax convert-cfg' (MLIP-3's convert; see mtpjax convert-cfg --help)\n")
        return h5md_convert(argv)
    if any(_is_hdf5(a) for a in argv if not a.startswith("-") and Path(a).suffix):
        return h5md_convert(argv)
    return convert_cfg(argv)


# ================================================================== relax
_OPTIMIZERS = {"bfgs": BFGS, "lbfgs": LBFGS, "fire": FIRE}


def _relax_one(conf: Configuration, model: MTP, args):
    """Relax one configuration: (Configuration with EFS and features, converged, steps, (max |F|, max stress))."""
    species = list(model.species)
    index = model.species_index(conf.types)
    atoms = conf.to_atoms(type_to_symbol={int(t): int(k) + 1 for t, k in zip(conf.types, index)})
    atoms.calc = MTPCalculator(model, symbols=list(range(1, len(species) + 1)), min_distance=args.min_dist)
    relax_atoms, relax_cell = args.force_tolerance > 0, args.stress_tolerance > 0 and bool(np.all(conf.pbc))
    if not (relax_atoms or relax_cell):
        raise ConfigurationError("nothing to relax: --force-tolerance is 0 and the cell is not periodic")
    if not relax_atoms:
        atoms.set_constraint(FixAtoms(indices=range(len(atoms))))
    target = FrechetCellFilter(atoms, scalar_pressure=args.pressure * GPa) if relax_cell else atoms
    opt = _OPTIMIZERS[args.optimizer](target, logfile=None)

    def state():
        f = atoms.get_forces(apply_constraint=False)
        fmax = float(np.sqrt((f * f).sum(axis=1)).max()) if len(f) else 0.0
        smax = 0.0
        if relax_cell:
            s = atoms.get_stress(voigt=False)
            smax = float(np.abs(-s * EVA3_TO_GPA - args.pressure * np.eye(3)).max())
        return fmax, smax

    def done(fmax, smax):
        return (fmax < args.force_tolerance or not relax_atoms) and (smax < args.stress_tolerance or not relax_cell)

    steps, converged = 0, False
    with threadpool_limits(1, user_api="blas") if threadpool_limits else contextlib.nullcontext():
        for _ in opt.irun(fmax=0.0, steps=args.max_iter):
            converged = done(*state())
            if converged:
                break
            steps += 1
    atoms.get_potential_energy()
    if np.all(conf.pbc):
        atoms.get_stress()
    atoms.wrap()
    res = Configuration.from_atoms(atoms, symbol_to_type={int(k) + 1: int(t) for t, k in zip(conf.types, index)})
    feats = {k: v for k, v in conf.features.items()}
    feats["from"] = "relaxation_OK" if converged else "relaxation_NOT_CONVERGED"
    feats["mindists"] = mindists_feature(type_mindists(res))
    if args.pressure:
        pv = args.pressure * res.volume / EVA3_TO_GPA
        feats["PV"], feats["enthalpy"] = f"{pv:f}", f"{res.energy + pv:f}"
    return _sorted_features(replace(res, features=feats, atom_data={})), converged, steps, state()


def relax(argv) -> int:
    """``mtpjax relax POT IN.cfg OUT.cfg``: relax atoms (and the cell) of every configuration (``mlp relax``)."""
    p = argparse.ArgumentParser(prog="mtpjax relax", description="relax positions (and the periodic cell) of every "
                                "configuration with ASE's optimiser and the potential (like mlp relax)")
    p.add_argument("potential")
    p.add_argument("input")
    p.add_argument("output")
    _add(p, "--force-tolerance", "--relax:force_tolerance", type=float, default=1e-4,
         help="converged when every |F| is below this, eV/Å (MLIP default 1e-4); 0: atoms fixed")
    _add(p, "--stress-tolerance", "--relax:stress_tolerance", type=float, default=1e-3,
         help="… and every stress component below this, GPa (MLIP default 1e-3); 0: cell fixed")
    _add(p, "--max-iter", "--relax:iteration_limit", "--iteration-limit", type=int, default=10000,
         help="optimiser steps per configuration (default 10000)")
    _add(p, "--pressure", "--relax:pressure", type=float, default=0.0, help="external pressure, GPa")
    p.add_argument("--optimizer", choices=sorted(_OPTIMIZERS), default="bfgs", help="ASE optimiser (default bfgs)")
    _add(p, "--save-unrelaxed", metavar="FILE", default=None,
         help="write the configurations whose relaxation failed (as given, Feature from relaxation_FAILED) here")
    _add(p, "--min-dist", "--relax:mindist", type=float, default=0.5,
         help="a configuration with atoms closer than this (Å) fails (MLIP default 0.5)")
    p.add_argument("--rounded", action="store_true", help="MLIP's rounded .cfg layout instead of 17 digits")
    p.add_argument("-q", "--quiet", action="store_true")
    args = _parse(p, argv)
    if args.max_iter < 0 or args.force_tolerance < 0 or args.stress_tolerance < 0:
        raise ConfigurationError("--max-iter and the tolerances must not be negative")
    if args.force_tolerance == 0 and args.stress_tolerance == 0:
        raise ConfigurationError("nothing to relax: --force-tolerance and --stress-tolerance are both 0")
    model = _trained_model(args.potential)
    configs = read_cfg(args.input)
    relaxed, failed = [], []
    for k, conf in enumerate(configs):
        try:
            res, ok, steps, (fmax, smax) = _relax_one(conf, model, args)
        except ConfigurationError as e:
            _warn(f"relaxation of configuration {k + 1} failed: {e}")
            failed.append(_sorted_features(replace(conf, features={**conf.features, "from": "relaxation_FAILED"})))
            continue
        relaxed.append(res)
        if not ok:
            _warn(f"configuration {k + 1}: not converged in {args.max_iter} steps (max |F| {fmax:.3g} eV/Å, "
                  f"max stress {smax:.3g} GPa)")
        if not args.quiet:
            print(f"relax: configuration {k + 1}: {steps} steps, E/atom {res.energy / res.natoms:.8f} eV, "
                  f"max |F| {fmax:.2e} eV/Å, max stress {smax:.2e} GPa, {res.features['from']}")
    _save(args.output, relaxed, args.rounded)
    if args.save_unrelaxed:
        _save(args.save_unrelaxed, failed, args.rounded)
    print(f"From {len(configs)} configurations {len(relaxed)} were relaxed successfully")
    return 0
