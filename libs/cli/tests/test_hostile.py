"""The hostile corpus says what the door must do with each payload, and the door does it;
whatever the door accepts, every later hop accepts too."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from pinworks_cli.hostile import KINDS, corpus
from pinworks_common.stage import Delivery, decode_model
from pinworks_contracts.messages import (
    EscalationRequest,
    SubmissionError,
    TicketEnvelope,
    parse_submission,
)

ENTRIES = list(corpus("unit", 4 * len(KINDS)))


def delivery(data: bytes) -> Delivery:
    metadata = SimpleNamespace(sequence=SimpleNamespace(stream=1), num_delivered=1)
    return Delivery(SimpleNamespace(data=data, subject="s", headers={},  # type: ignore[arg-type]
                                    metadata=metadata))


def test_the_corpus_covers_every_kind_with_unique_ids() -> None:
    assert {entry.kind for entry in ENTRIES} == set(KINDS)
    ids = [entry.ticket_id for entry in ENTRIES if entry.ticket_id]
    assert len(ids) == len(set(ids))
    assert sum(entry.expect == "accept" for entry in ENTRIES) >= 4 * 6


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.kind)
def test_the_door_does_what_the_corpus_expects(entry: object) -> None:
    from pinworks_cli.hostile import HostilePayload

    assert isinstance(entry, HostilePayload)
    if entry.expect == "reject":
        with pytest.raises(SubmissionError) as caught:
            parse_submission(entry.payload)
        assert caught.value.reasons and all(caught.value.reasons)
        assert caught.value.ticket_id == entry.ticket_id
        return
    ticket = parse_submission(entry.payload)
    envelope = TicketEnvelope(ticket=ticket, trace_id="0" * 32,
                              received_at=datetime(2026, 1, 1, tzinfo=UTC))
    wire = envelope.model_dump_json().encode()
    assert decode_model(TicketEnvelope, delivery(wire)) == envelope
    request = EscalationRequest(envelope=envelope, source_stage="router", reasons=["r"])
    assert decode_model(EscalationRequest, delivery(request.model_dump_json().encode()))
