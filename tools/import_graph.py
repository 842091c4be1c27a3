"""Prove the import graph of pinworks' own packages is the layered DAG the architecture promises.

    python tools/import_graph.py [--root DIR]      (`make check-imports`, part of `make lint`)

The first-party packages are every `src/<package>` under `libs/*` and `services/*`. Each has a
layer, and a layer may import only the layers listed for it in ALLOWED:

    contracts (pinworks_contracts) <- runtime (pinworks_common) <- services <- cli (pinworks_cli)
    devtools (pinworks_devtools: embedded servers for development) <- cli and tests only

so no package under `libs/` imports a service, a service never imports another service, and
nothing but the CLI (and tests, which are not scanned) imports devtools. A package under
`libs/` that LIBRARY_LAYERS does not name is an error until it is given a layer.

Which imports count (parsed with `ast`, nothing is imported or executed):
- layer rules: every import statement anywhere in a module: at module level, inside functions
  (lazy imports) and under `if TYPE_CHECKING:` (a type-only dependency is still a dependency);
- cycles: every import that runs, i.e. module level and inside functions, but not those under
  `if TYPE_CHECKING:`. A node is one module; `from a.b import c` is an edge to the module
  `a.b.c` when it exists, else to `a.b`. Cycles are searched across all first-party packages
  together, so a cycle through two packages is found too.

An import of a first-party module that does not exist is reported too. Prints every violation
and one concrete path per cycle (per strongly connected component); exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONTRACTS, RUNTIME, SERVICE, CLI, DEVTOOLS = "contracts", "runtime", "service", "cli", "devtools"
SERVICE_TOOLING = "service tooling"
LIBRARY_LAYERS = {
    "pinworks_contracts": CONTRACTS,
    "pinworks_common": RUNTIME,
    "pinworks_devtools": DEVTOOLS,
    "pinworks_cli": CLI,
}
"""The layer of each package under libs/; every `services/<name>/src` package is a service, and
every `services/<name>/<part>/src` package is that service's own tooling (e.g. the classifier's
training), which may import its service but is never imported by it."""
ALLOWED = {
    CONTRACTS: {CONTRACTS},
    RUNTIME: {CONTRACTS, RUNTIME},
    SERVICE: {CONTRACTS, RUNTIME},  # and itself: a service may import its own modules
    SERVICE_TOOLING: {CONTRACTS, RUNTIME},  # and the service it belongs to
    DEVTOOLS: {CONTRACTS, RUNTIME, DEVTOOLS},
    CLI: {CONTRACTS, RUNTIME, DEVTOOLS, CLI},
}


@dataclass(frozen=True)
class Import:
    """One imported first-party module, where it is imported, and whether only for typing.

    `name` is the module the statement asks for; when no first-party module has that name (a
    module moved or deleted), `target` is the package that would have held it."""

    importer: str
    target: str
    path: Path
    line: int
    type_only: bool
    name: str


def find_packages(root: Path) -> dict[str, Path]:
    """Top-level package name -> its directory, for every src/<package> under libs/ and services/
    (a service's tooling one level deeper: services/<name>/<part>/src/<package>)."""
    packages = {}
    for pattern in ("libs/*/src/*/__init__.py", "services/*/src/*/__init__.py",
                    "services/*/*/src/*/__init__.py"):
        for init in sorted(root.glob(pattern)):
            packages[init.parent.name] = init.parent
    return packages


def layer_of(package: str, directory: Path) -> str | None:
    if directory.parents[2].name == "services":
        return SERVICE
    if directory.parents[3].name == "services":
        return SERVICE_TOOLING
    return LIBRARY_LAYERS.get(package)


def owning_service(directory: Path) -> str | None:
    """The `services/<name>` a service or service-tooling package belongs to."""
    for parent in directory.parents:
        if parent.parent.name == "services":
            return parent.name
    return None


def module_names(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of every first-party package."""
    modules = {}
    for directory in packages.values():
        for path in sorted(directory.rglob("*.py")):
            parts = path.relative_to(directory.parent).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement under ``tree`` and whether it sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _statements(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _statements(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from _statements(node, type_only)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _deepest(name: str, modules: dict[str, Path]) -> str | None:
    """The longest first-party module that ``name`` is or lies in (None: not first-party)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node, type_only in _statements(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            assert isinstance(node, ast.ImportFrom)
            source = _resolve(module, is_package, node)
            names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                     for alias in node.names]
        for name in dict.fromkeys(names):
            target = _deepest(name, modules)
            if target is not None and target != module:
                yield Import(module, target, path, node.lineno, type_only, name)


def layer_violations(found: list[Import], packages: dict[str, Path]) -> list[str]:
    problems = []
    for package, directory in sorted(packages.items()):
        if layer_of(package, directory) is None:
            problems.append(f"{directory}: package {package} has no layer; add it to "
                            "LIBRARY_LAYERS in tools/import_graph.py")
    for edge in found:
        source, target = edge.importer.split(".")[0], edge.target.split(".")[0]
        if source == target:
            continue
        source_layer = layer_of(source, packages[source])
        target_layer = layer_of(target, packages[target])
        if source_layer is None or target_layer is None:
            continue
        if (source_layer, target_layer) == (SERVICE_TOOLING, SERVICE) and owning_service(
                packages[source]) == owning_service(packages[target]):
            continue
        if target_layer not in ALLOWED[source_layer]:
            kind = "type-only import" if edge.type_only else "import"
            problems.append(f"{edge.path}:{edge.line}: {edge.importer} ({source_layer}) {kind}s "
                            f"{edge.target} ({target_layer}); {source_layer} may import only "
                            f"{', '.join(sorted(ALLOWED[source_layer]))}")
    return problems


def missing_modules(found: list[Import], modules: dict[str, Path]) -> list[str]:
    """Imports of a first-party module that does not exist (mypy, with ignore_missing_imports,
    does not say so; a lazy one fails only when its function runs)."""
    return [f"{edge.path}:{edge.line}: {edge.importer} imports {edge.name}, which is not a module "
            f"of {edge.name.split('.')[0]}" for edge in found if edge.name not in modules]


def cycles(found: list[Import]) -> list[list[str]]:
    """One cycle (a path that returns to its start) per strongly connected component."""
    graph: dict[str, set[str]] = {}
    for edge in found:
        if not edge.type_only:
            graph.setdefault(edge.importer, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_within(component, graph) for component in components]


def _path_within(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module, staying inside the component."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph.get(node, set()) & component):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle")


def check(root: Path) -> list[str]:
    """Every problem found under ``root``, one line each (empty: the graph is a layered DAG)."""
    packages = find_packages(root)
    modules = module_names(packages)
    found = [edge for module, path in modules.items() for edge in imports_of(module, path, modules)]
    problems = layer_violations(found, packages) + missing_modules(found, modules)
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(found)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="The repository root (default: this checkout).")
    args = parser.parse_args(argv)
    problems = check(args.root)
    for problem in problems:
        print(problem)
    packages = find_packages(args.root)
    if not problems:
        print(f"import graph ok: {len(packages)} packages, layered, no cycle")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
