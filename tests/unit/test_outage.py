"""What counts as an outage of our infrastructure (never a handler's failed delivery), and
logging an outage once when it starts and once when it ends."""

from __future__ import annotations

import logging

import asyncpg
import grpc
import nats.errors
import pytest

from services.chassis.outage import Outages, component_of


class _Rpc(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")


@pytest.mark.parametrize(
    ("exc", "component"),
    [
        (ConnectionRefusedError(111, "refused"), "database"),
        (asyncpg.ConnectionDoesNotExistError("closed mid-query"), "database"),
        (asyncpg.CannotConnectNowError("starting up"), "database"),
        (asyncpg.SerializationError("retry"), "database"),
        (asyncpg.InterfaceError("connection is closed"), "database"),
        (nats.errors.ConnectionClosedError(), "nats"),
        (nats.errors.TimeoutError(), "nats"),
        (_Rpc(grpc.StatusCode.UNAVAILABLE), "backend"),
        (_Rpc(grpc.StatusCode.NOT_FOUND), None),
        (asyncpg.UniqueViolationError("dup"), None),
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            None,
        ),
        (ValueError("a bug"), None),
        (KeyError("a bug"), None),
    ],
)
def test_component_of(exc: BaseException, component: str | None) -> None:
    assert component_of(exc) == component


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.chassis.outage")
    outages = Outages("svc")
    outages.recovered("database")  # nothing was down: nothing to say
    for _ in range(50):
        outages.failed("database", ConnectionRefusedError(111, "refused"))
    assert outages.is_down("database")
    for _ in range(3):
        outages.recovered("database")
    assert [getattr(r, "outage", None) for r in caplog.records] == ["started", "ended"]
    assert not outages.is_down("database")
