"""The console's defences in a real headless Chromium (Debian's `chromium`, as in
test_console_browser): a form on another site cannot make a signed-in agent act (Origin check),
a same-origin call without the session's CSRF token is refused, pages carry the security
headers and run under the strict CSP without a violation (API docs included, served from the
console itself), and signing out ends the session on the server: the old cookie, replayed in
another browser, no longer signs anyone in."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Platform, PlatformClient, escalate
from .test_console import console_url, unit_with_agent
from .test_console_browser import browser, chromium_executable, page, sign_in

pytestmark = pytest.mark.e2e
__all__ = ["browser", "chromium_executable", "page"]

EVIL = "http://evil.test"


def hostile_page(target: str) -> str:
    """Another site's page that posts to the console as soon as it loads."""
    return (f'<html><body><form id="f" method="post" action="{target}/claim-next"></form>'
            '<script>document.getElementById("f").submit()</script></body></html>')


def watch_csp(page: Any) -> list[str]:
    """Every CSP violation Chromium reports on the page's console."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    return violations


async def _headers_and_no_csp_violation(page: Any, base: str, violations: list[str]) -> None:
    from playwright.async_api import expect

    response = await page.goto(f"{base}/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    await expect(page.locator("#queue-updated")).to_contain_text("Updated", timeout=15_000)
    docs = await page.goto(f"{base}/docs")
    assert docs.status == 200
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "pinworks escalation console", timeout=15_000)
    assert violations == [], violations


async def _another_site_cannot_act(page: Any, base: str, client: PlatformClient,
                                   ticket_id: str) -> None:
    async def serve(route: Any) -> None:
        await route.fulfill(status=200, content_type="text/html", body=hostile_page(base))

    await page.route(f"{EVIL}/**", serve)
    async with page.expect_response(f"{base}/claim-next") as answer:
        await page.goto(f"{EVIL}/win-a-prize")
    assert (await answer.value).status == 403
    [row] = await client.fetch("SELECT status FROM escalations WHERE ticket_id = :t", t=ticket_id)
    assert row.status == "open", "the forged form claimed nothing"


async def _no_token_no_action(page: Any, base: str, client: PlatformClient,
                              ticket_id: str) -> None:
    await page.goto(f"{base}/")
    status = await page.evaluate(
        "fetch('/api/claim-next', {method: 'POST', credentials: 'same-origin'})"
        ".then(r => r.status)")
    assert status == 403, "the cookie alone does not authorise a change"
    [row] = await client.fetch("SELECT status FROM escalations WHERE ticket_id = :t", t=ticket_id)
    assert row.status == "open"


async def test_csrf_is_refused_headers_are_strict_and_logout_ends_the_session(
    client: PlatformClient, platform: Platform, page: Any, browser: Any,
) -> None:
    from playwright.async_api import expect

    rid, unit, agent = await unit_with_agent(platform, "guarded")
    ticket_id = f"{rid}-guarded"
    await escalate(client, [ticket_id], unit)
    base = console_url(platform)
    violations = watch_csp(page)
    await sign_in(page, base, agent)
    await expect(page.locator(f"tr[data-ticket='{ticket_id}']")).to_be_visible()

    await _headers_and_no_csp_violation(page, base, violations)
    await _another_site_cannot_act(page, base, client, ticket_id)
    await _no_token_no_action(page, base, client, ticket_id)

    [cookie] = [c for c in await page.context.cookies() if c["name"] == "pinworks_session"]
    await page.goto(f"{base}/")
    await page.click("text=Sign out")
    await expect(page).to_have_url(f"{base}/login")
    other = await browser.new_context()
    try:
        await other.add_cookies([cookie])
        replay = await other.new_page()
        await replay.goto(f"{base}/")
        await expect(replay).to_have_url(f"{base}/login?next=/")
    finally:
        await other.close()
