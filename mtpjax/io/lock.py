"""One writer per work folder: an exclusive lock (``filelock``) held for the whole run.

``mtpjax md``, ``learn`` and ``run`` (and their Python entry points) take the lock of their output folder
before they open or write anything in it; a second process that tries the same folder is refused at once
with :class:`~mtpjax.errors.WorkdirBusy`, naming the folder. The lock is an OS lock (``flock``/``fcntl`` on
POSIX, ``msvcrt`` on Windows) on the file ``.mtpjax.lock`` in the folder: the OS releases it when the holder
exits, also after ``kill -9``, so a killed run never leaves a stale lock behind (the file itself stays; it is
empty and harmless). Readers take no lock: every store in a work folder can be read while it is written (see
:mod:`mtpjax.io.store` and :mod:`mtpjax.io.h5md`).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from mtpjax.errors import WorkdirBusy

__all__ = ["LOCK_NAME", "workdir_lock"]

LOCK_NAME = ".mtpjax.lock"


@contextmanager
def workdir_lock(folder, what: str = "run"):
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    Raises :class:`WorkdirBusy` at once if another process (or another lock in this one) holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    lock = FileLock(str(path), is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise WorkdirBusy(f"{folder}: another mtpjax process is writing in this folder (lock {path} is held); "
                          f"wait for it to finish, or give another {what} folder") from None
    try:
        yield path
    finally:
        lock.release()
