"""The ``[reference]`` table: which calculator labels configurations, and whether it is usable here.

A reference is a plain, picklable spec ``{"kind": ..., **settings}`` (labelling jobs run in other processes or on
a cluster). Kinds and their keys:

* ``tblite``: GFN1-xTB by default (``method``: GFN1-xTB | GFN2-xTB | IPEA1-xTB; ``accuracy``,
  ``electronic_temperature``, ``max_iterations``, ``mixer_damping``, ``charge``, ``multiplicity``);
  ``pip install tblite``.
* ``vasp``: ``command`` (or ``ASE_VASP_COMMAND``) and ``incar`` (on top of :data:`VASP_DEFAULTS`, the paper's
  settings); POTCARs from ``VASP_PP_PATH``.
* ``emt``: ASE's EMT (toy labels for tests and examples).
* ``ase``: any ASE calculator, ``factory = "module:callable"`` with ``kwargs``.
"""
from __future__ import annotations

import importlib
import os
import shutil

from mtpjax.errors import ConfigurationError, MTPJaxError


class ReferenceNotAvailable(MTPJaxError, ImportError):
    """The reference calculator's package or executable is not installed."""


#: INCAR settings of the paper (PBE, 400 eV, Γ-only, non-spin-polarised).
VASP_DEFAULTS = {"xc": "PBE", "encut": 400.0, "kpts": [1, 1, 1], "gamma": True, "ispin": 1, "ediff": 1e-5,
                 "ismear": 0, "sigma": 0.05, "prec": "Accurate", "lreal": "Auto", "lwave": False, "lcharg": False}
KINDS = ("tblite", "vasp", "emt", "ase")
KEYS = {
    "tblite": ("method", "accuracy", "electronic_temperature", "max_iterations", "mixer_damping", "charge",
               "multiplicity"),
    "vasp": ("command", "incar"),
    "emt": (),
    "ase": ("factory", "kwargs"),
}
TBLITE_METHODS = ("GFN1-xTB", "GFN2-xTB", "IPEA1-xTB")


def check_spec(spec: dict) -> dict:
    """Validate a reference spec (kind, keys, and that its package or executable is here); return a
    normalised copy (defaults filled in). Raises :class:`ConfigurationError` / :class:`ReferenceNotAvailable`
    with the allowed values."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigurationError(f"reference: missing key 'kind' (allowed: {', '.join(KINDS)})")
    spec = dict(spec)
    kind = spec["kind"]
    if kind not in KINDS:
        raise ConfigurationError(f"reference.kind = {kind!r} is not allowed (allowed: {', '.join(KINDS)})")
    bad = set(spec) - {"kind"} - set(KEYS[kind])
    if bad:
        raise ConfigurationError(f"reference ({kind}): unknown key(s) {sorted(bad)} "
                                 f"(allowed: {', '.join(KEYS[kind]) or 'none'})")
    if kind == "tblite":
        spec.setdefault("method", "GFN1-xTB")
        if spec["method"] not in TBLITE_METHODS:
            raise ConfigurationError(f"reference.method = {spec['method']!r} (allowed: {', '.join(TBLITE_METHODS)})")
        try:
            importlib.import_module("tblite.ase")  # optional dependency: is it installed?
        except ImportError:
            raise ReferenceNotAvailable("reference kind 'tblite' needs the tblite package: pip install tblite") from None
    elif kind == "vasp":
        incar = spec.get("incar", {})
        if not isinstance(incar, dict):
            raise ConfigurationError(f"reference.incar must be a table, got {incar!r}")
        spec["incar"] = dict(VASP_DEFAULTS, **{k.lower(): v for k, v in incar.items()})
        cmd = spec.get("command") or os.environ.get("ASE_VASP_COMMAND") or os.environ.get("VASP_COMMAND")
        if not cmd or not isinstance(cmd, str):
            raise ReferenceNotAvailable("reference kind 'vasp' needs reference.command (e.g. 'mpirun vasp_std') "
                                        "or ASE_VASP_COMMAND")
        exe = cmd.split()[0]
        if shutil.which(exe) is None and not os.path.exists(exe):
            raise ReferenceNotAvailable(f"reference.command: executable {exe!r} not found")
        spec["command"] = cmd
    elif kind == "ase":
        fac = spec.get("factory")
        if not isinstance(fac, str) or ":" not in fac:
            raise ConfigurationError("reference.factory must be 'module:callable' returning an ASE calculator")
        if not isinstance(spec.get("kwargs", {}), dict):
            raise ConfigurationError(f"reference.kwargs must be a table, got {spec['kwargs']!r}")
        mod, _, fn = fac.partition(":")
        try:
            getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ReferenceNotAvailable(f"reference.factory {fac!r} cannot be imported: {e}") from None
    return spec
