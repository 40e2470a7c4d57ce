"""Rank and state checks behind README.md (optional; not used by the tests).

Reads an MLIP-3 `.almtp` state (`#MVS_v1.1` block: weights, then A and (A^-1)^T as n*n little-endian doubles
each, then one "cfg_index eqn_index" line per row of A, -1 -1 for a row still at init*e_j), and, when mtpjax
can be imported, computes the neighbourhood rows dV_i/dtheta of the training set with mtpjax's
`selection_rows` and prints their singular values and numerical rank, and compares grades computed from the
state with MLIP-3's `nbh_grades`. `.xz` inputs are read directly.

    python check_rank.py ../mlip_ref/mlip3_more/l10_trained_potential_only.mtp train.cfg.xz rankdef_nbh.almtp.xz \
        test.cfg.xz test.calculate_grade.cfg
"""
import lzma
import sys
import tempfile
from pathlib import Path

import numpy as np


def read_bytes(path):
    data = Path(path).read_bytes()
    return lzma.decompress(data) if str(path).endswith(".xz") else data


def parse_state(path):
    data = read_bytes(path)
    k = data.index(b"#MVS_v1.1")
    end_w = data.index(b"#", k + 1)
    weights = dict(line.split() for line in data[k:end_w].decode().splitlines()[1:] if line.strip())
    # n: the size for which the two matrices are followed by the link block of n lines
    off = end_w + 1
    for n in range(1, 5000):
        o = off + 16 * n * n
        if o + 3 > len(data):
            raise ValueError("cannot find the matrix block")
        if data[o:o + 3] == b"\n#\n":
            try:
                links_end = data.index(b"#", o + 3)
                links = np.array([list(map(int, ln.split())) for ln in data[o + 3:links_end].decode().split("\n")
                                  if ln.strip()])
            except (ValueError, UnicodeDecodeError):
                continue
            if links.shape == (n, 2):
                break
    A = np.frombuffer(data, "<f8", n * n, off).reshape(n, n)
    inv_t = np.frombuffer(data, "<f8", n * n, off + 8 * n * n).reshape(n, n)
    n_cfgs = data[links_end:].count(b"BEGIN_CFG")
    return weights, A, inv_t, links, n_cfgs


def as_file(path, tmp):
    if not str(path).endswith(".xz"):
        return path
    out = Path(tmp) / Path(path).name[:-3]
    out.write_bytes(read_bytes(path))
    return out


def main(pot, train, state, test=None, graded=None):
    w, A, inv_t, links, n_cfgs = parse_state(state)
    n = A.shape[0]
    dummy = np.where(links[:, 0] < 0)[0]
    print(f"state {state}: weights {w}")
    print(f"  n = {n}; rows from data {n - len(dummy)}; rows left at init*e_j {len(dummy)}: {dummy.tolist()}")
    print(f"  configurations stored with the state: {n_cfgs}")
    print(f"  left rows are exactly 1e-6*e_j: {all(A[j, j] == 1e-6 and np.count_nonzero(A[j]) == 1 for j in dummy)}")
    print(f"  max|A · (stored (A^-1)^T)^T - I| = {np.abs(A @ inv_t.T - np.eye(n)).max():.3e}")
    try:
        from mtpjax.potential.model import MTP
        from mtpjax.io.cfg import read_cfg
        from mtpjax.active.rows import selection_rows
    except ImportError as e:  # the module layout may change
        print("mtpjax not importable, rows not computed:", e)
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = MTP.from_file(pot)
        rows = selection_rows(model, read_cfg(as_file(train, tmp)), "nbh")
        R = np.concatenate(rows)
        s = np.linalg.svd(R, compute_uv=False)
        print(f"training rows {R.shape[0]} x {R.shape[1]} parameters; exactly-zero columns "
              f"{int((np.abs(R).max(0) == 0).sum())}")
        print(f"  numerical rank: numpy default {np.linalg.matrix_rank(R)}; "
              + "; ".join(f"s > {t:g}: {(s > t).sum()}" for t in (1e-4, 1e-6, 1e-8, 1e-10)))
        r = (s > s[0] * R.shape[0] * np.finfo(float).eps).sum()
        print(f"  smallest kept / largest dropped singular value: {s[r - 1]:.3e} / "
              f"{(s[r] if r < len(s) else 0.0):.3e} (s_max {s[0]:.3e})")
        if test and graded:
            trows = selection_rows(model, read_cfg(as_file(test, tmp)), "nbh")
            ref = read_cfg(as_file(graded, tmp))
            worst = 0.0
            for tr, g in zip(trows, ref):
                mine = np.abs(tr @ inv_t.T).max(1)
                worst = max(worst, np.abs(mine - np.asarray(g.atom_data["nbh_grades"])).max())
            print(f"  grades from the stored state vs MLIP-3 nbh_grades (printed to 5 decimals): "
                  f"max abs diff {worst:.2e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
