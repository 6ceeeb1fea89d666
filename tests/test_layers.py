"""The package reads as its flow: stage folders that stand on each other, no import circles,
only public names across modules (house style 12). Every import counts, including those inside
functions: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pipeline"

# Lowest first: a module may import from its own stage or a lower one, never a higher one.
# `base` is the vocabulary every stage shares (pipeline/models.py, pipeline/timeutil.py). The
# store is the foundation the writing and reading stages stand on (it knows nothing of events'
# sources); data flows sources → ingest → store, and the store is read by query and up.
STAGES = ("base", "store", "sources", "ingest", "gen", "query", "report", "publish", "schedule",
          "cli")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def stage_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and parts[1] in STAGES):
        return parts[1]
    return "base"  # pipeline, pipeline.models, pipeline.timeutil


def imports_of(path: Path, module: str, known: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the file, resolved
    to modules of `known` (an imported name that is a module counts as that module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    out.append((alias.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    out.append((sub, None, node.lineno))
                elif base in known:
                    out.append((base, alias.name, node.lineno))
    return out


def graph() -> dict[str, list[tuple[str, str | None, int]]]:
    known = package_modules()
    return {m: imports_of(p, m, known) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def edges_without_packages(g) -> dict[str, set[str]]:
    # importing `pipeline.x.y` runs `pipeline/x/__init__.py` first; that implicit step is not an
    # edge of the module that wrote the import (a package's own re-exports are)
    return {m: {t for t, _, _ in deps if t != m} for m, deps in g.items()}


def test_the_stage_folders_exist_and_no_stray_top_level_modules():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert top == ["models", "timeutil"], "top-level modules besides the shared vocabulary"
    folders = sorted(p.name for p in PACKAGE.iterdir()
                     if p.is_dir() and (p / "__init__.py").exists())
    assert folders == sorted(s for s in STAGES if s != "base")


def test_every_stage_folder_says_what_it_holds():
    for stage in STAGES[1:]:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
        assert doc and len(doc.strip()) > 40, f"pipeline/{stage}/__init__.py needs a docstring"


def test_no_import_cycles():
    found = cycles(edges_without_packages(graph()))
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_upward_imports():
    bad = []
    for module, deps in graph().items():
        rank = STAGES.index(stage_of(module))
        for target, _, line in deps:
            if STAGES.index(stage_of(target)) > rank:
                bad.append(f"{module}:{line} imports {target} ({stage_of(module)} < "
                           f"{stage_of(target)})")
    assert bad == [], "lower stages import higher ones:\n" + "\n".join(bad)


def _private_uses(path: Path, module: str, known: dict[str, Path]) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for target, name, line in imports_of(path, module, known):
        if target != module and name and name.startswith("_") and not name.startswith("__"):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}.{name}")
    # `import pipeline.x as m` / `from pipeline import m`, then `m._private`
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known:
                    aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and not node.level:
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__") and aliases[node.value.id] != module):
            bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses "
                       f"{aliases[node.value.id]}.{node.attr}")
    return bad


@pytest.mark.parametrize("folder", ["pipeline", "dags", "bench", "notebooks", "scripts", "tests"])
def test_only_public_names_cross_modules(folder):
    known = package_modules()
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "reference" in path.parts:  # the frozen renderer oracle is a copy, not a user
            continue
        bad += _private_uses(path, module_name(path), known)
    assert bad == [], "private names used from another module:\n" + "\n".join(bad)


def test_the_checker_finds_a_cycle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert stage_of("pipeline.store.layout") == "store"
    assert stage_of("pipeline.models") == "base"
    assert STAGES.index(stage_of("pipeline.cli.common")) > STAGES.index("query")
