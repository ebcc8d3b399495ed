"""Durable JetStream consumers whose effects are idempotent through the inbox table.

For each message the handler runs in a transaction that first records (consumer, event_id)
in the inbox; a redelivered event finds its id there and has no effect twice. The message is
acked after commit; a passing error naks with a delay, and after max_deliver attempts (or for
a message that cannot be parsed) a dead-letter row is written and the message is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from frontdesk.v1 import events_pb2
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.chassis import metrics
from services.chassis.logs import event_id_var
from services.chassis.tasks import stop_task

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, events_pb2.Event], Awaitable[None]]


class Consumer:
    """One durable pull consumer on one stream, shared by all replicas of a service."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        durable: str,
        stream: str,
        subject: str,
        handler: Handler,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        batch: int = 50,
    ) -> None:
        self._pool = pool
        self._js = js
        self._durable = durable
        self._stream = stream
        self._subject = subject
        self._handler = handler
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=self._max_deliver,
            ack_wait=self._ack_wait,
            filter_subject=self._subject,
        )
        sub = await self._js.pull_subscribe(
            self._subject, durable=self._durable, stream=self._stream, config=config
        )
        self._sub = sub
        self._task = asyncio.create_task(self._run(sub), name=f"consumer-{self._durable}")

    async def stop(self) -> None:
        await stop_task(self._task)
        if self._sub is not None:
            # Buffered, unhandled messages would otherwise hold a NATS drain until it times
            # out; unacked, they are redelivered to another replica.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                msgs = await sub.fetch(self._batch, timeout=1.0)
            except (NatsTimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer %s fetch failed: %s", self._durable, exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        deliveries = msg.metadata.num_delivered if msg.metadata else 1
        try:
            event = events_pb2.Event.FromString(msg.data)
            uuid.UUID(event.event_id)
        except (DecodeError, ValueError) as exc:
            await self._dead_letter(msg, None, f"unparseable event: {exc}", deliveries)
            await msg.term()
            return
        token = event_id_var.set(event.event_id)
        try:
            applied = await self.apply(event)
            await msg.ack()
            metrics.EVENTS_HANDLED.labels(
                self._durable, "applied" if applied else "duplicate"
            ).inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if deliveries >= self._max_deliver:
                log.error(
                    "consumer %s gives up on event after %d deliveries: %s",
                    self._durable,
                    deliveries,
                    exc,
                )
                await self._dead_letter(msg, event.event_id, repr(exc), deliveries)
                await msg.term()
                metrics.EVENTS_HANDLED.labels(self._durable, "dead").inc()
            else:
                log.warning("consumer %s failed (delivery %d): %s", self._durable, deliveries, exc)
                await msg.nak(delay=min(0.5 * 2**deliveries, 30.0))
                metrics.EVENTS_HANDLED.labels(self._durable, "retry").inc()
        finally:
            event_id_var.reset(token)

    async def apply(self, event: events_pb2.Event) -> bool:
        """Run the handler once per event id; False when the event was handled before."""
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """
                insert into inbox (consumer, event_id) values ($1, $2)
                on conflict do nothing
                returning true
                """,
                self._durable,
                uuid.UUID(event.event_id),
            )
            if not inserted:
                return False
            await self._handler(conn, event)
            return True

    async def _dead_letter(
        self, msg: Msg, event_id: str | None, error: str, deliveries: int
    ) -> None:
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    """
                    insert into dead_letters (consumer, subject, event_id, payload, error, deliveries)
                    values ($1, $2, $3, $4, $5, $6)
                    """,
                    self._durable,
                    msg.subject,
                    event_id,
                    msg.data,
                    error[:2000],
                    deliveries,
                )
        except Exception:
            log.exception("consumer %s could not write a dead letter", self._durable)
