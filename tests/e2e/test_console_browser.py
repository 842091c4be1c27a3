"""The agents' console in a real headless Chromium (Debian's `chromium`, driven by Playwright
with its executable path: no browser download): sign in, watch the queue update, claim,
reply and resolve, and see the human outcome arrive on `tickets.outcome.resolved.<platform>`."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from .conftest import OUT_OF_SCOPE, Platform, PlatformClient, ticket
from .test_console import PASSWORD, console_url, unit_with_agent

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("PINWORKS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENSHOT_DIR = os.environ.get("PINWORKS_SCREENSHOT_DIR")


def chromium_path() -> str:
    found = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if found is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium "
                    "(make test-e2e does this)")
    return found


@pytest.fixture
def chromium_executable() -> str:
    return chromium_path()


@pytest_asyncio.fixture
async def browser(chromium_executable: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture
async def page(browser: object) -> AsyncIterator[Any]:
    """A fresh page in a browser context of its own (no cookies shared between tests)."""
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_an_agent_signs_in_claims_replies_and_the_outcome_arrives(
    client: PlatformClient, platform: Platform, page: Any, tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    rid, unit, agent = await unit_with_agent(platform, "retail")
    first = f"{rid}-web"
    await client.submit(ticket(first, OUT_OF_SCOPE, unit, subject="Weekend in Lisbon",
                               metadata={"tier": "premium", "first_name": "Alex"}))
    [escalated] = (await client.outcomes.wait_for([first]))[first]

    await page.goto(f"{console_url(platform)}/")
    await expect(page).to_have_url(f"{console_url(platform)}/login?next=/")
    await page.fill("#name", agent)
    await page.fill("#password", "not the password")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("wrong password")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator(f"tr[data-ticket='{first}']")).to_be_visible()

    # Live queue: a ticket escalated while the page is open appears without a reload.
    second = f"{rid}-live"
    await client.submit(ticket(second, OUT_OF_SCOPE, unit))
    await client.outcomes.wait_for([second])
    await expect(page.locator(f"tr[data-ticket='{second}']")).to_be_visible(timeout=15_000)

    await page.click(f"a[href='/tickets/{first}']")
    await expect(page.locator("#customer-body")).to_have_text(OUT_OF_SCOPE)
    await expect(page.locator("#trace-id")).to_have_text(escalated["trace_id"])
    await page.click("#claim")
    await expect(page.locator("#holder")).to_have_text(f"claimed by {agent}")
    await expect(page.get_by_role("status")).to_contain_text(f"You hold {first}")
    screenshot = tmp_path / "ticket.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    if SCREENSHOT_DIR:
        await page.screenshot(path=str(Path(SCREENSHOT_DIR) / "console-ticket.png"),
                              full_page=True)

    reply = "Hi Alex, we only look after your banking, so we can't recommend hotels."
    await page.fill("#reply", reply)
    await page.click("#resolve")
    await expect(page.get_by_role("status")).to_contain_text("Resolved")
    await expect(page.locator("#sent-reply")).to_have_text(reply)

    human = (await client.outcomes.wait_for([first], count=2))[first][1]
    assert human["status"] == "resolved"
    assert human["resolved_by"] == agent
    assert human["answer"] == reply
    assert human["trace_id"] == escalated["trace_id"]

    await page.click("text=← Queue")
    await expect(page.locator(f"tr[data-ticket='{first}']")).to_have_count(0)
    await expect(page.locator(f"tr[data-ticket='{second}']")).to_be_visible()


async def sign_in(page: Any, base: str, agent: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#name", agent)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")


async def _urgent_rows_come_first(page: Any, ids: dict[str, str]) -> None:
    """Fraud and a legal threat lead the queue, each saying why; the rest do not."""
    from playwright.async_api import expect

    rows = page.locator("#queue-rows tr[data-ticket]")
    await expect(rows).to_have_count(3)
    order = [await rows.nth(n).get_attribute("data-ticket") for n in range(3)]
    assert set(order[:2]) == {ids["fraud"], ids["ombudsman"]} and order[2] == ids["offtopic"]
    urgent = page.locator(f"tr[data-ticket='{ids['ombudsman']}']")
    await expect(urgent.locator("[data-role=ahead]")).to_contain_text("legal threat")
    await expect(urgent.locator("[data-sla=due]")).to_be_visible()
    await expect(page.locator(f"tr[data-ticket='{ids['offtopic']}'] [data-role=ahead]")
                 ).to_have_count(0)


async def test_urgent_customers_come_first_and_an_agent_inserts_and_edits_a_suggestion(
    client: PlatformClient, platform: Platform, page: Any,
) -> None:
    from playwright.async_api import expect

    from .test_agent_assist import submit_the_four

    rid, unit, agent = await unit_with_agent(platform, "urgent")
    ids = await submit_the_four(client, rid, unit)
    base = console_url(platform)
    await sign_in(page, base, agent)
    await _urgent_rows_come_first(page, ids)

    await page.click(f"a[href='/tickets/{ids['ombudsman']}']")
    await expect(page.locator("#priority-because")).to_contain_text("ombudsman")
    intent_name = await page.locator("#intent-name").inner_text()
    assert "_" not in intent_name and intent_name[:1].isupper(), intent_name
    await page.click("#claim-top")
    await expect(page.locator("#holder")).to_have_text(f"claimed by {agent}")
    box = await page.locator("#reply").bounding_box()
    assert box is not None and box["y"] < 400, f"the reply box is at the top: {box}"
    for _ in range(50):  # the specialists record the suggestion moments after escalation
        if await page.locator(".suggestion").count():
            break
        await page.wait_for_timeout(200)
        await page.reload()
    first = page.locator(".suggestion").first
    source = await first.get_attribute("data-source")
    assert source is not None and source.startswith("template:")
    suggested = await first.locator("[data-role=suggestion-text]").text_content()
    assert suggested and "Alex" in suggested
    await expect(page.locator(".suggestion[data-source=kb] [data-role=citations]")
                 ).to_contain_text("#")
    await first.locator("[data-insert]").click()
    await expect(page.locator("#reply")).to_have_value(suggested)
    await expect(page.locator("#suggestion-note")).to_contain_text("Started from")
    await page.locator("#reply").press("ControlOrMeta+End")
    addition = "\n\nP.S. I am sorry you had to write three times."
    await page.locator("#reply").type(addition)
    await page.click("#resolve")
    await expect(page.get_by_role("status")).to_contain_text("Resolved")
    await expect(page.locator("#sent-reply")).to_contain_text("write three times")
    await expect(page.locator("#sla [data-sla=met]")).to_be_visible()
    assert " (in " not in await page.locator("#sla").inner_text(), (
        "a resolved ticket's SLA does not count down")

    [action] = await client.fetch(
        "SELECT details FROM accountability WHERE ticket_id = :t AND action = 'resolve'",
        t=ids["ombudsman"])
    assist = action.details["assist"]
    assert assist["used"] == source and 0.8 < assist["similarity"] < 1
    human = (await client.outcomes.wait_for([ids["ombudsman"]], count=2))[ids["ombudsman"]][1]
    assert human["answer"] == suggested.strip() + addition or addition.strip() in human["answer"]

    await page.goto(f"{base}/reports/assist")
    await expect(page.locator("#assist-report")).to_contain_text(intent_name)


async def _pages_and_sorting(page: Any) -> None:
    """52 tickets: two pages of 50 and 2, and the sort order reverses across them."""
    from playwright.async_api import expect

    await expect(page.locator("#queue-count")).to_have_text("Tickets 1–50 of 52")
    await expect(page.locator("#queue-rows tr[data-ticket]")).to_have_count(50)
    await page.click("#page-next")
    await expect(page.locator("#queue-count")).to_have_text("Tickets 51–52 of 52")
    await expect(page.locator("#queue-rows tr[data-ticket]")).to_have_count(2)
    await page.click("#page-prev")
    await expect(page.locator("#queue-count")).to_have_text("Tickets 1–50 of 52")
    await page.select_option("#sort", "oldest")
    await page.click("#apply-filters")
    rows = page.locator("#queue-rows tr[data-ticket]")
    await expect(rows).to_have_count(50)
    oldest = await rows.first.get_attribute("data-ticket")
    await page.click("#page-next")
    await expect(rows).to_have_count(2)
    newest = await rows.last.get_attribute("data-ticket")
    await page.select_option("#sort", "newest")
    await page.click("#apply-filters")
    await expect(rows.first).to_have_attribute("data-ticket", newest or "")
    await page.click("#page-next")
    await expect(rows.last).to_have_attribute("data-ticket", oldest or "")


async def test_queue_search_filters_sorting_paging_and_the_intent_picker(
    client: PlatformClient, platform: Platform, page: Any,
) -> None:
    from playwright.async_api import expect

    rid, unit, agent = await unit_with_agent(platform, "busy")
    ids = [f"{rid}-b{n:02d}" for n in range(52)]
    for n, ticket_id in enumerate(ids):
        body = "Which museum in Porto would you recommend?" if n == 7 else OUT_OF_SCOPE
        await client.submit(ticket(ticket_id, body, unit, subject=f"Question {n}"))
    await client.outcomes.wait_for(ids)
    base = console_url(platform)
    await sign_in(page, base, agent)
    await _pages_and_sorting(page)

    await page.fill("#q", "porto")
    await page.click("#apply-filters")
    await expect(page.locator("#queue-rows tr[data-ticket]")).to_have_count(1)
    await expect(page.locator(f"tr[data-ticket='{ids[7]}']")).to_be_visible()
    await page.wait_for_timeout(2500)  # one live refresh keeps the search applied
    await expect(page.locator("#queue-rows tr[data-ticket]")).to_have_count(1)

    await page.fill("#q", "")
    await page.select_option("#status", "resolved")
    await page.click("#apply-filters")
    await expect(page.locator("#queue-rows")).to_contain_text("No ticket matches")

    await page.select_option("#status", "active")
    await page.fill("#q", ids[3])
    await page.click("#apply-filters")
    await page.click(f"a[href='/tickets/{ids[3]}']")
    await page.click("#claim")
    picker = page.locator("select#intent")
    await expect(picker).to_be_visible()
    labels = await picker.locator("option").all_inner_texts()
    assert "Compromised card" in labels and not any("_" in label for label in labels)
    await picker.select_option(label="Compromised card")
    await page.click("text=Correct and requeue")
    await expect(page.get_by_role("status")).to_contain_text(
        "Intent corrected to Compromised card")
    [example] = await client.fetch(
        "SELECT corrected_intent FROM labelled_examples WHERE ticket_id = :t", t=ids[3])
    assert example.corrected_intent == "compromised_card"
