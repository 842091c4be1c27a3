"""The CLI's stored agent sign-in without a console: the token file is private, a file others
may read or an expired sign-in is not used, a token goes only to the console that issued it,
and a password never goes over plain http to another machine (the console itself:
tests/e2e/test_cli_login.py)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from pinworks_common.commands import agent_session as session
from pinworks_common.commands.platform import PlatformUnavailable


def token(url: str = "http://127.0.0.1:8000", hours: float = 1) -> session.AgentToken:
    return session.AgentToken(url, "ana", ("retail",), "secret-token",
                              datetime.now(UTC) + timedelta(hours=hours))


@pytest.fixture
def token_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state" / "agent-token.json"
    monkeypatch.setenv(session.TOKEN_FILE_ENV, str(path))
    monkeypatch.setenv(session.CONSOLE_URL_ENV, "http://127.0.0.1:8000")
    return path


def test_the_token_file_is_readable_by_its_owner_only(token_path: Path) -> None:
    written = session.save_token(token())
    assert written == token_path
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_path.parent.stat().st_mode) == 0o700
    stored = session.stored_token()
    assert (stored.agent, stored.business_units, stored.token) == ("ana", ("retail",), "secret-token")
    assert not list(token_path.parent.glob(".*")), "no partial file left behind"


def test_a_token_file_others_may_read_is_not_used(token_path: Path) -> None:
    session.save_token(token())
    token_path.chmod(0o644)
    with pytest.raises(session.NotSignedIn, match="may be read by others"):
        session.stored_token()
    assert session.read_token().token == "secret-token", "logout can still revoke it"


def test_an_expired_or_missing_sign_in_is_refused(token_path: Path) -> None:
    with pytest.raises(session.NotSignedIn, match="not signed in"):
        session.stored_token()
    session.save_token(token(hours=-1))
    with pytest.raises(session.NotSignedIn, match="expired at"):
        session.stored_token()
    token_path.write_text("{not json")
    with pytest.raises(session.NotSignedIn, match="no sign-in this CLI can read"):
        session.stored_token()


def test_a_token_goes_only_to_the_console_that_issued_it(
        token_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    session.save_token(token("http://127.0.0.1:8000"))
    monkeypatch.setenv(session.CONSOLE_URL_ENV, "http://127.0.0.1:9")
    with pytest.raises(typer.Exit) as exited:
        session.as_agent("GET", "/api/me")
    assert exited.value.exit_code == 1
    assert "you signed in at http://127.0.0.1:8000, not at http://127.0.0.1:9" in capsys.readouterr().err


def test_no_password_over_plain_http_to_another_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(session.CONSOLE_URL_ENV, "http://console.example.com:8000/")
    with pytest.raises(PlatformUnavailable, match="unencrypted"):
        session.console_url()
    monkeypatch.setenv(session.CONSOLE_URL_ENV, "https://console.example.com/")
    assert session.console_url() == "https://console.example.com"
    monkeypatch.setenv(session.CONSOLE_URL_ENV, "http://localhost:8000")
    assert session.console_url() == "http://localhost:8000"


def test_an_unreachable_console_is_one_line_and_exit_2(
        token_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(session.CONSOLE_URL_ENV, "http://127.0.0.1:9")
    session.save_token(token("http://127.0.0.1:9"))
    with pytest.raises(typer.Exit) as exited:
        session.as_agent("GET", "/api/me")
    assert exited.value.exit_code == 2
    assert "cannot reach the escalation console at http://127.0.0.1:9" in capsys.readouterr().err


def test_a_redirect_is_not_followed_with_the_token() -> None:
    """A console (or something posing as one) that redirects never gets the token forwarded."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirecting(Elsewhere):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{elsewhere.server_address[1]}/x")
            self.end_headers()

    console = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (elsewhere, console):
        Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(session.ConsoleRefusal) as refused:
            session.call(f"http://127.0.0.1:{console.server_address[1]}", "GET", "/api/me",
                         token="secret-token")
        assert refused.value.status == 307
        assert seen == [], "nothing reached the redirect's target"
    finally:
        for server in (elsewhere, console):
            server.shutdown()
            server.server_close()
