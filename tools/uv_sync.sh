#!/usr/bin/env bash
# `uv sync "$@"` from the local cache first, then with the registry. uv revalidates a cached
# source distribution once its HTTP cache entry is stale and, when the registry answers, builds
# it again under a new revision: llama-cpp-python (source only) recompiled for minutes on a
# machine that had built it an hour before. Offline, uv takes what it cached; a fresh machine
# (nothing cached) falls through to the normal sync at once.
set -euo pipefail
uv="${UV:?UV names the uv binary}"
"$uv" sync --offline "$@" >/dev/null 2>&1 || exec "$uv" sync "$@"
