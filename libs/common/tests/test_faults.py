"""Infrastructure faults by kind, however the driver wraps them; message faults are not."""

from __future__ import annotations

import asyncpg
import pytest
from nats import errors as nats_errors
from nats.js import errors as js_errors
from sqlalchemy import exc as sa_exc

from pinworks_common.faults import infrastructure_fault, is_infrastructure_error


def wrapped(cause: BaseException) -> sa_exc.DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: a DBAPIError around the adapter's error."""
    adapted = Exception(str(cause))
    adapted.__cause__ = cause
    return sa_exc.DBAPIError("SELECT 1", {}, adapted)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (wrapped(asyncpg.exceptions.CannotConnectNowError(
            "the database system is not yet accepting connections")), "database starting up"),
        (wrapped(asyncpg.exceptions.AdminShutdownError("terminating")), "database shutting down"),
        (wrapped(asyncpg.exceptions.TooManyConnectionsError("too many")),
         "too many database connections"),
        (wrapped(asyncpg.exceptions.SerializationError("could not serialize")),
         "serialization failure"),
        (wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")), "deadlock"),
        (wrapped(asyncpg.exceptions.ConnectionFailureError("gone")),
         "database connection failed"),
        (sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")),
         "connection refused"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset"),
        (nats_errors.TimeoutError(), "NATS timeout"),
        (js_errors.NoStreamResponseError(), "NATS unavailable (NoStreamResponseError)"),
        (nats_errors.ConnectionClosedError(), "NATS unavailable (ConnectionClosedError)"),
        (TimeoutError(), "timeout"),
        (Exception("FATAL: the database system is not yet accepting connections"),
         "database starting up"),
    ],
)
def test_infrastructure_faults_are_named_by_kind(error: BaseException, kind: str) -> None:
    assert infrastructure_fault(error) == kind


def test_a_fault_found_as_the_cause_of_another_error() -> None:
    try:
        try:
            raise asyncpg.exceptions.CannotConnectNowError("starting")
        except asyncpg.exceptions.PostgresError as inner:
            raise RuntimeError("while committing") from inner
    except RuntimeError as outer:
        assert infrastructure_fault(outer) == "database starting up"


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad body"),
        KeyError("x"),
        RecursionError("maximum recursion depth exceeded"),
        wrapped(asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape")),
        wrapped(asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax for "
                                                                  "type json")),
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        nats_errors.MaxPayloadError(),
        js_errors.BadRequestError(),
    ],
)
def test_message_faults_are_not_infrastructure(error: BaseException) -> None:
    assert not is_infrastructure_error(error)


def test_a_suppressed_context_is_not_followed() -> None:
    try:
        try:
            raise ConnectionResetError("earlier")
        except ConnectionResetError:
            raise ValueError("the message itself") from None
    except ValueError as error:
        assert infrastructure_fault(error) is None
