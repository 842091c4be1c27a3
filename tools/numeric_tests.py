"""A pytest plugin that keeps only the tests whose code can reach numpy or onnxruntime.

    PYTHONPATH=tools pytest -p numeric_tests --numeric-only libs services tools

`make test-unit-other-blas` reruns the unit tier on another processor's float32 kernels
(OPENBLAS_CORETYPE, tools/other_blas_core.py); only a test whose results can go through those
kernels can tell one core type from another, so it reruns those alone. Nobody marks a test:
the selection is read from the code, so a new numeric test cannot escape it.

A test file is numeric when anything it can import reaches a numeric package (parsed with
`ast`, nothing is imported or executed):
- every import statement in it, at module level or inside a function (a lazy import), under
  `if TYPE_CHECKING:` too (kept on the safe side), each package's `__init__` on the way;
- the `conftest.py` files of its folder and the folders above it (their fixtures);
- a module of its own folder or one above it that it imports by name (`tests.conftest`, a
  helper beside it);
- an import inside a string (`python -c "import numpy; ..."`), and a string that names a
  first-party module (`"pinworks_x.y"`, `"pinworks_x.y:attr"`, e.g. a
  `python -m` command line or a monkeypatch target), and a string that names an entry-point
  group declared in a pyproject (`"pinworks.inprocess"`): every module of that group;
- a numeric package is numpy, onnxruntime, or any installed distribution that requires one of
  them, directly or through others (scipy, scikit-learn, llama-cpp-python, ...).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

KERNELS = {"numpy", "onnxruntime"}
"""The distributions that own the float kernels; whatever requires one of them is numeric too."""
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
CODE_IMPORT = re.compile(r"\b(?:import|from)\s+([A-Za-z_][\w.]*)")
"""An import inside a string: code a test runs in another interpreter (`python -c ...`)."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def numeric_distributions(kernels: set[str] = KERNELS) -> set[str]:
    """Installed distributions (canonical names) that are or require, transitively, a kernel
    distribution; a requirement that only an extra asks for does not count."""
    from packaging.requirements import Requirement

    requires: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        needed = set()
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                needed.add(_canonical(requirement.name))
        requires[_canonical(dist.metadata["Name"])] = needed
    numeric = {_canonical(name) for name in kernels}
    grew = True
    while grew:
        grew = False
        for name, needed in requires.items():
            if name not in numeric and needed & numeric:
                numeric.add(name)
                grew = True
    return numeric


def numeric_top_levels() -> set[str]:
    """Importable top-level names provided by a numeric distribution."""
    numeric = numeric_distributions()
    return {top for top, dists in metadata.packages_distributions().items()
            if any(_canonical(dist) in numeric for dist in dists)} | KERNELS


class ImportGraph:
    """What each Python file under `root` can import, and whether that reaches numeric code."""

    def __init__(self, root: Path, numeric: set[str] | None = None) -> None:
        self.root = root.resolve()
        self.modules = self._first_party()
        self.packages = {name.split(".")[0] for name in self.modules}
        # first-party code is judged by what it imports, not by what its distribution requires
        self.numeric = (numeric_top_levels() if numeric is None else numeric) - self.packages
        self.module_of = {path: name for name, path in self.modules.items()}
        self.groups = self._entry_point_groups()
        self._seen: dict[Path, tuple[set[Path], bool]] = {}

    def _first_party(self) -> dict[str, Path]:
        """Dotted name -> file of every module of every `src/<package>` in the checkout."""
        modules = {}
        for pattern in ("libs/*/src/*/__init__.py", "services/*/src/*/__init__.py",
                        "services/*/*/src/*/__init__.py"):
            for init in sorted(self.root.glob(pattern)):
                for path in sorted(init.parent.rglob("*.py")):
                    parts = path.relative_to(init.parent.parent).with_suffix("").parts
                    modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
        return modules

    def _entry_point_groups(self) -> dict[str, set[str]]:
        """Entry-point group -> the modules its entries load, from every workspace pyproject."""
        groups: dict[str, set[str]] = {}
        for pyproject in sorted(self.root.glob("**/pyproject.toml")):
            if any(part.startswith(".") for part in pyproject.relative_to(self.root).parts):
                continue
            declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("entry-points", {})
            for group, entries in declared.items():
                groups.setdefault(group, set()).update(
                    str(target).split(":")[0].strip() for target in entries.values())
        return groups

    def _first_party_file(self, name: str) -> Iterator[Path]:
        """The files importing `name` runs: its packages' `__init__`s and the deepest module."""
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            path = self.modules.get(".".join(parts[:end]))
            if path is not None:
                yield path

    def _local_file(self, name: str, importer: Path) -> Iterator[Path]:
        """A module beside `importer` or in a folder above it (within the root) named `name`."""
        parts = name.split(".")
        for folder in [importer.parent, *importer.parent.parents]:
            if folder != self.root and self.root not in folder.parents:
                break
            base = folder.joinpath(*parts)
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    yield candidate
                    return
            # `import tests.x` runs tests/__init__.py too: the deepest match above is enough,
            # the package __init__ of a test folder is found as the next folder's conftest.

    def edges(self, path: Path) -> tuple[set[Path], bool]:
        """The files `path` can import, and whether it imports a numeric package itself."""
        if path not in self._seen:
            self._seen[path] = self._edges(path)
        return self._seen[path]

    def _edges(self, path: Path) -> tuple[set[Path], bool]:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = self.module_of.get(path)
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(node, module, path)
                names.add(source)
                names.update(f"{source}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.split(":")[0].strip()
                if text in self.groups:
                    names.update(self.groups[text])
                elif DOTTED.fullmatch(text) and text.split(".")[0] in self.packages:
                    names.add(text)
                names.update(CODE_IMPORT.findall(node.value))
        found: set[Path] = set()
        numeric = False
        for name in names:
            if not name:
                continue
            if name.split(".")[0] in self.numeric:
                numeric = True
            elif name.split(".")[0] in self.packages:
                found.update(self._first_party_file(name))
            else:
                found.update(self._local_file(name, path))
        for folder in path.parents:
            if folder != self.root and self.root not in folder.parents:
                break
            if (folder / "conftest.py").is_file():
                found.add(folder / "conftest.py")
        found.discard(path)
        return found, numeric

    @staticmethod
    def _absolute(node: ast.ImportFrom, module: str | None, path: Path) -> str:
        if not node.level:
            return node.module or ""
        if module is not None:
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            return ".".join([*base, *([node.module] if node.module else [])])
        return node.module or ""  # a test's relative import: resolved beside it

    def reaches_numeric(self, path: Path) -> bool:
        seen: set[Path] = set()
        todo = [path.resolve()]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            found, numeric = self.edges(current)
            if numeric:
                return True
            todo.extend(found - seen)
        return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--numeric-only", action="store_true", default=False,
                     help="run only the tests whose code can reach numpy or onnxruntime "
                          "(tools/numeric_tests.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("numeric_only"):
        return
    graph = ImportGraph(config.rootpath)
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if graph.reaches_numeric(item.path) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


if __name__ == "__main__":  # which test files are numeric: python tools/numeric_tests.py [ROOT]
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    graph = ImportGraph(root)
    for test in sorted(root.glob("*/**/test_*.py")):
        if not any(part.startswith(".") for part in test.relative_to(root).parts):
            print("numeric" if graph.reaches_numeric(test) else "-      ", test.relative_to(root))
