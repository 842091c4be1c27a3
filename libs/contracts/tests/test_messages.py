import json

import pytest

from pinworks_contracts.messages import (
    MAX_PAYLOAD_BYTES,
    RESERVED_SEPARATOR,
    Outcome,
    PinworksTicket,
    SubmissionError,
    parse_submission,
    pinworks_ticket_id,
    published_outcome,
    stored_ticket_id,
    submitted_ticket_id,
)
from pinworks_contracts.subjects import OutcomeStatus, message_id, outcome_subject


def payload(**fields: object) -> bytes:
    ticket = {"ticket_id": "T-1", "business_unit": "retail", "body": "Where is my card?"}
    ticket.update(fields)
    return json.dumps({k: v for k, v in ticket.items() if v is not None}).encode()


def test_accepts_a_valid_ticket_with_optional_fields() -> None:
    ticket = parse_submission(payload(subject="card", channel="chat", metadata={"tier": "vip"}))
    assert ticket.ticket_id == "T-1"
    assert ticket.metadata == {"tier": "vip"}


@pytest.mark.parametrize(
    ("data", "expected_reason", "readable_id"),
    [
        (b"{not json", "payload is not valid JSON", None),
        (b"[1, 2]", "payload must be a JSON object, got list", None),
        (payload(body=None), "body: field required", "T-1"),
        (payload(body=""), "body: String should have at least 1 character", "T-1"),
        (payload(body="x" * 20_001), "body: String should have at most 20000 characters", "T-1"),
        (payload(ticket_id="has space"), "ticket_id: String should match pattern", None),
        (payload(ticket_id="x" * 129), "ticket_id: String should match pattern", None),
        (payload(business_unit="u" * 65), "business_unit: String should have at most 64", "T-1"),
        (payload(metadata=[1]), "metadata: Input should be a valid dictionary", "T-1"),
    ],
)
def test_rejections_name_what_is_wrong(data: bytes, expected_reason: str, readable_id: str | None
                                       ) -> None:
    with pytest.raises(SubmissionError) as caught:
        parse_submission(data)
    assert any(reason.startswith(expected_reason) for reason in caught.value.reasons), (
        caught.value.reasons
    )
    assert caught.value.ticket_id == readable_id


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SubmissionError) as caught:
        parse_submission(json.dumps({"ticket_id": "T-2"}).encode())
    assert sorted(caught.value.reasons) == ["body: field required", "business_unit: field required"]


def test_oversized_payload_is_rejected_but_its_id_salvaged() -> None:
    big = payload(body="x" * 10, metadata={"blob": "y" * MAX_PAYLOAD_BYTES})
    with pytest.raises(SubmissionError) as caught:
        parse_submission(big)
    assert caught.value.reasons[0].startswith("payload too large")
    assert caught.value.ticket_id == "T-1"
    assert caught.value.business_unit == "retail"


def test_outcome_serialises_cost_as_a_json_number() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    outcome = Outcome(ticket_id="T", status=OutcomeStatus.RESOLVED, business_unit="b",
                      cost_usd=Decimal("0.000520"), resolved_by="automation",
                      decided_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert json.loads(outcome.model_dump_json())["cost_usd"] == pytest.approx(0.00052)


def test_subjects_and_message_ids_are_derived_from_ticket_and_stage() -> None:
    assert outcome_subject("rejected", "support") == "tickets.outcome.rejected.support"
    assert message_id("T-1", "classified") == "T-1:classified"
    with pytest.raises(ValueError):
        outcome_subject("bogus", "support")


def test_nul_characters_are_refused_before_they_reach_postgres() -> None:
    with pytest.raises(SubmissionError) as caught:
        parse_submission(payload(body="bad \u0000 byte"))
    assert "NUL" in caught.value.reasons[0]
    assert caught.value.ticket_id == "T-1"


def test_each_platforms_ticket_ids_are_a_namespace_of_their_own() -> None:
    assert pinworks_ticket_id("support", "T-1") == "T-1"
    assert pinworks_ticket_id("partner", "T-1") == "partner~T-1"
    assert submitted_ticket_id("partner", "partner~T-1") == "T-1"
    assert submitted_ticket_id("partner", "T-1") == "T-1", "a ticket stored before keeps its id"
    assert submitted_ticket_id("support", "T-1") == "T-1"
    assert PinworksTicket(ticket_id="partner~T-1", business_unit="b", body="x").ticket_id
    with pytest.raises(ValueError):
        PinworksTicket(ticket_id="a~b~T-1", business_unit="b", body="x")


def test_a_submitted_id_with_the_namespace_separator_is_refused_and_not_read() -> None:
    with pytest.raises(SubmissionError) as caught:
        parse_submission(payload(ticket_id="partner~T-1"))
    assert caught.value.reasons == [RESERVED_SEPARATOR]
    assert caught.value.ticket_id is None


def test_a_published_outcome_carries_the_submitted_id_and_pinworks_own() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    stored = Outcome(ticket_id="partner~T-1", platform="partner", status=OutcomeStatus.RESOLVED,
                     business_unit="b", cost_usd=Decimal(0), resolved_by="automation",
                     decided_at=datetime(2026, 1, 1, tzinfo=UTC))
    published = published_outcome(stored)
    assert (published.ticket_id, published.pinworks_ticket_id) == ("T-1", "partner~T-1")
    assert published_outcome(published) == published
    assert stored_ticket_id(published) == stored_ticket_id(stored) == "partner~T-1"
