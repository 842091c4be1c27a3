"""tools/numeric_tests.py: which tests the other-BLAS tier reruns, on planted trees and the real one."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOLS = Path(__file__).resolve().parents[1]
REPO = TOOLS.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("numeric_tests", TOOLS / "numeric_tests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


numeric_tests = _load()


def plant(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A library with a lazily numeric module, a plain one and a numeric package __init__, and
    tests reaching them (or not) in every way the graph follows."""
    return plant(tmp_path, {
        "libs/common/src/pinworks_common/__init__.py": "",
        "libs/common/src/pinworks_common/maths.py": "def f():\n    import numpy\n    return numpy\n",
        "libs/common/src/pinworks_common/plain.py": "import json\nfrom . import words\n",
        "libs/common/src/pinworks_common/words.py": "WORDS = ['numpy']\n",
        "libs/common/src/pinworks_common/heavy/__init__.py": "from onnxruntime import InferenceSession\n",
        "libs/common/src/pinworks_common/heavy/light.py": "X = 1\n",
        "libs/common/src/pinworks_common/steps.py":
            "from importlib.metadata import entry_points\nGROUP = 'demo.steps'\n",
        "services/x/pyproject.toml":
            '[project]\nname = "x"\n[project.entry-points."demo.steps"]\nm = "pinworks_common.maths:f"\n',
        "services/x/tests/test_import.py": "from pinworks_common.maths import f\n",
        "services/x/tests/test_relative_in_library.py": "from pinworks_common import plain\n",
        "services/x/tests/test_string.py": "TARGET = 'pinworks_common.maths:f'\n",
        "services/x/tests/test_subprocess.py": "CODE = 'import onnxruntime; print(1)'\n",
        "services/x/tests/test_helper.py": "from helpers import g\n",
        "services/x/tests/helpers.py": "import scipy\ndef g(): ...\n",
        "services/x/tests/test_package_init.py": "import pinworks_common.heavy.light\n",
        "services/x/tests/test_entry_points.py": "from pinworks_common import steps\n",
        "services/y/tests/conftest.py": "import numpy\n",
        "services/y/tests/test_fixture.py": "def test_it(): ...\n",
        "services/z/tests/test_plain.py": "import pinworks_common.plain\nimport json\n",
    })


def test_each_way_of_reaching_a_numeric_package_is_followed(tree: Path) -> None:
    graph = numeric_tests.ImportGraph(tree, numeric={"numpy", "onnxruntime", "scipy"})
    numeric = {path.name for path in tree.glob("services/*/tests/test_*.py")
               if graph.reaches_numeric(path)}
    assert numeric == {"test_import.py", "test_string.py", "test_subprocess.py", "test_helper.py",
                       "test_package_init.py", "test_entry_points.py", "test_fixture.py"}


def test_requirements_make_a_distribution_numeric() -> None:
    numeric = numeric_tests.numeric_distributions()
    assert {"numpy", "onnxruntime", "scipy", "scikit-learn"} <= numeric
    assert not {"pytest", "pydantic", "httpx"} & numeric


def test_the_real_tree() -> None:
    graph = numeric_tests.ImportGraph(REPO)
    assert graph.reaches_numeric(REPO / "services/classifier/tests/test_blas_kernel.py")
    assert graph.reaches_numeric(REPO / "services/classifier/tests/test_model.py")
    assert graph.reaches_numeric(REPO / "services/verifier/tests/test_second_opinion.py")
    assert not graph.reaches_numeric(REPO / "libs/contracts/tests/test_messages.py")


def test_the_plugin_deselects_the_rest(tree: Path) -> None:
    plant(tree, {
        "services/y/tests/test_fixture.py": "def test_numeric():\n    pass\n",
        "services/z/tests/test_plain.py": "import json\n\n\ndef test_plain():\n    pass\n",
    })
    env = {**os.environ, "PYTHONPATH": str(TOOLS)}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "numeric_tests",
            "-c", "/dev/null", "--rootdir", str(tree), "services/y", "services/z"]
    everything = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, timeout=120)
    assert "2 passed" in everything.stdout, everything.stdout + everything.stderr
    selected = subprocess.run([*args, "--numeric-only", "-rA"], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=120)
    assert "1 passed, 1 deselected" in selected.stdout, selected.stdout + selected.stderr
    assert "PASSED services/y/tests/test_fixture.py::test_numeric" in selected.stdout
