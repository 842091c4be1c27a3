"""The console's request checks on real Postgres, through its ASGI app: a state-changing call
with the session cookie needs the session's CSRF token, one from another origin is refused
whatever it carries, a bearer token needs no CSRF token; every response has the security
headers; the API docs need sign-in and their assets are the console's own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from pinworks_escalation.console.deps import COOKIE
from pinworks_escalation.console.security import CSP

from .test_console_signin import PASSWORD, Setup, client_from, setup, sign_in

pytestmark = pytest.mark.integration
__all__ = ["setup"]

OWN = "http://127.0.0.1:8000"


@contextlib.asynccontextmanager
async def signed_in(setup: Setup, address: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A signed-in client (the session cookie) and its CSRF token."""
    async with client_from(setup, address) as client:
        response = await sign_in(client, setup.agent, PASSWORD)
        assert response.status_code == 200, response.text
        yield client, response.json()["csrf_token"]


async def test_a_cookie_call_without_the_csrf_token_is_refused(setup: Setup) -> None:
    async with signed_in(setup, "10.6.0.1") as (client, csrf):
        assert (await client.post("/api/claim-next")).status_code == 403
        assert (await client.post("/api/claim-next", headers={"X-CSRF-Token": "forged"})
                ).status_code == 403
        form = await client.post("/claim-next", data={"csrf_token": "forged"})
        assert form.status_code == 403
        # the right token passes the check (nothing to claim in this unit: 404 / the queue)
        assert (await client.post("/api/claim-next", headers={"X-CSRF-Token": csrf})
                ).status_code == 404
        form = await client.post("/claim-next", data={"csrf_token": csrf})
        assert form.status_code == 303 and form.headers["location"] == "/?notice=nothing"
        assert (await client.get("/api/me")).status_code == 200, "reads need no token"


async def test_another_origin_is_refused_even_with_the_token(setup: Setup) -> None:
    async with signed_in(setup, "10.6.0.2") as (client, csrf):
        for headers in ({"Origin": "https://evil.example"},
                        {"Referer": "https://evil.example/post.html"},
                        {"Sec-Fetch-Site": "cross-site", "Origin": OWN}):
            refused = await client.post("/api/claim-next",
                                        headers={"X-CSRF-Token": csrf, **headers})
            assert refused.status_code == 403, headers
        cross_login = await client.post("/login", headers={"Origin": "https://evil.example"},
                                        data={"name": setup.agent, "password": PASSWORD})
        assert cross_login.status_code == 403 and COOKIE not in cross_login.cookies
        same = await client.post("/api/claim-next", headers={"X-CSRF-Token": csrf, "Origin": OWN})
        assert same.status_code == 404


async def test_a_bearer_token_needs_no_csrf_token_and_basic_is_not_offered(setup: Setup) -> None:
    async with client_from(setup, "10.6.0.3") as script:
        issued = await script.post("/api/tokens", json={"name": setup.agent, "password": PASSWORD})
        bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
        assert (await script.post("/api/claim-next", headers=bearer)).status_code == 404
        basic = await script.get("/api/me", auth=(setup.agent, PASSWORD))
        assert basic.status_code == 401
        assert basic.headers.get("www-authenticate") == "Bearer"


async def test_every_response_has_the_security_headers(setup: Setup) -> None:
    async with signed_in(setup, "10.6.0.4") as (client, _):
        for path in ("/", "/login", "/api/me", "/static/console.css", "/nowhere"):
            response = await client.get(path)
            assert response.headers["content-security-policy"] == CSP, path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert "strict-transport-security" not in response.headers, "plain HTTP here"
        assert "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP
        page = (await client.get("/")).text
        assert "<script>" not in page and "style=" not in page, "no inline script or style"
    https = httpx.AsyncClient(transport=client._transport, base_url="https://console.test")
    async with https:
        assert (await https.get("/login")).headers["strict-transport-security"].startswith(
            "max-age=")


async def test_the_api_docs_need_sign_in_and_load_nothing_from_elsewhere(setup: Setup) -> None:
    async with client_from(setup, "10.6.0.5") as anonymous:
        assert (await anonymous.get("/openapi.json")).status_code == 401
        docs = await anonymous.get("/docs")
        assert docs.status_code == 303 and docs.headers["location"].startswith("/login")
    async with signed_in(setup, "10.6.0.6") as (client, _):
        assert "/api/queue" in (await client.get("/openapi.json")).json()["paths"]
        page = (await client.get("/docs")).text
        assert "/static/swagger-ui/swagger-ui-bundle.js" in page and "https://" not in page
        bundle = await client.get("/static/swagger-ui/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
