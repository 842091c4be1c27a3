"""The agents' console listens on loopback unless told otherwise (the chart and compose set
0.0.0.0 inside the pod or container), as `make run` prints."""

import pytest

from pinworks_escalation.settings import EscalationSettings


def test_the_console_and_health_port_default_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ESCALATION_HTTP_HOST", "PINWORKS_HEALTH_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = EscalationSettings()
    assert (settings.http_host, settings.health_host) == ("127.0.0.1", "127.0.0.1")
    monkeypatch.setenv("ESCALATION_HTTP_HOST", "0.0.0.0")
    assert EscalationSettings().http_host == "0.0.0.0"
