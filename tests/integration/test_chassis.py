"""The chassis's promises, against real PostgreSQL and NATS: outbox, relay, inbox, migrations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import nats
import pytest
from frontdesk.v1 import directory_events_pb2, events_pb2
from prometheus_client import REGISTRY

from deploy.embedded import EmbeddedNats
from services.chassis import db, natsconn, outbox
from services.chassis.events import new_event, subject
from services.chassis.inbox import Consumer
from services.chassis.outbox import OutboxRelay
from tests.stack import Stack

MIGRATIONS = Path(__file__).parent / "chassis_migrations"


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    url = stack.database_url("chassis")
    await db.ensure_database(url)
    p = await db.create_pool(url)
    try:
        await db.migrate(p, "chassis_test", MIGRATIONS)
        yield p
    finally:
        await p.close()


def _event(workspace_id: str, n: int = 0) -> events_pb2.Event:
    payload = directory_events_pb2.PortalLoginRecorded(person_id=f"p{n}")
    return new_event(workspace_id, "", "directory", "portal_login_recorded", payload)


async def _write(pool: asyncpg.Pool, events: list[events_pb2.Event]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await outbox.add(conn, event)


async def _unsent(pool: asyncpg.Pool, events: list[events_pb2.Event]) -> int:
    """How many of these events (only these: other tests share the table) are still unsent."""
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            "select count(*) from outbox where sent_at is null and event_id = any($1::uuid[])",
            [uuid.UUID(e.event_id) for e in events],
        )
    return count


async def _until(condition: Callable[[], Awaitable[bool]], what: str, wait: float = 10.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `wait` seconds."""
    deadline = asyncio.get_running_loop().time() + wait
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


def _relay_failures() -> float:
    return REGISTRY.get_sample_value("frontdesk_outbox_failures_total") or 0.0


async def _collect(nats_url: str, workspace_id: str, count: int, wait: float = 10.0) -> list[str]:
    """Read what the stream holds for one workspace (ordered consumer, from the start)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"fd.directory.{workspace_id}.>", ordered_consumer=True)
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + wait
        while len(seen) < count and asyncio.get_running_loop().time() < deadline:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            seen.append(events_pb2.Event.FromString(msg.data).event_id)
        # Anything beyond `count` (a duplicate) would arrive promptly too.
        try:
            while True:
                msg = await sub.next_msg(timeout=0.5)
                seen.append(events_pb2.Event.FromString(msg.data).event_id)
        except nats.errors.TimeoutError:
            pass
        return seen
    finally:
        await nc.close()


async def test_event_written_before_a_crash_is_published_once_by_competing_relays(
    pool: asyncpg.Pool, nats_url: str
) -> None:
    workspace_id = str(uuid.uuid4())
    events = [_event(workspace_id, n) for n in range(20)]
    # The "publisher" commits and dies before publishing: only the outbox rows remain.
    await _write(pool, events)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    relays = [OutboxRelay(pool, js, batch_size=3) for _ in range(3)]
    try:
        for relay in relays:
            await relay.start()
        seen = await _collect(nats_url, workspace_id, len(events))
        assert sorted(seen) == sorted(e.event_id for e in events)
        assert await _unsent(pool, events) == 0
    finally:
        for relay in relays:
            await relay.stop()
        await nc.close()


async def test_relay_wakes_on_notify_within_milliseconds(
    pool: asyncpg.Pool, nats_url: str, stack: Stack
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    # Polling alone would take 30 s: the relay LISTENs on a connection of its own.
    relay = OutboxRelay(pool, js, dsn=stack.database_url("chassis"), fallback_interval=30.0)
    await relay.start()
    try:

        async def listening() -> bool:
            async with pool.acquire() as conn:
                return bool(
                    await conn.fetchval(
                        "select count(*) from pg_stat_activity where datname = current_database()"
                        " and query ilike 'listen %fd_outbox%'"
                    )
                )

        await _until(listening, "the relay listens for NOTIFY")
        workspace_id = str(uuid.uuid4())
        event = _event(workspace_id)
        await _write(pool, [event])
        seen = await _collect(nats_url, workspace_id, 1, wait=5.0)
        assert seen == [event.event_id]
    finally:
        await relay.stop()
        await nc.close()


async def test_nats_down_for_a_while_loses_no_event(
    pool: asyncpg.Pool, nats_server: EmbeddedNats | None
) -> None:
    if nats_server is None:
        pytest.skip("needs the embedded NATS server to stop and restart it")
    nc = await natsconn.connect(nats_server.url, "relay-test")
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    relay = OutboxRelay(pool, js, publish_timeout=0.5, fallback_interval=0.2)
    await relay.start()
    workspace_id = str(uuid.uuid4())
    try:
        before = [_event(workspace_id, n) for n in range(3)]
        await _write(pool, before)

        async def before_sent() -> bool:
            return await _unsent(pool, before) == 0

        await _until(before_sent, "the events before the outage are published")
        nats_server.stop()
        failures = _relay_failures()
        during = [_event(workspace_id, n) for n in range(3, 10)]
        await _write(pool, during)

        async def relay_failed() -> bool:
            return _relay_failures() > failures

        await _until(relay_failed, "the relay tried to publish while NATS was down")
        assert await _unsent(pool, during) == len(during)
        nats_server.start()
        seen = await _collect(nats_server.url, workspace_id, 10, wait=20.0)
        assert sorted(seen) == sorted(e.event_id for e in before + during)
    finally:
        await relay.stop()
        await nc.close()


async def _effect_handler(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
    await conn.execute(
        "insert into effects (event_id, note) values ($1, $2)", uuid.UUID(event.event_id), "applied"
    )


async def test_redelivered_event_has_its_effect_once(pool: asyncpg.Pool, nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    workspace_id = str(uuid.uuid4())
    consumer = Consumer(
        pool,
        js,
        durable=f"effects-{workspace_id[:8]}",
        stream="FD_DIRECTORY",
        subject=f"fd.directory.{workspace_id}.>",
        handler=_effect_handler,
    )
    await consumer.start()
    try:
        event = _event(workspace_id)
        # The same event delivered twice (e.g. republished after a lost ack).
        for msg_id in ("first", "second"):
            await js.publish(
                subject(event), event.SerializeToString(), headers={"Nats-Msg-Id": msg_id}
            )
        for _ in range(100):
            async with pool.acquire() as conn:
                handled = await conn.fetchval(
                    "select count(*) from inbox where event_id = $1", uuid.UUID(event.event_id)
                )
            info = await js.consumer_info("FD_DIRECTORY", f"effects-{workspace_id[:8]}")
            if handled and info.num_ack_pending == 0 and info.num_pending == 0:
                break
            await asyncio.sleep(0.05)
        async with pool.acquire() as conn:
            effects = await conn.fetchval(
                "select count(*) from effects where event_id = $1", uuid.UUID(event.event_id)
            )
        assert effects == 1
    finally:
        await consumer.stop()
        await nc.close()


async def test_side_by_side_consumer_overlaps_keys_and_keeps_each_keys_order(
    pool: asyncpg.Pool, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    workspace_id = str(uuid.uuid4())
    events = [_event(workspace_id, n) for n in range(24)]  # persons p0..p23
    seen: list[tuple[str, int]] = []
    running, most = 0, 0
    all_in = asyncio.Event()

    async def handler(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        n = int(event.directory.portal_login_recorded.person_id[1:])
        await asyncio.sleep(0.02 * (3 - n % 3))  # the first of each key is the slowest
        seen.append((str(n % 3), n))
        running -= 1
        if len(seen) == len(events):
            all_in.set()

    consumer = Consumer(
        pool,
        js,
        durable=f"sides-{workspace_id[:8]}",
        stream="FD_DIRECTORY",
        subject=f"fd.directory.{workspace_id}.>",
        handler=handler,
        concurrency=4,
        order_key=lambda e: str(int(e.directory.portal_login_recorded.person_id[1:]) % 3),
    )
    for event in events:  # all waiting before the consumer fetches: batches of several
        await js.publish(
            subject(event), event.SerializeToString(), headers={"Nats-Msg-Id": event.event_id}
        )
    await consumer.start()
    try:
        await asyncio.wait_for(all_in.wait(), 20)
        assert most > 1  # keys overlapped
        for key in "012":
            order = [n for k, n in seen if k == key]
            assert order == sorted(order)  # one key's events in stream order
    finally:
        await consumer.stop()
        await nc.close()


async def test_failing_and_unparseable_messages_end_as_dead_letters(
    pool: asyncpg.Pool, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await natsconn.ensure_streams(js)
    workspace_id = str(uuid.uuid4())
    attempts: list[str] = []

    async def failing(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
        attempts.append(event.event_id)
        raise RuntimeError("downstream refused")

    durable = f"dlq-{workspace_id[:8]}"
    consumer = Consumer(
        pool,
        js,
        durable=durable,
        stream="FD_DIRECTORY",
        subject=f"fd.directory.{workspace_id}.>",
        handler=failing,
        max_deliver=2,
    )
    await consumer.start()
    try:
        event = _event(workspace_id)
        await js.publish(subject(event), event.SerializeToString())
        await js.publish(f"fd.directory.{workspace_id}.garbage", b"\xff\xfe not protobuf")
        rows: list[asyncpg.Record] = []
        for _ in range(200):
            async with pool.acquire() as conn:
                rows = await conn.fetch("select * from dead_letters where consumer = $1", durable)
            if len(rows) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(rows) == 2
        by_event = {r["event_id"]: r for r in rows}
        assert "downstream refused" in by_event[event.event_id]["error"]
        assert by_event[event.event_id]["deliveries"] == 2
        assert "unparseable" in by_event[None]["error"]
        assert len(attempts) == 2
        async with pool.acquire() as conn:
            # A failed effect leaves no inbox row behind: nothing is marked handled.
            assert (
                await conn.fetchval("select count(*) from inbox where consumer = $1", durable) == 0
            )
    finally:
        await consumer.stop()
        await nc.close()


async def test_migrations_started_twice_in_parallel_apply_once(stack: Stack) -> None:
    url = stack.database_url("parallel")
    await asyncio.gather(db.ensure_database(url), db.ensure_database(url))
    pools = [await db.create_pool(url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(db.migrate(p, "chassis_test", MIGRATIONS) for p in pools))
        applied = sorted(results[0] + results[1])
        assert applied == [
            "chassis/0001_outbox_inbox.sql",
            "chassis/0002_pipeline_retention.sql",
            "chassis/0003_drop_outbox_attempts.sql",
            "chassis_test/0001_effects.sql",
        ]
        async with pools[0].acquire() as conn:
            names = [r["name"] for r in await conn.fetch("select name from schema_migrations")]
        assert sorted(names) == applied
        assert await db.migrate(pools[0], "chassis_test", MIGRATIONS) == []
    finally:
        for p in pools:
            await p.close()


async def test_a_changed_applied_migration_stops_the_start_before_anything_runs(
    stack: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    first = folder / "0001_notes.sql"
    first.write_text("create table notes (id int primary key);\n", encoding="utf-8")
    url = stack.database_url("checksums")
    await db.ensure_database(url)
    pool = await db.create_pool(url)
    try:
        assert "checksum_test/0001_notes.sql" in await db.migrate(pool, "checksum_test", folder)
        first.write_text("create table notes (id bigint primary key);\n", encoding="utf-8")
        (folder / "0002_more.sql").write_text("create table more (id int);\n", encoding="utf-8")
        with pytest.raises(db.MigrationChanged) as info:
            await db.migrate(pool, "checksum_test", folder)
        assert info.value.names == ["checksum_test/0001_notes.sql"]
        assert "checksum_test/0001_notes.sql" in str(info.value)
        async with pool.acquire() as conn:
            names = {r["name"] for r in await conn.fetch("select name from schema_migrations")}
            assert "checksum_test/0002_more.sql" not in names  # nothing ran after the refusal
            assert await conn.fetchval("select to_regclass('more')") is None
        first.write_text("create table notes (id int primary key);\n", encoding="utf-8")
        assert await db.migrate(pool, "checksum_test", folder) == ["checksum_test/0002_more.sql"]
    finally:
        await pool.close()
