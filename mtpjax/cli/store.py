"""``mtpjax store info|export|repair STORE.h5``: the learner's training store (``train.h5``).

    mtpjax store info train.h5                 labels, failures, labels per phase/system, non-finite labels
    mtpjax store export train.h5 out.cfg       every label as MLIP .cfg (or .extxyz with --species)
    mtpjax store repair train.h5               move labels holding NaN/inf to /failed (stores written
                                               before labels were checked); then `learn --resume` works

Reading is safe while a learner writes the store (:mod:`mtpjax.io.store`); ``repair`` refuses a store whose
learning folder is locked by a running learner.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from mtpjax.errors import MTPJaxError
from mtpjax.io.lock import workdir_lock
from mtpjax.io.store import TrainingStore


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="mtpjax store", description="inspect, export or repair a training store")
    p.add_argument("action", choices=("info", "export", "repair"))
    p.add_argument("store", help="the store (a learning run's train.h5)")
    p.add_argument("output", nargs="?", help="export: the .cfg or .extxyz to write")
    p.add_argument("--species", nargs="+", default=None,
                   help="export to extxyz: the element of each MLIP type (type 0 first)")
    a = p.parse_args(argv)
    path = Path(a.store)
    if not path.is_file():
        raise MTPJaxError(f"{path}: no such store")
    store = TrainingStore(path)
    if a.action == "info":
        prov = store.provenance()
        print(f"{path}: {len(prov)} labels, {len(store.failed())} failed")
        for field in ("phase", "system", "iteration"):
            c = Counter(str(v.get(field, "-")) for v in prov.values())
            print(f"  by {field}: " + ", ".join(f"{k} {n}" for k, n in sorted(c.items())))
        bad = store.non_finite()
        print(f"  non-finite labels: {len(bad)}" + (f" (run `mtpjax store repair {path}`)" if bad else ""))
    elif a.action == "export":
        if not a.output:
            raise MTPJaxError("store export: give the output file (.cfg, or .extxyz with --species)")
        if a.output.endswith(".cfg"):
            n = store.to_cfg(a.output)
        elif a.species:
            n = store.to_extxyz(a.output, dict(enumerate(a.species)))
        else:
            raise MTPJaxError("store export: an .extxyz output needs --species (the element of each type)")
        print(f"store export: {n} labels → {a.output}")
    else:
        with workdir_lock(path.parent, "learn workdir"):
            moved = store.repair()
        print(f"store repair: {len(moved)} labels moved to /failed" + (f": {', '.join(moved[:10])}" if moved else ""))
    return 0
