"""The business units reserved for `pinworks bench`'s synthetic tickets.

No agent serves them, no real budget pays for them, and the cost report and the labelled-example
export leave them out: a bench run never counts as real work.
"""

from __future__ import annotations

BENCH_UNIT_PREFIX = "bench-"

