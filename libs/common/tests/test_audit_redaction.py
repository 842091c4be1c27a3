"""What the ledger redacts in audit rows: every string, except a top-level value the platform
writes itself in one strict format (a trace id, a time), which is stored unread.

The values below that the detector flags show the policy change: a trace id or a time that
happens to read as a phone number used to be stored as ``ee6359618bb[PHONE]fe9bdea5a4``; it is
now stored as written. Whatever only looks like one of those values is read as before."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pinworks_common.ledger.book import AUDITED_TEXT, COLUMN_COPIES, PLATFORM_FORMATTED, audit_row
from pinworks_common.personal_data import TIMESTAMP, TRACE_ID, Redactor, find, redact_value
from pinworks_common.telemetry import trace_id_of
from pinworks_contracts.messages import Outcome
from pinworks_contracts.subjects import OutcomeStatus

FLAGGED_TRACE_ID = "ee6359618bb03001307881fe9bdea5a4"  # "03001307881" reads as a phone number
FLAGGED_TIME = "2026-01-04T18:47:00.571774Z"  # "00.571774" too
FLAGGED_ISO_TIME = "2026-02-10T22:35:00.989673+00:00"
EARLY_IN_A_MINUTE = "2026-12-07T09:15:00.000412Z"  # at :00 with under 1 ms, always flagged


def test_the_platform_values_kept_unread_are_ones_the_detector_flags_today() -> None:
    """The policy change, stated: these are no longer rewritten with a placeholder."""
    for value in (FLAGGED_TRACE_ID, FLAGGED_TIME, FLAGGED_ISO_TIME, EARLY_IN_A_MINUTE):
        assert [finding.kind.value for finding in find(value)] == ["PHONE"], value
        assert redact_value(value) != value
    for decided_at in (FLAGGED_TIME, EARLY_IN_A_MINUTE):
        payload = {"trace_id": FLAGGED_TRACE_ID, "decided_at": decided_at}
        assert audit_row("outcomes", {"payload": payload})["payload"] == payload
    for table in ("decisions", "accountability"):
        column = "output" if table == "decisions" else "details"
        stored = audit_row(table, {column: {"sla_due_at": FLAGGED_ISO_TIME}})
        assert stored[column] == {"sla_due_at": FLAGGED_ISO_TIME}


HOSTILE = [
    ("call me on 07700 900123", "call me on [PHONE]"),
    ("jane.doe@example.com", "[EMAIL]"),
    ("Jane Doe", "[NAME]"),
    ("my name is Priya Raghunathan", "my name is [NAME]"),
    ("4111 1111 1111 1111", "[CARD]"),
    (FLAGGED_TRACE_ID + " 07700 900123", None),  # an id followed by text is not an id
    (FLAGGED_TRACE_ID + "\n07700 900123", None),
    (FLAGGED_TRACE_ID.upper(), None),  # the platform writes lower-case hex only
    (FLAGGED_TRACE_ID + "0", None),
    (FLAGGED_TIME + " call 07700 900123", None),
    ("07700 900123T00:00:00Z", None),
    ("2026-01-04T18:47:00.571774Z jane@example.com", None),
    ("٢٠٢٦-٠١-٠٤T١٨:٤٧:٠٠Z", None),  # digits of another script are no platform time
]


@pytest.mark.parametrize(("value", "expected"), HOSTILE)
@pytest.mark.parametrize("key", ["trace_id", "decided_at"])
def test_a_value_that_only_looks_like_a_platform_one_is_redacted(key: str, value: str,
                                                                  expected: str | None) -> None:
    stored = audit_row("outcomes", {"payload": {key: value}})["payload"][key]
    assert stored == redact_value(value), "read exactly as any other string"
    if expected is not None:
        assert stored == expected
    assert not TRACE_ID.fullmatch(value) and not TIMESTAMP.fullmatch(value)


def test_only_the_listed_top_level_keys_of_the_listed_columns_are_kept_unread() -> None:
    """A customer's metadata may carry any key: a nested `trace_id`, or one in another column
    or table, is read like any other value."""
    nested = {"customer_metadata": {"trace_id": FLAGGED_TRACE_ID, "decided_at": FLAGGED_TIME}}
    assert audit_row("outcomes", {"payload": nested})["payload"] == redact_value(nested)
    assert audit_row("decisions", {"inputs": {"sla_due_at": FLAGGED_ISO_TIME},
                                   "output": {"trace_id": FLAGGED_TRACE_ID}}) == {
        "inputs": {"sla_due_at": redact_value(FLAGGED_ISO_TIME)},
        "output": {"trace_id": redact_value(FLAGGED_TRACE_ID)}}
    assert audit_row("dead_letters", {"error": FLAGGED_TIME})["error"] == redact_value(FLAGGED_TIME)
    listed = {"trace_id": {"note": "jane@example.com"}, "decided_at": ["call 07700 900123"]}
    assert audit_row("outcomes", {"payload": listed})["payload"] == {
        "trace_id": {"note": "[EMAIL]"}, "decided_at": ["call [PHONE]"]}


def test_the_formats_are_the_ones_the_platform_writes() -> None:
    """Every trace id a span gets and every time an outcome or the queue writes fits, so what
    the platform writes is in fact kept unread (at a whole second too: no fraction then)."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    for _ in range(50):
        assert TRACE_ID.fullmatch(trace_id_of(tracer.start_span("s")))
    for moment in (datetime.now(UTC), datetime(2026, 1, 4, 18, 47, tzinfo=UTC),
                   datetime.now(UTC) + timedelta(microseconds=secrets.randbelow(10**12))):
        outcome = Outcome(ticket_id="T-1", status=OutcomeStatus.RESOLVED, business_unit="retail",
                          cost_usd=Decimal(0), resolved_by="automation", decided_at=moment,
                          trace_id=secrets.token_hex(16))
        payload = outcome.model_dump(mode="json")
        formats = PLATFORM_FORMATTED["outcomes"]["payload"]
        assert all(form.fullmatch(payload[key]) for key, form in formats.items()), payload
        assert TIMESTAMP.fullmatch(moment.isoformat())  # the escalation's sla_due_at


def test_customer_text_in_an_outcome_is_still_redacted() -> None:
    payload = {"ticket_id": "T-1", "answer": "Hi Jane Doe, call us on +44 20 7946 0321.",
               "reasons": ["sent to jane@example.com"], "trace_id": FLAGGED_TRACE_ID,
               "decided_at": FLAGGED_TIME}
    assert audit_row("outcomes", {"payload": payload})["payload"] == {
        **payload, "answer": "Hi [NAME], call us on [PHONE].", "reasons": ["sent to [EMAIL]"]}


def test_a_redactor_says_whether_redaction_changed_anything() -> None:
    redactor = Redactor()
    formats = {"trace_id": TRACE_ID}
    assert redactor.json({"trace_id": FLAGGED_TRACE_ID, "n": 3}, formats) == (
        {"trace_id": FLAGGED_TRACE_ID, "n": 3}, False)
    assert redactor.json({"trace_id": FLAGGED_TRACE_ID}) == (
        {"trace_id": redact_value(FLAGGED_TRACE_ID)}, True)
    assert redactor.json(("a", {"b": ["mail jane@example.com"]})) == (
        ["a", {"b": ["mail [EMAIL]"]}], True)
    assert redactor.json(["nothing personal", 4.5, None]) == (["nothing personal", 4.5, None], False)


def test_a_batch_redactor_reads_each_distinct_text_once_and_gives_what_each_row_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pinworks_common.personal_data as personal_data

    searched: list[str] = []
    real = personal_data.redact
    monkeypatch.setattr(personal_data, "redact",
                        lambda text, **kw: searched.append(text) or real(text, **kw))
    rows = [{"reason": "every check passed", "answer": f"Hi Jane Doe, ticket {n}"}
            for n in range(3)] * 2
    redactor = Redactor()
    batch = [redactor.json(row)[0] for row in rows]
    assert searched == ["every check passed", "Hi Jane Doe, ticket 0", "Hi Jane Doe, ticket 1",
                        "Hi Jane Doe, ticket 2"]
    assert batch == [redact_value(row) for row in rows]
    assert redactor.json(rows[0]) == (redact_value(rows[0]), True), "a text read before changed"
    assert redactor.json({"reason": "every check passed"}) == ({"reason": "every check passed"},
                                                                 False)


class _Label(str):
    """A str subclass (an enum's value, say): read as the text it is."""


def _every_string(value: object) -> tuple[object, bool]:
    """What the redactor does, written plainly: each string through `redact`, no memory."""
    from pinworks_common.personal_data import redact

    changed = False

    def walk(item: object) -> object:
        nonlocal changed
        if isinstance(item, str):
            text = redact(item)[0]
            changed = changed or text != item
            return text
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [walk(inner) for inner in item]
        return item

    return walk(value), changed


WALKED: list[object] = [
    None, 3, 0.5, True, "plain words", "call 07700 900123", _Label("mail ana@example.com"),
    ["a", ("b", 1, None, 2.5), [False, ["ana@example.com"]]],
    {"reason": "every check passed", "n": 1, "nested": {"to": "ana@example.com", "x": [1, "y"]},
     7: "int key kept", "tuple": ("07700 900123", "no")},
    {"same": "call 07700 900123", "again": ["call 07700 900123", "plain words"]},
    OrderedDict(a="ana@example.com", b=(1, 2)),
    Decimal("1.5"),
]


def test_one_redactor_over_many_values_redacts_each_as_reading_every_string_would() -> None:
    redactor = Redactor()
    for _ in range(2):  # the second pass reads every text from the redactor's memory
        for value in WALKED:
            assert redactor.json(value) == _every_string(value), value


FLAGGED_TICKET_ID = "T-07700900123"  # "07700900123" reads as a phone number


def test_an_outcomes_own_ticket_id_is_stored_as_its_column_stores_it() -> None:
    """The policy change for copies: the payload's `ticket_id` equal to the row's unredacted
    `ticket_id` column is no longer rewritten (it was stored as ``T-[PHONE]`` beside the column
    holding ``T-07700900123``); a different value, a nested one, a key the row has no column
    for and everything else are redacted as before."""
    assert redact_value(FLAGGED_TICKET_ID) == "T-[PHONE]"
    payload = {"ticket_id": FLAGGED_TICKET_ID, "answer": "call 07700 900123"}
    row = {"ticket_id": FLAGGED_TICKET_ID, "outcome_key": "k", "payload": payload}
    assert audit_row("outcomes", row)["payload"] == {"ticket_id": FLAGGED_TICKET_ID,
                                                     "answer": "call [PHONE]"}
    other = {**row, "ticket_id": "T-2"}
    assert audit_row("outcomes", other)["payload"]["ticket_id"] == "T-[PHONE]"
    nested = {**row, "payload": {"reasons": {"ticket_id": FLAGGED_TICKET_ID}}}
    assert audit_row("outcomes", nested)["payload"] == {"reasons": {"ticket_id": "T-[PHONE]"}}
    assert audit_row("outcomes", {"payload": payload})["payload"]["ticket_id"] == "T-[PHONE]"
    for table in ("decisions", "accountability"):
        column = AUDITED_TEXT[table][-1] if table == "accountability" else "output"
        stored = audit_row(table, {"ticket_id": FLAGGED_TICKET_ID,
                                   column: {"ticket_id": FLAGGED_TICKET_ID}})
        assert stored[column] == {"ticket_id": "T-[PHONE]"}, table


def test_the_copied_columns_are_stored_unredacted() -> None:
    """A copy is kept unread only because its column is stored in clear beside it."""
    for table, columns in COLUMN_COPIES.items():
        for copies in columns.values():
            assert not set(copies.values()) & set(AUDITED_TEXT[table]), table


def test_a_redactor_keeps_a_value_equal_to_its_clear_copy_unread() -> None:
    redactor = Redactor()
    clear = {"ticket_id": FLAGGED_TICKET_ID}
    assert redactor.json({"ticket_id": FLAGGED_TICKET_ID}, clear=clear) == (
        {"ticket_id": FLAGGED_TICKET_ID}, False)
    assert redactor.json({"ticket_id": "T-07700900124"}, clear=clear) == (
        {"ticket_id": redact_value("T-07700900124")}, True)
    assert redactor.json({"ticket_id": 7}, clear={"ticket_id": 7}) == ({"ticket_id": 7}, False)
    assert redactor.json([FLAGGED_TICKET_ID], clear=clear) == (["T-[PHONE]"], True)
