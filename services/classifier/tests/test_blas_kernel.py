"""`make test-unit-other-blas` reruns the unit tier with OPENBLAS_CORETYPE set to another
processor's kernels; this checks that OpenBLAS really runs other kernels than it picks by itself,
so that step cannot pass vacuously."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ARCHITECTURE = (
    "import numpy, threadpoolctl; print(sorted({str(i.get('architecture')) for i in "
    "threadpoolctl.threadpool_info() if i.get('internal_api') == 'openblas'}))"
)


def openblas_architecture(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", ARCHITECTURE], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif("OPENBLAS_CORETYPE" not in os.environ, reason="no kernel was asked for")
def test_the_requested_openblas_kernel_is_not_the_processors_own() -> None:
    own_choice = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    requested = openblas_architecture(dict(os.environ))
    assert requested != "[]", "numpy is not using OpenBLAS"
    assert requested != openblas_architecture(own_choice)
