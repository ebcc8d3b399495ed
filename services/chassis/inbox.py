"""Durable JetStream consumers whose effects are idempotent through the inbox table.

For each message the handler runs in a transaction that first records (consumer, event_id)
in the inbox; a redelivered event finds its id there and has no effect twice. The message is
acked after commit.

What a failure means decides what happens next:
- our infrastructure failed (database, NATS, a backend): no delivery is counted against the
  handler; the message and the rest of the batch are nak'ed with a growing delay until the
  infrastructure is back (JetStream's max_deliver is unlimited, so nothing is ever dropped);
- the handler failed: the failure is counted in `consumer_failures` and the message nak'ed;
  after `max_deliver` handler failures (or at once for a message that cannot be parsed) a
  dead-letter row is written, and only once it is committed is the message terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from enum import Enum

import asyncpg
from frontdesk.v1 import events_pb2
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.chassis import metrics
from services.chassis.jobs import Supervisor
from services.chassis.logs import event_id_var
from services.chassis.outage import Outages, component_of

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, events_pb2.Event], Awaitable[None]]
# What must stay in order: events with one key are handled one after another, in stream order.
OrderKey = Callable[[events_pb2.Event], str]


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    RETRY = "retry"  # the handler failed; counted
    OUTAGE = "outage"  # our infrastructure failed; not counted
    DEAD = "dead"


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
        outages: Outages | None = None,
        max_backoff: float = 5.0,
        concurrency: int = 1,
        order_key: OrderKey | None = None,
    ) -> None:
        """`concurrency` > 1 handles the events of a fetched batch that have different
        `order_key`s side by side (a handler waiting on other services); events with one key
        are still handled in stream order. Without `order_key`, one at a time."""
        self._pool = pool
        self._js = js
        self.durable = durable
        self.stream = stream
        self._subject = subject
        self._handler = handler
        self._max_deliver = max_deliver  # handler failures before a dead letter
        self._ack_wait = ack_wait
        self._batch = batch
        self.outages = outages or Outages(durable)
        self._max_backoff = max_backoff
        self._concurrency = concurrency if order_key is not None else 1
        self._order_key = order_key
        self._own: Supervisor | None = None

    @property
    def name(self) -> str:
        return f"consumer-{self.durable}"

    async def start(self) -> None:
        """Run alone under a supervisor of its own (tests, tools); services use `run` as a job."""
        await self.ensure()  # the durable exists once start returns
        self._own = Supervisor(self.durable)
        self._own.add(self.name, self.run)
        await self._own.start()

    async def stop(self) -> None:
        if self._own is not None:
            await self._own.stop()

    async def ensure(self) -> None:
        """Create the durable consumer, or update one made by an older version."""
        config = ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            # Unlimited: an outage must never use up deliveries; handler failures are
            # counted by us (consumer_failures) and end in dead letters.
            max_deliver=-1,
            ack_wait=self._ack_wait,
            filter_subject=self._subject,
        )
        await self._js.add_consumer(self.stream, config)  # max_deliver is editable

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await self.ensure()
        return await self._js.pull_subscribe_bind(durable=self.durable, stream=self.stream)

    async def run(self) -> None:
        """Fetch and handle until cancelled; raises only on a bug (the supervisor restarts it)."""
        sub = await self._subscribe()
        backoff = 0.1
        try:
            while True:
                try:
                    msgs = await sub.fetch(self._batch, timeout=1.0)
                except (NatsTimeoutError, TimeoutError):
                    continue  # nothing to do (or NATS away: the health monitor tells which)
                except Exception as exc:
                    if component_of(exc) is None:
                        raise
                    self.outages.failed("nats", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                self.outages.recovered("nats")
                if self._concurrency > 1 and len(msgs) > 1:
                    outage = await self._handle_side_by_side(msgs, backoff)
                else:
                    outage = await self._handle_in_order(msgs, backoff)
                if outage:
                    # The rest was given back; wait before fetching again.
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                else:
                    backoff = 0.1
        finally:
            # Buffered, unhandled messages would otherwise hold a NATS drain until it times
            # out; unacked, they are redelivered to another replica.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle_in_order(self, msgs: list[Msg], backoff: float) -> bool:
        """Handle `msgs` one after another; True (the rest nak'ed) at an outage."""
        for i, msg in enumerate(msgs):
            if await self.handle(msg, backoff) is Outcome.OUTAGE:
                for rest in msgs[i + 1 :]:
                    await _nak(rest, backoff)
                return True
        return False

    async def _handle_side_by_side(self, msgs: list[Msg], backoff: float) -> bool:
        """Handle the batch's groups of one order key side by side, each group in order."""
        assert self._order_key is not None
        groups: dict[str, list[Msg]] = {}
        for msg in msgs:
            try:
                key = self._order_key(events_pb2.Event.FromString(msg.data))
            except Exception:
                key = ""  # unparseable or keyless: handled in order with the other keyless
            groups.setdefault(key, []).append(msg)
        limit = asyncio.Semaphore(self._concurrency)

        async def group(items: list[Msg]) -> bool:
            async with limit:
                return await self._handle_in_order(items, backoff)

        outcomes = await asyncio.gather(*(group(g) for g in groups.values()))
        return any(outcomes)

    async def handle(self, msg: Msg, outage_delay: float = 0.5) -> Outcome:
        try:
            event = events_pb2.Event.FromString(msg.data)
            uuid.UUID(event.event_id)
        except (DecodeError, ValueError) as exc:
            return await self._give_up(msg, None, f"unparseable event: {exc}", 1, outage_delay)
        token = event_id_var.set(event.event_id)
        try:
            return await self._handle_event(msg, event, outage_delay)
        finally:
            event_id_var.reset(token)

    async def _handle_event(self, msg: Msg, event: events_pb2.Event, delay: float) -> Outcome:
        redelivered = bool(msg.metadata and msg.metadata.num_delivered > 1)
        try:
            applied = await self.apply(event, forget_failures=redelivered)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            component = component_of(exc)
            if component is not None:
                self.outages.failed(component, exc)
                await _nak(msg, delay)
                metrics.EVENTS_HANDLED.labels(self.durable, Outcome.OUTAGE.value).inc()
                return Outcome.OUTAGE
            return await self._handler_failed(msg, event, exc, delay)
        self.outages.recovered("database")
        outcome = Outcome.APPLIED if applied else Outcome.DUPLICATE
        # A lost ack only means a redelivery, which the inbox makes harmless.
        with contextlib.suppress(Exception):
            await msg.ack()
        metrics.EVENTS_HANDLED.labels(self.durable, outcome.value).inc()
        return outcome

    async def _handler_failed(
        self, msg: Msg, event: events_pb2.Event, exc: Exception, delay: float
    ) -> Outcome:
        error = f"{type(exc).__name__}: {exc}"
        try:
            async with self._pool.acquire() as conn:
                failures: int = await conn.fetchval(
                    """
                    insert into consumer_failures (consumer, event_id, failures, last_error)
                    values ($1, $2, 1, $3)
                    on conflict (consumer, event_id) do update
                    set failures = consumer_failures.failures + 1,
                        last_error = excluded.last_error, updated_at = now()
                    returning failures
                    """,
                    self.durable,
                    uuid.UUID(event.event_id),
                    error[:2000],
                )
        except Exception as count_exc:
            self.outages.failed(component_of(count_exc) or "database", count_exc)
            await _nak(msg, delay)
            return Outcome.OUTAGE
        if failures >= self._max_deliver:
            log.error(
                "consumer %s gives up on an event after %d failures: %s",
                self.durable,
                failures,
                error,
            )
            return await self._give_up(msg, event.event_id, error, failures, delay)
        log.warning("consumer %s failed (failure %d): %s", self.durable, failures, error)
        await _nak(msg, min(0.5 * 2**failures, 30.0))
        metrics.EVENTS_HANDLED.labels(self.durable, Outcome.RETRY.value).inc()
        return Outcome.RETRY

    async def _give_up(
        self, msg: Msg, event_id: str | None, error: str, failures: int, delay: float
    ) -> Outcome:
        """Write the dead letter; terminate the message only once it is committed."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """
                    insert into dead_letters (consumer, subject, event_id, payload, error, deliveries)
                    values ($1, $2, $3, $4, $5, $6)
                    """,
                    self.durable,
                    msg.subject,
                    event_id,
                    msg.data,
                    error[:2000],
                    failures,
                )
                if event_id is not None:
                    await conn.execute(
                        "delete from consumer_failures where consumer = $1 and event_id = $2",
                        self.durable,
                        uuid.UUID(event_id),
                    )
        except Exception as exc:
            self.outages.failed(component_of(exc) or "database", exc)
            await _nak(msg, delay)
            return Outcome.OUTAGE
        with contextlib.suppress(Exception):
            await msg.term()
        metrics.EVENTS_HANDLED.labels(self.durable, Outcome.DEAD.value).inc()
        return Outcome.DEAD

    async def apply(self, event: events_pb2.Event, *, forget_failures: bool = False) -> bool:
        """Run the handler once per event id; False when the event was handled before."""
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """
                insert into inbox (consumer, event_id) values ($1, $2)
                on conflict do nothing
                returning true
                """,
                self.durable,
                uuid.UUID(event.event_id),
            )
            if not inserted:
                return False
            await self._handler(conn, event)
            if forget_failures:
                await conn.execute(
                    "delete from consumer_failures where consumer = $1 and event_id = $2",
                    self.durable,
                    uuid.UUID(event.event_id),
                )
            return True


async def _nak(msg: Msg, delay: float) -> None:
    # When NATS is away the nak is lost too; the message then comes back after ack_wait.
    with contextlib.suppress(Exception):
        await msg.nak(delay=delay)
