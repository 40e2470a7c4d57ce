"""The one matplotlib set-up: a non-interactive backend, a clear message when matplotlib is missing, and
figures saved with their folder created.

matplotlib is an optional dependency (``pip install 'mtpjax[plot]'``); it is imported only when a plot is made.
"""
from __future__ import annotations

from pathlib import Path

from mtpjax.errors import ConfigurationError


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    try:
        import matplotlib  # optional dependency: imported when a plot is made

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigurationError("plotting needs matplotlib: pip install 'mtpjax[plot]'") from e
    return plt


def save(fig, path, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (PNG), creating its folder, close it and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
