"""The package's structure (docs/architecture.md): layers whose imports point down, no import cycles, no private
name imported across modules, every package a regular package (found by setuptools), imports at module level.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mtpjax"

#: a subpackage (or top-level module) may import from its own layer or below, never from above
LAYERS = [
    {"units", "errors", "progress", "plotting"},
    {"io", "geometry"},
    {"analysis", "config", "potential", "builders"},
    {"train", "md"},
    {"active"},
    {"workflow"},
    {"cli", "__main__"},
]
#: optional dependencies: imported inside the function that needs them
OPTIONAL = ("matplotlib", "tblite", "submitit", "pymatgen", "motep", "MDAnalysis", "znh5md", "ovito", "tomli",
            "tomllib", "jax_md")


def _modules():
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), f, ast.parse(f.read_text())


def _imports(tree):
    """(module, names, node) of every ``from mtpjax… import …``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mtpjax":
            yield node.module, [a.name for a in node.names], node
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "mtpjax":
                    yield a.name, [], node


def _layer(name: str) -> int:
    part = name.split(".")[1] if "." in name else ""
    for k, layer in enumerate(LAYERS):
        if part in layer:
            return k
    return -1  # the package root (mtpjax/__init__.py: __version__)


def test_every_package_is_found_by_setuptools():
    dirs = {".".join(p.relative_to(ROOT).parts) for p in PKG.rglob("*") if p.is_dir() and any(p.glob("*.py"))}
    dirs.add("mtpjax")
    assert set(find_packages(str(ROOT), include=["mtpjax*"])) == dirs


def test_imports_point_down_the_layers():
    bad = []
    for mod, f, tree in _modules():
        for target, names, node in _imports(tree):
            if _layer(target) > _layer(mod) >= 0:
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: {mod} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    mods = {m for m, _, _ in _modules()}
    graph = defaultdict(set)
    for mod, _, tree in _modules():
        for target, names, _ in _imports(tree):
            for t in [f"{target}.{n}" for n in names if f"{target}.{n}" in mods] or [target]:
                if t in mods and t != mod and not mod.startswith(t + "."):
                    graph[mod].add(t)
    seen, stack, on, cycles = {}, [], set(), []

    def visit(v, path):
        if v in on:
            cycles.append(path[path.index(v):] + [v])
            return
        if v in seen:
            return
        seen[v] = True
        on.add(v)
        for w in sorted(graph[v]):
            visit(w, path + [w])
        on.discard(v)

    for m in sorted(mods):
        visit(m, [m])
    assert not cycles, cycles[:3]


def test_no_private_name_is_imported_across_modules():
    bad = [f"{f.relative_to(ROOT)}:{node.lineno}: {target}.{n}"
           for mod, f, tree in _modules() for target, names, node in _imports(tree)
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


def test_imports_inside_functions_are_optional_dependencies_only():
    bad = []
    for mod, f, tree in _modules():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    name = node.module or ""
                elif isinstance(node, ast.Import):
                    name = node.names[0].name
                else:
                    continue
                if not name.split(".")[0] in OPTIONAL:
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "\n".join(bad)


def test_functions_read_as_their_steps():
    """No function is longer than 90 lines (docstring included)."""
    long = [f"{f.relative_to(ROOT)}:{fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
            for _, f, tree in _modules() for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.end_lineno - fn.lineno + 1 > 90]
    assert not long, "\n".join(long)
