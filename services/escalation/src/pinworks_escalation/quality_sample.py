"""The quality sample: a random share of automatic answers goes to the agents' quality review.

The consumer `quality-sample` reads every platform's `tickets.outcome.resolved.*`. The message
only says which tickets to look at: each automatic answer is read from its stored outcome (resolved by
automation, by a handler that is not a person), never from the message. Each answer is drawn
with probability `ESCALATION_QUALITY_SAMPLE_RATE`, once: the draw is a decision row (stage
`quality-sample`, key `sample[@attempt]`), so a redelivery neither draws again nor queues twice.
A drawn answer becomes a pending `quality_reviews` row, for `pinworks quality mark` or the
console's quality page; the verdicts feed the router's quality guard
(`pinworks_common.quality`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pinworks_common.ledger import Decision, Entries, Ledger
from pinworks_common.ledger.postgres import connection_of
from pinworks_common.ledger.records import DecisionRef
from pinworks_common.quality import store
from pinworks_common.stage import Delivery, Work, decode_model
from pinworks_contracts.messages import Outcome, stored_ticket_id
from pinworks_contracts.subjects import QUALITY_SAMPLE, attempt_key

VERSION = "quality-sample-1"


class QualitySampleStage:
    stage = QUALITY_SAMPLE

    def __init__(self, rate: float, rng: random.Random | None = None) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"a sample rate is between 0 and 1, got {rate}")
        self.rate = rate
        self.rng = rng or random.SystemRandom()

    def decode(self, delivery: Delivery) -> Outcome:
        """The outcome under pinworks' id of its ticket (a platform's own id is on the wire)."""
        outcome: Outcome = decode_model(Outcome, delivery)
        return outcome.model_copy(update={"ticket_id": stored_ticket_id(outcome)})

    async def apply(self, ledger: Ledger, work: Sequence[Work[Outcome]]) -> Entries:
        entries = Entries()
        ids = [item.value.ticket_id for item in work if item.value.resolved_by == store.AUTOMATION]
        if not ids or self.rate == 0:
            return entries
        conn = connection_of(ledger)
        answers = await store.automatic_answers(conn, ids)

        def ref(answer: store.AutomaticAnswer) -> DecisionRef:
            return DecisionRef(answer.ticket_id, self.stage, attempt_key("sample", answer.attempt))

        fresh = await ledger.undecided(list(answers.values()), ref)
        drawn = [answer for answer in fresh if self.rng.random() < self.rate]
        await store.add_samples(conn, drawn)
        trace = {item.value.ticket_id: item.trace_id for item in work}
        for answer in fresh:
            sampled = answer in drawn
            entries.decisions.append(Decision(
                answer.ticket_id, self.stage, ref(answer).key, "escalation", VERSION,
                inputs={"sample_rate": self.rate, "handler": answer.handler,
                        "intent": answer.intent, "attempt": answer.attempt},
                output={"sampled": sampled},
                reason=(f"automatic answer ({answer.handler}, intent {answer.intent}) "
                        + ("drawn for the agents' quality review" if sampled else "not drawn")
                        + f" at sample rate {self.rate:g}"),
                trace_id=trace.get(answer.ticket_id)))
        return entries
