"""Which failures are the infrastructure's, not the message's.

A stage waits out an infrastructure fault (database or NATS down, restarting, overloaded, a
transaction that lost a serialization race) and retries the message as often as it takes; only
a failure the message causes on its own merits counts towards dead-lettering. The database's
faults are recognised by SQLSTATE wherever asyncpg and SQLAlchemy wrap them, because the driver
raises "the database system is starting up" as a plain `PostgresError`, not a connection error.
"""

from __future__ import annotations

from collections.abc import Iterator

from nats import errors as nats_errors
from nats.js import errors as js_errors
from sqlalchemy import exc as sa_exc

SQLSTATE_FAULTS: dict[str, str] = {
    "57P01": "database shutting down",
    "57P02": "database crashed",
    "57P03": "database starting up",
    "57P05": "database session timed out",
    "53300": "too many database connections",
    "40001": "serialization failure",
    "40P01": "deadlock",
    "55P03": "lock not available",
    "57014": "statement cancelled",
}
SQLSTATE_CLASS_FAULTS: dict[str, str] = {
    "08": "database connection failed",
    "53": "database out of resources",
    "58": "database system error",
}
NATS_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (
    nats_errors.MaxPayloadError,
    nats_errors.BadSubjectError,
    nats_errors.BadHeaderError,
    nats_errors.JsonParseError,
    js_errors.BadRequestError,
)
STARTING_UP_TEXT = "not yet accepting connections"


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (`orig`) and what caused it, each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.append(getattr(current, "orig", None))
        pending.append(current.__cause__)
        if not current.__suppress_context__:
            pending.append(current.__context__)


def _sqlstate_fault(error: BaseException) -> str | None:
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if not isinstance(sqlstate, str):
        return None
    return SQLSTATE_FAULTS.get(sqlstate) or SQLSTATE_CLASS_FAULTS.get(sqlstate[:2])


def _specific_kind_of(error: BaseException) -> str | None:
    fault = _sqlstate_fault(error)
    if fault:
        return fault
    if STARTING_UP_TEXT in str(error):
        return "database starting up"
    if isinstance(error, nats_errors.TimeoutError | js_errors.FetchTimeoutError):
        return "NATS timeout"
    if isinstance(error, nats_errors.Error):
        return f"NATS unavailable ({type(error).__name__})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "connection reset"
    return None


def _generic_kind_of(error: BaseException) -> str | None:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return "database connection lost"
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError
                  | sa_exc.DisconnectionError):
        return "database connection lost"
    if isinstance(error, sa_exc.TimeoutError):
        return "database connection pool exhausted"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, OSError):
        return f"network error ({type(error).__name__})"
    return None


def infrastructure_fault(error: BaseException) -> str | None:
    """The kind of infrastructure fault behind `error`, or None if the message is to blame."""
    links = list(_chain(error))
    if any(isinstance(link, NATS_MESSAGE_ERRORS) for link in links):
        return None
    for kind_of in (_specific_kind_of, _generic_kind_of):
        for link in links:
            kind = kind_of(link)
            if kind:
                return kind
    return None


def is_infrastructure_error(error: BaseException) -> bool:
    return infrastructure_fault(error) is not None
