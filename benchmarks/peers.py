"""External peers of the benchmark suite: MLIP's ``mlp``, LAMMPS with MLIP's pair style,
and the timings MLIP recorded for the reference data.

The binaries are optional; point to them with environment variables:

* ``MTPJAX_MLP=/path/to/mlp`` — MLIP-2's ``mlp`` (``mlp calc-efs POT IN OUT``,
  ``mlp train POT TRAIN --trained-pot-name=OUT --max-iter=N``,
  ``mlp calc-errors POT CFG``);
* ``MTPJAX_LAMMPS=/path/to/lmp`` — a LAMMPS built with MLIP's interface
  (``pair_style mlip mlip.ini``; ``mlip.ini`` names the ``.mtp`` file).

The suite writes the inputs in their formats (``.mtp``, ``.cfg``, LAMMPS data
file and input script), runs them with :mod:`subprocess`, measures the wall
time of the process and parses what they print (LAMMPS' ``Loop time``, MLIP's
error report). Nothing here imports MLIP or LAMMPS.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks.common import MLIP_REF, stats

#: where MLIP's reference timings were taken (``tests/data/mlip_ref/README.md``)
MLIP_REF_MACHINE = "MLIP ref: 1 core of a 2-core AMD EPYC VM, serial"


# ----------------------------------------------------------------- binaries
def _binary(var: str) -> list[str] | None:
    """The command in ``$var`` as an argv prefix (may carry arguments, e.g. ``mpirun -np 1 lmp``)."""
    val = os.environ.get(var, "").strip()
    if not val:
        return None
    argv = shlex.split(val)
    exe = Path(argv[0])
    if exe.is_file() and os.access(exe, os.X_OK):
        argv[0] = str(exe.resolve())
        return argv
    from shutil import which

    found = which(argv[0])
    if found:
        argv[0] = found
        return argv
    return None


def mlp_binary() -> list[str] | None:
    return _binary("MTPJAX_MLP")


def lammps_binary() -> list[str] | None:
    return _binary("MTPJAX_LAMMPS")


def _run(argv, cwd, timeout=3600) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-500:]}")
    return wall, proc


# ------------------------------------------------------------ mlp calc-efs
def write_cfg_copies(path, positions, cell, types, copies: int = 1) -> Path:
    """MLIP ``.cfg`` with ``copies`` copies of one configuration (amortises start-up)."""
    from mtpjax.potential import Configuration, write_cfg

    conf = Configuration(positions=np.asarray(positions, float), types=np.asarray(types, int),
                         cell=np.asarray(cell, float), pbc=np.array([True] * 3))
    write_cfg(path, [conf] * copies)
    return Path(path)


def mlp_calc_efs(mlp, pot, cfg, workdir, repeats: int = 3, copies: int = 1) -> dict:
    """Time ``mlp calc-efs POT CFG OUT`` ``repeats`` times; seconds per configuration.

    Returns ``mlp_min_s``/``mlp_median_s`` (wall of the process / ``copies``)
    and ``mlp_energy_eV`` of the first configuration it wrote."""
    workdir = Path(workdir)
    out = workdir / "mlp_efs_out.cfg"
    ts = []
    for _ in range(max(1, repeats)):
        wall, _ = _run([*mlp, "calc-efs", Path(pot).resolve(), Path(cfg).resolve(), out.resolve()], workdir)
        ts.append(wall / copies)
    res = dict(zip(("mlp_min_s", "mlp_median_s"), stats(ts)))
    try:
        from mtpjax.potential import read_cfg

        res["mlp_energy_eV"] = float(read_cfg(out)[0].energy)
    except Exception as exc:  # noqa: BLE001 - output unreadable: keep the timing
        res["mlp_parse_error"] = f"{type(exc).__name__}: {exc}"
    return res


# ----------------------------------------------------------------- mlp train
_RMS = re.compile(r"RMS\s+absolute difference\s*=\s*([-+0-9.eE]+)")
_ERR_KEYS = {"Energy": "energy_rmse_total", "Energy per atom": "energy_rmse",
             "Forces": "force_rmse", "Stresses (in eV)": "stress_rmse"}


def parse_mlp_errors(text: str) -> dict:
    """RMS errors from MLIP's ``Errors report`` (``mlp train``/``calc-errors`` stdout).

    Keys ``energy_rmse`` (eV/atom), ``energy_rmse_total`` (eV), ``force_rmse``
    (eV/Å), ``stress_rmse`` (eV); the last report wins."""
    out, block = {}, None
    for line in text.splitlines():
        s = line.strip()
        if s.endswith(":") and not line[:1].isspace():
            block = _ERR_KEYS.get(s[:-1])
            continue
        r = _RMS.search(line)
        if r and block:
            out[block] = float(r.group(1))
    return out


def mlp_train(mlp, pot, train_cfg, workdir, max_iter: int, valid_cfg=None) -> dict:
    """``mlp train POT TRAIN --trained-pot-name=OUT --max-iter=N`` (wall time), then
    ``mlp calc-errors OUT VALID`` for the validation errors."""
    workdir = Path(workdir)
    trained = workdir / "mlp_trained.mtp"
    wall, proc = _run([*mlp, "train", Path(pot).resolve(), Path(train_cfg).resolve(),
                       f"--trained-pot-name={trained.resolve()}", f"--max-iter={int(max_iter)}"], workdir)
    res = {"mlp_train_wall_s": wall, "mlp_max_iter": int(max_iter)}
    res.update({f"mlp_train_{k}": v for k, v in parse_mlp_errors(proc.stdout).items()})
    if valid_cfg is not None:
        _, proc = _run([*mlp, "calc-errors", trained.resolve(), Path(valid_cfg).resolve()], workdir)
        res.update({f"mlp_valid_{k}": v for k, v in parse_mlp_errors(proc.stdout).items()})
    return res


# -------------------------------------------------------------------- LAMMPS
def lammps_cell(cell):
    """LAMMPS' lower-triangular box of ``cell`` (rows = lattice vectors) and the rotation."""
    a, b, c = np.asarray(cell, float)
    ax = np.linalg.norm(a)
    ahat = a / ax
    bx = b @ ahat
    by = np.sqrt(max(b @ b - bx * bx, 0.0))
    cx = c @ ahat
    cy = (b @ c - bx * cx) / by
    cz = np.sqrt(max(c @ c - cx * cx - cy * cy, 0.0))
    return np.array([[ax, 0, 0], [bx, by, 0], [cx, cy, cz]])


def write_lammps_data(path, positions, cell, types, masses_by_type) -> Path:
    """``atom_style atomic`` data file; LAMMPS type = MTP species index + 1."""
    cell = np.asarray(cell, float)
    box = lammps_cell(cell)
    frac = np.linalg.solve(cell.T, np.asarray(positions, float).T).T
    pos = (frac % 1.0) @ box
    ntypes = len(masses_by_type)
    lines = ["mtpjax benchmark", "", f"{len(pos)} atoms", f"{ntypes} atom types", "",
             f"0.0 {box[0, 0]:.10f} xlo xhi", f"0.0 {box[1, 1]:.10f} ylo yhi", f"0.0 {box[2, 2]:.10f} zlo zhi"]
    if abs(box[1, 0]) + abs(box[2, 0]) + abs(box[2, 1]) > 1e-12:
        lines.append(f"{box[1, 0]:.10f} {box[2, 0]:.10f} {box[2, 1]:.10f} xy xz yz")
    lines += ["", "Masses", ""] + [f"{i + 1} {m:.6f}" for i, m in enumerate(masses_by_type)]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {int(t) + 1} {x:.10f} {y:.10f} {z:.10f}" for i, (t, (x, y, z)) in enumerate(zip(types, pos))]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_lammps_input(path, data_file, steps: int, ensemble: str = "nvt", temperature: float = 300.0,
                       timestep_ps: float = 0.001, ini: str = "mlip.ini") -> Path:
    fix = {"nvt": f"fix 1 all nvt temp {temperature} {temperature} {100 * timestep_ps}",
           "npt": f"fix 1 all npt temp {temperature} {temperature} {100 * timestep_ps} "
                  f"iso 0.0 0.0 {1000 * timestep_ps}",
           "nve": "fix 1 all nve"}[ensemble]
    Path(path).write_text(f"""# written by mtpjax benchmarks
units metal
atom_style atomic
boundary p p p
read_data {data_file}
pair_style mlip {ini}
pair_coeff * *
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
velocity all create {temperature} 12345 dist gaussian
timestep {timestep_ps}
{fix}
thermo 100
run {int(steps)}
""")
    return Path(path)


_LOOP = re.compile(r"Loop time of\s+([-+0-9.eE]+)\s+on\s+(\d+)\s+procs?\s+for\s+(\d+)\s+steps\s+with\s+(\d+)\s+atoms")


def parse_loop_time(text: str) -> dict:
    """LAMMPS' ``Loop time of T on P procs for S steps with N atoms`` (last one)."""
    found = _LOOP.findall(text)
    if not found:
        raise ValueError("no 'Loop time' line in LAMMPS output")
    t, p, s, n = found[-1]
    t, s, n = float(t), int(s), int(n)
    return {"loop_time_s": t, "procs": int(p), "steps": s, "natoms": n,
            "step_s": t / s if s else float("nan"), "atom_steps_per_s": n * s / t if t > 0 else float("nan")}


def lammps_md(lmp, pot, positions, cell, types, masses_by_type, steps, workdir, ensemble="nvt",
              temperature=300.0, repeats: int = 1) -> dict:
    """Run LAMMPS with ``pair_style mlip`` on the same potential and cell; min/median step time."""
    workdir = Path(workdir)
    (workdir / "mlip.ini").write_text(f"mtp-filename    {Path(pot).resolve()}\nselect          FALSE\n")
    data = write_lammps_data(workdir / "data.lmp", positions, cell, types, masses_by_type)
    inp = write_lammps_input(workdir / f"in.{ensemble}.lmp", data.name, steps, ensemble, temperature)
    ts, last = [], None
    for _ in range(max(1, repeats)):
        _, proc = _run([*lmp, "-in", inp.name, "-log", "none"], workdir)
        last = parse_loop_time(proc.stdout)
        ts.append(last["step_s"])
    mn, med = stats(ts)
    return {"lammps_step_min_s": mn, "lammps_step_median_s": med, "lammps_procs": last["procs"],
            "lammps_atom_steps_per_s": last["natoms"] / mn}


# ------------------------------------------------- MLIP's recorded timings
def mlip_reference_timings(folder=None) -> list[dict]:
    """Rows of ``tests/data/mlip_ref/timing/*.txt``: ``mlp calc-efs`` wall per configuration.

    Lines ``x10 mlip2 POT t1 t2 …`` time a file of 10 copies of ``big1008.cfg``
    (per configuration = t / 10); ``mlip2 POT big1008.cfg t1 …`` time one
    configuration including the program's start-up."""
    folder = Path(folder or MLIP_REF / "timing")
    rows = []
    for f in sorted(folder.glob("*.txt")):
        for line in f.read_text().splitlines():
            tok = line.split()
            if not tok:
                continue
            copies = 1
            if re.fullmatch(r"x\d+", tok[0]):
                copies = int(tok[0][1:])
                tok = tok[1:]
            code, pot = tok[0], tok[1]
            rest = tok[2:]
            cfg = "big1008.cfg"
            if rest and not _is_float(rest[0]):
                cfg, rest = rest[0], rest[1:]
            ts = [float(x) / copies for x in rest if _is_float(x)]
            if not ts:
                continue
            m = re.search(r"l(\d\d)", Path(pot).name)
            mn, med = stats(ts)
            rows.append({"code": {"mlip2": "MLIP-2", "mlip3": "MLIP-3"}.get(code, code),
                         "potential": Path(pot).name, "level": int(m.group(1)) if m else None,
                         "cfg": cfg, "copies": copies, "min_s": mn, "median_s": med, "repeats": len(ts),
                         "file": f.name, "machine": MLIP_REF_MACHINE})
    return rows


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
