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
