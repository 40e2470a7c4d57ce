"""Labelling configurations with the reference calculator into the append-only training store.

One path for the learner's labels: jobs not yet in the store (nor recorded as failed) are dispatched to the
configured executor (:mod:`mtpjax.active.dispatch`: retries, timeouts, validation of what comes back), each
label is flushed to the store as it arrives, a failure is recorded with its errors and skipped.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mtpjax.active.dispatch import Job, dispatch, make_executor
from mtpjax.active.reference import atoms_payload
from mtpjax.config.learn import LabelsSpec
from mtpjax.io.store import TrainingStore


def label_into_store(store: TrainingStore, items, reference: dict, labels: LabelsSpec, jobs_dir: Path,
                     type_to_symbol: dict, phase: str, log) -> tuple[int, int]:
    """Label ``items`` = [(key, Configuration, provenance)] that the store does not hold yet; returns
    (labelled, failed)."""
    failed = store.failed()
    have = set(store.keys())
    todo = [(k, c, p) for k, c, p in items if k not in have and k not in failed]
    if not todo:
        return 0, 0
    ex = make_executor(labels.executor, jobs_dir, labels.max_workers, labels.submitit or None)
    confs = {k: c for k, c, _ in todo}
    jobs = [Job(k, atoms_payload(c, type_to_symbol), dict(p)) for k, c, p in todo]
    n_ok = [0]

    def on_done(job, lab):
        conf = replace(confs[job.key], energy=lab.energy, forces=lab.forces, plus_stress=lab.plus_stress,
                       features={}, atom_data={})
        prov = dict(job.meta, phase=phase, attempts=job.attempts, wall=lab.wall, calculator=dict(reference))
        store.add(job.key, conf, prov)
        n_ok[0] += 1
        log(f"  label {job.key}: E = {lab.energy:.6f} eV ({lab.wall:.1f} s, attempt {job.attempts})")

    def on_failed(job):
        store.add_failed(job.key, job.errors, job.meta)
        log(f"  label {job.key}: FAILED after {job.attempts} attempts: {job.errors[-1][:200]}")

    dispatch(jobs, reference, ex, retries=int(labels.retries), timeout=float(labels.timeout_s),
             backoff=float(labels.backoff_s), on_done=on_done, on_failed=on_failed,
             workdir_of=lambda j: str(jobs_dir / j.key.replace("/", "_")), min_wall=float(labels.min_wall_s))
    return n_ok[0], len(todo) - n_ok[0]
