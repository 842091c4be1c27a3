"""BackgroundTask: stop cancels the loop and waits for it; stopping twice, or before start, is
harmless."""

import asyncio

from pinworks_common.background import BackgroundTask


async def test_stop_cancels_the_loop_and_waits_for_it() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def loop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = BackgroundTask("test-loop")
    task.start(loop())
    await started.wait()
    assert task.running
    await task.stop()
    assert cancelled.is_set()
    assert not task.running
    await task.stop()


async def test_stop_before_start_does_nothing() -> None:
    task = BackgroundTask("never-started")
    await task.stop()
    assert not task.running
