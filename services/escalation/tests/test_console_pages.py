"""The console pages' plain parts: the queue page's query string, where a form redirects,
and which decision a ticket page shows."""

from __future__ import annotations

from fastapi import HTTPException

from pinworks_escalation.console.forms import after_action
from pinworks_escalation.console.messages import (
    ERRORS,
    LOGIN_ERRORS,
    NOTICES,
    QUEUE_NOTICES,
    error,
    notice,
)
from pinworks_escalation.console.pages import PAGE_SIZE, latest_decision, page_count, page_query
from pinworks_escalation.console.work import Refusal


def test_the_queue_page_reads_its_filters_and_page() -> None:
    wanted = page_query({"q": " card ", "status": "open", "unit": "retail", "sort": "sla",
                         "page": "3"})
    assert wanted.problem is None and wanted.page_number == 3
    assert (wanted.query.search, wanted.query.status, wanted.query.business_unit) == (
        "card", "open", "retail")
    assert (wanted.query.sort, wanted.query.limit, wanted.query.offset) == (
        "sla", PAGE_SIZE, 2 * PAGE_SIZE)
    assert wanted.kept() == {"q": "card", "status": "open", "unit": "retail", "sort": "sla"}
    assert wanted.page_link()(4) == "/?q=card&status=open&unit=retail&sort=sla&page=4"


def test_a_filter_that_makes_no_sense_falls_back_with_a_message() -> None:
    wanted = page_query({"sort": "random", "page": "-2"})
    assert wanted.problem is not None and "unknown sort" in wanted.problem
    assert (wanted.query.sort, wanted.query.offset, wanted.page_number) == ("priority", 0, 1)
    assert page_query({"page": "x"}).page_number == 1
    assert page_query({}).query.status == "active"


def test_an_empty_queue_still_has_one_page() -> None:
    assert [page_count(n) for n in (0, 1, PAGE_SIZE, PAGE_SIZE + 1)] == [1, 1, 1, 2]


def test_a_form_returns_to_the_ticket_or_to_the_queue_when_it_is_gone() -> None:
    assert after_action("T 1", None, "claimed") == "/tickets/T%201?notice=claimed"
    assert after_action("T-1", Refusal(409, "T-1 is claimed by bo", "held"), "claimed") == (
        "/tickets/T-1?error=held")
    assert after_action("T-1", HTTPException(409, "<b>anything</b>"), "claimed") == (
        "/tickets/T-1?error=refused"), "only codes travel in the link"
    assert after_action("T-1", Refusal(404, "no escalated ticket T-1", "gone"), "x") == (
        "/?error=gone")


def test_pages_show_only_fixed_messages_filled_from_stored_state() -> None:
    assert notice("claimed", ticket_id="T-1", lease_minutes=15) == "You hold T-1 for 15 minutes."
    assert error("held") == "Someone else holds this ticket."
    assert error("Your account is closed, call +44 000") is None, "unknown text shows nothing"
    assert notice("claimed", QUEUE_NOTICES) is None, "the queue page has no ticket to name"
    assert error("locked", LOGIN_ERRORS) is not None and error("held", LOGIN_ERRORS) is None
    assert all(code.isidentifier() for code in (*NOTICES, *ERRORS))


def test_a_ticket_page_shows_each_stages_latest_decision() -> None:
    decisions = [{"stage": "router", "n": 1}, {"stage": "verifier", "n": 2},
                 {"stage": "router", "n": 3}]
    assert latest_decision(decisions, "router") == {"stage": "router", "n": 3}
    assert latest_decision(decisions, "classifier") is None


def test_a_reopening_shows_only_its_fixed_messages() -> None:
    from pinworks_escalation.console.messages import ANSWERED_ERRORS

    assert ANSWERED_ERRORS.issubset(ERRORS)
    assert notice("reopened", ticket_id="T-1") == (
        "Reopened: T-1 waits for a person again. Claim it to answer.")
    assert error("held", ANSWERED_ERRORS) is None
    assert after_action("T-1", Refusal(409, "T-1 was not last answered by automation",
                                       "not_automatic"), "reopened") == (
        "/tickets/T-1?error=not_automatic")


def test_the_decision_list_shows_a_routing_decision_s_reason_from_its_output() -> None:
    from pinworks_escalation.console.formatting import page_templates

    html = page_templates().env.get_template("_decision_list.html").render(decisions=[
        {"stage": "router", "version": "policy-1", "reason": "rule security-to-person -> human",
         "output": {"rule": "security-to-person", "reason": "possible fraud <or> incident"}},
        {"stage": "verifier", "version": "v1", "reason": "every check passed",
         "output": {"passed": True, "reasons": []}},
    ])
    assert "rule security-to-person -&gt; human<br><span class=\"muted\">possible fraud " \
           "&lt;or&gt; incident</span>" in html
    assert "every check passed</p>" in html
