import asyncio

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.client import JetStreamContext

from pinworks_common.service import _fetch_raises_nats_timeouts


def test_a_bare_asyncio_timeout_from_fetch_reaches_faststream_as_the_nats_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fetch_that_times_out(self: object, *args: object, **kwargs: object) -> list:
        raise TimeoutError

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch_that_times_out)
    _fetch_raises_nats_timeouts()
    _fetch_raises_nats_timeouts()  # idempotent: wraps once
    patched = JetStreamContext.PullSubscription.fetch
    assert getattr(patched, "_pinworks_wrapped", False)
    with pytest.raises(NatsTimeoutError):
        asyncio.run(patched(object(), batch=5, timeout=0.01))
