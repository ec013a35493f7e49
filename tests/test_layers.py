"""The package's layering: lower layers never import upper ones, and no import cycles.

Read from the source with `ast`, so the test needs no import of its own. Imports under
`if TYPE_CHECKING:` are for annotations only and are the one kind of cycle allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "pixelport"
# Layers that know no HTTP request and no worker supervisor (docs/architecture.md).
LOWER = ("pixelport.transform", "pixelport.origins", "pixelport.cache", "pixelport.security",
         "pixelport.video",
         "pixelport.place", "pixelport.errors", "pixelport.config", "pixelport.asgi",
         "pixelport.http_fields", "pixelport.lru", "pixelport.threadnames")
UPPER = ("pixelport.delivery", "pixelport.produce", "pixelport.api", "pixelport.dashboard",
         "pixelport.app",
         "pixelport.cli", "pixelport.server", "pixelport.workers", "pixelport.siblings")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The pixelport modules `path` imports at run time (anywhere but under TYPE_CHECKING)."""
    found: set[str] = set()
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name in modules}


def graph() -> dict[str, set[str]]:
    """module -> the pixelport modules it imports at run time."""
    paths = sorted(ROOT.rglob("*.py"))
    modules = {_module(p) for p in paths}
    return {_module(p): _imports(p, modules) - {_module(p)} for p in paths}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_lower_layers_never_import_upper_ones() -> None:
    wrong = sorted((module, target) for module, targets in graph().items()
                   if _within(module, LOWER) for target in targets if _within(target, UPPER))
    assert wrong == []


def cycles_in(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first walk, as the cycle it closes."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                walk(target)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module)
    return cycles


def test_no_import_cycles() -> None:
    assert cycles_in(graph()) == []


def test_the_checker_sees_cycles_and_type_checking(tmp_path: Path) -> None:
    # The test would pass vacuously if the parser missed imports: check it on a known case.
    source = ROOT / "origins" / "base.py"
    imported = _imports(source, {"pixelport.errors", "pixelport.config"})
    assert "pixelport.errors" in imported and "pixelport.config" not in imported
    assert cycles_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
