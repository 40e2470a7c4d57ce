"""E+F+S speed: mtpjax vs motep's C engine on the same potential and cell.

A random Li3PS4-like periodic cell (density 1.8 g/cm³, 5 Å cutoff) with
``--natoms`` atoms; for each level a potential with seeded random
coefficients is written to one ``.mtp`` file that both codes read. Reported
per level: mtpjax compile time (first call) and steady-state time per call
(min and median over repeats, neighbour list prebuilt, as in MD), the
alternative autodiff-in-positions path, and motep's ``cext`` engine steady
state (its neighbour list cached). Prints a table and writes JSON.

    python benchmarks/efs_speed.py                 # levels 10 12 16 20, 1000 atoms
    taskset -c 0 python benchmarks/efs_speed.py    # one core for both codes
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import mtpjax  # noqa: E402,F401
from mtpjax.md.neighbors import host_neighbors  # noqa: E402
from mtpjax.potential import MTP  # noqa: E402
from mtpjax.potential.model import energy_forces_stress, energy_forces_stress_autodiff  # noqa: E402

AMU_G = 1.66053906660e-24


def li3ps4_cell(natoms: int, density: float = 1.8, seed: int = 0, dmin: float = 1.6):
    """Random Li3PS4-composition cubic cell: positions (N,3), cell (3,3), Z (N,)."""
    rng = np.random.default_rng(seed)
    nfu = max(1, round(natoms / 8))
    z = np.array([3] * (3 * nfu) + [15] * nfu + [16] * (4 * nfu))
    masses = {3: 6.94, 15: 30.974, 16: 32.06}
    mass_g = sum(masses[int(k)] for k in z) * AMU_G
    vol = mass_g / density * 1e24  # Å^3
    a = vol ** (1 / 3)
    cell = np.eye(3) * a
    # jittered grid (fast, honours dmin), then random species order
    m = int(np.ceil(len(z) ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[rng.permutation(len(grid))[: len(z)]]
    spacing = a / m
    jitter = (spacing - dmin) / 2
    pos = (grid + 0.5) * spacing + rng.uniform(-jitter, jitter, (len(z), 3))
    return pos, cell, rng.permutation(z)


def random_potential(level: int, species, path: Path, seed: int = 0) -> MTP:
    m = MTP.from_level(level, species=list(species), cutoff=5.0, min_dist=1.5)
    rng = np.random.default_rng(seed)
    f = m.to_mtpfile()
    f.radial_coeffs = rng.uniform(-1, 1, f.radial_coeffs.shape)
    f.species_coeffs = rng.uniform(-4, -2, f.species_coeffs.shape)
    f.moment_coeffs = rng.uniform(-1, 1, f.moment_coeffs.shape) * 1e-2
    f.scaling = 0.02
    from mtpjax.potential import write_mtp

    write_mtp(f, path)
    return MTP.from_file(path)


def _time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), float(np.median(ts))


def bench_level(level, pos, cell, z, repeats, workdir):
    path = workdir / f"bench_l{level:02d}.mtp"
    model = random_potential(level, [3, 15, 16], path)
    idx, sh, _ = host_neighbors(pos, cell, [True] * 3, model.cutoff)
    sp = jnp.asarray(model.species_index(z))
    args = (jnp.asarray(pos), jnp.asarray(cell), sp, jnp.asarray(idx), jnp.asarray(sh))
    row = {"level": level, "natoms": len(pos), "neighbors_max": int(idx.shape[1]),
           "neighbors_mean": float((idx < len(pos)).sum(1).mean())}
    t0 = time.perf_counter()
    jax.block_until_ready(energy_forces_stress(model, *args))
    row["mtpjax_compile_s"] = time.perf_counter() - t0
    row["mtpjax_min_s"], row["mtpjax_median_s"] = _time(lambda: jax.block_until_ready(energy_forces_stress(model, *args)), repeats)
    t0 = time.perf_counter()
    jax.block_until_ready(energy_forces_stress_autodiff(model, *args))
    row["autodiff_compile_s"] = time.perf_counter() - t0
    row["autodiff_min_s"], row["autodiff_median_s"] = _time(
        lambda: jax.block_until_ready(energy_forces_stress_autodiff(model, *args)), repeats)
    try:
        from ase import Atoms
        from motep.calculator import MTP as MotepMTP
        from motep.io.mlip.mtp import read_mtp as motep_read

        data = motep_read(path)
        data.species = [3, 15, 16]
        atoms = Atoms(numbers=z, positions=pos, cell=cell, pbc=True)
        calc = MotepMTP(data, engine="cext")
        calc.engine.calculate(atoms)  # builds its neighbour list
        res = calc.engine.calculate(atoms)
        e_ref = float(res["energy"])
        row["motep_min_s"], row["motep_median_s"] = _time(lambda: calc.engine.calculate(atoms), repeats)
        e_ours = float(energy_forces_stress(model, *args)[0])
        row["energy_diff_vs_motep_eV"] = abs(e_ours - e_ref)
    except Exception as exc:  # motep missing or failing: report, don't die
        row["motep_error"] = f"{type(exc).__name__}: {exc}"
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", type=int, nargs="+", default=[10, 12, 16, 20])
    p.add_argument("--natoms", type=int, nargs="+", default=[1000])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", default="benchmarks/results/efs_speed.json")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.natoms:
            pos, cell, z = li3ps4_cell(n)
            for lev in a.levels:
                rows.append(bench_level(lev, pos, cell, z, a.repeats, Path(tmp)))
                r = rows[-1]
                print(f"done L{lev} N={n}", file=sys.stderr)
    hdr = (f"{'level':>5} {'N':>7} {'nbrs':>5} {'compile s':>9} {'mtpjax ms':>10} {'µs/atom':>8} "
           f"{'autodiff ms':>11} {'motep ms':>9} {'ratio':>6} {'|ΔE| eV':>8}")
    print(hdr)
    for r in rows:
        mot = r.get("motep_min_s")
        print(f"{r['level']:>5} {r['natoms']:>7} {r['neighbors_mean']:>5.1f} {r['mtpjax_compile_s']:>9.2f} "
              f"{r['mtpjax_min_s'] * 1e3:>10.2f} {r['mtpjax_min_s'] / r['natoms'] * 1e6:>8.2f} "
              f"{r['autodiff_min_s'] * 1e3:>11.2f} "
              f"{(mot * 1e3 if mot else float('nan')):>9.2f} {(r['mtpjax_min_s'] / mot if mot else float('nan')):>6.2f} "
              f"{r.get('energy_diff_vs_motep_eV', float('nan')):>8.1e}")
    meta = {
        "machine": platform.platform(), "processor": platform.processor(), "python": platform.python_version(),
        "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "dtype": "float64",
    }
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
