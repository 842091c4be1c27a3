"""The agents' console in a real headless Chromium (Debian's `chromium`, driven by Playwright
with its executable path: no browser download): sign in, watch the queue update, claim,
reply and resolve, and see the human outcome arrive on `tickets.outcome.resolved`."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pinworks_common.devinfra import free_port

from .conftest import Platform, PlatformClient, run_id, ticket
from .test_console import OUT_OF_SCOPE, PASSWORD, add_agents, console_url

pytestmark = pytest.mark.e2e

os.environ.setdefault("ESCALATION_HTTP_PORT", str(free_port()))

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


async def test_an_agent_signs_in_claims_replies_and_the_outcome_arrives(
    client: PlatformClient, platform: Platform, browser: object, tmp_path: Path,
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    rid = run_id()
    unit, agent = f"retail-{rid}", f"dana-{rid}"
    await add_agents(platform, {agent: unit})
    first = f"{rid}-web"
    await client.submit(ticket(first, OUT_OF_SCOPE, unit, subject="Weekend in Lisbon",
                               metadata={"tier": "premium", "first_name": "Alex"}))
    [escalated] = (await client.outcomes.wait_for([first]))[first]

    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    try:
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
    finally:
        await context.close()
