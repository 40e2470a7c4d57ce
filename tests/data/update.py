"""Refresh ``tests/data`` from the project's MLIP reference folder (maintainers only; tests never run this).

    python tests/data/update.py SRC     # SRC holds mlip_ref/ and mlip_templates/ (the project's MLIP data)

Copies every file of ``SRC/mlip_ref`` and ``SRC/mlip_templates`` into ``tests/data`` unchanged, except that
files larger than ``--compress-above`` bytes are stored xz-compressed as ``NAME.xz`` (MLIP's binary
active-learning states and the large templates), except MLIP-2's training set (``mlip_ref/training``), which
``examples/train_mlip_ref.toml`` reads as it is. ``tests/refdata.py`` unpacks them for the tests.
"""
from __future__ import annotations

import argparse
import lzma
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
FOLDERS = ("mlip_ref", "mlip_templates")
PLAIN = ("mlip_ref/training/",)  # read by an example: never compressed


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, help="folder holding mlip_ref/ and mlip_templates/")
    p.add_argument("--compress-above", type=int, default=100_000, help="bytes (default 100000)")
    a = p.parse_args(argv)
    for folder in FOLDERS:
        root = a.src / folder
        if not root.is_dir():
            raise SystemExit(f"{root}: not a folder")
        dst_root = HERE / folder
        if dst_root.exists():
            shutil.rmtree(dst_root)
        for src in sorted(root.rglob("*")):
            if not src.is_file():
                continue
            dst = dst_root / src.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            data = src.read_bytes()
            rel = f"{folder}/{src.relative_to(root).as_posix()}"
            if len(data) > a.compress_above and not rel.startswith(PLAIN):
                dst.with_name(dst.name + ".xz").write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
            else:
                dst.write_bytes(data)
    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    print(f"tests/data: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
