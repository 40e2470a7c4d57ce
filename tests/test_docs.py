"""The documentation: the mkdocs site builds without warnings, the README's examples run as printed, and the
repository points to nothing outside itself.

* ``test_mkdocs_build_strict``: ``mkdocs build --strict`` (API reference from the docstrings included);
* ``test_readme_python``: every ```` ```python ```` block of README.md, in order, in one fresh interpreter;
* ``test_docs_python``: the same for every page of ``docs/`` that has python blocks (one interpreter a page);
* ``test_readme_cli_tour``: every ```` ```bash ```` block of the README's "Command-line tour" section, each with
  ``bash -euo pipefail`` in its own scratch folder;
* ``test_no_outside_paths``: no tracked text file names the development machine's folders.

The README's examples are written to run from the repository root. Here they run in a scratch folder that holds
links to the repository's ``tests/`` and ``examples/`` folders, so that whatever they write stays out of the
checkout.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR_SECTION = "Command-line tour"
#: what the README's examples read from the repository
LINKED = ("tests", "examples")
FORBIDDEN = ("/work/", "../shared", "MTPJAX_SHARED")


def _fenced_blocks(text: str, lang: str) -> list[str]:
    """The bodies of the ```lang fenced blocks of ``text``, in order."""
    return [m.group(1) for m in re.finditer(rf"^```{lang}[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S)]


def _section(text: str, title: str) -> str:
    """The text of the ``## title`` section (up to the next ``## `` heading)."""
    m = re.search(rf"^## {re.escape(title)}[ \t]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def _tour_blocks() -> list[str]:
    return _fenced_blocks(_section(README.read_text(encoding="utf-8"), TOUR_SECTION), "bash")


def _scratch(tmp_path: Path) -> Path:
    """A folder that looks like the repository root to the README's examples."""
    work = tmp_path / "root"
    work.mkdir()
    for name in LINKED:
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    return work


def _env() -> dict:
    env = dict(os.environ)
    # the `mtpjax` script of the interpreter running the tests first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("MTPJAX_DEBUG", None)
    return env


def _run(cmd, cwd, timeout) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _report(p: subprocess.CompletedProcess) -> str:
    return f"exit status {p.returncode}\n--- stdout ---\n{p.stdout[-6000:]}\n--- stderr ---\n{p.stderr[-6000:]}"


# ------------------------------------------------------------------ the site
def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    p = _run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
              "--site-dir", str(tmp_path / "site")], ROOT, 300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, _report(p)
    assert "WARNING" not in out, out
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "potential" / "index.html").is_file()


# ------------------------------------------------------------------ the README
def test_readme_first_block_is_the_two_commands():
    """The first code block: the quick workflow run and the test run (CI runs the second)."""
    text = README.read_text(encoding="utf-8")
    first = re.search(r"^```(\w*)[ \t]*\n(.*?)^```", text, re.M | re.S)
    assert first and first.group(1) == "bash"
    lines = [ln for ln in first.group(2).splitlines() if ln.strip()]
    assert len(lines) == 2
    assert lines[0].startswith('pip install -e ".[xtb]" && mtpjax run examples/quick.toml')
    assert lines[1].startswith('pip install -e ".[test]" && python -m pytest -q -n 2')


def test_readme_python(tmp_path):
    """Every ```python block of README.md, top to bottom, in one fresh interpreter."""
    blocks = _fenced_blocks(README.read_text(encoding="utf-8"), "python")
    assert blocks, "README.md has no python block"
    script = tmp_path / "readme_blocks.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    p = _run([sys.executable, str(script)], _scratch(tmp_path), 600)
    assert p.returncode == 0, _report(p)


DOC_PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if "```python" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_docs_python(tmp_path, page):
    """Every ```python block of a docs page, top to bottom, in one fresh interpreter (run from the root)."""
    script = tmp_path / "doc_blocks.py"
    script.write_text("\n\n".join(_fenced_blocks(page.read_text(encoding="utf-8"), "python")), encoding="utf-8")
    p = _run([sys.executable, str(script)], _scratch(tmp_path), 600)
    assert p.returncode == 0, _report(p)


@pytest.mark.parametrize("index", range(len(_tour_blocks())), ids=lambda k: f"block{k + 1}")
def test_readme_cli_tour(tmp_path, index):
    """One ```bash block of the README's command-line tour, as printed, from a copy of the repository root."""
    block = _tour_blocks()[index]
    work = _scratch(tmp_path)
    p = _run(["bash", "-euo", "pipefail", "-c", block], work, 600)
    assert p.returncode == 0, _report(p)
    for name in LINKED:  # the examples wrote into the scratch folder, not through the links
        assert (work / name).is_symlink()


def test_readme_cli_tour_exists():
    assert len(_tour_blocks()) >= 1, f"README.md's '{TOUR_SECTION}' section has no bash block"


# ------------------------------------------------------------------ self-contained repository
def _repository_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    p = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    if p.returncode != 0:
        pytest.skip(f"git ls-files failed: {p.stderr.decode(errors='replace').strip()}")
    names = {n for n in p.stdout.decode().split("\0") if n}
    # the documentation, also before it is committed
    names |= {str(f.relative_to(ROOT)) for f in (ROOT / "docs").rglob("*") if f.is_file()}
    names |= {"README.md", "mkdocs.yml"}
    return [ROOT / n for n in sorted(names)]


def test_no_outside_paths():
    """No tracked text file refers to the machine the project was developed on."""
    me = Path(__file__).resolve()
    hits = []
    for f in _repository_files():
        if f.resolve() == me or not f.is_file():
            continue
        data = f.read_bytes()
        if b"\0" in data[:8192]:  # binary (compressed data, images)
            continue
        text = data.decode("utf-8", errors="replace")
        for k, line in enumerate(text.splitlines(), 1):
            for s in FORBIDDEN:
                if s in line:
                    hits.append(f"{f.relative_to(ROOT)}:{k}: {s!r}: {line.strip()[:120]}")
    assert not hits, "references to folders outside the repository:\n" + "\n".join(hits)


def test_test_data_is_not_ignored_by_git():
    """No file under tests/data is hidden by a .gitignore pattern (``*_out/`` once hid MLIP's outputs, so a
    fresh clone lacked them)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    p = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "tests/data"],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout
