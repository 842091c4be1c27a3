"""The quality review page in a real headless Chromium (Debian's `chromium`, as in
test_console_browser): a signed-in agent opens it from the console's header, reads what the
customer wrote beside automation's answer, marks one answer wrong with the intent that was
right and another right; the verdicts land in `quality_reviews` under the agent's name, the
form carries the session's CSRF token, and the page runs under the strict CSP without a
violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Platform, PlatformClient
from .test_console import console_url, unit_with_agent
from .test_console_browser import SCREENSHOT_DIR, browser, chromium_executable, page, sign_in
from .test_console_browser_security import watch_csp
from .test_quality import BODY, answered_automatically, eventually

pytestmark = pytest.mark.e2e
__all__ = ["browser", "chromium_executable", "page"]


async def test_an_agent_marks_sampled_answers_on_the_quality_page(
    client: PlatformClient, platform: Platform, page: Any,
) -> None:
    from playwright.async_api import expect

    rid, unit, agent = await unit_with_agent(platform, "reviewpage")
    wrong, right = f"{rid}-wrong", f"{rid}-right"
    await answered_automatically(client, [wrong, right], unit)

    async def sampled() -> dict[str, int]:
        rows = await client.fetch("SELECT id, ticket_id FROM quality_reviews "
                                  "WHERE business_unit = :unit", unit=unit)
        return {r.ticket_id: r.id for r in rows} if len(rows) == 2 else {}

    ids = await eventually(sampled)
    base = console_url(platform)
    violations = watch_csp(page)
    await sign_in(page, base, agent)
    await page.click("#nav-quality")
    await expect(page).to_have_url(f"{base}/quality")
    card = page.locator(f"section[data-review='{ids[wrong]}']")
    await expect(card.locator("[data-role=customer]")).to_have_text(BODY)
    await expect(card.locator("[data-role=answer]")).not_to_have_text("-")
    token = await card.locator("input[name=csrf_token]").get_attribute("value")
    assert token, "the form carries the session's CSRF token"
    if SCREENSHOT_DIR:
        await page.screenshot(path=str(Path(SCREENSHOT_DIR) / "console-quality.png"),
                              full_page=True)

    await card.locator("[data-verdict=wrong]").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "Choose the intent that was right to mark an answer wrong.")
    card = page.locator(f"section[data-review='{ids[wrong]}']")
    await card.locator("[data-role=right-intent]").select_option("card_arrival")
    await card.locator("[data-verdict=wrong]").click()
    await expect(page.get_by_role("status")).to_contain_text("Marked wrong")
    await expect(page.locator(f"section[data-review='{ids[wrong]}']")).to_have_count(0)
    await page.locator(f"section[data-review='{ids[right]}'] [data-verdict=right]").click()
    await expect(page.get_by_role("status")).to_contain_text("Marked right")
    await expect(page.locator("#no-reviews")).to_be_visible()

    rows = await client.fetch("SELECT ticket_id, status, correct_intent, reviewed_by "
                              "FROM quality_reviews WHERE business_unit = :unit "
                              "ORDER BY ticket_id", unit=unit)
    assert [tuple(r) for r in rows] == [(right, "right", None, agent),
                                        (wrong, "wrong", "card_arrival", agent)]
    await page.select_option("#review-status", "wrong")
    await page.click("#quality-filters button[type=submit]")
    verdict = page.locator(f"section[data-review='{ids[wrong]}'] [data-role=verdict]")
    await expect(verdict).to_contain_text(f"marked by {agent}")
    assert violations == [], violations
