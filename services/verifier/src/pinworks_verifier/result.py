"""What every check returns, and the protocol a check implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pinworks_contracts.messages import TicketEnvelope


@dataclass(frozen=True)
class CheckResult:
    check: str
    version: str
    passed: bool
    reasons: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)


class Check(Protocol):
    name: str
    version: str

    def run(self, envelope: TicketEnvelope) -> CheckResult: ...
