"""`python -m pinworks_<service>` runs the app with FastStream's exit check at
`EXIT_CHECK_SECONDS`, not its 0.1 s default (ten wake-ups a second in every idle service)."""

from __future__ import annotations

from typing import Any

from pinworks_common.service import EXIT_CHECK_SECONDS, run_service


class App:
    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    async def run(self, **options: Any) -> None:
        self.options = options


def test_the_app_looks_for_a_stop_signal_once_a_second() -> None:
    app = App()
    run_service(lambda: app)  # type: ignore[arg-type,return-value]
    assert app.options == {"sleep_time": EXIT_CHECK_SECONDS}
    assert EXIT_CHECK_SECONDS >= 1.0
