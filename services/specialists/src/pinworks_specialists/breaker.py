"""A circuit breaker per LLM endpoint: after repeated failures the handler stops calling the
endpoint for a cool-down and declines at once as `unavailable`, so tickets take the fallback
chain immediately instead of each waiting out retries against a server that is down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    failure_threshold: int
    cooldown_seconds: float
    clock: Callable[[], float] = time.monotonic
    consecutive_failures: int = 0
    opened_at: float | None = field(default=None)
    _probe_in_flight: bool = False

    def allow(self) -> bool:
        """Closed: yes. Open: no, until the cool-down ends; then one probe call (half-open)."""
        if self.opened_at is None:
            return True
        if self.clock() - self.opened_at < self.cooldown_seconds or self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        self._probe_in_flight = False
        if self.opened_at is not None or self.consecutive_failures >= self.failure_threshold:
            self.opened_at = self.clock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown_seconds else "open"

    def describe(self) -> str:
        remaining = max(0.0, self.cooldown_seconds - (self.clock() - (self.opened_at or 0.0)))
        return (f"circuit open after {self.consecutive_failures} consecutive failures; "
                f"next probe in {remaining:.0f}s")
