"""`python -m pinworks_<service>` runs the app with FastStream's exit check at
`EXIT_CHECK_SECONDS`, not its 0.1 s default (ten wake-ups a second in every idle service), and
settles the heap once the app has started (`settle_heap`)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from pinworks_common.service import (
    EXIT_CHECK_SECONDS,
    YOUNG_COLLECTION_THRESHOLD,
    run_service,
    settle_heap,
)


class App:
    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.after: list[Callable[[], Awaitable[None]]] = []
        self.frozen_after_start = 0

    def after_startup(self, hook: Callable[[], Awaitable[None]]) -> None:
        self.after.append(hook)

    async def run(self, **options: Any) -> None:
        self.options = options
        for hook in self.after:
            await hook()
        self.frozen_after_start = gc.get_freeze_count()


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, whatever the test did to it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_app_looks_for_a_stop_signal_once_a_second(collector: None) -> None:
    app = App()
    run_service(lambda: app)  # type: ignore[arg-type,return-value]
    assert app.options == {"sleep_time": EXIT_CHECK_SECONDS}
    assert EXIT_CHECK_SECONDS >= 1.0


def test_the_started_service_freezes_its_heap_and_collects_the_young_less_often(
        collector: None) -> None:
    gc.unfreeze()
    app = App()
    run_service(lambda: app)  # type: ignore[arg-type,return-value]
    assert app.frozen_after_start > 0
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD


def test_garbage_made_after_the_freeze_is_still_collected(collector: None) -> None:
    settle_heap()

    class Node:
        partner: Any = None

    first, second = Node(), Node()
    first.partner, second.partner = second, first  # a cycle: reference counting never frees it
    gone: list[bool] = []
    weakref.finalize(first, gone.append, True)
    del first, second
    gc.collect()
    assert gone == [True]
