"""The code's shape: no import circles, and no private name used across modules.

Read from the source with `ast` (nothing is imported), so a violation names the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Import name -> source folder (pyproject's package-dir).
FOLDERS = {"decc": "decc", "decc.dsl": "dsl", "decc.compiler": "compiler", "decc.grammars": "grammars",
           "decc.runtime": "runtime"}  # fmt: skip


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    out: dict[str, Path] = {}
    for pkg, folder in FOLDERS.items():
        base = ROOT / folder
        for path in base.rglob("*.py"):
            if pkg == "decc" and path.parent != base:
                continue  # decc/ holds the API only; its subpackages live in the other folders
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = path
    return out


MODULES = modules()


def imports(name: str, path: Path, top_level_only: bool) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for each `import`/`from` of a decc module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("decc"):
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                found += [(m, [], node.lineno) for m in submodules]
                names = [n for n in names if f"{target}.{n}" not in MODULES]
            if names:
                found.append((target, names, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("decc")]
    return found


def private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def test_no_private_name_is_imported_from_another_module() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {', '.join(filter(private, names))} from {target}"
        for name, path in MODULES.items()
        for target, names, line in imports(name, path, top_level_only=False)
        if target in MODULES and target != name and any(private(n) for n in names)
    ]
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_module_imports_have_no_circle() -> None:
    """Top-level imports only: a function-local import is how a late binding is written on purpose."""
    graph = {
        name: {t for t, _, _ in imports(name, path, top_level_only=True) if t in MODULES and t != name}
        for name, path in MODULES.items()
        if not path.name == "__init__.py"
    }
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_grammar_subpackages_are_layered() -> None:
    """grammars/ is folders by concern; a folder imports only itself, the top-level helpers and the folders
    below it (any import, function-local ones included)."""
    folders = sorted(p.name for p in (ROOT / "grammars").iterdir() if (p / "__init__.py").exists())
    if not folders:
        pytest.skip("grammars/ has no subfolders")
    graph: dict[str, set[str]] = {f: set() for f in folders}
    for name, path in MODULES.items():
        if not name.startswith("decc.grammars.") or path.parent.name not in graph:
            continue
        for target, _, _ in imports(name, path, top_level_only=False):
            parts = target.split(".")
            if len(parts) > 2 and parts[:2] == ["decc", "grammars"] and parts[2] in graph:
                if parts[2] != path.parent.name:
                    graph[path.parent.name].add(parts[2])
    cycle = find_cycle(graph)
    assert cycle is None, "grammars/ folders import each other in a circle: " + " -> ".join(cycle or [])


def runtime_compiler_imports() -> list[str]:
    """Each import of a compiler module other than decc.compiler.plan by a runtime module (any import)."""
    return [
        f"{path.relative_to(ROOT)}:{line}: {target}"
        for name, path in MODULES.items()
        if name.startswith("decc.runtime.")
        for target, _, line in imports(name, path, top_level_only=False)
        if target.startswith("decc.compiler") and target != "decc.compiler.plan"
    ]


def test_runtime_reads_only_the_plan_of_the_compiler() -> None:
    """The plan is the runtime's only contract: runtime/ never imports the IR (or any other compiler
    module), so the IR can change without the runtime noticing."""
    bad = runtime_compiler_imports()
    assert not bad, "runtime/ imports compiler modules other than the plan:\n" + "\n".join(bad)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a path that ends where it starts, or None."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if color.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in color and (found := visit(m)):
                return found
        stack.pop()
        color[n] = 2
        return None

    for n in sorted(graph):
        if n not in color and (found := visit(n)):
            return found
    return None


def test_the_checks_see_a_circle_and_a_private_import() -> None:
    """The oracle itself: a known circle is found, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
