"""The GPU check: the figures to take first whenever a GPU is available (about 5 minutes on an H100).

    bash benchmarks/gpu_check.sh                 # on the GPU machine (see gpu_check.sh for installing jax there)
    python -m benchmarks.gpu_check --smoke       # CPU, tiny sizes, seconds: the test suite runs this

One JSON (``benchmarks/results/gpu_<date>.json`` by default, rewritten after every case so that a run stopped
by a time limit keeps what it measured) and one table on stdout:

* ``efs``: one E+F+S call (energy, forces, stress; neighbour list prebuilt, as in MD) at levels 12 and 16 for
  10³, 10⁴, 10⁵ and 10⁶ atoms, float64 and float32 (the MD's mixed-precision mode: the MTP evaluated in
  float32, integration in float64); compile time (first call), steady state min / median over repeats,
  atom-evaluations per second; 10⁵ atoms and more in blocks (``--chunk`` atoms: memory ∝ block).
* ``md``: NVT (Nosé–Hoover chain) and NPT (MTK, isotropic) steps inside one jitted loop at 10³, 10⁴, 10⁵ atoms,
  level 12, 1 fs, skin 1 Å, the neighbour list updated on device every step (rebuilt when the skin is used
  up): atom-steps/s and compile time.
* ``replicas``: 1–128 batched 1000-atom NVT replicas (``jax.vmap``): aggregate atom-steps/s.
* per case the device's peak memory so far (``memory_stats()['peak_bytes_in_use']``; CPU: resident set).

System: a random Cu/Ag/Au FCC alloy (a = 3.85 Å, rattled 0.05 Å) with the repository's MLIP-trained level-12
potential and MLIP's level-16 template with seeded coefficients (``tests/data/mlip_ref/potentials``).
A case that fails (out of memory, say) is recorded with its error; the others still run. ``--budget-s``:
cases that would start after this many seconds are recorded as skipped (the table says so).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import mtpjax  # noqa: E402,F401  (enables float64)
from benchmarks.common import MLIP_REF, stats  # noqa: E402
from benchmarks.md_speed import alloy  # noqa: E402
from mtpjax.geometry.neighbors import host_neighbors, neighbor_list  # noqa: E402
from mtpjax.md import forcefields as FF  # noqa: E402
from mtpjax.md import integrators as I  # noqa: E402
from mtpjax.potential import MTP  # noqa: E402
from mtpjax.potential.model import energy_forces_stress, energy_forces_stress_chunked  # noqa: E402
from mtpjax.units import FS, KB  # noqa: E402

POTENTIALS = {12: "m2_l12_trained.mtp", 16: "synth_l16_s3.mtp", 8: "m2_l08_trained.mtp"}
FULL = dict(levels=[12, 16], efs_sizes=[1000, 10_000, 100_000, 1_000_000], md_sizes=[1000, 10_000, 100_000],
            replicas=[1, 2, 8, 32, 128], steps=20, repeats=3, chunk=131_072)
SMOKE = dict(levels=[8], efs_sizes=[108], md_sizes=[108], replicas=[1, 2], steps=2, repeats=1, chunk=64)


def device_info() -> dict:
    d = jax.devices()[0]
    info = {"platform": d.platform, "device": getattr(d, "device_kind", str(d)), "n_devices": jax.device_count(),
            "jax": jax.__version__, "python": platform.python_version(), "host": platform.node(),
            "cpu_count": os.cpu_count(), "x64": bool(jax.config.jax_enable_x64)}
    stats_ = _memory_stats()
    if stats_ and "bytes_limit" in stats_:
        info["memory_gb"] = stats_["bytes_limit"] / 2 ** 30
    return info


def _memory_stats() -> dict | None:
    try:
        return jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001  (backends without memory statistics)
        return None


def peak_memory_gb() -> float:
    """The device's peak allocation so far (GPU), else the process's peak resident set (CPU), GiB."""
    s = _memory_stats()
    if s and "peak_bytes_in_use" in s:
        return s["peak_bytes_in_use"] / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def timed(fn, *args, repeats: int):
    """(compile s, (min s, median s)) of ``fn(*args)``: the first call (tracing, compiling, running), then
    ``repeats`` calls, each waited for."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    ts = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return compile_s, stats(ts)


def load_model(level: int, dtype=jnp.float64) -> MTP:
    model = MTP.from_file(MLIP_REF / "potentials" / POTENTIALS[level])
    return model if dtype == jnp.float64 else model.astype(dtype)


def efs_case(level: int, n: int, dtype, repeats: int, chunk: int, system) -> dict:
    """One E+F+S call at ``n`` atoms (``system``: positions, cell, types and the host neighbour list)."""
    pos, cell, types, (idx, shifts) = system
    model = load_model(level, dtype)
    sp = jnp.asarray(model.species_index(types))
    P = jnp.asarray(pos, dtype)
    C = jnp.asarray(cell, dtype)
    args = (P, C, sp, jnp.asarray(idx), jnp.asarray(shifts, dtype))
    blocked = n > chunk
    if blocked:
        fn = jax.jit(lambda *a: energy_forces_stress_chunked(model, *a, chunk=chunk))
    else:
        fn = jax.jit(lambda *a: energy_forces_stress(model, *a))
    compile_s, (mn, med) = timed(fn, *args, repeats=repeats)
    energy = float(fn(*args)[0])
    return dict(level=level, atoms=n, dtype=jnp.dtype(dtype).name, blocked=blocked, compile_s=compile_s,
                min_s=mn, median_s=med, atoms_per_s=n / mn, energy_eV=energy)


def md_case(level: int, n: int, ensemble: str, replicas: int, steps: int, repeats: int) -> dict:
    """``steps`` MD steps of ``replicas`` × ``n`` atoms inside one jitted loop (device neighbour updates)."""
    model = load_model(level)
    pos, cell, types, masses = alloy(n)
    efs = FF.mtp_efs(model)
    fns, nb = neighbor_list(pos, cell, True, model.cutoff, 1.0)
    sp = jnp.asarray(model.species_index(types))
    kT, dt_ = KB * 300.0, 1.0 * FS
    if replicas > 1:
        fns = fns.for_replicas("replica")
    if ensemble == "NVT":
        integ = I.nvt_nose_hoover(efs, fns, dt_, 100 * FS)
    else:
        integ = I.npt_mtk(efs, fns, dt_, 100 * FS, 1000 * FS, "iso")
    P, C = jnp.asarray(pos), jnp.asarray(cell)
    states = [integ.init(P, masses, C, nb, sp, kT=kT, key=jax.random.PRNGKey(r)) for r in range(replicas)]
    step = lambda s, b: integ.step(s, b, kT, 0.0)  # noqa: E731
    if replicas > 1:
        st = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
        nb = jax.tree_util.tree_map(lambda x: jnp.stack([x] * replicas), nb)
        step = jax.vmap(step, axis_name="replica")
    else:
        st = states[0]

    @jax.jit
    def loop(s, b):
        return jax.lax.fori_loop(0, steps, lambda i, c: step(*c), (s, b))

    compile_s, (mn, med) = timed(loop, st, nb, repeats=repeats)
    return dict(level=level, atoms=n, ensemble=ensemble, replicas=replicas, steps=steps, compile_s=compile_s,
                step_min_s=mn / steps, step_median_s=med / steps, atom_steps_per_s=n * replicas * steps / mn)


def plan(cfg: dict) -> list[tuple[str, dict]]:
    """The cases in the order they run (cheap and most wanted first: a time limit cuts the largest last)."""
    cases = []
    for n in cfg["efs_sizes"]:
        for level in cfg["levels"]:
            for dtype in (jnp.float64, jnp.float32):
                cases.append(("efs", dict(level=level, n=n, dtype=dtype)))
        if n in cfg["md_sizes"]:
            for ens in ("NVT", "NPT iso"):
                cases.append(("md", dict(level=cfg["levels"][0], n=n, ensemble=ens, replicas=1)))
        if n == cfg["efs_sizes"][0]:
            for r in cfg["replicas"][1:]:
                cases.append(("replicas", dict(level=cfg["levels"][0], n=n, ensemble="NVT", replicas=r)))
    return cases


def run(cfg: dict, out: Path, budget_s: float, log=print) -> dict:
    doc = {"meta": {**device_info(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "mtpjax": getattr(mtpjax, "__version__", None), "config": cfg, "budget_s": budget_s},
           "rows": []}
    t_start = time.perf_counter()
    systems: dict[int, tuple] = {}
    for kind, c in plan(cfg):
        row = {"case": kind, **{k: (jnp.dtype(v).name if k == "dtype" else v) for k, v in c.items()}}
        if time.perf_counter() - t_start > budget_s:
            row["skipped"] = f"time budget of {budget_s:g} s used up"
        else:
            try:
                if kind == "efs":
                    if c["n"] not in systems:
                        pos, cell, types, _ = alloy(c["n"])
                        t0 = time.perf_counter()
                        idx, shifts, _ = host_neighbors(pos, cell, [True] * 3, load_model(12).cutoff)
                        systems = {c["n"]: (pos, cell, types, (idx, shifts), time.perf_counter() - t0)}
                    pos, cell, types, nl, nl_s = systems[c["n"]]
                    row.update(efs_case(c["level"], c["n"], c["dtype"], cfg["repeats"], cfg["chunk"],
                                        (pos, cell, types, nl)), host_neighbors_s=nl_s)
                else:
                    row.update(md_case(c["level"], c["n"], c["ensemble"], c["replicas"], cfg["steps"],
                                       cfg["repeats"]))
            except Exception as e:  # noqa: BLE001  (out of memory, say: recorded, the next case runs)
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            row["peak_memory_gb"] = peak_memory_gb()
        row["elapsed_s"] = time.perf_counter() - t_start
        doc["rows"].append(row)
        log(format_row(row))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=float))
    doc["meta"]["wall_s"] = time.perf_counter() - t_start
    out.write_text(json.dumps(doc, indent=2, default=float))
    return doc


def format_row(r: dict) -> str:
    what = (f"E+F+S L{r['level']} {r['dtype']}" if r["case"] == "efs"
            else f"{r['ensemble']} L{r['level']} x{r['replicas']}")
    head = f"{what:<24} {r['n']:>9,d} atoms"
    if "skipped" in r:
        return f"{head}  skipped: {r['skipped']}"
    if "error" in r:
        return f"{head}  error: {r['error']}"
    rate = r.get("atoms_per_s", r.get("atom_steps_per_s"))
    ms = r.get("min_s", r.get("step_min_s")) * 1e3
    unit = "atom-evals/s" if r["case"] == "efs" else "atom-steps/s"
    return (f"{head}  {ms:10.3f} ms{'/step' if r['case'] != 'efs' else '     '}  {rate:10.3e} {unit}  "
            f"compile {r['compile_s']:6.1f} s  peak {r['peak_memory_gb']:6.2f} GiB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 2 steps, 1 repeat (CPU, the test suite)")
    ap.add_argument("--json", default=None, help="output JSON (default benchmarks/results/gpu_<date>.json; "
                                                 "--smoke: a temporary file)")
    ap.add_argument("--budget-s", type=float, default=300.0, help="start no case after this many seconds")
    a = ap.parse_args(argv)
    cfg = dict(SMOKE if a.smoke else FULL)
    if a.json:
        out = Path(a.json)
    elif a.smoke:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="gpu_check_")) / "gpu_smoke.json"
    else:
        out = Path(__file__).resolve().parent / "results" / f"gpu_{dt.date.today().isoformat()}.json"
    info = device_info()
    print(f"gpu_check: {info['device']} ({info['platform']}), jax {info['jax']}, "
          f"{'smoke' if a.smoke else 'full'} run, budget {a.budget_s:g} s → {out}", flush=True)
    if info["platform"] != "gpu" and not a.smoke:
        print("gpu_check: warning: no GPU visible to JAX (jax.devices() = "
              f"{jax.devices()}); the figures below are for {info['platform']}", flush=True)
    doc = run(cfg, out, a.budget_s, log=lambda s: print(s, flush=True))
    bad = [r for r in doc["rows"] if "error" in r]
    print(f"gpu_check: {len(doc['rows'])} cases, {len(bad)} errors, {doc['meta']['wall_s']:.0f} s → {out}")
    return 1 if a.smoke and bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
