"""The benchmark suite: ``python -m benchmarks run [--quick|--tiny] [--only efs,nl,md,train,grade,precision,memory]``.

Runs each case (a module of this package with ``main(argv)`` that accepts
``--json PATH`` and ``--quick``/``--tiny``) in this process, collects their
JSON into one file ``benchmarks/results/<name>.json`` (machine, CPU/GPU
model, versions, dtype, every figure with min and median over repeats) and
renders ``benchmarks/results/<name>.md``. ``--quick`` also writes
``quick.json`` and ``quick.md`` (the table the README includes). A case that
fails is recorded with its error; the others still run.

Cases: ``efs`` (E+F+S per call and per atom: levels, species, sizes; motep C
and JAX engines; MLIP's recorded ``mlp calc-efs`` timings), ``nl``
(neighbour-list rebuild vs one force call), ``md`` (NVT/NPT steps/s, single
and batched replicas, jax-md with the same potential), ``train`` (time to
MLIP-2's validation error), ``grade`` (extrapolation grade per MD step),
``precision`` (float32 forces vs float64), ``memory`` (peak memory).

Peers run only when pointed to: ``MTPJAX_MLP=/path/to/mlp`` (``mlp
calc-efs``, ``mlp train``) and ``MTPJAX_LAMMPS=/path/to/lmp`` (LAMMPS with
``pair_style mlip``); see :mod:`benchmarks.peers`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

#: case name → (module, arguments for --quick, arguments for --tiny, title)
CASES = {
    "efs": ("benchmarks.efs_speed", ["--quick"], ["--tiny"], "Energy + forces + stress"),
    "nl": ("benchmarks.neighbor_speed", ["--quick"], ["--tiny"], "Neighbour-list rebuild"),
    "md": ("benchmarks.md_speed", ["--quick"], ["--tiny"], "MD throughput"),
    "train": ("benchmarks.train_speed", ["--quick"], ["--tiny"], "Training to MLIP-2's validation error"),
    "grade": ("benchmarks.grade_speed", ["--level", "12", "--repeat", "3"], ["--tiny"],
              "Extrapolation grade per MD step"),
    "precision": ("benchmarks.precision", ["--steps", "300", "--size", "3"], ["--tiny"],
                  "Mixed precision (float32 forces)"),
    "memory": ("benchmarks.memory", ["--quick"], ["--tiny"], "Peak memory of one E+F+S call"),
}


def _version(dist: str):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return None


def machine_info() -> dict:
    info = {"hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    if hasattr(os, "sched_getaffinity"):
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
        info["memory_gb"] = round(int(mem[1]) / 1024 ** 2, 1)
    except (OSError, IndexError, ValueError):
        pass
    try:
        import jax

        import mtpjax  # noqa: F401 - sets the dtype (x64) the cases run with

        info["jax"] = jax.__version__
        info["devices"] = [str(d) for d in jax.devices()]
        info["device_kind"] = jax.devices()[0].device_kind
        info["backend"] = jax.default_backend()
        info["x64"] = bool(jax.config.jax_enable_x64)
        info["dtype"] = "float64" if jax.config.jax_enable_x64 else "float32"
    except Exception:  # noqa: BLE001 # pragma: no cover
        pass
    info["versions"] = {d: _version(d) for d in ("mtpjax", "jax", "jaxlib", "motep", "jax-md", "numpy", "ase")}
    from benchmarks import peers

    mlp, lmp = peers.mlp_binary(), peers.lammps_binary()
    info["mlp"] = " ".join(mlp) if mlp else None
    info["lammps"] = " ".join(lmp) if lmp else None
    return info


# ------------------------------------------------------------------ rendering
DASH = "–"


def _g(v, digits=3):
    if v is None:
        return DASH
    if isinstance(v, float):
        if v != v:
            return DASH
        return f"{v:.{digits}g}"
    return str(v)


def _ms(key, scale=1e3):
    """'min / median' of ``key_min_s``/``key_median_s`` in ms."""
    def f(r):
        if f"{key}_min_s" not in r:
            return DASH
        mn, med = r[f"{key}_min_s"], r.get(f"{key}_median_s")
        return f"{mn * scale:.3g} / {med * scale:.3g}" if med is not None else f"{mn * scale:.3g}"
    return f


def _col(key, digits=3, scale=1.0):
    def f(r):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and scale != 1.0:
            v = v * scale
        return _g(v, digits)
    return f


def _ratio(num, den):
    def f(r):
        a, b = r.get(f"{num}_min_s"), r.get(f"{den}_min_s")
        return f"{a / b:.2f}" if a and b else DASH
    return f


TABLES = {
    "efs": [("level", _col("level")), ("species", _col("species")), ("atoms", _col("natoms")),
            ("nbrs/atom", _col("neighbors_mean")), ("mtpjax ms (min / med)", _ms("mtpjax")),
            ("µs/atom", _col("mtpjax_us_per_atom")), ("compile s", _col("mtpjax_compile_s", 2)),
            ("motep C ms", _ms("motep")), ("motep JAX ms", _ms("motep_jax")), ("mlp calc-efs ms", _ms("mlp")),
            ("mtpjax / motep C", _ratio("mtpjax", "motep")), ("|ΔE| vs motep eV", _col("energy_diff_vs_motep_eV", 2))],
    "efs vs MLIP reference (big1008.cfg)": [
        ("level", _col("level")), ("potential", _col("potential")), ("atoms", _col("natoms")),
        ("mtpjax ms (min / med)", _ms("mtpjax")), ("motep C ms", _ms("motep")),
        ("mlp calc-efs ms (this run)", _ms("mlp")), ("MLIP-2 ms (recorded)", _ms("mlip2_ref")),
        ("MLIP-3 ms (recorded)", _ms("mlip3_ref")), ("mtpjax / MLIP-2", _ratio("mtpjax", "mlip2_ref"))],
    "nl": [("atoms", _col("n_atoms")), ("E+F+S ms", _ms("efs")), ("dense rebuild ms", _ms("dense_build")),
           ("cell-list rebuild ms", _ms("cell_build")), ("host build ms", _ms("host_build")),
           ("best rebuild / E+F+S", _col("best_rebuild_over_efs", 2))],
    "md": [("atoms", _col("n_atoms")), ("ensemble", _col("ensemble")), ("replicas", _col("replicas")),
           ("code", _col("code")), ("ms/step (min / med)", _ms("step")),
           ("atom-steps/s", _col("atom_steps_per_s")), ("step / E+F+S", _col("step_over_efs", 2)),
           ("NPT / NVT", _col("step_over_nvt", 2)), ("note", lambda r: r.get("error", ""))],
    "train": [("code", _col("code")), ("machine", _col("machine")), ("iterations", _col("iterations")),
              ("wall s", _col("wall_s")), ("CPU s", _col("cpu_s")), ("time to target s", _col("time_to_target_s")),
              ("s/iteration", _col("s_per_iter")), ("valid E RMSE eV/atom", _col("valid_energy_rmse")), ("valid F RMSE eV/Å", _col("valid_force_rmse")),
              ("note", lambda r: r.get("error", ""))],
    "grade": [("level", _col("level")), ("atoms", _col("natoms")), ("params", _col("n_params")),
              ("E+F+S ms", _ms("efs")), ("MD step ms", _ms("md_step")), ("grade cfg ms", _ms("grade_cfg")),
              ("grade nbh ms", _ms("grade_nbh")), ("E+F+S+grade fused ms", _ms("efs_plus_grade")),
              ("cfg grade / step", _col("grade_overhead_cfg", 2)), ("nbh grade / step", _col("grade_overhead_nbh", 2)),
              ("fused extra / step", _col("fused_grade_overhead", 2)),
              ("MD block ms/step: plain", _ms("md_plain_per_step")),
              ("graded (fused)", _ms("md_fused_per_step")), ("graded (separate hook)", _ms("md_separate_per_step")),
              ("overhead fused", _col("overhead_fused", 2)), ("overhead separate", _col("overhead_separate", 2))],
    "precision": [("mode", _col("mode")), ("NVE drift eV/atom/ps", _col("drift_eV_atom_ps", 2)),
                  ("⟨T⟩ K", _col("mean_T_K", 4)), ("MSD Å²", _col("msd_A2")),
                  ("ms/step", _col("wall_s_per_step", 3, 1e3))],
    "memory": [("level", _col("level")), ("atoms", _col("natoms")), ("nbrs max", _col("neighbors_max")),
               ("RSS after set-up MB", _col("rss_setup_mb", 4)), ("peak RSS (compile + call) MB", _col("rss_peak_mb", 4)),
               ("Δ MB", _col("rss_delta_mb", 3)), ("XLA estimate MB", _col("xla_total_mb", 3)),
               ("device peak MB", _col("device_peak_mb", 4)), ("note", lambda r: r.get("error", ""))],
}

NOTES = {
    "efs": "Steady state per call, neighbour list prebuilt (min / median over repeats); random Li₃PS₄-like "
           "cells and seeded random potentials read by every code from the same `.mtp` file.",
    "efs vs MLIP reference (big1008.cfg)": "`inputs/big1008.cfg` (1008 atoms) with the potentials MLIP was "
           "timed with. The *recorded* columns are `mlp calc-efs` per configuration (10 copies per file) from "
           "`tests/data/mlip_ref/timing`, measured on another machine: {machine}.",
    "md": "Steps inside one jitted loop; batched replicas through `jax.vmap`; jax-md's "
          "`simulate.nvt_nose_hoover` driven by the same MTP forces; LAMMPS+MLIP only with `MTPJAX_LAMMPS`.",
    "train": "Target: MLIP-2's validation errors + 10 % on `training/valid.cfg`; the recorded MLIP-2 row is "
             "from `tests/data/mlip_ref/training` (another machine, one core).",
    "memory": "Fresh process per point (3 species, random potential); the peak is reset after set-up and includes "
              "XLA's compilation; "
              "the XLA estimate is arguments + outputs + temporaries of the compiled call.",
    "nl": "Rebuild of the on-device list (cutoff + 1 Å skin) vs one E+F+S call on the same alloy; the host "
          "builder is what the MD start-up and the E+F+S benchmark use.",
    "grade": "Grade against a random well-conditioned active set on `big1008.cfg`, graded every step.",
}


def _table(rows, spec) -> list[str]:
    if spec is None:
        keys = []
        for r in rows:
            keys += [k for k in r if k not in keys and not isinstance(r[k], (list, dict))]
        spec = [(k, _col(k)) for k in keys]
    # drop columns that are empty in every row (peer not run)
    spec = [(h, f) for h, f in spec if any(f(r) not in (DASH, "", "None") for r in rows)]
    out = ["| " + " | ".join(h for h, _ in spec) + " |", "|" + "---|" * len(spec)]
    for r in rows:
        out.append("| " + " | ".join(str(f(r)).replace("|", "\\|") for _, f in spec) + " |")
    return out


def _row_errors(rows) -> list[str]:
    errs = []
    for r in rows:
        for k, v in r.items():
            if k.endswith("_error") and v:
                errs.append(f"{k[:-6]}: {str(v).splitlines()[0][:200]}")
    return sorted(set(errs))


def render_markdown(run: dict) -> str:
    from benchmarks.peers import MLIP_REF_MACHINE

    m = run["machine"]
    v = m.get("versions", {})
    dev = ", ".join(m.get("devices") or []) + (f" ({m['device_kind']})" if m.get("device_kind") else "")
    out = [f"### Benchmarks ({run['mode']} run, {run['started']})", "",
           f"Machine: {m.get('cpu_model', m.get('processor'))}, {m.get('cpu_count')} cores"
           + (f", {m['memory_gb']} GB" if m.get("memory_gb") else "")
           + f"; JAX devices: {dev}; dtype {m.get('dtype', '?')}; load average at start "
           + (f"{m['load_average'][0]:.1f}" if m.get("load_average") else "?") + ".  ",
           "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".  ",
           f"Peers: motep (installed: {'yes' if v.get('motep') else 'no'}), jax-md "
           f"({'yes' if v.get('jax-md') else 'no'}), mlp ({m.get('mlp') or 'not given: MTPJAX_MLP'}), "
           f"LAMMPS ({m.get('lammps') or 'not given: MTPJAX_LAMMPS'}).  ",
           f"Suite wall time: {run.get('wall_s', 0):.0f} s. Times are min / median over repeats.", ""]
    for name, case in run["cases"].items():
        title = CASES.get(name, (None, None, None, name))[3]
        out += [f"#### {title} (`{name}`, {case.get('wall_s', 0):.0f} s)", ""]
        if "error" in case:
            out += [f"failed: `{case['error'].strip().splitlines()[-1][:300]}`", ""]
            continue
        tables = {name: case.get("rows") or []}
        tables.update(case.get("tables") or {})
        for tname, rows in tables.items():
            if tname != name:
                out += [f"*{tname}*", ""]
            if not rows:
                out += ["(no rows)", ""]
                continue
            note = NOTES.get(tname)
            if note:
                out += [note.format(machine=MLIP_REF_MACHINE), ""]
            out += _table(rows, TABLES.get(tname)) + [""]
            errs = _row_errors(rows)
            if errs:
                out += ["Not run / failed: " + "; ".join(f"`{e}`" for e in errs), ""]
        if name == "precision" and "max_abs_rdf_diff" in case:
            out += [f"max |g₆₄ − g₃₂| of the Cu–Cu RDF: {case['max_abs_rdf_diff']:.3g}", ""]
    return "\n".join(out)


# ------------------------------------------------------------------ running
def run(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="reduced sizes (≤ 10 min on 2 cores); also writes quick.md")
    g.add_argument("--tiny", action="store_true", help="smallest sizes (used by the tests)")
    p.add_argument("--only", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--name", default=None, help="base name of the JSON and Markdown (default MODE-UTCTIME)")
    a = p.parse_args(argv)
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_suite = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    mode = "tiny" if a.tiny else ("quick" if a.quick else "full")
    name = a.name or f"{mode}-{started}"
    result = {"started": started, "mode": mode, "command": "python -m benchmarks run " + " ".join(argv or []),
              "machine": machine_info(), "cases": {}}
    for case in names:
        module, quick_args, tiny_args, _ = CASES[case]
        case_json = out / f".{case}-{started}.json"
        args = (tiny_args if a.tiny else quick_args if a.quick else []) + ["--json", str(case_json)]
        t0 = time.perf_counter()
        print(f"[benchmarks] {case}: {module} {' '.join(args)}", file=sys.stderr, flush=True)
        try:
            mod = importlib.import_module(module)
            mod.main(args)
            data = json.loads(case_json.read_text())
            result["cases"][case] = data if isinstance(data, dict) else {"rows": data}
        except (Exception, SystemExit) as exc:  # record, keep going
            result["cases"][case] = {"error": "".join(traceback.format_exception_only(type(exc), exc)).strip()}
        finally:
            case_json.unlink(missing_ok=True)
        result["cases"][case]["wall_s"] = time.perf_counter() - t0
        print(f"[benchmarks] {case}: {result['cases'][case]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    result["wall_s"] = time.perf_counter() - t_suite
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    md = render_markdown(result)
    (out / f"{name}.md").write_text(md + "\n")
    written = [path, out / f"{name}.md"]
    if a.quick and name != "quick":
        shutil.copyfile(path, out / "quick.json")
        shutil.copyfile(out / f"{name}.md", out / "quick.md")
        written += [out / "quick.json", out / "quick.md"]
    print(md)
    print(f"[benchmarks] {result['wall_s']:.0f} s; wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0 if all("error" not in c for c in result["cases"].values()) else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "run":
        print("usage: python -m benchmarks run [--quick|--tiny] [--only " + ",".join(CASES) + "] [--out DIR] "
              "[--name NAME]", file=sys.stderr)
        return 2
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
