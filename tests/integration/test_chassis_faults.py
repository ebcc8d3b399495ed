"""Regression tests of issue 11's four findings, against a PostgreSQL of their own that they
crash (`pg_ctl stop -m immediate`) and start again, and a real NATS server.

(a) the outbox relay publishes again after PostgreSQL restarts;
(b) a database outage longer than max_deliver x backoff never makes a consumer discard an event;
(c) a service whose database is down answers UNAVAILABLE (one log line per outage), and the
    gateway 503 `unavailable` with Retry-After;
(d) readiness follows the database and the supervised jobs, liveness does not; the gateway's
    /readyz follows its backends, /healthz stays liveness.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import nats
import pytest
from frontdesk.v1 import directory_pb2, directory_pb2_grpc, events_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy.embedded import EmbeddedPostgres, free_port
from services.chassis import db, metrics, natsconn
from services.chassis.events import subject
from services.chassis.health import LIVENESS
from services.chassis.inbox import Consumer
from services.chassis.jobs import Supervisor
from services.chassis.outbox import OutboxRelay
from tests.integration.test_chassis import MIGRATIONS, _collect, _effect_handler, _event, _write
from tests.signing import TestSigningInterceptor, keys
from tests.stack import Stack


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    """Poll `check` until it holds; fail when it has not within `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def crashable_pg() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL these tests may crash; each test leaves it running. Durable settings (not
    the suite's fast ones): a crash must not lose a committed transaction."""
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="fd-crash-pg-")) / "pg", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def crash_pool(crashable_pg: EmbeddedPostgres) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    url = crashable_pg.url.rsplit("/", 1)[0] + f"/crash_{uuid.uuid4().hex[:8]}"
    await db.ensure_database(url)
    pool = await db.create_pool(url)
    try:
        await db.migrate(pool, "chassis_test", MIGRATIONS)
        yield pool, url
    finally:
        await pool.close()


async def _restarted(server: EmbeddedPostgres, pool: asyncpg.Pool) -> None:
    server.start()

    async def answers() -> bool:
        try:
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("select true"))
        except Exception:
            return False

    await eventually(answers)


async def test_relay_publishes_again_after_postgres_restarts(
    crashable_pg: EmbeddedPostgres, crash_pool: tuple[asyncpg.Pool, str], nats_url: str
) -> None:
    pool, url = crash_pool
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    # LISTEN only (a 60 s poll): after the restart, NOTIFY must reach a new listener.
    relay = OutboxRelay(pool, js, dsn=url, fallback_interval=60.0)
    await relay.start()
    workspace_id = str(uuid.uuid4())
    try:
        first = _event(workspace_id, 1)
        await _write(pool, [first])
        assert await _collect(nats_url, workspace_id, 1) == [first.event_id]
        crashable_pg.stop("immediate")
        await _restarted(crashable_pg, pool)
        second = _event(workspace_id, 2)
        await _write(pool, [second])

        async def all_sent() -> bool:
            async with pool.acquire() as conn:
                return await conn.fetchval("select count(*) from outbox where sent_at is null") == 0

        await eventually(all_sent)
        seen = await _collect(nats_url, workspace_id, 2)
        assert sorted(seen) == sorted([first.event_id, second.event_id])
    finally:
        await relay.stop()
        await nc.close()


async def test_database_outage_longer_than_max_deliver_loses_no_event(
    crashable_pg: EmbeddedPostgres, crash_pool: tuple[asyncpg.Pool, str], nats_url: str
) -> None:
    pool, _ = crash_pool
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    workspace_id = str(uuid.uuid4())
    durable = f"outage-{workspace_id[:8]}"
    consumer = Consumer(
        pool,
        js,
        durable=durable,
        stream="FD_DIRECTORY",
        subject=f"fd.directory.{workspace_id}.>",
        handler=_effect_handler,
        max_deliver=2,
        max_backoff=0.2,
    )
    await consumer.start()
    outage = metrics.EVENTS_HANDLED.labels(durable, "outage")
    try:
        crashable_pg.stop("immediate")
        event = _event(workspace_id)
        await js.publish(subject(event), event.SerializeToString())

        async def delivered_beyond_max_deliver() -> bool:
            return outage._value.get() >= 5  # five failed attempts, max_deliver is 2

        await eventually(delivered_beyond_max_deliver)
        await _restarted(crashable_pg, pool)

        async def applied() -> bool:
            async with pool.acquire() as conn:
                return bool(
                    await conn.fetchval(
                        "select count(*) from effects where event_id = $1",
                        uuid.UUID(event.event_id),
                    )
                )

        await eventually(applied)
        async with pool.acquire() as conn:
            assert (
                await conn.fetchval(
                    "select count(*) from effects where event_id = $1", uuid.UUID(event.event_id)
                )
                == 1
            )
            assert (
                await conn.fetchval(
                    "select count(*) from dead_letters where consumer = $1", durable
                )
                == 0
            )
            assert (
                await conn.fetchval(
                    "select count(*) from consumer_failures where consumer = $1", durable
                )
                == 0
            )
    finally:
        await consumer.stop()
        await nc.close()


async def test_supervised_job_that_fails_is_restarted_counted_and_not_ready_meanwhile() -> None:
    attempts = 0
    release = asyncio.Event()

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("a bug in a loop")
        await release.wait()
        await asyncio.Event().wait()

    supervisor = Supervisor("jobs-test", min_backoff=0.01, max_backoff=0.05, stable_after=0.1)
    name = f"flaky-{uuid.uuid4().hex[:6]}"
    supervisor.add(name, flaky)
    await supervisor.start()
    try:

        async def third_run() -> bool:
            return attempts == 3 and supervisor.ready

        await eventually(third_run)
        assert supervisor.restarts(name) == 2
        assert metrics.JOB_RESTARTS.labels("jobs-test", name)._value.get() == 2
        assert supervisor.down() == []
    finally:
        await supervisor.stop()
    assert not supervisor.ready


# -- a service and a gateway on the crashable PostgreSQL --------------------------------------


@pytest.fixture
async def crash_stack(crashable_pg: EmbeddedPostgres, nats_url: str) -> AsyncIterator[Stack]:
    s = Stack(pg_url=crashable_pg.url, nats_url=nats_url)
    try:
        yield s
    finally:
        if not (crashable_pg.data_dir / "postmaster.pid").exists():
            crashable_pg.start()
        await s.close()


async def _health(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    try:
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    except grpc.aio.AioRpcError:
        return -1
    return int(resp.status)


async def test_database_down_is_unavailable_logged_once_and_readiness_follows(
    crashable_pg: EmbeddedPostgres, crash_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    running = await crash_stack.start("directory")
    base = await crash_stack.start_gateway()
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    # A plain channel, without the chassis's client-side health checking: these calls must
    # reach the server to see what it answers.
    async with (
        grpc.aio.insecure_channel(
            crash_stack.addresses["directory"], interceptors=[TestSigningInterceptor(keys().test)]
        ) as ch,
        aiohttp.ClientSession() as http,
    ):
        directory = directory_pb2_grpc.DirectoryServiceStub(ch)
        health = health_pb2_grpc.HealthStub(ch)
        assert await _health(health, "") == serving
        assert await _health(health, LIVENESS) == serving

        async def gateway_sees(expected: str) -> bool:
            # Only the directory runs here, so the gateway itself stays 503: read its view of
            # the directory (its long-lived channel's health check).
            async with http.get(f"{base}/readyz") as resp:
                body = await resp.json()
                return bool(resp.status == 503 and body["backends"]["directory"] == expected)

        await eventually(lambda: gateway_sees("serving"))
        caplog.clear()
        caplog.set_level(logging.INFO)
        crashable_pg.stop("immediate")

        async def not_ready() -> bool:
            return await _health(health, "") == not_serving

        await eventually(not_ready)
        assert await _health(health, LIVENESS) == serving  # the process works
        await eventually(lambda: gateway_sees("unavailable"))
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await directory.GetWorkspace(
                    directory_pb2.GetWorkspaceRequest(slug="nobody"), timeout=5
                )
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        # An unknown host makes the gateway ask the directory: 503, not 502, with Retry-After.
        for _ in range(3):
            async with http.get(f"{base}/api/v1/me", headers={"Host": "acme.localhost"}) as resp:
                body = await resp.json()
                assert resp.status == 503, body
                assert body["error"]["code"] == "unavailable"
                assert resp.headers["Retry-After"] == "1"
        await _restarted(crashable_pg, running.resources.pool)

        async def ready_again() -> bool:
            return await _health(health, "") == serving

        await eventually(ready_again)
        await eventually(lambda: gateway_sees("serving"))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await directory.GetWorkspace(directory_pb2.GetWorkspaceRequest(slug="nobody"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    outage_lines = [
        r
        for r in caplog.records
        if r.name == "services.chassis.outage" and getattr(r, "component", "") == "database"
    ]
    assert [getattr(r, "outage", "") for r in outage_lines] == ["started", "ended"]
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("services")]
    assert not [r for r in caplog.records if "Unexpected" in r.getMessage()]


async def test_dead_letters_are_listed_and_replayed_once_the_cause_is_fixed(
    crash_pool: tuple[asyncpg.Pool, str], nats_url: str
) -> None:
    from services.chassis.deadletters import DeadLetters

    pool, _ = crash_pool
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    workspace_id = str(uuid.uuid4())
    durable = f"replay-{workspace_id[:8]}"
    broken = True

    async def handler(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
        if broken:
            raise RuntimeError("a bug in the handler")
        await _effect_handler(conn, event)

    consumer = Consumer(
        pool,
        js,
        durable=durable,
        stream="FD_DIRECTORY",
        subject=f"fd.directory.{workspace_id}.>",
        handler=handler,
        max_deliver=2,
    )
    await consumer.start()
    letters = DeadLetters(pool, {durable: consumer})
    try:
        event = _event(workspace_id)
        await js.publish(subject(event), event.SerializeToString())

        async def dead() -> bool:
            return len(await letters.listing(durable)) == 1

        await eventually(dead)
        [row] = await letters.listing(durable)
        assert row["event_id"] == event.event_id and row["deliveries"] == 2
        broken = False  # the fix is deployed
        results = await letters.replay([row["id"], 999_999])
        assert [(r.id, r.outcome) for r in results] == [
            (row["id"], "applied"),
            (999_999, "unknown"),
        ]
        assert await letters.listing(durable) == []
        assert len(await letters.listing(durable, include_replayed=True)) == 1
        again = await letters.replay([row["id"]])
        assert [r.outcome for r in again] == ["unknown"]  # replayed already
        async with pool.acquire() as conn:
            effects = await conn.fetchval(
                "select count(*) from effects where event_id = $1", uuid.UUID(event.event_id)
            )
        assert effects == 1
    finally:
        await consumer.stop()
        await nc.close()
