"""Exceptions raised for bad user input.

Every error that is caused by a file the user gave us names the file, the line
(1-based) and the field, so that the message alone is enough to fix the input.
"""
from __future__ import annotations


class MTPJaxError(Exception):
    """Base class of all mtpjax errors."""


class FileFormatError(MTPJaxError, ValueError):
    """A malformed input file.

    Attributes: ``path`` (str or None), ``line`` (1-based int or None),
    ``field`` (str or None) and the plain ``reason``.
    """

    def __init__(self, reason: str, path=None, line: int | None = None, field: str | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        loc = ":".join(where[:1]) + (f", {where[1]}" if len(where) > 1 else "")
        fld = f" [field '{field}']" if field else ""
        super().__init__(f"{loc}{fld}: {reason}" if loc else f"{fld.strip()} {reason}".strip())


class ConfigurationError(MTPJaxError, ValueError):
    """A physically or logically invalid configuration (overlapping atoms,
    unknown species, inconsistent array sizes...)."""


class NeighborListOverflow(MTPJaxError, RuntimeError):
    """A fixed-capacity neighbour list was too small; re-allocate and redo."""


class WorkdirBusy(MTPJaxError, RuntimeError):
    """Another process is writing in the same work folder (its lock is held)."""
