"""Label dispatch: run reference calculations through an executor with
retries and timeouts; never stop because one label failed.

Executors follow ``concurrent.futures`` (``submit(fn, *args) → handle``);
the handle needs ``done()``, ``result()`` and ``cancel()``:

* :class:`ProcessExecutor` (default): one fresh *spawned* process per job
  (no state shared with the JAX parent, killable on timeout), at most
  ``max_workers`` at a time;
* :class:`SubmititExecutor`: ``submitit`` (SLURM, or ``cluster="local"`` for
  tests), ``pip install submitit``;
* :class:`InlineExecutor`: in a thread of this process (no spawn cost; for fast
  calculators and debugging). Its timeout abandons the attempt (the run goes on,
  the label is retried or recorded as failed), but a thread cannot be killed: a
  calculation hung inside C code keeps its thread; use ``process`` where that matters.

:func:`dispatch` keeps every job's status (pending / running / done /
failed), retries failures (exception, NaN, non-converged SCF, timeout, a job
that "finished" without output) up to ``retries`` times with exponential
backoff, then records it as failed and moves on; ``on_done``/``on_failed``
callbacks receive each result as soon as it arrives (the store flushes it).
Whatever ran the job, the result is checked here again
(:func:`~mtpjax.active.reference.check_result`): only finite labels of the right
shapes reach ``on_done``. Every reference calculation of the learner goes through
:func:`dispatch`: single points (:func:`~mtpjax.active.reference.label_atoms`) and
the bootstrap's relaxations and MD (:func:`~mtpjax.active.reference.relax_atoms`,
:func:`~mtpjax.active.reference.md_atoms`).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass, field

import threading

from mtpjax.active.reference import LabelError, ReferenceNotAvailable, check_result, label_atoms
from mtpjax.errors import MTPJaxError

__all__ = ["ProcessExecutor", "SubmititExecutor", "InlineExecutor", "Job", "dispatch", "make_executor"]


# ------------------------------------------------------------------ executors
def _child(conn, fn, args, threads=None):
    if threads:  # before the reference code loads its OpenMP/BLAS runtime
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:  # noqa: BLE001
        conn.send(("err", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


class _ProcHandle:
    def __init__(self, ctx, fn, args, threads=None):
        self._recv, send = ctx.Pipe(duplex=False)
        self._p = ctx.Process(target=_child, args=(send, fn, args, threads), daemon=True)
        self._p.start()
        send.close()
        self._res = None

    def _poll(self):
        if self._res is None and self._recv.poll():
            try:
                self._res = self._recv.recv()
            except EOFError:
                self._res = ("err", "worker exited without a result")
        if self._res is None and not self._p.is_alive() and not self._recv.poll():
            self._res = ("err", f"worker died (exit code {self._p.exitcode})")
        return self._res

    def done(self) -> bool:
        return self._poll() is not None

    def result(self):
        while self._poll() is None:
            time.sleep(0.05)
        self._p.join(timeout=5)
        kind, val = self._res
        if kind == "err":
            raise LabelError(val)
        return val

    def cancel(self):
        if self._p.is_alive():
            self._p.kill()
            self._p.join(timeout=5)
        self._res = self._res or ("err", "cancelled")


class ProcessExecutor:
    """Each job in a fresh spawned process (killable; JAX-safe).

    Each worker gets ``threads`` OpenMP/BLAS threads (default: the CPU
    count divided by ``max_workers``, so that parallel labels do not
    oversubscribe the cores — tblite is 2–4× slower when they do); variables
    already set in the environment win.
    """

    def __init__(self, max_workers: int = 1, threads: int | None = None):
        self.max_workers = max(1, int(max_workers))
        self._ctx = mp.get_context("spawn")
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.max_workers)

    def submit(self, fn, *args):
        return _ProcHandle(self._ctx, fn, args, self.threads)


class _InlineHandle:
    def __init__(self, fn, args):
        self._res = None

        def target():
            try:
                res = ("ok", fn(*args))
            except Exception as e:  # noqa: BLE001
                res = ("err", f"{type(e).__name__}: {e}")
            if self._res is None:  # not cancelled meanwhile
                self._res = res

        self._t = threading.Thread(target=target, daemon=True)
        self._t.start()

    def done(self):
        return self._res is not None

    def result(self):
        self._t.join()
        if self._res[0] == "err":
            raise LabelError(self._res[1])
        return self._res[1]

    def cancel(self):
        self._res = self._res or ("err", "cancelled")  # the thread is abandoned; its result is ignored


class InlineExecutor:
    """Run each job in a thread of this process (timeouts abandon the thread; see the module docstring)."""

    max_workers = 1

    def submit(self, fn, *args):
        return _InlineHandle(fn, args)


class _SubmititHandle:
    def __init__(self, job):
        self._job = job

    def done(self):
        return self._job.done()

    def result(self):
        try:
            return self._job.result()
        except Exception as e:  # noqa: BLE001 - submitit wraps the remote error
            raise LabelError(f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}") from None

    def cancel(self):
        try:
            self._job.cancel(check=False)
        except Exception:  # noqa: BLE001
            pass


class SubmititExecutor:
    """Jobs through ``submitit`` (``cluster=None`` auto → SLURM if present;
    ``"local"`` runs local subprocesses; ``parameters`` e.g.
    ``{"timeout_min": 60, "slurm_partition": "cpu", "cpus_per_task": 8}``)."""

    def __init__(self, folder, cluster: str | None = None, max_workers: int = 4, parameters: dict | None = None):
        try:
            import submitit
        except ImportError:
            raise ReferenceNotAvailable("executor 'submitit' needs: pip install submitit") from None
        self.max_workers = max(1, int(max_workers))
        self._ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        if parameters:
            self._ex.update_parameters(**parameters)

    def submit(self, fn, *args):
        return _SubmititHandle(self._ex.submit(fn, *args))


def make_executor(kind: str = "process", folder=None, max_workers: int = 1, parameters: dict | None = None):
    """``"process"`` | ``"submitit"`` (SLURM) | ``"submitit-local"`` | ``"inline"``."""
    if kind == "process":
        return ProcessExecutor(max_workers)
    if kind == "inline":
        return InlineExecutor()
    if kind in ("submitit", "submitit-local"):
        return SubmititExecutor(folder or "submitit_jobs", "local" if kind == "submitit-local" else None,
                                max_workers, parameters)

    raise MTPJaxError(f"labels.executor = {kind!r} (allowed: process, submitit, submitit-local, inline)")


# ------------------------------------------------------------------ dispatch
@dataclass
class Job:
    """One labelling job: ``key`` (unique, e.g. 'it002/lps0/run1/f0153'),
    ``payload`` (atoms, see :func:`~mtpjax.active.reference.atoms_payload`),
    ``meta`` (provenance), status, attempts, errors, wall (s)."""

    key: str
    payload: dict
    meta: dict = field(default_factory=dict)
    status: str = "pending"
    attempts: int = 0
    errors: list = field(default_factory=list)
    wall: float = 0.0


def dispatch(
    jobs,
    spec: dict,
    executor=None,
    retries: int = 2,
    timeout: float | None = None,
    backoff: float = 1.0,
    on_done=None,
    on_failed=None,
    workdir_of=None,
    poll: float = 0.05,
    min_wall: float = 0.0,
    fn=label_atoms,
):
    """Label every job; return the list of jobs (status 'done' or 'failed').

    ``spec`` is the reference-calculator spec; ``retries`` extra attempts per
    job; ``timeout`` seconds of wall per attempt (the attempt is killed);
    ``backoff`` s × 2^(attempt−1) before a retry; ``on_done(job, label)`` and
    ``on_failed(job)`` are called as results arrive; ``workdir_of(job)`` gives
    a per-job directory (VASP); ``min_wall``: an attempt that returns faster
    than this is treated as a silent no-op and fails; ``fn(spec, payload, workdir)`` the job body (a
    picklable module-level function or ``functools.partial`` of one: :func:`label_atoms` by default).
    """
    executor = executor or ProcessExecutor(1)
    queue = list(jobs)
    ready_at = {j.key: 0.0 for j in queue}
    running: dict = {}
    done: list = []
    while queue or running:
        now = time.monotonic()
        # start jobs
        while queue and len(running) < executor.max_workers:
            k = next((i for i, j in enumerate(queue) if ready_at[j.key] <= now), None)
            if k is None:
                break
            job = queue.pop(k)
            job.status = "running"
            job.attempts += 1
            wd = workdir_of(job) if workdir_of else None
            h = executor.submit(fn, spec, job.payload, wd)
            running[job.key] = (job, h, time.monotonic())
        # collect
        for key in list(running):
            job, h, t0 = running[key]
            err = None
            if h.done():
                try:
                    lab = check_result(h.result(), len(job.payload["numbers"]), str(spec.get("kind")))
                    job.wall += time.monotonic() - t0
                    if min_wall and lab.wall < min_wall:
                        raise LabelError(f"finished in {lab.wall:.3g} s < min_wall {min_wall} s (silent no-op?)")
                except LabelError as e:
                    err = str(e)
                except Exception as e:  # noqa: BLE001
                    err = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=2)}"
                else:
                    job.status = "done"
                    del running[key]
                    done.append(job)
                    if on_done:
                        on_done(job, lab)
                    continue
            elif timeout is not None and time.monotonic() - t0 > timeout:
                h.cancel()
                job.wall += time.monotonic() - t0
                err = f"timeout after {timeout:g} s"
            if err is None:
                continue
            del running[key]
            job.errors.append(err)
            if job.attempts <= retries:
                job.status = "pending"
                ready_at[key] = time.monotonic() + backoff * 2 ** (job.attempts - 1)
                queue.append(job)
            else:
                job.status = "failed"
                done.append(job)
                if on_failed:
                    on_failed(job)
        if running or queue:
            time.sleep(poll)
    return done
