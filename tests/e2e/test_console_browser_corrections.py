"""An agent corrects an automatic answer in the console, in a real headless Chromium (as in
test_console_browser): the ticket's page shows what automation answered with a reopen form,
the reopened ticket is claimed and resolved with the intent that was right (the resolve form's
intent), and the unit's live estimate counts one wrong answer. Another unit's agent cannot see
or reopen it, a form without the session's CSRF token is refused, and the pages run under the
strict CSP without a violation."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Platform, PlatformClient
from .test_console import add_agents, console_url, signed_in, unit_with_agent
from .test_console_browser import browser, chromium_executable, page, sign_in
from .test_console_browser_security import watch_csp
from .test_quality import BODY, answered_automatically, estimate_of, eventually

pytestmark = pytest.mark.e2e
__all__ = ["browser", "chromium_executable", "page"]


async def _another_unit_cannot_reopen(platform: Platform, client: PlatformClient, rid: str,
                                      ticket_id: str) -> None:
    other = f"agent-other-{rid}"
    await add_agents(platform, {other: f"other-{rid}"})
    session = await signed_in(platform, other)
    try:
        shown = await session.get(f"/tickets/{ticket_id}")
        assert shown.status_code == 404 and "reopen" not in shown.text
        refused = await session.post(f"/tickets/{ticket_id}/reopen",
                                     data={"reason": "not my unit"}, follow_redirects=False)
        assert (refused.status_code, refused.headers["location"]) == (303, "/?error=gone")
    finally:
        await session.aclose()
    assert await client.fetch("SELECT 1 FROM escalations WHERE ticket_id = :t",
                              t=ticket_id) == []


async def _no_token_no_reopen(page: Any, client: PlatformClient, ticket_id: str) -> None:
    status = await page.evaluate(
        f"fetch('/tickets/{ticket_id}/reopen', {{method: 'POST', credentials: 'same-origin', "
        "body: new URLSearchParams({reason: 'forged'})}).then(r => r.status)")
    assert status == 403, "the cookie alone does not reopen a ticket"
    assert await client.fetch("SELECT 1 FROM escalations WHERE ticket_id = :t",
                              t=ticket_id) == []


async def test_an_agent_reopens_an_automatic_answer_and_resolves_it_with_another_intent(
    client: PlatformClient, platform: Platform, page: Any,
) -> None:
    from playwright.async_api import expect

    rid, unit, agent = await unit_with_agent(platform, "webfix")
    answered = f"{rid}-answered"
    await answered_automatically(client, [answered], unit)
    await _another_unit_cannot_reopen(platform, client, rid, answered)

    base = console_url(platform)
    violations = watch_csp(page)
    await sign_in(page, base, agent)
    await expect(page.locator("#queue-rows")).to_be_visible()
    await page.goto(f"{base}/tickets/{answered}")
    await expect(page.locator("#answered-by")).to_have_text("answered automatically")
    await expect(page.locator("#customer-body")).to_have_text(BODY)
    await expect(page.locator("#answered-intent")).to_contain_text("Change pin")
    assert await page.locator("#automatic-answer").inner_text() not in ("", "-")
    await _no_token_no_reopen(page, client, answered)
    await page.fill("#reopen-reason", "   ")
    await page.click("#reopen")
    await expect(page.get_by_role("alert")).to_have_text(
        "Say why the automatic answer needs a person.")
    await page.fill("#reopen-reason", "The customer says the card has not arrived yet.")
    await page.click("#reopen")
    await expect(page.get_by_role("status")).to_have_text(
        f"Reopened: {answered} waits for a person again. Claim it to answer.")
    await page.click("#claim")
    await expect(page.locator("#holder")).to_have_text(f"claimed by {agent}")
    await expect(page.locator("#reopen")).to_have_count(0)
    picker = page.locator("select#resolve-intent")
    await expect(picker.locator("option").first).to_have_text("As classified (Change pin)")
    await picker.select_option(label="Card arrival")
    await page.fill("#reply", "Sorry: your new card is on its way and arrives this week.")
    await page.click("#resolve")
    await expect(page.get_by_role("status")).to_contain_text("Resolved")

    human = (await client.outcomes.wait_for([answered], count=2))[answered][1]
    assert (human["resolved_by"], human["intent"]) == (agent, "card_arrival")

    async def counted() -> tuple[int, int] | None:
        estimate = await estimate_of(client, unit)
        return estimate if estimate and estimate[0] else None

    assert await eventually(counted) == (1, 1)
    [review] = await client.fetch(
        "SELECT status, correct_intent, reviewed_by FROM quality_reviews WHERE ticket_id = :t",
        t=answered)
    assert tuple(review) == ("wrong", "card_arrival", agent)
    actions = await client.fetch(
        "SELECT action, details->>'reason' AS reason FROM accountability WHERE ticket_id = :t "
        "AND actor_type = 'person' ORDER BY id", t=answered)
    assert [(a.action, a.reason) for a in actions] == [
        ("reopen", "The customer says the card has not arrived yet."), ("claim", None),
        ("resolve", None)]
    # a person's answer is not reopened: the page is the resolved ticket, without the form
    await page.goto(f"{base}/tickets/{answered}")
    await expect(page.locator("#sent-reply")).to_contain_text("on its way")
    await expect(page.locator("#reopen")).to_have_count(0)
    assert violations == [], violations
