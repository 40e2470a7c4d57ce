import pytest

import mtpjax  # noqa: F401  (float64 on)
from refdata import REF, TEMPLATES  # tests/data, unpacked (tests/refdata.py)


@pytest.fixture
def ref():
    """MLIP's reference inputs, potentials and outputs (``tests/data/mlip_ref``)."""
    return REF


@pytest.fixture
def templates():
    """MLIP-3's level templates (``tests/data/mlip_templates``, BSD-2-Clause)."""
    return TEMPLATES


def pytest_collection_modifyitems(config, items):
    """Tests marked ``first`` (``first(0)`` before ``first``) run first: with pytest-xdist they then overlap the many short tests
    instead of running alone at the end (the suite's wall time on 2 cores)."""
    def key(it):
        m = it.get_closest_marker("first")
        return (m is None, m.args[0] if m is not None and m.args else 1)

    items.sort(key=key)
