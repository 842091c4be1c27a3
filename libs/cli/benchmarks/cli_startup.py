"""How long `pinworks` takes to start: wall time of commands that need no platform.

    .venv/bin/python libs/cli/benchmarks/cli_startup.py [--runs 7]

Prints the best and median of several runs per command (the first run, which writes bytecode
caches, is not counted). The import-time guard is a test (libs/cli/tests/test_cli_everyday.py);
the figures themselves live here, not in a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (
    ["--help"],
    ["submit", "--help"],
    ["policy", "simulate", "--help"],
    ["queue", "intents", "card"],
    ["queue", "list"],  # no platform: the one-line error path
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cli = Path(sys.executable).with_name("pinworks")
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    with tempfile.TemporaryDirectory() as outside:
        for command in COMMANDS:
            times = []
            for run in range(args.runs + 1):
                started = time.perf_counter()
                subprocess.run([str(cli), *command], env=env, cwd=outside, capture_output=True,
                               check=False)
                if run:
                    times.append(time.perf_counter() - started)
            print(f"pinworks {' '.join(command):<28} best {min(times) * 1000:6.0f} ms   "
                  f"median {statistics.median(times) * 1000:6.0f} ms   ({args.runs} runs)")


if __name__ == "__main__":
    main()
