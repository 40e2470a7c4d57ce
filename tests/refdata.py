"""The reference data of the tests and benchmarks (``tests/data``), ready to read.

``tests/data`` stores MLIP's reference files as MLIP wrote them, the large ones xz-compressed (``NAME.xz``;
see ``tests/data/README.md``). :func:`unpacked` gives a folder with every file in its original form: the
tree is unpacked once into a cache folder named after a digest of ``tests/data`` (so it is refreshed when
the data change) and reused by later runs and by the other pytest-xdist workers. Standard library only, so
that the benchmarks can load it too.

    from refdata import REF, TEMPLATES      # REF / "inputs/train.cfg", TEMPLATES / "28.almtp"
"""
from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def unpacked(root: Path = DATA, cache: Path | None = None) -> Path:
    """``root`` with every ``NAME.xz`` replaced by ``NAME`` (decompressed), as a folder in ``cache``.

    ``cache`` defaults to ``$MTPJAX_TESTDATA_CACHE`` or the system's temporary folder. The folder is written
    under a temporary name and renamed into place, so concurrent callers never see a half-written tree."""
    cache = Path(cache or os.environ.get("MTPJAX_TESTDATA_CACHE") or tempfile.gettempdir())
    target = cache / f"mtpjax-testdata-{_digest(root)}"
    if (target / ".complete").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=cache))
    try:
        for src in sorted(root.rglob("*")):
            rel = src.relative_to(root)
            if not src.is_file() or len(rel.parts) == 1:  # the README and update script of tests/data
                continue
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".xz":
                dst.with_suffix("").write_bytes(lzma.decompress(src.read_bytes()))
            else:
                shutil.copyfile(src, dst)
        (tmp / ".complete").write_text("ok\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process got there first: theirs is complete
            if not (target / ".complete").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


ROOT = unpacked()
REF = ROOT / "mlip_ref"               # MLIP-2/MLIP-3 inputs, potentials and outputs
TEMPLATES = ROOT / "mlip_templates"   # MLIP-3's level templates (BSD-2-Clause)
RANKDEF = ROOT / "mlip3_rankdef"     # MLIP-3 nbh states built from rank-deficient training sets
