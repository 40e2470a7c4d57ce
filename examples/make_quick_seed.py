"""Add the labels of a harvesting run to the quick workflow's shipped seed data.

The quick workflow (``examples/quick.toml``) has 15 minutes for the whole
pipeline, so it cannot learn the glass from scratch: its MTP starts from
labels shipped in ``examples/data/xtb_seed.cfg``. Those come from xTB MD on
random cells (``make_xtb_dataset.py``) and, to cover the states the
production protocol reaches (quenched glass, interfaces), from a *harvesting*
run of the workflow itself on cells built with another seed than the quick
run's (``seed = 0``):

    mtpjax run examples/quick.toml --until learn --set seed=11 --set workdir=harvest_out \
        --set learn.max_iterations=6 --set learn.anchors_per_stage=3     # (examples/data/README.md: the exact run)
    python examples/make_quick_seed.py examples/harvest_out/learn/train.h5 --into examples/data/xtb_seed.cfg

Every label of the store that did not come from a ``data/`` file (so: the
run's own tblite labels, candidates and anchors) is appended to ``--into``
as MLIP ``.cfg`` (types 0..4 = Li B O P S), with the run's key as the
configuration's ``name`` feature; keys already present are skipped, so the
script can be re-run. Then refit the shipped potential (see
``examples/data/README.md``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", nargs="+", help="train.h5 of harvesting runs")
    ap.add_argument("--into", required=True, help=".cfg to append to (created if missing)")
    ap.add_argument("--tag", default="harvest", help="prefix of the names given to the appended configurations")
    a = ap.parse_args(argv)

    from mtpjax.io.store import TrainingStore
    from mtpjax.potential import read_cfg, write_cfg

    into = Path(a.into)
    old = read_cfg(into) if into.exists() else []
    have = {c.features.get("name") for c in old}
    new = []
    for path in a.stores:
        store = TrainingStore(path)
        anchors = {k for k, p in store.provenance().items() if p.get("anchor")}
        for key, conf in zip(store.keys(), store.configurations()):
            if key.startswith("data/"):
                continue
            name = f"{a.tag}/{Path(path).parent.parent.name}/{key}"
            if name in have:
                continue
            conf.features["name"] = name
            if key in anchors:
                conf.features["anchor"] = "1"  # anchor_weight reaches it when a learning run imports this file
            new.append(conf)
    if new:
        write_cfg(into, old + new)
    print(f"{len(new)} configurations appended to {into} ({len(old) + len(new)} in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
