"""The chassis's own supervised job: pipeline gauges and retention of its tables.

Every `interval` it samples the unsent outbox rows and the age of the oldest, each consumer's
JetStream lag (num_pending) and the dead letters not replayed; every `retention_every` passes
it deletes, in small batches, sent outbox rows, inbox rows and dead letters older than their
retention. The inbox outlives the stream's max_age (7 days) by default, so a consumer that
replays the whole stream still finds every event it handled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from nats.js import JetStreamContext

from services.chassis import metrics
from services.chassis.inbox import Consumer

log = logging.getLogger(__name__)

DAY = 86400.0


@dataclass(frozen=True)
class Retention:
    outbox_sent: float = 7 * DAY  # seconds a sent outbox row is kept
    inbox: float = 8 * DAY
    dead_letters: float = 30 * DAY
    failures: float = 8 * DAY  # consumer_failures of events that later succeeded
    batch: int = 1000


# (table, age column, extra condition): the statements retention runs, oldest rows first.
_TABLES = {
    "outbox": ("sent_at", "sent_at is not null"),
    "inbox": ("handled_at", "true"),
    "dead_letters": ("failed_at", "true"),
    "consumer_failures": ("updated_at", "true"),
}


async def delete_older(
    conn: asyncpg.Connection, table: str, max_age_seconds: float, batch: int
) -> int:
    """Delete up to `batch` rows of `table` older than `max_age_seconds`; how many went."""
    column, condition = _TABLES[table]  # fixed names only, never input
    status: str = await conn.execute(
        f"""
        delete from {table} where ctid = any(array(
            select ctid from {table}
            where {condition} and {column} < now() - make_interval(secs => $1)
            limit $2
        ))
        """,  # noqa: S608
        max_age_seconds,
        batch,
    )
    return int(status.rsplit(" ", 1)[-1])


class Housekeeping:
    name = "housekeeping"

    def __init__(
        self,
        service: str,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        consumers: Sequence[Consumer],
        retention: Retention,
        *,
        interval: float = 5.0,
        retention_every: int = 12,
    ) -> None:
        self._service = service
        self._pool = pool
        self._js = js
        self._consumers = consumers
        self._retention = retention
        self._interval = interval
        self._retention_every = retention_every

    async def run(self) -> None:
        passes = 0
        while True:
            await self.sample()
            if passes % self._retention_every == 0:
                await self.sweep()
            passes += 1
            await asyncio.sleep(self._interval)

    async def sample(self) -> None:
        async with self._pool.acquire() as conn:
            unsent = await conn.fetchrow(
                """
                select count(*) as n,
                       coalesce(extract(epoch from now() - min(created_at)), 0) as age
                from outbox where sent_at is null
                """
            )
            dead = await conn.fetch(
                "select consumer, count(*) as n from dead_letters "
                "where replayed_at is null group by consumer"
            )
        metrics.OUTBOX_UNSENT.labels(self._service).set(unsent["n"])
        metrics.OUTBOX_OLDEST_UNSENT.labels(self._service).set(float(unsent["age"]))
        counts = {r["consumer"]: r["n"] for r in dead}
        for consumer in self._consumers:
            counts.setdefault(consumer.durable, 0)
        for name, n in counts.items():
            metrics.DEAD_LETTERS.labels(self._service, name).set(n)
        for consumer in self._consumers:
            info = await self._js.consumer_info(consumer.stream, consumer.durable, timeout=2)
            metrics.CONSUMER_PENDING.labels(self._service, consumer.durable).set(
                info.num_pending or 0
            )

    async def sweep(self) -> dict[str, int]:
        """One retention pass over every table, batch by batch; rows deleted per table."""
        r = self._retention
        ages = {
            "outbox": r.outbox_sent,
            "inbox": r.inbox,
            "dead_letters": r.dead_letters,
            "consumer_failures": r.failures,
        }
        deleted: dict[str, int] = {}
        for table, age in ages.items():
            total = 0
            while True:
                async with self._pool.acquire() as conn:
                    n = await delete_older(conn, table, age, r.batch)
                total += n
                if n < r.batch:
                    break
                await asyncio.sleep(0)  # let calls in between batches
            if total:
                metrics.RETENTION_DELETED.labels(self._service, table).inc(total)
                log.info("retention removed %d %s rows", total, table)
            deleted[table] = total
        return deleted
