"""Print an OpenBLAS core type other than the one this machine's OpenBLAS picks by itself.

`make test-unit-other-blas` runs the unit tier again with it (OPENBLAS_CORETYPE), so a test
that passes only with one processor's float32 kernels fails here rather than on a user's
machine with another processor. What OpenBLAS picked is read after numpy has loaded it (before
that threadpoolctl sees no OpenBLAS, and on an AVX2 machine whose own pick is Haswell, e.g. an
AMD EPYC, the "other" core was Haswell itself). The choice is one the processor can run: Haswell needs AVX2,
Sandybridge AVX, Prescott only SSE3 (every x86-64 has it); on ARM, the generic ARMV8 kernels.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy  # noqa: F401  (loads numpy's OpenBLAS, so threadpoolctl can see which core it picked)
from threadpoolctl import threadpool_info


def chosen_core() -> str:
    picked = {str(info.get("architecture", "")) for info in threadpool_info()
              if info.get("internal_api") == "openblas"}
    if platform.machine().lower() in {"aarch64", "arm64"}:
        return "CORTEXA57" if "ARMV8" in picked else "ARMV8"
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    for core, needs in (("Haswell", "avx2"), ("Sandybridge", "avx"), ("Prescott", "sse3")):
        if core not in picked and (needs in flags or core == "Prescott"):
            return core
    return "Prescott"


if __name__ == "__main__":
    print(chosen_core())
