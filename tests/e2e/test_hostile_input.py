"""Hostile submissions at the front door, on real NATS and Postgres: each is rejected with a
reason (an outcome when its id is readable, a `rejected_payloads` row always) or, when it is odd
but valid, flows like any ticket; the normal tickets around them are not held up."""

from __future__ import annotations

import json

import pytest

from pinworks_cli.hostile import KINDS, corpus
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.subjects import TICKETS_STREAM, submission_subject

from .conftest import PlatformClient, run_id, ticket

pytestmark = pytest.mark.e2e


async def test_every_hostile_kind_is_rejected_with_a_reason_and_neighbours_flow(
    client: PlatformClient,
) -> None:
    rid = run_id()
    hostile = list(corpus(rid, 2 * len(KINDS)))
    normal_ids = []
    seq_of: dict[int, int] = {}
    for n, entry in enumerate(hostile):
        ack = await client.js.publish(submission_subject(DEFAULT_PLATFORM), entry.payload,
                                      stream=TICKETS_STREAM,
                                      headers={"Nats-Msg-Id": f"{rid}-h{n}"})
        seq_of[n] = ack.seq
        if n % 4 == 0:
            normal_ids.append(f"normal-{rid}-{n}")
            await client.submit(ticket(normal_ids[-1], "How can I change the PIN on my card?"))

    owed = [entry.ticket_id for entry in hostile if entry.ticket_id is not None]
    seen = await client.outcomes.wait_for(normal_ids + owed, within=120)

    for ticket_id in normal_ids:
        [outcome] = seen[ticket_id]
        assert outcome["status"] != "rejected", outcome
    for entry in hostile:
        if entry.ticket_id is None:
            continue
        [outcome] = seen[entry.ticket_id]
        if entry.expect == "reject":
            assert outcome["status"] == "rejected", (entry.kind, outcome)
            assert outcome["reasons"] and all(outcome["reasons"]), (entry.kind, outcome)
        else:
            assert outcome["status"] != "rejected", (entry.kind, outcome)

    rejected_seqs = [seq_of[n] for n, entry in enumerate(hostile) if entry.expect == "reject"]
    rows = await client.fetch(
        "SELECT stream_seq, ticket_id, reasons FROM rejected_payloads "
        "WHERE stream_seq = ANY(:seqs)", seqs=rejected_seqs)
    assert sorted(row.stream_seq for row in rows) == sorted(rejected_seqs)
    assert all(row.reasons for row in rows)
    by_seq = {row.stream_seq: row for row in rows}
    for n, entry in enumerate(hostile):
        if entry.expect == "reject":
            assert by_seq[seq_of[n]].ticket_id == entry.ticket_id, entry.kind

    accepted = [e.ticket_id for e in hostile if e.expect == "accept"]
    stored = await client.fetch("SELECT ticket_id, body FROM tickets WHERE ticket_id = ANY(:ids)",
                                ids=accepted)
    assert len(stored) == len(accepted)
    literal = [e for e in hostile if e.kind == "literal-backslash-u0000"][0]
    body = {row.ticket_id: row.body for row in stored}[literal.ticket_id]
    assert body == json.loads(literal.payload)["body"] and "\\u0000" in body

    dead = await client.fetch("SELECT count(*) AS n FROM dead_letters WHERE ticket_id = ANY(:ids)",
                              ids=owed + normal_ids)
    assert dead[0].n == 0
