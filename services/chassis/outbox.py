"""The transactional outbox: events are written with the change, and a relay publishes them.

`add` writes an outbox row (and a NOTIFY, delivered at commit) in the caller's transaction.
`OutboxRelay` takes a batch of unsent rows with FOR UPDATE SKIP LOCKED, publishes them to
JetStream pipelined (all sent, then all acks awaited) with Nats-Msg-Id = event_id, and marks
sent only the acknowledged ones. It runs as a supervised job: a database or NATS outage ends
the run, and the supervisor starts it again with backoff, with a fresh LISTEN connection; so a
crash or an outage never loses or invents an event, and nothing outlives a restart of either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

import asyncpg
import nats.errors
from frontdesk.v1 import events_pb2
from nats.js import JetStreamContext
from nats.js.api import PubAck

from services.chassis import metrics
from services.chassis.events import subject
from services.chassis.jobs import Supervisor

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


class ListenerLost(asyncpg.PostgresConnectionError):
    """The LISTEN connection ended (the server restarted): the run ends and starts over."""


class OutboxRelay:
    """Publishes committed outbox rows; any number of replicas may run one.

    `dsn` is the database the relay LISTENs on for commits (a connection of its own, never
    one borrowed from the pool); without it the relay only polls every `fallback_interval`.
    """

    name = "outbox-relay"

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        dsn: str | None = None,
        batch_size: int = 500,
        fallback_interval: float = 1.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._js = js
        self._dsn = dsn
        self._batch_size = batch_size
        self._fallback_interval = fallback_interval
        self._publish_timeout = publish_timeout
        self._wake = asyncio.Event()
        self._own: Supervisor | None = None

    async def start(self) -> None:
        """Run alone under a supervisor of its own (tests, tools); services use `run` as a job."""
        self._own = Supervisor("outbox")
        self._own.add(self.name, self.run)
        await self._own.start()

    async def stop(self) -> None:
        if self._own is not None:
            await self._own.stop()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Publish until cancelled; raises on a database or NATS failure (the supervisor
        restarts it)."""
        listener: asyncpg.Connection | None = None
        try:
            if self._dsn:
                listener = await asyncpg.connect(self._dsn, timeout=5)
                await listener.add_listener(CHANNEL, self._on_notify)
                # A server restart ends the connection: wake up to notice and start over.
                listener.add_termination_listener(self._on_notify)
            while True:
                if listener is not None and listener.is_closed():
                    raise ListenerLost("the LISTEN connection was closed")
                self._wake.clear()
                if await self.publish_pending():
                    continue  # there may be more
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._fallback_interval)
        finally:
            if listener is not None:
                listener.terminate()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; returns how many were published (and marked sent).

        Raises when some could not be published (they stay unsent and are retried).
        """
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
            acks, failure = await self._publish(rows)
            sent = [row["id"] for row, ack in zip(rows, acks, strict=False) if ack is not None]
            # What was acked is marked sent in this transaction even when another publish
            # failed; the rest stays unsent and is retried (Nats-Msg-Id de-duplicates).
            if sent:
                await conn.execute(
                    "update outbox set sent_at = now() where id = any($1::bigint[])", sent
                )
        if sent:
            metrics.OUTBOX_PUBLISHED.inc(len(sent))
        if failure is not None:
            metrics.OUTBOX_FAILURES.inc()
            raise failure
        return len(sent)

    async def _publish(
        self, rows: Sequence[asyncpg.Record]
    ) -> tuple[list[PubAck | None], BaseException | None]:
        """Send every row in order on the one connection (so the stream stores them in order),
        then wait for the acks together; (ack or None per row, the first failure)."""
        futures: list[asyncio.Future[PubAck]] = []
        failure: BaseException | None = None
        try:
            for row in rows:
                # No wait_stall: its timeout would yield to the loop after every message,
                # and the client would write each one in its own send() (10x slower). A batch
                # stays far below the client's window of pending acks.
                futures.append(
                    await self._js.publish_async(
                        row["subject"],
                        bytes(row["payload"]),
                        headers={"Nats-Msg-Id": str(row["event_id"])},
                    )
                )
        except Exception as exc:
            failure = exc  # the ones already sent may still be acked
        if futures:
            _, pending = await asyncio.wait(futures, timeout=self._publish_timeout)
            for future in pending:
                future.cancel()  # frees its slot in the client's pending-ack window
            if pending and failure is None:
                failure = nats.errors.TimeoutError()  # the acks did not arrive in time
        acks: list[PubAck | None] = []
        for future in futures:
            if future.cancelled():
                acks.append(None)
            elif future.exception() is not None:
                failure = failure or future.exception()
                acks.append(None)
            else:
                acks.append(future.result())
        return acks, failure
