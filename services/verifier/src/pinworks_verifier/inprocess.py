"""The verifier's step of `pinworks bench`'s in-process baseline: every configured check on each
drafted envelope of a batch, as the service runs them.

Found through the entry-point group `pinworks.inprocess` (the CLI imports no service)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pinworks_contracts.messages import TicketEnvelope


def verify_step() -> Callable[[Sequence[TicketEnvelope]], list[TicketEnvelope]]:
    """Load the checks once; the step verifies every draft of a batch and passes it on."""
    from pinworks_verifier.checks import failing_reasons, verify
    from pinworks_verifier.factory import build_checks
    from pinworks_verifier.settings import VerifierSettings

    checks = build_checks(VerifierSettings())

    def step(batch: Sequence[TicketEnvelope]) -> list[TicketEnvelope]:
        for envelope in batch:
            if envelope.draft is not None:
                failing_reasons(verify(checks, envelope))
        return list(batch)

    return step
