"""The classifier as offline tools find it: by the entry point `pinworks.offline_classifier`."""

from __future__ import annotations

from importlib.metadata import entry_points

from pinworks_contracts.messages import TicketSubmission


def test_the_entry_point_classifies_a_batch_with_the_shipped_model() -> None:
    [entry] = [e for e in entry_points(group="pinworks.offline_classifier") if e.name == "intent"]
    classify = entry.load()
    tickets = [TicketSubmission(ticket_id="a", business_unit="retail",
                                body="My new card has not arrived yet, it has been two weeks"),
               TicketSubmission(ticket_id="b", business_unit="retail",
                                body="what is the weather in paris tomorrow")]
    classifications, version = classify(tickets, None)
    assert version.startswith("intent-")
    assert [c.model_version for c in classifications] == [version, version]
    assert classifications[0].intent == "card_arrival" and not classifications[0].out_of_scope
    assert classifications[1].out_of_scope
