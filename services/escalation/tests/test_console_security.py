"""Which state-changing requests count as cross-site, and the CSRF token comparison."""

from __future__ import annotations

from starlette.datastructures import Headers

from pinworks_escalation.console.security import cross_site, origin_of, same_token

SCOPE = {"type": "http", "scheme": "http", "server": ("127.0.0.1", 8000)}
TRUSTED = frozenset({"https://console.example.org"})


def verdict(**headers: str) -> bool:
    return cross_site(SCOPE, Headers({"host": "127.0.0.1:8000", **headers}), TRUSTED)


def test_a_foreign_origin_or_referer_is_cross_site() -> None:
    assert verdict(origin="https://evil.example")
    assert verdict(origin="null")
    assert verdict(referer="https://evil.example/page")
    assert verdict(referer="not a url")
    assert verdict(**{"sec-fetch-site": "cross-site"})
    assert verdict(origin="http://127.0.0.1:8000", **{"sec-fetch-site": "cross-site"})


def test_the_consoles_own_or_a_trusted_origin_is_not() -> None:
    assert not verdict(origin="http://127.0.0.1:8000")
    assert not verdict(origin="HTTP://127.0.0.1:8000")
    assert not verdict(referer="http://127.0.0.1:8000/tickets/T-1")
    assert not verdict(origin="https://console.example.org")
    assert not verdict(), "no Origin nor Referer: not a browser's cross-site request"
    assert verdict(origin="http://127.0.0.1:8001"), "another port is another origin"


def test_origins_and_tokens() -> None:
    assert origin_of("https://Example.org:8443/a?b") == "https://example.org:8443"
    assert origin_of("/relative") is None
    assert same_token("abc", "abc") and not same_token("abd", "abc")
    assert not same_token(None, "abc") and not same_token("", "abc")
