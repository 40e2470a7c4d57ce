import os
from pathlib import Path

import pytest

import mtpjax  # noqa: F401  (float64 on)

SHARED = Path(os.environ.get("MTPJAX_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
REF = SHARED / "data" / "mlip_ref"
TEMPLATES = SHARED / "data" / "mlip_templates"


def need_shared():
    if not REF.is_dir():
        pytest.skip(f"reference data not found at {REF} (set MTPJAX_SHARED)")


@pytest.fixture
def ref():
    need_shared()
    return REF


@pytest.fixture
def templates():
    need_shared()
    return TEMPLATES


def pytest_collection_modifyitems(config, items):
    """Tests marked ``first`` (``first(0)`` before ``first``) run first: with pytest-xdist they then overlap the many short tests
    instead of running alone at the end (the suite's wall time on 2 cores)."""
    def key(it):
        m = it.get_closest_marker("first")
        return (m is None, m.args[0] if m is not None and m.args else 1)

    items.sort(key=key)
