"""What every console response and request goes through: security headers, and the refusal of
state-changing requests from another site.

Headers: a strict Content-Security-Policy (scripts, styles, images and connections only from
the console itself, no inline script or style, no framing, no plugins, forms post only here),
`X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: same-origin`,
`Cache-Control: no-store` on everything but the static assets, and
`Strict-Transport-Security` when the request came over HTTPS (or `ESCALATION_HSTS=true`).

Cross-site requests: a POST, PUT, PATCH or DELETE whose `Origin` (or, without one, `Referer`)
is neither the console's own origin nor one of `ESCALATION_TRUSTED_ORIGINS`, or that the
browser marks `Sec-Fetch-Site: cross-site`, is refused with 403 before any route runs. The
per-session CSRF token (`deps`) is the second, independent check.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")
HSTS = "max-age=31536000; includeSubDomains"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def same_token(sent: str | None, expected: str) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(sent) and hmac.compare_digest(str(sent).encode(), expected.encode())


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lower-cased; None when it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origin(scope: Scope, headers: Headers) -> str:
    host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
    return f"{scope.get('scheme', 'http')}://{host}".lower()


def cross_site(scope: Scope, headers: Headers, trusted: frozenset[str]) -> bool:
    """Whether a state-changing request comes from another site."""
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    claimed = headers.get("origin")
    if claimed is None and headers.get("referer"):
        claimed = origin_of(headers["referer"]) or "null"
    if claimed is None:
        return False  # not a browser's cross-site form or fetch: the CSRF token still applies
    return claimed.lower() != own_origin(scope, headers) and claimed.lower() not in trusted


class SecurityMiddleware:
    """Security headers on every response; cross-site state-changing requests refused."""

    def __init__(self, app: ASGIApp, trusted_origins: Iterable[str] = (),
                 hsts: bool | None = None) -> None:
        self.app = app
        self.trusted = frozenset(o for o in (origin_of(t) for t in trusted_origins) if o)
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        https = scope.get("scheme") == "https"
        static = scope.get("path", "").startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Content-Security-Policy"] = CSP
                out["X-Content-Type-Options"] = "nosniff"
                out["X-Frame-Options"] = "DENY"
                out["Referrer-Policy"] = "same-origin"
                out["Cross-Origin-Opener-Policy"] = "same-origin"
                if not static:
                    out["Cache-Control"] = "no-store"
                if self.hsts or (self.hsts is None and https):
                    out["Strict-Transport-Security"] = HSTS
            await send(message)

        if scope.get("method", "GET") in UNSAFE_METHODS and cross_site(scope, headers,
                                                                      self.trusted):
            body = json.dumps({"detail": "cross-site request refused"}).encode()
            await with_headers({"type": "http.response.start", "status": 403, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, with_headers)
