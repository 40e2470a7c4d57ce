"""E+F+S speed: mtpjax vs motep (C and JAX engines) and MLIP's ``mlp calc-efs``.

Two tables:

* scan (``rows``): a random Li3PS4-like periodic cell (density 1.8 g/cm³,
  5 Å cutoff) with ``--natoms`` atoms and 1, 3 or 5 species (``--species``);
  for each level a potential with seeded random coefficients is written to one
  ``.mtp`` file that every code reads. Reported: mtpjax compile time (first
  call) and steady-state time per call (min and median over repeats, neighbour
  list prebuilt, as in MD), optionally the autodiff-in-positions path, motep's
  ``cext`` and ``jax`` engines (their neighbour lists cached) and, when
  ``MTPJAX_MLP`` points to MLIP's ``mlp``, ``mlp calc-efs`` on the same files
  (wall of the process divided by the number of copies in the ``.cfg``).
* reference (``tables["efs vs MLIP reference"]``): ``inputs/big1008.cfg`` with
  the potentials MLIP was timed with (``tests/data/mlip_ref/timing``), our
  and motep's time beside the MLIP-2/MLIP-3 figures recorded there (another
  machine: see the label).

    python benchmarks/efs_speed.py                 # full: levels 8–20, 1/3/5 species, 10³–10⁶ atoms
    python benchmarks/efs_speed.py --quick
    taskset -c 0 python benchmarks/efs_speed.py    # one core for every code
"""
from __future__ import annotations

import argparse
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
from benchmarks.common import MLIP_REF, put, repeat_time, write_json  # noqa: E402
from benchmarks import peers  # noqa: E402
from mtpjax.geometry.neighbors import host_neighbors  # noqa: E402
from mtpjax.potential import MTP  # noqa: E402
from mtpjax.potential.model import (energy_forces_stress, energy_forces_stress_autodiff,  # noqa: E402
                                    energy_forces_stress_chunked)  # noqa: E402

AMU_G = 1.66053906660e-24


#: species used for 1, 3 and 5 species (Li3PS4 and Li3PS4 + O, Cl)
SPECIES = {1: [16], 3: [3, 15, 16], 5: [3, 8, 15, 16, 17]}
MASSES = {3: 6.94, 8: 15.999, 15: 30.974, 16: 32.06, 17: 35.45}


def li3ps4_cell(natoms: int, density: float = 1.8, seed: int = 0, dmin: float = 1.6, species=(3, 15, 16)):
    """Random Li3PS4-composition cubic cell: positions (N,3), cell (3,3), Z (N,).

    Other ``species`` lists: equal shares of each element."""
    rng = np.random.default_rng(seed)
    if tuple(species) == (3, 15, 16):
        nfu = max(1, round(natoms / 8))
        z = np.array([3] * (3 * nfu) + [15] * nfu + [16] * (4 * nfu))
    else:
        z = np.array([species[i % len(species)] for i in range(natoms)])
    masses = MASSES
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


def _mtpjax_times(model, pos, cell, z_or_types, repeats, row, autodiff=False, species_index=None, chunk=None):
    t0 = time.perf_counter()
    idx, sh, _ = host_neighbors(pos, cell, [True] * 3, model.cutoff)
    row["host_neighbors_s"] = time.perf_counter() - t0
    sp = jnp.asarray(model.species_index(z_or_types) if species_index is None else species_index)
    args = (jnp.asarray(pos), jnp.asarray(cell), sp, jnp.asarray(idx), jnp.asarray(sh))
    row.update(neighbors_max=int(idx.shape[1]), neighbors_mean=float((idx < len(pos)).sum(1).mean()))
    if chunk:  # blocks of `chunk` atoms: memory ∝ chunk (10⁶ atoms do not fit otherwise)
        row["mtpjax_chunk_atoms"] = int(chunk)

        def efs(*a):
            return energy_forces_stress_chunked(model, *a, chunk=chunk)
    else:
        def efs(*a):
            return energy_forces_stress(model, *a)
    t0 = time.perf_counter()
    out = jax.block_until_ready(efs(*args))
    row["mtpjax_compile_s"] = time.perf_counter() - t0
    put(row, "mtpjax", repeat_time(lambda: efs(*args), repeats, jax.block_until_ready))
    row["mtpjax_us_per_atom"] = row["mtpjax_min_s"] / len(pos) * 1e6
    if autodiff:
        t0 = time.perf_counter()
        jax.block_until_ready(energy_forces_stress_autodiff(model, *args))
        row["autodiff_compile_s"] = time.perf_counter() - t0
        put(row, "autodiff", repeat_time(lambda: energy_forces_stress_autodiff(model, *args), repeats,
                                         jax.block_until_ready))
    return float(out[0])


def _motep_times(path, numbers, pos, cell, species, repeats, row, engines, e_ours):
    """motep's engines on the same ``.mtp`` file; ``numbers``: atomic numbers (species order)."""
    try:
        from ase import Atoms
        from motep.calculator import MTP as MotepMTP
        from motep.io.mlip.mtp import read_mtp as motep_read
    except Exception as exc:  # noqa: BLE001
        row["motep_error"] = f"{type(exc).__name__}: {exc}"
        return
    atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=True)
    for eng in engines:
        key = "motep" if eng == "cext" else f"motep_{eng}"
        try:
            data = motep_read(path)
            data.species = list(species)
            calc = MotepMTP(data, engine=eng)
            t0 = time.perf_counter()
            calc.engine.calculate(atoms)  # builds its neighbour list (jax: compiles)
            row[f"{key}_first_s"] = time.perf_counter() - t0
            res = calc.engine.calculate(atoms)
            put(row, key, repeat_time(lambda: calc.engine.calculate(atoms), repeats))
            row[f"energy_diff_vs_{key}_eV"] = abs(e_ours - float(res["energy"]))
        except Exception as exc:  # noqa: BLE001 - engine missing or failing: report, don't die
            row[f"{key}_error"] = f"{type(exc).__name__}: {exc}"


def _mlp_times(mlp, path, pos, cell, types, workdir, repeats, copies, row, e_ours):
    try:
        cfg = peers.write_cfg_copies(workdir / f"{path.stem}_n{len(pos)}.cfg", pos, cell, types, copies)
        res = peers.mlp_calc_efs(mlp, path, cfg, workdir, repeats, copies)
        row.update(res)
        if "mlp_energy_eV" in res:
            row["energy_diff_vs_mlp_eV"] = abs(e_ours - res.pop("mlp_energy_eV"))
            row.pop("mlp_energy_eV", None)
    except Exception as exc:  # noqa: BLE001
        row["mlp_error"] = f"{type(exc).__name__}: {exc}"


def bench_level(level, pos, cell, z, repeats, workdir, species=(3, 15, 16), autodiff=False,
                motep_engines=("cext", "jax"), mlp=None, mlp_copies=1, chunk=None):
    species = list(species)
    path = workdir / f"bench_l{level:02d}_s{len(species)}.mtp"
    model = random_potential(level, species, path)
    row = {"level": level, "species": len(species), "natoms": len(pos)}
    e_ours = _mtpjax_times(model, pos, cell, z, repeats, row, autodiff, chunk=chunk)
    _motep_times(path, z, pos, cell, species, repeats, row, motep_engines, e_ours)
    if mlp:
        _mlp_times(mlp, path, pos, cell, model.species_index(z), workdir, repeats, mlp_copies, row, e_ours)
    return row


#: the potentials MLIP's reference timings were taken with, by level
REF_POTENTIALS = {8: "m2_l08_trained.mtp", 12: "m2_l12_trained.mtp", 16: "synth_l16_s3.mtp", 20: "synth_l20_s3.mtp"}


def bench_reference(levels, repeats, workdir, motep_engines=("cext",), mlp=None, mlp_copies=10):
    """big1008.cfg with MLIP's timed potentials: ours, motep's and MLIP's (recorded and, if given, live)."""
    from mtpjax.potential import read_cfg

    conf = read_cfg(MLIP_REF / "inputs" / "big1008.cfg")[0]
    ref = [r for r in peers.mlip_reference_timings() if r["copies"] > 1] or peers.mlip_reference_timings()
    rows = []
    for lev in levels:
        name = REF_POTENTIALS.get(lev)
        if name is None:
            continue
        path = MLIP_REF / "potentials" / name
        model = MTP.from_file(path)
        row = {"level": lev, "potential": name, "natoms": len(conf.positions)}
        types = np.asarray(conf.types)
        e_ours = _mtpjax_times(model, conf.positions, conf.cell, None, repeats, row, species_index=types)
        numbers = types + 1  # motep: any distinct atomic numbers in species order
        _motep_times(path, numbers, conf.positions, conf.cell, [1, 2, 3], repeats, row, motep_engines, e_ours)
        if mlp:
            _mlp_times(mlp, path, conf.positions, conf.cell, types, workdir, repeats, mlp_copies, row, e_ours)
        for r in ref:
            if r["potential"] == name:
                key = r["code"].lower().replace("-", "")
                row[f"{key}_ref_min_s"], row[f"{key}_ref_median_s"] = r["min_s"], r["median_s"]
        row["ref_machine"] = peers.MLIP_REF_MACHINE
        rows.append(row)
        print(f"done reference L{lev}", file=sys.stderr, flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", type=int, nargs="+", default=[8, 12, 16, 20])
    p.add_argument("--species", type=int, nargs="+", default=[1, 3, 5], choices=sorted(SPECIES))
    p.add_argument("--natoms", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    p.add_argument("--scaling-level", type=int, default=8,
                   help="sizes other than the first are run at this level only (and 3 species)")
    p.add_argument("--ref-levels", type=int, nargs="*", default=[8, 12, 16, 20],
                   help="levels of the big1008.cfg comparison with MLIP's recorded timings")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--chunk", type=int, default=16384,
                   help="atoms per block of the block-wise E+F+S used above --chunk-above atoms")
    p.add_argument("--chunk-above", type=int, default=200000,
                   help="systems with more atoms are evaluated block-wise (the one-shot call's temporaries grow "
                        "as ~20 kB/atom at level 8: 20 GB for 10⁶ atoms)")
    p.add_argument("--motep-max-atoms", type=int, default=1000000, help="skip motep above this size")
    p.add_argument("--autodiff", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the autodiff-in-positions path")
    p.add_argument("--motep-jax-max-level", type=int, default=16,
                   help="motep's JAX engine only up to this level (it takes minutes per call beyond)")
    p.add_argument("--mlp-copies", type=int, default=10, help="copies per .cfg given to mlp calc-efs")
    p.add_argument("--quick", action="store_true", help="levels 8 12 16 (3 species), 1 and 5 species at 12, "
                                                        "1000 and 8000 atoms, reference levels 8–20")
    p.add_argument("--tiny", action="store_true", help="level 8, 64 atoms, reference skipped")
    p.add_argument("--json", default="benchmarks/results/efs_speed.json")
    a = p.parse_args(argv)
    if a.quick:
        a.levels, a.species, a.natoms, a.repeats, a.autodiff = [8, 12, 16], [1, 3, 5], [1000, 8000], 3, False
        a.motep_jax_max_level, a.mlp_copies = 8, 10
    if a.tiny:
        a.levels, a.species, a.natoms, a.repeats, a.autodiff = [8], [3], [64], 2, False
        a.ref_levels, a.mlp_copies = [], 2
    mlp = peers.mlp_binary()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, n in enumerate(a.natoms):
            for ns in a.species:
                if i > 0 and ns != 3:
                    continue
                pos, cell, z = li3ps4_cell(n, species=SPECIES[ns])
                for lev in a.levels:
                    if i > 0 and lev != a.scaling_level:
                        continue
                    if (a.quick or a.tiny) and ns != 3 and lev != (12 if a.quick else lev):
                        continue
                    engines = ("cext", "jax") if lev <= a.motep_jax_max_level and n <= (1000 if a.quick else 10000) else ("cext",)
                    if n > a.motep_max_atoms:
                        engines = ()
                    rows.append(bench_level(lev, pos, cell, z, a.repeats, tmp, SPECIES[ns],
                                            a.autodiff and n <= a.chunk_above, engines, mlp, a.mlp_copies,
                                            chunk=a.chunk if n > a.chunk_above else None))
                    print(f"done L{lev} species={ns} N={n}", file=sys.stderr, flush=True)
        ref_rows = bench_reference(a.ref_levels, a.repeats, tmp, ("cext",), mlp, a.mlp_copies)
    hdr = (f"{'level':>5} {'sp':>2} {'N':>7} {'nbrs':>5} {'compile s':>9} {'mtpjax ms':>10} {'µs/atom':>8} "
           f"{'motep C ms':>10} {'motep jax ms':>12} {'ratio':>6} {'|ΔE| eV':>8}")
    print(hdr)
    nan = float("nan")
    for r in rows:
        mot = r.get("motep_min_s")
        print(f"{r['level']:>5} {r['species']:>2} {r['natoms']:>7} {r['neighbors_mean']:>5.1f} "
              f"{r['mtpjax_compile_s']:>9.2f} {r['mtpjax_min_s'] * 1e3:>10.2f} {r['mtpjax_us_per_atom']:>8.2f} "
              f"{(mot * 1e3 if mot else nan):>10.2f} {r.get('motep_jax_min_s', nan) * 1e3:>12.2f} "
              f"{(r['mtpjax_min_s'] / mot if mot else nan):>6.2f} {r.get('energy_diff_vs_motep_eV', nan):>8.1e}")
    for r in ref_rows:
        print(f"big1008 L{r['level']:02d}: mtpjax {r['mtpjax_min_s'] * 1e3:.1f} ms, motep C "
              f"{r.get('motep_min_s', nan) * 1e3:.1f} ms, MLIP-2 ref {r.get('mlip2_ref_min_s', nan) * 1e3:.1f} ms "
              f"({peers.MLIP_REF_MACHINE})")
    meta = {
        "machine": platform.platform(), "processor": platform.processor(), "python": platform.python_version(),
        "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "dtype": "float64" if jax.config.jax_enable_x64 else "float32", "repeats": a.repeats,
        "mlp": " ".join(mlp) if mlp else None,
    }
    tables = {"efs vs MLIP reference (big1008.cfg)": ref_rows} if ref_rows else {}
    write_json(a.json, rows, meta, tables=tables)
    print(f"wrote {a.json}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
