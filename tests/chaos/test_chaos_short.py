"""The short fault tier (`pinworks chaos --short`): every service SIGKILLed once, NATS
restarted, Postgres stopped, 1,200 hostile payloads among steady normal load; the full tier is
`make chaos`."""

from __future__ import annotations

import pytest

from pinworks_cli.chaos import SHORT, run_chaos

pytestmark = pytest.mark.e2e


def test_the_platform_survives_faults_and_hostile_input(tmp_path_factory: pytest.TempPathFactory
                                                        ) -> None:
    [report] = run_chaos(SHORT, workdir=tmp_path_factory.mktemp("chaos"))
    print(report.format())
    assert report.passed, report.format()
    assert report.figures["lost (no outcome)"] == 0
    assert report.figures["hostile payloads sent"] == SHORT.hostile
