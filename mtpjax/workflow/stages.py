"""The workflow's stages (``mtpjax run WORKFLOW.toml``).

build → learn → fit → quench → sweep → analyze → report. Every stage writes
its outputs under ``workdir/<stage>/`` and, when it has finished, a marker
``workdir/stages/<stage>.json`` (atomically). A re-run skips finished
stages; ``--from STAGE`` removes the markers from that stage on and re-runs
them. A killed stage resumes where it was: the learning loop through its
own state file, the MD runs through their checkpoints; build, fit and the
analysis are deterministic and simply redone. Every random choice is seeded
from ``seed``, so a resumed run ends with the same report as an
uninterrupted one.

Compositions: ``lps`` (Li3PS4), ``lbo`` (Li3B11O18) and ``int`` (LPS at the
bottom, LBO on top, stacked along c).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ..active.learn import _atomic_json, weight_anchors
from ..errors import ConfigurationError, MTPJaxError
from .config import STAGES

__all__ = ["Workflow", "COMPS", "toml_dumps"]

COMPS = ("lps", "lbo", "int")
COMP_NAMES = {"lps": "Li3PS4", "lbo": "Li3B11O18", "int": "Li3PS4/Li3B11O18 interface"}


# ------------------------------------------------------------------ small helpers
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def toml_dumps(d: dict) -> str:
    """TOML text of a dict: scalars first, then [tables], then [[arrays of tables]] (None values dropped)."""
    lines, tables, arrays = [], [], []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in tables:
        lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(x)}" for kk, x in v.items() if x is not None]
    for k, items in arrays:
        for it in items:
            lines += ["", f"[[{k}]]"] + [f"{kk} = {_toml_value(x)}" for kk, x in it.items() if x is not None]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ driver
class Workflow:
    """Runs the stages of a validated workflow config (see :mod:`.config`)."""

    def __init__(self, cfg: dict, log=print):
        self.cfg = cfg
        self.log = log
        wd = Path(cfg["workdir"])
        self.workdir = wd if wd.is_absolute() else Path(cfg["_dir"]) / wd
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.markers = self.workdir / "stages"
        self.markers.mkdir(exist_ok=True)
        self.species = list(cfg["species"])

    # ---------------------------------------------------------------- bookkeeping
    def done(self, stage: str) -> dict | None:
        p = self.markers / f"{stage}.json"
        return json.loads(p.read_text()) if p.exists() else None

    def _mark(self, stage: str, info: dict, wall: float):
        _atomic_json(self.markers / f"{stage}.json", {"stage": stage, **info, "wall_s": wall,
                                                      "finished": time.time()})

    def reset_from(self, stage: str):
        """Forget ``stage`` and every later one (their outputs are redone; the learning run is resumed, never discarded)."""
        if stage not in STAGES:
            raise ConfigurationError(f"--from {stage!r}: unknown stage (allowed: {', '.join(STAGES)})")
        for s in STAGES[STAGES.index(stage):]:
            m = self.markers / f"{s}.json"
            if m.exists():
                m.unlink()
            d = self.workdir / s
            if s == "learn":
                # never discard labels: the learner resumes from its store and state (raise
                # learn.max_iterations or add ensembles to learn more)
                continue
            if d.exists():
                shutil.rmtree(d)

    def run(self, from_stage: str | None = None, until: str | None = None) -> dict:
        """Run every unfinished stage in order (``until``: stop after that stage)."""
        if until is not None and until not in STAGES:
            raise ConfigurationError(f"--until {until!r}: unknown stage (allowed: {', '.join(STAGES)})")
        if from_stage is not None:
            self.reset_from(from_stage)
        _atomic_json(self.workdir / "workflow_config.json", {k: v for k, v in self.cfg.items()})
        for s in STAGES:
            if self.done(s):
                self.log(f"[{s}] done already (skipped)")
            else:
                self.log(f"[{s}] starting")
                t0 = time.perf_counter()
                info = getattr(self, f"stage_{s}")() or {}
                wall = time.perf_counter() - t0
                self._mark(s, info, wall)
                self.log(f"[{s}] finished in {wall:.1f} s")
            if s == until:
                break
        return {s: self.done(s) for s in STAGES}

    def _path(self, p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else Path(self.cfg["_dir"]) / p

    def structures(self, comp: str) -> list[Path]:
        return [self.workdir / "build" / f"{comp}_{k}.extxyz" for k in range(int(self.cfg["n_structures"]))]

    def comps(self) -> tuple:
        return COMPS if self.cfg["build"]["interface"] else COMPS[:2]

    # ---------------------------------------------------------------- 1. build
    def stage_build(self) -> dict:
        from ase.io import write

        from ..build import PRESETS, PS4, borate_network, build_amorphous, roll_fewest_cut_bonds, stack_interface

        b, seed = self.cfg["build"], int(self.cfg["seed"])
        d = self.workdir / "build"
        d.mkdir(exist_ok=True)
        a = float(b["a_A"])
        nl, nb = int(b["lps_formula_units"]), int(b["lbo_formula_units"])
        info = {"structures": {}}
        for k in range(int(self.cfg["n_structures"])):
            lps = build_amorphous([(PS4, nl), ("Li", 3 * nl)], density_g_cm3=float(b["lps_density_g_cm3"]), a=a, b=a,
                                  min_distances=PRESETS["Li3PS4"]["min_distances"], seed=seed + 100 + k)
            if b["lbo_builder"] == "network":
                lbo = borate_network(11 * nb, 18 * nb, [("Li", 3 * nb)], density_g_cm3=float(b["lbo_density_g_cm3"]),
                                     a=a, b=a, min_distances=PRESETS["Li3B11O18"]["min_distances"],
                                     seed=seed + 200 + k)
            else:
                lbo = build_amorphous([("O", 18 * nb), ("B", 11 * nb), ("Li", 3 * nb)],
                                      density_g_cm3=float(b["lbo_density_g_cm3"]), a=a, b=a,
                                      min_distances=PRESETS["Li3B11O18"]["min_distances"], seed=seed + 200 + k)
            out = {"lps": lps, "lbo": lbo}
            if b["interface"]:
                top = roll_fewest_cut_bonds(lbo) if b["lbo_builder"] == "network" else lbo  # cut the network
                out["int"] = stack_interface(lps, top, gaps=b["gaps_A"], min_cross=float(b["min_cross_LiLi_A"]),
                                             seed=seed + 300 + k)
            for comp, at in out.items():
                write(d / f"{comp}_{k}.extxyz", at, format="extxyz")
                info["structures"][f"{comp}_{k}"] = {"natoms": len(at), "cell_A": at.cell.lengths().tolist(),
                                                     "formula": at.get_chemical_formula()}
                if comp == "int":
                    info["structures"][f"{comp}_{k}"]["gap_A"] = at.info["gap_A"]
        self.log(f"[build] {len(info['structures'])} cells in {d}")
        return info

    # ---------------------------------------------------------------- 2. learn
    def learn_toml(self) -> Path:
        c, ln = self.cfg, self.cfg["learn"]
        d = self.workdir / "learn"
        d.mkdir(exist_ok=True)
        systems = []
        nper = min(int(ln["structures_per_composition"]), int(c["n_structures"]))
        starts = {comp: self.structures(comp)[:nper] for comp in self.comps()}
        if c["potential"]["init"]:  # minimised with the starting potential, as the production starts are
            starts = {comp: [self.minimized(s, d / f"start_{comp}_{k}.extxyz", self._path(c["potential"]["init"]))
                             for k, s in enumerate(v)] for comp, v in starts.items()}
        for comp in self.comps():
            for k in range(nper):
                for ens in ln["ensembles"]:
                    md = {"ensemble": ens, "walkers": int(ln["walkers"])}
                    if ens == "production":  # LOTF along the production protocol itself (melt → quench → relax)
                        md.update(ensemble="npt", schedule=self.learn_schedule(),
                                  timestep_fs=float(c["production"]["timestep_fs"]))
                    systems.append({"name": f"{comp}{k}_{ens}", "structure": str(starts[comp][k]), "md": md})
        learn = {
            "workdir": str(d), "seed": int(c["seed"]), "max_iterations": int(ln["max_iterations"]),
            "species": self.species,
            "potential": {k: v for k, v in c["potential"].items() if k != "init"} | (
                {"init": str(self._path(c["potential"]["init"]))} if c["potential"]["init"] else {}),
            "reference": dict(c["reference"]),
            "labels": {k: v for k, v in c["labels"].items() if k != "submitit"} | (
                {"submitit": c["labels"]["submitit"]} if c["labels"].get("submitit") else {}),
            "train": dict(ln["train"]),
            "active": {"mode": "nbh", "init": ln["active_init"], "select_threshold": float(ln["select_threshold"]),
                       "break_threshold": float(ln["break_threshold"]), "max_select": int(ln["max_select"]),
                       "candidate_every": int(ln["candidate_every"]), "anchors_per_stage": int(ln["anchors_per_stage"])},
            "md": {"timestep_fs": float(ln["timestep_fs"]), "steps": int(ln["steps"]),
                   "temperature_K": float(ln["temperature_K"]), "pressure_bar": float(ln["pressure_bar"]),
                   "tdamp_fs": float(ln["tdamp_fs"]), "pdamp_fs": float(ln["pdamp_fs"]),
                   "barostat": c["production"]["barostat"]},
            "bootstrap": dict(ln["bootstrap"], data=[str(self._path(f)) for f in ln["bootstrap"]["data"]]),
            "system": systems,
        }
        if learn["labels"].get("submitit") == {}:
            learn["labels"].pop("submitit")
        p = d / "learn.toml"
        text = ("# written by `mtpjax run` from " + str(c.get("_path", "")) + "; resume alone with\n"
                f"#   mtpjax learn {p} --resume\n" + toml_dumps(learn))
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
        return p

    def stage_learn(self) -> dict:
        from ..active.learn import Learner, load_config

        p = self.learn_toml()
        lc = load_config(p)
        learner = Learner(lc, log=lambda m: self.log(f"[learn] {m}"))
        st = learner.run(resume=learner.state_path.exists())
        it = int(st["iteration"])
        pot = None
        for j in range(it, -1, -1):  # the newest trained potential
            q = Path(lc["workdir"]) / f"it{j:03d}" / "pot.mtp"
            if q.exists():
                pot = q
                break
        if pot is None:
            raise MTPJaxError("learn: no trained potential was produced")
        sm = json.loads((Path(lc["workdir"]) / "summary.json").read_text())
        return {"potential": str(pot), "iterations": sm["iterations"], "labels": sm["labels"],
                "labels_failed": sm["labels_failed"], "stop_reason": sm["stop_reason"], "timing_s": sm["timing_s"],
                "systems_done": {k: v["done"] for k, v in sm["systems"].items()}}

    # ---------------------------------------------------------------- 3. fit
    def stage_fit(self) -> dict:
        from ..active.store import TrainingStore
        from ..potential.model import MTP
        from ..train.data import Weights, prepare_training_set
        from ..train.trainer import TrainConfig, train

        f = self.cfg["fit"]
        d = self.workdir / "fit"
        d.mkdir(exist_ok=True)
        learned = self.done("learn")["potential"]
        store = TrainingStore(self.workdir / "learn" / "train.h5")
        aw = f["anchor_weight"] if f["anchor_weight"] is not None else self.cfg["learn"]["train"]["anchor_weight"]
        confs = weight_anchors(store, store.configurations(order="key"), float(aw))
        rng = np.random.default_rng(int(self.cfg["seed"]) + 7)
        perm = rng.permutation(len(confs))
        nv = int(round(float(f["valid_fraction"]) * len(confs)))
        valid = [confs[i] for i in sorted(perm[:nv])]
        trn = [confs[i] for i in sorted(perm[nv:])]
        w = Weights(energy=float(f["energy_weight"]), force=float(f["force_weight"]), stress=float(f["stress_weight"]),
                    weighting="vibrations")
        model = MTP.from_file(learned)
        res = train(model, trn, valid or None, TrainConfig(max_iter=int(f["max_iter"]), weights=w, init=f["init"],
                                                          seed=int(self.cfg["seed"]), log=str(d / "train_log.jsonl")))
        res.model.save(d / "pot_validated.mtp")
        info = {"potential": str(d / "pot.mtp"), "init": f["init"], "n_train": len(trn), "n_valid": len(valid),
                "iterations": res.iterations, "stop_reason": res.stop_reason, "train_wall_s": res.wall_time,
                "train_metrics": _scalars(res.train_metrics), "valid_metrics": _scalars(res.valid_metrics or {})}
        final = res.model
        if valid and f["final_on_all"]:
            # the validation set is labelled data the production potential should not miss (every
            # configuration was selected as informative): continue on all of it; the validation errors
            # above are those of pot_validated.mtp, which never saw it
            n_all = max(2, int(f["max_iter"]) // 4)
            r2 = train(res.model, confs, None, TrainConfig(max_iter=n_all, weights=w, init="keep",
                                                           seed=int(self.cfg["seed"]),
                                                           log=str(d / "train_all_log.jsonl")))
            final = r2.model
            info["final_on_all"] = {"n_configs": len(confs), "iterations": r2.iterations, "wall_s": r2.wall_time,
                                    "metrics": _scalars(r2.train_metrics)}
        final.save(d / "pot.mtp")
        # the consolidated potential's active set (as the learning builds it): the analysis grades the
        # production MD with it, and `mtpjax calc-grade`/LAMMPS-style users get it beside the potential
        from ..active.grade import build_active_set
        from ..active.state import write_state

        ln = self.cfg["learn"]
        init = ln["active_init"] if isinstance(ln["active_init"], str) else float(ln["active_init"])
        ast = build_active_set(final, confs, "nbh", init, method="blocked")
        ast.self_check()
        write_state(d / "pot.almtp", final, ast)
        info["active_set"] = {"path": str(d / "pot.almtp"), "rows": int(ast.n_selected), "n": int(ast.n)}
        try:
            from ..train.plots import learning_curve, parity_plot

            sets = {"train": prepare_training_set(res.model, trn, w)}
            if valid:
                sets["valid"] = prepare_training_set(res.model, valid, w)
            parity_plot(res.model, sets, d / "parity.png")
            learning_curve(res.history, d / "learning_curve.png")
        except Exception as e:  # noqa: BLE001 - plots are optional (matplotlib extra)
            self.log(f"[fit] no plots ({e})")
        _atomic_json(d / "metrics.json", info)
        m = info["valid_metrics"] or info["train_metrics"]
        self.log(f"[fit] {len(trn)} train / {len(valid)} valid configurations; "
                 f"E RMSE {1e3 * m.get('energy_rmse', float('nan')):.2f} meV/atom, "
                 f"F RMSE {m.get('force_rmse', float('nan')):.3f} eV/Å")
        return info

    # ---------------------------------------------------------------- 4. quench
    def _md_base(self, out: Path, dt: float, thermo_every: int, traj_every: int) -> dict:
        return {"elements": self.species, "potential": self.done("fit")["potential"], "output": str(out),
                "timestep_fs": dt, "seed": int(self.cfg["seed"]) + 11, "skin": 1.0, "thermo_every": thermo_every,
                "traj_every": traj_every, "checkpoint_every": 10 * traj_every, "max_temperature_K": 1e4,
                "min_distance": 0.5, "_base": str(self.workdir)}

    def quench_stages(self) -> list[dict]:
        p = self.cfg["production"]
        common = {"ensemble": "npt", "pressure_bar": float(p["pressure_bar"]), "barostat": p["barostat"],
                  "tdamp_fs": float(p["tdamp_fs"]), "pdamp_fs": float(p["pdamp_fs"])}
        return [dict(common, name="melt", time_ps=float(p["melt_ps"]), temperature_K=float(p["melt_K"])),
                dict(common, name="quench", time_ps=float(p["quench_ps"]), temperature_K=float(p["melt_K"]),
                     temperature_end_K=float(p["quench_end_K"])),
                dict(common, name="relax", time_ps=float(p["relax_ps"]), temperature_K=float(p["quench_end_K"]))]

    def learn_schedule(self) -> list[dict]:
        """The production protocol as a learning schedule: melt → quench → relax (NPT), then, when the
        sweep goes hotter than the melt, NVT at the hottest sweep temperature for ``learn.hot_ps``."""
        st = self.quench_stages()
        t_hot = max(float(t) for t in self.cfg["sweep"]["temperatures_K"])
        if t_hot > float(self.cfg["production"]["melt_K"]) and float(self.cfg["learn"]["hot_ps"]) > 0:
            st.append({"name": "hot", "ensemble": "nvt", "time_ps": float(self.cfg["learn"]["hot_ps"]),
                       "temperature_K": t_hot, "tdamp_fs": float(self.cfg["sweep"]["tdamp_fs"])})
        return st

    def stage_quench(self) -> dict:
        from ase.io import read, write

        from ..build import production_supercell

        p = self.cfg["production"]
        pot = self.done("fit")["potential"]
        info = {}
        for comp in self.comps():
            d = self.workdir / "quench" / comp
            d.mkdir(parents=True, exist_ok=True)
            starts = []
            for k, s in enumerate(self.structures(comp)):
                if p["supercell"]:
                    q = d / f"supercell_{k}.extxyz"
                    if not q.exists():
                        write(q, production_supercell(read(s), "interface" if comp == "int" else "bulk"))
                    s = q
                starts.append(str(self.minimized(s, d / f"start_{k}.extxyz", pot)))
            run = self._md_base(d / "md", float(p["timestep_fs"]), int(p["thermo_every"]), int(p["traj_every"]))
            run.update({"structure": starts[0], "temperature_K": float(p["melt_K"]), "stage": self.quench_stages(),
                        "replicas": {"structures": starts, "seeds": [int(self.cfg["seed"]) + 17 + k
                                                                      for k in range(len(starts))]}})
            (d / "quench.toml").write_text(toml_dumps({k: v for k, v in run.items() if not k.startswith("_")}))
            t0 = time.perf_counter()
            self._production_md(run, "quench", comp)
            info[comp] = {"replicas": len(starts), "wall_s": time.perf_counter() - t0,
                          "natoms": len(read(starts[0]))}
            self.log(f"[quench] {comp}: {len(starts)} replicas in {info[comp]['wall_s']:.1f} s")
        return info

    def minimized(self, src, dst: Path, potential) -> Path:
        """``src`` (extxyz) relaxed with ``potential`` — FIRE, atoms only, fixed cell, at most
        ``production.minimize_steps`` steps down to ``production.minimize_fmax`` eV/Å — written to ``dst``
        (atomically; an existing ``dst`` minimised from the same ``src`` bytes and with the same potential is
        kept, so a resumed run starts from the same cell). Returns ``dst``, or ``src`` when minimize_steps is 0."""
        import hashlib

        from ase.io import read, write
        from ase.optimize import FIRE
        from ase.units import GPa

        from ..potential.calculator import MTPCalculator

        p = self.cfg["production"]
        if int(p["minimize_steps"]) == 0:
            return Path(src)
        made_from = {"minimized_from_sha256": hashlib.sha256(Path(src).read_bytes()).hexdigest(),
                     "minimized_with_sha256": hashlib.sha256(Path(potential).read_bytes()).hexdigest()}
        if dst.exists():
            old = read(dst).info
            if all(old.get(k) == v for k, v in made_from.items()):
                return dst
        def pressure_gpa(atoms):
            return -float(np.mean(atoms.get_stress()[:3])) / GPa

        at = read(src)
        at.calc = MTPCalculator(str(potential), symbols=self.species)
        e0, p0 = at.get_potential_energy(), pressure_gpa(at)
        opt = FIRE(at, logfile=None)
        try:
            opt.run(fmax=float(p["minimize_fmax"]), steps=int(p["minimize_steps"]))
        except ConfigurationError as e:  # atoms driven together: the potential is not usable from this cell
            raise MTPJaxError(f"minimising {src} with {potential}: {e}") from None
        n = len(at)
        fmax = float(np.sqrt((at.get_forces() ** 2).sum(axis=1)).max())
        self.log(f"  minimised {Path(src).name} in {opt.nsteps} FIRE steps: E {e0 / n:.4f} → "
                 f"{at.get_potential_energy() / n:.4f} eV/atom, P {p0:.2f} → "
                 f"{pressure_gpa(at):.2f} GPa, max |F| {fmax:.3f} eV/Å")
        at.calc = None
        at.info.update(made_from)
        tmp = dst.with_suffix(".tmp.extxyz")
        write(tmp, at, format="extxyz")
        tmp.replace(dst)
        return dst

    def _production_md(self, run: dict, stage: str, comp: str):
        """run_md with the learned potential; a broken run names what to change in the workflow file."""
        from ..md.run import run_md
        from ..md.simulate import SimulationError

        try:
            run_md(run, progress=False, log=lambda m: self.log(f"[{stage}] {m}"))
        except SimulationError as e:
            learn = self.done("learn") or {}
            ln = self.cfg["learn"]
            hints = []
            if "production" not in ln["ensembles"]:
                hints.append('learn along the production protocol (learn.ensembles = ["production"])')
            if int(ln["structures_per_composition"]) < int(self.cfg["n_structures"]):
                hints.append(f"learn on every structure that runs here (learn.structures_per_composition = "
                             f"{self.cfg['n_structures']}, now {ln['structures_per_composition']})")
            hints.append(f"raise learn.max_iterations (now {ln['max_iterations']})")
            hints.append("or soften the barostat (production.pdamp_fs)")
            raise MTPJaxError(
                f"{stage} ({comp}): {e}.\nThe learned potential is not yet reliable along this run (learn stopped: "
                f"{learn.get('stop_reason', '?')}). " + "; ".join(hints)[0].upper() + "; ".join(hints)[1:]
                + "; then `mtpjax run FILE --from learn` (labels already computed are kept)"
            ) from e

    # ---------------------------------------------------------------- 5. sweep
    def stage_sweep(self) -> dict:
        sw = self.cfg["sweep"]
        info = {}
        for comp in self.comps():
            finals = [self.workdir / "quench" / comp / "md" / f"r{k:02d}" / "final.extxyz"
                      for k in range(int(self.cfg["n_structures"]))]
            temps = [float(t) for t in sw["temperatures_K"]]
            rounds = []
            for rnd in range(int(sw["max_rounds"])):
                d = self.workdir / "sweep" / comp / f"round{rnd}"
                d.mkdir(parents=True, exist_ok=True)
                reps = [(k, T) for T in temps for k in range(len(finals))]
                run = self._md_base(d, float(sw["timestep_fs"]), int(sw["thermo_every"]), int(sw["traj_every"]))
                run.update({
                    "structure": str(finals[0]), "temperature_K": temps[0],
                    "stage": [{"name": "nvt", "ensemble": "nvt", "time_ps": float(sw["time_ps"]),
                               "temperature_K": temps[0], "tdamp_fs": float(sw["tdamp_fs"])}],
                    "replicas": {"structures": [str(finals[k]) for k, _ in reps], "temperatures_K": [T for _, T in reps],
                                 "seeds": [int(self.cfg["seed"]) + 1000 * rnd + 31 + j for j in range(len(reps))]},
                })
                (d / "sweep.toml").write_text(toml_dumps({k: v for k, v in run.items() if not k.startswith("_")}))
                _atomic_json(d / "replicas.json", [{"replica": j, "structure": k, "T_K": T}
                                                    for j, (k, T) in enumerate(reps)])
                t0 = time.perf_counter()
                self._production_md(run, "sweep", comp)
                hop = {}
                for j, (k, T) in enumerate(reps):
                    hop.setdefault(T, []).append(_li_msd_end(d / f"r{j:02d}" / "traj.h5md"))
                rounds.append({"dir": str(d), "temperatures_K": temps, "wall_s": time.perf_counter() - t0,
                               "li_msd_end_A2": {str(T): v for T, v in hop.items()}})
                self.log(f"[sweep] {comp} round {rnd}: T = {temps} K, end Li MSD (Å²) = "
                         + ", ".join(f"{T:g}: {np.mean(v):.2f}" for T, v in hop.items()))
                lowest = min(temps)
                if np.mean(hop[lowest]) < float(sw["hop_msd_A2"]):
                    break  # no hopping at the lowest temperature: the sweep is complete
                temps = [lowest - float(sw["step_K"]) * (i + 1) for i in range(len(temps))]
                if min(temps) <= 0:
                    break
            info[comp] = {"rounds": rounds}
        return info

    # ---------------------------------------------------------------- 6./7.
    def stage_analyze(self) -> dict:
        from .analyze import analyze_all

        return analyze_all(self)

    def stage_report(self) -> dict:
        from .report import write_report

        return write_report(self)


def _scalars(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if np.isscalar(v)}


def _li_msd_end(path) -> float:
    """Mean squared Li displacement (Å²) between the first and the last frame (unwrapped)."""
    from ..analysis.unwrap import unwrapped_positions
    from ..analysis.trajectory import open_trajectory

    U, _, _ = unwrapped_positions(open_trajectory(path), "Li", drift="all")
    return float(np.mean(np.sum((U[-1] - U[0]) ** 2, axis=-1)))
