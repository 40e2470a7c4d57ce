"""Checkpoints of MD runs: pytrees of arrays and JSON metadata in one ``.npz``, written atomically."""
from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from mtpjax.errors import FileFormatError
from mtpjax.io.atomic import atomic_write


def save_checkpoint(path, trees: dict, meta: dict):
    """Write ``trees`` (name → pytree of arrays) and JSON ``meta`` atomically.

    A kill at any moment leaves either the old or the new checkpoint (:func:`mtpjax.io.atomic.atomic_write`).
    """
    path = Path(path)
    arrays = {}
    for name, tree in trees.items():
        leaves = jax.tree_util.tree_leaves(tree)
        for k, leaf in enumerate(leaves):
            arrays[f"{name}__{k}"] = np.asarray(leaf)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


def load_checkpoint(path, templates: dict):
    """Read a checkpoint; ``templates`` (name → pytree) give the tree structures."""
    path = Path(path)
    try:
        z = np.load(path)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"unreadable checkpoint ({e})", path=path) from None
    meta = json.loads(bytes(z["__meta__"]).decode())
    out = {}
    for name, tmpl in templates.items():
        leaves, treedef = jax.tree_util.tree_flatten(tmpl)
        new = [z[f"{name}__{k}"] for k in range(len(leaves))]
        out[name] = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a) for a in new])
    return out, meta


def load_checkpoint_meta(path) -> dict:
    z = np.load(path)
    return json.loads(bytes(z["__meta__"]).decode())


