"""Peak memory of one energy+forces+stress evaluation, by level and size.

    python benchmarks/memory.py [--points 8:1000 12:1000 8:8000 ...] [--quick|--tiny] [--json OUT]

Each point runs in a fresh Python process (so peaks do not mix): a random
Li3PS4-like cell (as in :mod:`benchmarks.efs_speed`, 3 species), a seeded
random potential, host neighbour list, then one compiled E+F+S call.
Reported: the resident memory after set-up (``VmRSS``; the set-up's own
peak, e.g. of the host neighbour search, is then reset) and the peak
(``VmHWM``) during compilation and the call, their difference, XLA's own estimate for the compiled call
(``memory_analysis()``: arguments, outputs and temporaries) and, on a GPU, the
device's ``peak_bytes_in_use``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_json  # noqa: E402

MB = 1024.0 * 1024.0


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _maxrss_mb() -> float:
    """Peak resident memory of this process (MB): ``VmHWM`` (per address space, so
    not inherited from the parent as ``ru_maxrss`` is across ``exec``)."""
    v = _status_mb("VmHWM")
    return v if v is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ≥ 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(level: int, natoms: int) -> dict:
    import jax
    import jax.numpy as jnp

    import mtpjax  # noqa: F401
    from benchmarks.efs_speed import li3ps4_cell, random_potential
    from mtpjax.geometry.neighbors import host_neighbors
    from mtpjax.potential.model import energy_forces_stress

    pos, cell, z = li3ps4_cell(natoms)
    with tempfile.TemporaryDirectory() as tmp:
        model = random_potential(level, [3, 15, 16], Path(tmp) / "m.mtp")
    idx, sh, _ = host_neighbors(pos, cell, [True] * 3, model.cutoff)
    args = (jnp.asarray(pos), jnp.asarray(cell), jnp.asarray(model.species_index(z)), jnp.asarray(idx),
            jnp.asarray(sh))
    jax.block_until_ready(args)
    row = {"level": level, "natoms": natoms, "neighbors_max": int(idx.shape[1]),
           "rss_setup_peak_mb": _maxrss_mb()}
    # peak of the E+F+S call (compilation included) from here on, not the set-up's transient peak
    row["peak_reset"] = _reset_peak()
    row["rss_setup_mb"] = _status_mb("VmRSS") or row["rss_setup_peak_mb"]
    fn = jax.jit(lambda *a: energy_forces_stress(model, *a))
    try:
        ma = fn.lower(*args).compile().memory_analysis()
        if ma is not None:
            row["xla_temp_mb"] = ma.temp_size_in_bytes / MB
            row["xla_total_mb"] = (ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes) / MB
    except Exception as exc:  # noqa: BLE001 - not every backend reports it
        row["xla_error"] = f"{type(exc).__name__}: {exc}"
    jax.block_until_ready(fn(*args))
    row["rss_peak_mb"] = _maxrss_mb()
    row["rss_delta_mb"] = row["rss_peak_mb"] - row["rss_setup_mb"]
    dev = jax.devices()[0]
    row["device"] = str(dev)
    try:
        st = dev.memory_stats()
        if st and "peak_bytes_in_use" in st:
            row["device_peak_mb"] = st["peak_bytes_in_use"] / MB
    except Exception:  # noqa: BLE001 - CPU: no stats
        pass
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", nargs="+", default=["8:1000", "12:1000", "16:1000", "20:1000", "8:10000",
                                                    "8:100000", "12:100000"],
                    help="LEVEL:NATOMS pairs")
    ap.add_argument("--quick", action="store_true", help="8:1000 16:1000 8:8000")
    ap.add_argument("--tiny", action="store_true", help="8:64")
    ap.add_argument("--worker", nargs=2, type=int, metavar=("LEVEL", "NATOMS"), help=argparse.SUPPRESS)
    ap.add_argument("--json", default="benchmarks/results/memory.json")
    a = ap.parse_args(argv)
    if a.worker:
        print("MEMROW " + json.dumps(worker(*a.worker)), flush=True)
        return 0
    if a.quick:
        a.points = ["8:1000", "16:1000", "8:8000"]
    if a.tiny:
        a.points = ["8:64"]
    rows = []
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for pt in a.points:
        level, natoms = (int(x) for x in pt.split(":"))
        proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--worker", str(level), str(natoms)],
                              capture_output=True, text=True, cwd=root, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MEMROW ")]
        if proc.returncode or not line:
            rows.append({"level": level, "natoms": natoms,
                         "error": ((proc.stderr or proc.stdout).strip().splitlines() or ["no output"])[-1]})
        else:
            rows.append(json.loads(line[-1][7:]))
        print(f"done L{level} N={natoms}: {rows[-1]}", file=sys.stderr, flush=True)
    write_json(a.json, rows, {"method": "fresh process per point; VmHWM; XLA memory_analysis"})
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
