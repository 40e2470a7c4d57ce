"""Mixed precision (float32 MTP forces, float64 integration) vs float64 MD.

Same start (positions, Maxwell–Boltzmann momenta, seed), same number of
steps: NVE energy drift (eV/atom/ps, linear fit of the conserved energy),
mean temperature, the RDF over the trajectory frames (max |Δg|) and the final
MSD of all atoms. Also the wall time per step of each mode. Prints a table
and writes JSON.

    python benchmarks/precision.py [--steps 2000] [--size 4] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.lattice.cubic import FaceCenteredCubic  # noqa: E402

import mtpjax  # noqa: E402,F401
from benchmarks.common import MLIP_REF  # noqa: E402
from mtpjax.analysis.rdf import compute_rdf  # noqa: E402
from mtpjax.units import voigt_to_matrix  # noqa: E402
from mtpjax.md.simulation import Simulation  # noqa: E402
from mtpjax.md.stages import Stage  # noqa: E402
from mtpjax.units import FS  # noqa: E402
from mtpjax.potential import MTP  # noqa: E402
from mtpjax.potential.model import energy_forces_stress  # noqa: E402

SHARED = MLIP_REF / "potentials"
SYMBOLS = ["Cu", "Ag", "Au"]


def efs_for(model, dtype):
    m = model.astype(dtype)

    def efs(positions, cell, nbrs, species):
        e, f, s, _ = energy_forces_stress(m, positions, cell, species, nbrs.idx, nbrs.shifts)
        f64 = positions.dtype
        return e.astype(f64), f.astype(f64), voigt_to_matrix(s.astype(f64))

    return efs


def run(model, atoms, species, dtype, steps, temperature, seed):
    sim = Simulation(efs_for(model, dtype), model.cutoff, 1 * FS, [Stage("nve", steps)], skin=1.0,
                     thermo_every=10, traj_every=max(10, steps // 200 * 10))
    st, nb = sim.init_state(atoms.positions, atoms.get_masses(), atoms.cell.array, species, temperature, seed=seed)
    rows, frames = [], []
    t0 = time.perf_counter()
    sim.run(st, nb, on_block=lambda r, k, s: rows.append(np.asarray(r)[: int(k)]),
            on_frame=lambda s: frames.append(np.asarray(s.positions).copy()))
    wall = time.perf_counter() - t0
    return np.concatenate(rows), np.asarray(frames), wall


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--potential", default=str(SHARED / "m2_l12_trained.mtp"))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--size", type=int, default=4, help="fcc repeats per axis (4 → 256 atoms)")
    p.add_argument("--temperature", type=float, default=600.0)
    p.add_argument("--quick", action="store_true", help="1000 steps, 3×3×3 cell")
    p.add_argument("--tiny", action="store_true", help="200 steps, 2×2×2 cell")
    p.add_argument("--json", default="benchmarks/results/precision.json")
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.size = 1000, 3
    if a.tiny:
        a.steps, a.size = 200, 2
    model = MTP.from_file(a.potential)
    rng = np.random.default_rng(0)
    atoms = FaceCenteredCubic("Cu", size=(a.size,) * 3, latticeconstant=3.9)
    types = rng.integers(0, 3, len(atoms))
    atoms.set_chemical_symbols([SYMBOLS[t] for t in types])
    species = jnp.asarray(model.species_index(types))
    out = {}
    for name, dtype in (("float64", jnp.float64), ("mixed32", jnp.float32)):
        rows, frames, wall = run(model, atoms, species, dtype, a.steps, a.temperature, seed=1)
        t_ps = rows[:, 1] / 1000.0
        cons = rows[:, 6] / len(atoms)
        drift = float(np.polyfit(t_ps, cons, 1)[0]) if len(t_ps) > 2 else float("nan")
        traj = [Atoms(atoms.get_chemical_symbols(), positions=f, cell=atoms.cell, pbc=True) for f in frames]
        rdf = compute_rdf(traj, ["Cu-Cu"], r_max=6.0, dr=0.05, timestep_fs=1.0)
        msd = float(np.mean(np.sum((frames[-1] - frames[0]) ** 2, axis=-1)))
        out[name] = {"drift_eV_atom_ps": drift, "mean_T_K": float(rows[:, 2].mean()),
                     "conserved_std_eV_atom": float(cons.std()), "msd_A2": msd,
                     "wall_s_per_step": wall / a.steps, "_g": np.asarray(rdf.g["Cu-Cu"])}
    g64, g32 = out["float64"].pop("_g"), out["mixed32"].pop("_g")
    out["max_abs_rdf_diff"] = float(np.max(np.abs(g64 - g32)))
    out["meta"] = {"natoms": len(atoms), "steps": a.steps, "timestep_fs": 1.0, "potential": Path(a.potential).name,
                   "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    print(f"{'mode':>8} {'drift eV/atom/ps':>17} {'<T> K':>8} {'MSD Å²':>8} {'ms/step':>8}")
    for name in ("float64", "mixed32"):
        r = out[name]
        print(f"{name:>8} {r['drift_eV_atom_ps']:>17.2e} {r['mean_T_K']:>8.1f} {r['msd_A2']:>8.3f} "
              f"{r['wall_s_per_step'] * 1e3:>8.2f}")
    print(f"max |g64 - g32| (Cu-Cu) = {out['max_abs_rdf_diff']}")
    rows_out = [dict(mode=k, **{kk: vv for kk, vv in out[k].items()}) for k in ("float64", "mixed32")]
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": out["meta"], "rows": rows_out, "max_abs_rdf_diff": out["max_abs_rdf_diff"]},
                               indent=2))


if __name__ == "__main__":
    main()
