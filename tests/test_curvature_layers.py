"""Module structure: no import cycle inside rmtlr.curvature, no private name across modules.

Both are read from the source with ``ast`` (function-level imports included), so a cycle
hidden inside a function body counts, and nothing is imported to find out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rmtlr"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """Absolute module of a ``from X import ...`` statement (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, root: Path = ROOT) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import in the file."""
    current, pkg = module_name(path, root), path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = resolve(node, current, pkg)
            out += [(mod, a.name, node.lineno) for a in node.names]
    return out


def rmtlr_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def curvature_graph() -> dict[str, set[str]]:
    mods = {m: p for m, p in rmtlr_modules().items() if m.startswith("rmtlr.curvature")}
    graph: dict[str, set[str]] = {}
    for m, p in mods.items():
        if m == "rmtlr.curvature":
            continue  # the package re-exports its modules: not a layer
        deps = set()
        for mod, name, _ in imports(p):
            for target in (mod, f"{mod}.{name}" if name else None):
                if target in mods and target not in (m, "rmtlr.curvature"):
                    deps.add(target)
        graph[m] = deps
    return graph


def test_find_cycle_detects_a_cycle():
    """The checker itself: a two-module cycle and a longer one are found, a DAG is not."""
    assert find_cycle({"a": {"b"}, "b": {"a"}}) in (["a", "b", "a"], ["b", "a", "b"])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) is not None
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_curvature():
    graph = curvature_graph()
    assert {"rmtlr.curvature.base", "rmtlr.curvature.operators",
            "rmtlr.curvature.hvp"} <= set(graph)
    # The package importing itself counts: a module may not reach into its own package.
    assert find_cycle(graph) is None, find_cycle(graph)
    assert "rmtlr.curvature.operators" not in graph["rmtlr.curvature.hvp"]


def private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``from rmtlr.x import _y`` and ``x._y`` through an imported rmtlr module."""
    modules = set(rmtlr_modules(root))
    bad = []
    aliases: dict[str, str] = {}
    current = module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for mod, name, line in imports(path, root):
        if not mod.startswith("rmtlr"):
            continue
        if name is None:
            continue
        target = f"{mod}.{name}"
        if target in modules:
            aliases[name] = target
        elif name.startswith("_") and mod != current:
            bad.append(f"{path.name}:{line} imports {name} from {mod}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rmtlr"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                and node.value.id in aliases and aliases[node.value.id] != current):
            bad.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return bad


@pytest.mark.parametrize("module", sorted(rmtlr_modules()))
def test_no_private_name_imported_across_modules(module):
    assert private_imports(rmtlr_modules()[module]) == []


def test_private_import_checker_finds_both_forms(tmp_path):
    """The checker itself, on a scratch package: both forms found, public names not."""
    pkg = tmp_path / "rmtlr"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("_x = 1\n")
    (pkg / "b.py").write_text("from rmtlr.a import _x\nfrom rmtlr import a\ny = a._x\n"
                              "from . import a as c\nz = c.__name__\n")
    found = private_imports(pkg / "b.py", pkg)
    assert found == ["b.py:1 imports _x from rmtlr.a", "b.py:3 uses a._x"]
    (pkg / "a.py").write_text("_x = 1\ny = _x\n")  # a module's own private names are fine
    assert private_imports(pkg / "a.py", pkg) == []
