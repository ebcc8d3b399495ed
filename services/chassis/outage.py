"""What counts as an outage of our own infrastructure, and logging it once at start and end.

A failure of PostgreSQL, NATS or a backend we call is not a bug of the code that met it: a
call answers UNAVAILABLE, a consumer retries without counting a delivery, a job restarts
without a traceback. `Outages` logs one line when a component goes away and one when it is
back, however many calls meet it in between.
"""

from __future__ import annotations

import logging
import time

import asyncpg
import grpc
import nats.errors
import nats.js.errors

log = logging.getLogger(__name__)

_PG = (
    asyncpg.PostgresConnectionError,  # incl. connection lost mid-query, cannot connect
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock: retry
)
_NATS = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)
_UNAVAILABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def component_of(exc: BaseException) -> str | None:
    """'database', 'nats' or 'backend' when `exc` is an outage of that component, else None."""
    if isinstance(exc, _PG):
        return "database"
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return "database"
    if isinstance(exc, _NATS):
        return "nats"
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _UNAVAILABLE_CODES:
        return "backend"
    if isinstance(exc, (OSError, TimeoutError)):
        # Connection refused/reset, and a pool or connect timeout: the far side is away.
        return "database"
    return None


def is_infrastructure_error(exc: BaseException) -> bool:
    return component_of(exc) is not None


class Outages:
    """Per component: one warning when it goes away, one info line when it is back."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._since: dict[str, float] = {}

    def failed(self, component: str, exc: BaseException | str) -> None:
        if component in self._since:
            return
        self._since[component] = time.monotonic()
        log.warning(
            "%s unavailable: %s",
            component,
            exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}",
            extra={"component": component, "outage": "started"},
        )

    def recovered(self, component: str) -> None:
        since = self._since.pop(component, None)
        if since is None:
            return
        log.info(
            "%s available again after %.1fs",
            component,
            time.monotonic() - since,
            extra={"component": component, "outage": "ended"},
        )

    def is_down(self, component: str) -> bool:
        return component in self._since
