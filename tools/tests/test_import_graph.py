"""tools/import_graph.py on the real tree, and on small trees with planted faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "import_graph.py"
REPO = TOOL.parents[1]


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), "--root", str(root)],
                          capture_output=True, text=True, timeout=120)


def plant(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path -> source) under ``root``; every package gets its __init__.py."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        package = path.parent
        while package.parent.name != "src":
            (package / "__init__.py").touch()
            package = package.parent
        (package / "__init__.py").touch()
    return root


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    """contracts <- runtime <- two services <- cli, with a lazy import and a TYPE_CHECKING one."""
    return plant(tmp_path, {
        "libs/contracts/src/pinworks_contracts/messages.py": "X = 1\n",
        "libs/common/src/pinworks_common/runtime.py": "from pinworks_contracts.messages import X\n",
        "services/router/src/pinworks_router/stage.py":
            "from pinworks_common import runtime\nfrom . import domain\n",
        "services/router/src/pinworks_router/domain.py": "import pinworks_contracts.messages\n",
        "services/verifier/src/pinworks_verifier/app.py": "from pinworks_common.runtime import X\n",
        "libs/cli/src/pinworks_cli/main.py":
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pinworks_cli import top\n"
            "def go():\n    from pinworks_common.runtime import X\n",
        "libs/cli/src/pinworks_cli/top.py": "from pinworks_cli.main import go\n",
    })


def test_the_real_tree_is_a_layered_dag() -> None:
    result = run(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no cycle" in result.stdout


def test_a_healthy_tree_passes(healthy: Path) -> None:
    result = run(healthy)
    assert result.returncode == 0, result.stdout
    assert "import graph ok: 5 packages" in result.stdout


def test_a_lazy_import_cycle_is_found_with_its_path(healthy: Path) -> None:
    result = run(plant(healthy, {
        "libs/common/src/pinworks_common/settings.py":
            "def load():\n    from pinworks_common.runtime import X\n",
        "libs/common/src/pinworks_common/runtime.py":
            "from pinworks_contracts.messages import X\nfrom pinworks_common import settings\n",
    }))
    assert result.returncode == 1
    assert ("import cycle: pinworks_common.runtime -> pinworks_common.settings -> "
            "pinworks_common.runtime") in result.stdout


def test_a_cycle_across_packages_is_found(healthy: Path) -> None:
    (healthy / "libs/contracts/src/pinworks_contracts/messages.py").write_text(
        "from pinworks_common.runtime import X\n")
    result = run(healthy)
    assert result.returncode == 1
    assert "import cycle: pinworks_common.runtime -> pinworks_contracts.messages" in result.stdout
    assert "pinworks_contracts.messages (contracts) imports pinworks_common.runtime" in result.stdout


@pytest.mark.parametrize(("planted", "reported"), [
    ({"libs/common/src/pinworks_common/late.py":
      "def cost():\n    from pinworks_router.stage import runtime\n"},
     "late.py:2: pinworks_common.late (runtime) imports pinworks_router.stage (service)"),
    ({"libs/cli/src/pinworks_cli/report.py":
      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pinworks_router import domain\n"},
     "pinworks_cli.report (cli) type-only imports pinworks_router.domain (service)"),
    ({"services/verifier/src/pinworks_verifier/app.py":
      "from pinworks_router.domain import pinworks_contracts\n"},
     "pinworks_verifier.app (service) imports pinworks_router.domain (service)"),
    ({"libs/cli/src/pinworks_cli/bench.py": "def run():\n    from pinworks_cli.infra import go\n"},
     "bench.py:2: pinworks_cli.bench imports pinworks_cli.infra, which is not a module of "
     "pinworks_cli"),
], ids=["lib-imports-service-lazily", "cli-imports-service-for-types", "service-imports-service",
        "module-that-moved-away"])
def test_a_forbidden_import_is_reported_where_it_is(
    healthy: Path, planted: dict[str, str], reported: str,
) -> None:
    for name, source in planted.items():
        (healthy / name).write_text(source)
    result = run(healthy)
    assert result.returncode == 1
    assert reported in result.stdout


def test_devtools_are_for_the_cli_only_and_new_libraries_need_a_layer(healthy: Path) -> None:
    plant(healthy, {"libs/devtools/src/pinworks_devtools/servers.py": "PORT = 1\n",
                    "libs/extras/src/pinworks_extras/thing.py": "Y = 2\n"})
    (healthy / "libs/cli/src/pinworks_cli/run.py").write_text(
        "from pinworks_devtools.servers import PORT\n")
    (healthy / "services/router/src/pinworks_router/app.py").write_text(
        "from pinworks_devtools import servers\n")
    result = run(healthy)
    assert result.returncode == 1
    assert "pinworks_cli.run" not in result.stdout
    assert "pinworks_router.app (service) imports pinworks_devtools.servers (devtools)" in result.stdout
    assert "package pinworks_extras has no layer" in result.stdout


def test_a_service_tooling_package_may_import_its_own_service_only(healthy: Path) -> None:
    plant(healthy, {"services/router/training/src/pinworks_router_training/fit.py":
                    "from pinworks_router import domain\nfrom pinworks_common import runtime\n"})
    assert run(healthy).returncode == 0
    (healthy / "services/router/src/pinworks_router/app.py").write_text(
        "from pinworks_router_training import fit\n")
    plant(healthy, {"services/router/training/src/pinworks_router_training/other.py":
                    "from pinworks_verifier import app\n"})
    result = run(healthy)
    assert result.returncode == 1
    assert ("pinworks_router.app (service) imports pinworks_router_training.fit (service tooling)"
            in result.stdout)
    assert ("pinworks_router_training.other (service tooling) imports pinworks_verifier.app (service)"
            in result.stdout)
