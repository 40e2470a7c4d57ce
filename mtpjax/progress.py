"""Progress of long commands: a bar on a terminal, a one-line summary with ETA in logs.

On a terminal (stderr is a TTY) :class:`Progress` draws a tqdm bar. Anywhere else (a redirected log, a batch
job, a notebook capturing output) it writes one line every ``every_s`` seconds through ``log`` — never the
carriage-return updates of a bar, which fill a log file with hundreds of partial lines::

    md: 12000/100000 steps (12.0 %), 3.41e+04 atom-steps/s, 4.1 ns/day, ETA 0:04:18
"""
from __future__ import annotations

import datetime
import sys
import time
from tqdm import tqdm


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0.0))))


class Progress:
    """``total`` units of work named ``unit`` (``desc`` in front). ``update(n, postfix="")`` after each piece.

    ``enabled=False`` shows nothing. ``log``: where summaries go when stderr is not a terminal (default
    ``print`` to stdout); ``every_s``: seconds between summaries; ``tty``: force (True) or forbid (False)
    the bar instead of deciding from stderr; ``eta``: the ETA's label ("ETA at most" where the work may end
    before ``total``, e.g. learning that stops when nothing extrapolates)."""

    def __init__(self, total: int, unit: str = "it", desc: str = "", enabled: bool = True, log=None,
                 every_s: float = 30.0, initial: int = 0, tty: bool | None = None, eta: str = "ETA"):
        self.total, self.unit, self.desc = int(total), unit, desc
        self.done = int(initial)
        self.enabled = bool(enabled)
        self.log = log or print
        self.every_s = float(every_s)
        self.t0 = self.t_last = time.perf_counter()
        self.done0 = self.done
        self.postfix = ""
        self.eta = eta
        self.bar = None
        if self.enabled and (sys.stderr.isatty() if tty is None else tty):
            self.bar = tqdm(total=self.total, initial=self.done, unit=unit, desc=desc or None, dynamic_ncols=True,
                            file=sys.stderr)

    def update(self, n: int, postfix: str = "") -> None:
        self.done += int(n)
        self.postfix = postfix or self.postfix
        if not self.enabled:
            return
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(int(n))
            return
        now = time.perf_counter()
        if now - self.t_last >= self.every_s:
            self.t_last = now
            self.log(self.line())

    def line(self) -> str:
        """The one-line summary: done/total (%), the caller's postfix, the ETA from the rate so far."""
        el = time.perf_counter() - self.t0
        rate = (self.done - self.done0) / el if el > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _eta((self.total - self.done) / rate) if rate > 0 else "?"
        parts = [f"{self.desc + ': ' if self.desc else ''}{self.done}/{self.total} {self.unit} ({pct:.1f} %)"]
        if self.postfix:
            parts.append(self.postfix)
        parts.append(f"{self.eta} {eta}")
        return ", ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
