"""Dead letters: listing them and replaying them through their consumer (OperationsService).

Every backend service answers frontdesk.v1.OperationsService (registered by the runner). A
replay hands the stored event to the consumer's handler through the inbox, so an effect
that happened meanwhile does not happen twice; a replayed dead letter keeps its row, marked
`replayed_at` (retention removes it later), and one that fails again stays as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg
import grpc
from frontdesk.v1 import events_pb2, operations_pb2, operations_pb2_grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from services.chassis.caller import current_caller
from services.chassis.inbox import Consumer

log = logging.getLogger(__name__)

SERVICE_NAME = operations_pb2.DESCRIPTOR.services_by_name["OperationsService"].full_name


async def list_dead_letters(
    conn: asyncpg.Connection, consumer: str, include_replayed: bool, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        select id, consumer, subject, event_id, payload, error, deliveries, failed_at, replayed_at
        from dead_letters
        where ($1 = '' or consumer = $1) and ($2 or replayed_at is null)
        order by id
        limit $3
        """,
        consumer,
        include_replayed,
        limit,
    )
    return rows


async def dead_letters_by_id(conn: asyncpg.Connection, ids: Sequence[int]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        select id, consumer, subject, event_id, payload, error, deliveries, failed_at, replayed_at
        from dead_letters where id = any($1::bigint[]) and replayed_at is null order by id
        """,
        list(ids),
    )
    return rows


async def mark_replayed(conn: asyncpg.Connection, dead_letter_id: int) -> None:
    await conn.execute("update dead_letters set replayed_at = now() where id = $1", dead_letter_id)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def to_proto(row: asyncpg.Record) -> operations_pb2.DeadLetter:
    return operations_pb2.DeadLetter(
        id=row["id"],
        consumer=row["consumer"],
        subject=row["subject"],
        event_id=row["event_id"] or "",
        error=row["error"],
        deliveries=row["deliveries"],
        failed_at=_timestamp(row["failed_at"]),
        replayed_at=_timestamp(row["replayed_at"]),
    )


class DeadLetters:
    """Lists and replays the dead letters of one service's consumers."""

    def __init__(self, pool: asyncpg.Pool, consumers: Mapping[str, Consumer]) -> None:
        self._pool = pool
        self._consumers = consumers

    async def listing(
        self, consumer: str = "", include_replayed: bool = False, limit: int = 100
    ) -> list[asyncpg.Record]:
        async with self._pool.acquire() as conn:
            return await list_dead_letters(
                conn, consumer, include_replayed, max(1, min(limit or 100, 1000))
            )

    async def replay(
        self, ids: Sequence[int], all_: bool = False
    ) -> list[operations_pb2.ReplayResult]:
        async with self._pool.acquire() as conn:
            if all_ and not ids:
                rows = await list_dead_letters(conn, "", False, 1000)
            else:
                rows = await dead_letters_by_id(conn, ids)
        found = {row["id"] for row in rows}
        results = [
            operations_pb2.ReplayResult(id=i, outcome="unknown", error="no such dead letter")
            for i in ids
            if i not in found
        ]
        for row in rows:
            results.append(await self._replay_one(row))
        return sorted(results, key=lambda r: r.id)

    async def _replay_one(self, row: asyncpg.Record) -> operations_pb2.ReplayResult:
        consumer = self._consumers.get(row["consumer"])
        if consumer is None:
            return operations_pb2.ReplayResult(
                id=row["id"], outcome="unknown", error=f"no consumer {row['consumer']} here"
            )
        try:
            event = events_pb2.Event.FromString(bytes(row["payload"]))
            if not event.event_id:
                raise ValueError("no event id")
        except (DecodeError, ValueError) as exc:
            return operations_pb2.ReplayResult(id=row["id"], outcome="unparseable", error=str(exc))
        try:
            applied = await consumer.apply(event, forget_failures=True)
        except Exception as exc:
            log.warning("replay of dead letter %s failed: %s", row["id"], exc)
            return operations_pb2.ReplayResult(
                id=row["id"], outcome="failed", error=f"{type(exc).__name__}: {exc}"[:2000]
            )
        async with self._pool.acquire() as conn:
            await mark_replayed(conn, row["id"])
        log.info("dead letter %s replayed (%s)", row["id"], "applied" if applied else "duplicate")
        return operations_pb2.ReplayResult(
            id=row["id"], outcome="applied" if applied else "duplicate"
        )


async def _operator(context: grpc.aio.ServicerContext) -> None:
    """Dead letters are an operator's business: the verified caller needs Operations:manage
    (the launcher's identity; `./dev deadletters` uses it)."""
    if not current_caller().has("Operations:manage"):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this needs Operations:manage")


class OperationsServicer(operations_pb2_grpc.OperationsServiceServicer):
    def __init__(self, dead_letters: DeadLetters) -> None:
        self._dead_letters = dead_letters

    async def ListDeadLetters(
        self, request: operations_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ListDeadLettersResponse:
        await _operator(context)
        rows = await self._dead_letters.listing(
            request.consumer, request.include_replayed, request.limit
        )
        return operations_pb2.ListDeadLettersResponse(dead_letters=[to_proto(r) for r in rows])

    async def ReplayDeadLetters(
        self, request: operations_pb2.ReplayDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ReplayDeadLettersResponse:
        await _operator(context)
        if not request.ids and not request.all:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ids: name dead letters or all")
        results = await self._dead_letters.replay(list(request.ids), request.all)
        return operations_pb2.ReplayDeadLettersResponse(results=results)
