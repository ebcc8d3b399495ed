"""The transactional outbox: events are written with the change, and a relay publishes them.

`add` writes an outbox row (and a NOTIFY, delivered at commit) in the caller's transaction.
`OutboxRelay` takes unsent rows with FOR UPDATE SKIP LOCKED, publishes each to JetStream with
Nats-Msg-Id = event_id, and marks them sent only after the ack; while NATS is down it retries
with backoff, so a crash or an outage never loses or invents an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

import asyncpg
from frontdesk.v1 import events_pb2
from nats.js import JetStreamContext

from services.chassis import metrics
from services.chassis.events import subject
from services.chassis.tasks import stop_task

log = logging.getLogger(__name__)

CHANNEL = "fd_outbox"


async def add(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
    """Write `event` to the outbox in the caller's transaction (writes an outbox row)."""
    await conn.execute(
        """
        insert into outbox (event_id, workspace_id, subject, payload)
        values ($1, $2, $3, $4)
        """,
        uuid.UUID(event.event_id),
        uuid.UUID(event.workspace_id) if event.workspace_id else None,
        subject(event),
        event.SerializeToString(),
    )
    await conn.execute("select pg_notify($1, '')", CHANNEL)


async def add_many(conn: asyncpg.Connection, events: Sequence[events_pb2.Event]) -> None:
    """Write many events in one statement in the caller's transaction (bulk changes, imports)."""
    if not events:
        return
    await conn.execute(
        """
        insert into outbox (event_id, workspace_id, subject, payload)
        select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[])
        """,
        [uuid.UUID(e.event_id) for e in events],
        [uuid.UUID(e.workspace_id) if e.workspace_id else None for e in events],
        [subject(e) for e in events],
        [e.SerializeToString() for e in events],
    )
    await conn.execute("select pg_notify($1, '')", CHANNEL)


class OutboxRelay:
    """Publishes committed outbox rows; any number of replicas may run one."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        batch_size: int = 100,
        fallback_interval: float = 1.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._js = js
        self._batch_size = batch_size
        self._fallback_interval = fallback_interval
        self._publish_timeout = publish_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        await stop_task(self._task)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(CHANNEL, self._on_notify)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
                published = await self.publish_pending()
                backoff = 0.1
                if published:
                    continue  # there may be more
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._fallback_interval)
                self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                metrics.OUTBOX_FAILURES.inc()
                if self._listener is not None and self._listener.is_closed():
                    self._listener = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; returns how many were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                select id, event_id, subject, payload from outbox
                where sent_at is null
                order by id
                limit $1
                for update skip locked
                """,
                self._batch_size,
            )
            if not rows:
                return 0
            sent: list[int] = []
            failure: Exception | None = None
            for row in rows:
                try:
                    await self._js.publish(
                        row["subject"],
                        bytes(row["payload"]),
                        timeout=self._publish_timeout,
                        headers={"Nats-Msg-Id": str(row["event_id"])},
                    )
                except Exception as exc:
                    failure = exc
                    break
                sent.append(row["id"])
            # What was acked is marked sent in this transaction even when a later publish
            # failed; the rest stays unsent and is retried.
            if sent:
                await conn.execute(
                    "update outbox set sent_at = now() where id = any($1::bigint[])", sent
                )
        if sent:
            metrics.OUTBOX_PUBLISHED.inc(len(sent))
        if failure is not None:
            raise failure
        return len(sent)
