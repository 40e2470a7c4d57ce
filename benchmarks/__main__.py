"""The benchmark suite: ``python -m benchmarks run [--quick] [--only efs,md,train,grade,nl,precision]``.

Runs each case (a module of this package with ``main(argv)`` that accepts
``--json PATH`` and ``--quick``/``--tiny``), collects their JSON into one file
``benchmarks/results/run-<UTC time>.json`` (machine, CPU, versions, dtype,
every figure) and renders ``benchmarks/results/latest.md``, the table the
README includes. A case that fails is recorded with its error; the others
still run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

#: case name → (module, arguments for --quick, arguments for --tiny)
CASES = {
    "efs": ("benchmarks.efs_speed", ["--levels", "8", "12", "16", "--natoms", "1000", "--repeats", "5"],
            ["--levels", "8", "--natoms", "64", "--repeats", "2"]),
    "nl": ("benchmarks.neighbor_speed", ["--quick"], ["--tiny"]),
    "md": ("benchmarks.md_speed", ["--quick"], ["--tiny"]),
    "train": ("benchmarks.train_speed", ["--quick"], ["--tiny"]),
    "grade": ("benchmarks.grade_speed", ["--quick"], ["--tiny"]),
    "precision": ("benchmarks.precision", ["--quick"], ["--tiny"]),
}


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "processor": platform.processor()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import jax

        info["jax"] = jax.__version__
        info["devices"] = [str(d) for d in jax.devices()]
        info["x64"] = bool(jax.config.jax_enable_x64)
    except Exception:  # pragma: no cover
        pass
    for mod in ("motep", "jax_md", "ase", "numpy"):
        try:
            info[mod] = importlib.import_module(mod).__version__
        except Exception:
            info[mod] = None
    return info


def render_markdown(run: dict) -> str:
    out = [f"# Benchmark run {run['started']}", "",
           f"Machine: {run['machine'].get('cpu_model', run['machine']['processor'])}, "
           f"{run['machine']['cpu_count']} cores; devices {run['machine'].get('devices')}; "
           f"jax {run['machine'].get('jax')}", ""]
    for name, case in run["cases"].items():
        out.append(f"## {name}")
        out.append("")
        if "error" in case:
            out += [f"failed: `{case['error'].splitlines()[-1]}`", ""]
            continue
        rows = case.get("rows") or []
        if not rows:
            out += ["(no rows)", ""]
            continue
        keys = [k for k in rows[0] if not isinstance(rows[0][k], (list, dict))]
        out.append("| " + " | ".join(keys) + " |")
        out.append("|" + "---|" * len(keys))
        for r in rows:
            cells = []
            for k in keys:
                v = r.get(k)
                cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def run(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="reduced sizes (≤ 10 min on 2 cores)")
    p.add_argument("--tiny", action="store_true", help="smallest sizes (seconds; used by the tests)")
    p.add_argument("--only", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--out", default=str(HERE / "results"))
    a = p.parse_args(argv)
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    result = {"started": started, "mode": "tiny" if a.tiny else ("quick" if a.quick else "full"),
              "machine": machine_info(), "cases": {}}
    for name in names:
        module, quick_args, tiny_args = CASES[name]
        case_json = out / f"{name}-{started}.json"
        args = (tiny_args if a.tiny else quick_args if a.quick else []) + ["--json", str(case_json)]
        t0 = time.perf_counter()
        print(f"[benchmarks] {name}: {module} {' '.join(args)}", file=sys.stderr)
        try:
            mod = importlib.import_module(module)
            mod.main(args)
            data = json.loads(case_json.read_text())
            case_json.unlink()
            result["cases"][name] = data if isinstance(data, dict) else {"rows": data}
        except (Exception, SystemExit) as exc:  # record, keep going
            result["cases"][name] = {"error": "".join(traceback.format_exception_only(type(exc), exc)).strip()}
        result["cases"][name]["wall_s"] = time.perf_counter() - t0
    path = out / f"run-{started}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    md = render_markdown(result)
    (out / "latest.md").write_text(md)
    print(md)
    print(f"[benchmarks] wrote {path} and {out / 'latest.md'}", file=sys.stderr)
    return 0 if all("error" not in c for c in result["cases"].values()) else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "run":
        print("usage: python -m benchmarks run [--quick|--tiny] [--only efs,md,train,grade,nl]", file=sys.stderr)
        return 2
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
