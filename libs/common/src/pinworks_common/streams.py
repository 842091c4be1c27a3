"""The pinworks JetStream streams, declared the same way by every service and by operators."""

from __future__ import annotations

from typing import Any

from nats.js.api import StorageType, StreamConfig, StreamSource
from nats.js.errors import BadRequestError

from pinworks_contracts.subjects import (
    DEAD_LETTER_STREAM,
    OUTCOME_WATCH_STREAM,
    OUTCOMES_STREAM,
    STREAM_SUBJECTS,
    TICKETS_STREAM,
    WORK_STREAM,
)

DUPLICATE_WINDOW_SECONDS = 30 * 60
STREAM_MAX_AGE_SECONDS: dict[str, float] = {
    TICKETS_STREAM: 7 * 24 * 3600,
    WORK_STREAM: 7 * 24 * 3600,
    OUTCOMES_STREAM: 30 * 24 * 3600,
    DEAD_LETTER_STREAM: 30 * 24 * 3600,
}
OUTCOME_WATCH_MAX_AGE_SECONDS = 15 * 60
"""A watcher wants outcomes from now on; a quarter of an hour covers any `--wait`."""


async def declare_streams(js: Any) -> None:
    """Declare every stream (file storage, dedup window) on a nats-py JetStream context; safe
    to call from every replica and from an operator's connection."""
    for name, subjects in STREAM_SUBJECTS.items():
        config = StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=STREAM_MAX_AGE_SECONDS[name],
        )
        await _declare(js, config)
    await _declare(js, StreamConfig(
        name=OUTCOME_WATCH_STREAM, sources=[StreamSource(name=OUTCOMES_STREAM)],
        storage=StorageType.MEMORY, max_age=OUTCOME_WATCH_MAX_AGE_SECONDS,
        description="recent outcomes for platforms' short-lived watchers"))


async def _declare(js: Any, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


async def prepare(url: str, platforms: list[str]) -> None:
    """As the operator (the NATS_* variables): declare the streams and each support platform's
    outcome consumer, which the platform's own identity may read but not create."""
    import nats

    from pinworks_common.nats_client import connect_options, ensure_platform_consumer

    nc = await nats.connect(url, **connect_options())
    try:
        await declare_streams(nc.jetstream())
        for platform in platforms:
            await ensure_platform_consumer(nc.jetstream(), platform)
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> None:
    """`python -m pinworks_common.streams [--platform NAME ...]` against NATS_URL (compose's
    one-shot nats-setup container)."""
    import argparse
    import asyncio
    import os

    from pinworks_contracts.identities import DEFAULT_PLATFORM

    parser = argparse.ArgumentParser(prog="python -m pinworks_common.streams")
    parser.add_argument("--platform", action="append", default=None)
    args = parser.parse_args(argv)
    platforms = args.platform or [DEFAULT_PLATFORM]
    asyncio.run(prepare(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), platforms))
    print(f"streams declared; outcome consumers of {', '.join(platforms)}")


if __name__ == "__main__":
    main()
