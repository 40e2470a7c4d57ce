"""Reference (ab initio / semi-empirical) calculators behind one small interface.

A reference calculator is described by a plain, picklable *spec*
``{"kind": ..., **settings}`` so that labelling jobs can run in other
processes or on a cluster; :func:`label_atoms` is the job body: it builds the
calculator (cached per process), computes energy, forces and stress and
returns a :class:`Label` after checking it (finite, forces present, SCF
converged where the calculator reports it). Kinds:

* ``"tblite"``: GFN1-xTB (default ``method = "GFN1-xTB"``) via ``tblite.ase``
  (``pip install tblite``). GFN2-xTB does not converge on random Li–P–S cells.
* ``"vasp"``: ``ase.calculators.vasp.Vasp``; INCAR keys from the spec (paper
  defaults: PBE, ENCUT 400, Γ-only, ISPIN 1); command from ``command`` or
  ``ASE_VASP_COMMAND``; POTCARs from ``VASP_PP_PATH``.
* ``"emt"``: ASE's EMT (fast toy labels for tests).
* ``"ase"``: any ASE calculator ``factory = "module:callable"`` with ``kwargs``.

Units: energy eV, forces eV/Å; the stress is returned as MLIP's PlusStress
(eV, ``−σ_ASE·V``, xx yy zz yz xz xy) and is None for non-periodic cells.
"""
from __future__ import annotations

import importlib
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from mtpjax.config.reference import KINDS, VASP_DEFAULTS, ReferenceNotAvailable, check_spec
from mtpjax.errors import MTPJaxError
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.vasp import Vasp

__all__ = [
    "Label",
    "LabelError",
    "ReferenceNotAvailable",
    "check_spec",
    "label_atoms",
    "atoms_payload",
    "VASP_DEFAULTS",
    "KINDS",
]

class LabelError(MTPJaxError, RuntimeError):
    """A reference calculation failed (exception, NaN, non-converged SCF,
    missing output, timeout)."""


@dataclass
class Label:
    """Result of one reference calculation (host numpy).

    ``energy`` eV, ``forces`` (N, 3) eV/Å, ``plus_stress`` (6,) eV or None,
    ``wall`` seconds, ``info`` extra calculator output (e.g. converged flag).
    """

    energy: float
    forces: np.ndarray
    plus_stress: np.ndarray | None
    wall: float
    info: dict = field(default_factory=dict)


_CACHE: dict = {}


def make_calculator(spec: dict, workdir: str | None):
    kind = spec["kind"]
    if kind == "tblite":
        from tblite.ase import TBLite

        kw = {k: v for k, v in spec.items() if k in ("accuracy", "electronic_temperature", "max_iterations",
                                                        "mixer_damping", "charge", "multiplicity")}
        return TBLite(method=spec["method"], verbosity=0, **kw)
    if kind == "emt":
        return EMT()
    if kind == "vasp":
        return Vasp(directory=workdir or ".", command=spec["command"], **spec["incar"])
    if kind == "ase":
        mod, _, fn = spec["factory"].partition(":")
        return getattr(importlib.import_module(mod), fn)(**spec.get("kwargs", {}))
    raise MTPJaxError(f"unknown reference kind {kind!r}")


def atoms_payload(conf, type_to_symbol) -> dict:
    """Picklable description of a configuration for a labelling job:
    numbers, positions (Å), cell rows (Å), pbc."""
    at = conf.to_atoms(type_to_symbol)
    return {"numbers": at.numbers.tolist(), "positions": at.positions.tolist(),
            "cell": np.asarray(at.cell).tolist(), "pbc": at.pbc.tolist()}


def label_atoms(spec: dict, payload: dict, workdir: str | None = None) -> Label:
    """Run the reference calculation of one configuration (the job body).

    Raises :class:`LabelError` for any failure, including NaN/inf results,
    missing forces, a non-converged SCF (``calc.converged is False``) and an
    implausibly fast VASP run (output not produced).
    """
    atoms = Atoms(numbers=payload["numbers"], positions=payload["positions"], cell=payload["cell"],
                  pbc=payload["pbc"])
    if workdir:
        os.makedirs(workdir, exist_ok=True)
    key = (repr(sorted((k, repr(v)) for k, v in spec.items())), workdir if spec["kind"] == "vasp" else None)
    t0 = time.perf_counter()
    try:
        calc = _CACHE.get(key)
        if calc is None:
            calc = make_calculator(spec, workdir)
            if spec["kind"] != "vasp":
                _CACHE[key] = calc
        atoms.calc = calc
        e = float(atoms.get_potential_energy())
        f = np.asarray(atoms.get_forces(), dtype=float)
        s = None
        if all(atoms.pbc):
            st = np.asarray(atoms.get_stress(voigt=True), dtype=float)
            s = -st * atoms.get_volume()
    except LabelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any calculator failure becomes a LabelError
        _CACHE.pop(key, None)
        raise LabelError(f"{spec['kind']}: {type(exc).__name__}: {exc}") from None
    wall = time.perf_counter() - t0
    if getattr(calc, "converged", True) is False:
        raise LabelError(f"{spec['kind']}: SCF not converged")
    if not math.isfinite(e) or not np.all(np.isfinite(f)) or (s is not None and not np.all(np.isfinite(s))):
        raise LabelError(f"{spec['kind']}: non-finite energy/forces/stress")
    if f.shape != (len(atoms), 3):
        raise LabelError(f"{spec['kind']}: forces missing or of shape {f.shape}")
    return Label(energy=e, forces=f, plus_stress=s, wall=wall, info={"kind": spec["kind"]})
