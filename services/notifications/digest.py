"""The weekly digest: what is open for a person, once a week, to those who asked for it.

A read model of open tickets and issues (who asked, who is assigned, the status) is kept from
the tickets and compliance events in the consumer's inbox transaction; control tests come from
due.py's. A supervised job looks every FRONTDESK_NOTIFICATIONS_REMINDER_INTERVAL seconds, on
FRONTDESK_NOTIFICATIONS_DIGEST_WEEKDAY (1 = Monday), for persons something is open for who
have no digest for this ISO week, claims theirs (one per person and week, across replicas) and
records it when the person wants it (the "weekly digest" preference) and may still see at
least one of the items (the usual visibility checks, item by item).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from frontdesk.v1 import events_pb2, tickets_pb2

from services.notifications import store

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("0b8f7d0e-7a3c-4c69-a3f0-1b52b1f2f6a4")

Make = Callable[[asyncpg.Connection, uuid.UUID, uuid.UUID, str, uuid.UUID], Awaitable[None]]


def week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def digest_id(ws: uuid.UUID, person_id: uuid.UUID, week: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{ws}:{person_id}:{week}")


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def _ticket_status(value: tickets_pb2.TicketStatus.ValueType) -> str:
    return (
        tickets_pb2.TicketStatus.Name(value)
        .removeprefix("TICKET_STATUS_")
        .lower()
        .replace("_", " ")
    )


async def track(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
    """Keep the read model of open tickets and issues up to date with an event."""
    ws = _uuid(event.workspace_id)
    source = event.WhichOneof("payload")
    if ws is None or source not in ("tickets", "compliance"):
        return
    outer = getattr(event, source)
    kind = outer.WhichOneof("kind")
    if kind is None:
        return
    p: Any = getattr(outer, kind)
    row: dict[str, object] = {"workspace_id": ws}
    if kind == "ticket_created":
        row |= {"item_kind": "ticket", "title": p.title, "status": "new"}
        row |= {"requester_id": _uuid(p.requester_id)}
    elif kind == "ticket_assigned":
        row |= {"item_kind": "ticket", "assignee_id": _uuid(p.assignee_id)}
        row |= {"requester_id": _uuid(p.requester_id)}
    elif kind == "ticket_status_changed":
        status = _ticket_status(p.to_status)
        row |= {"item_kind": "ticket", "status": status, "requester_id": _uuid(p.requester_id)}
        row |= {"assignee_id": _uuid(p.assignee_id)}
    elif kind in ("issue_created", "issue_assigned", "issue_status_changed"):
        i = p.issue
        row |= {"item_kind": "issue", "title": i.title, "status": i.status or "open"}
        row |= {"assignee_id": _uuid(i.assignee_id), "item_id": _uuid(i.issue_id)}
        row["number"] = i.number
    else:
        return
    if row["item_kind"] == "ticket":
        row |= {"item_id": _uuid(p.ticket_id), "number": p.number}
    item_id = row["item_id"]
    if not isinstance(item_id, uuid.UUID):
        return
    if row.get("status") == "closed":
        await store.forget_open_item(conn, ws, str(row["item_kind"]), item_id)
        return
    await store.upsert_open_item(conn, row)


class Digests:
    """The supervised job making this week's digests on the chosen weekday."""

    name = "notifications-digests"

    def __init__(self, pool: asyncpg.Pool, make: Make, weekday: int, interval: float) -> None:
        self._pool = pool
        self._make = make
        self._weekday = weekday
        self._interval = interval

    async def run(self) -> None:
        while True:
            today = datetime.now(UTC).date()
            if today.isoweekday() == self._weekday:
                made = await self.run_once(today)
                if made:
                    log.info("%d weekly digests considered", made)
            await asyncio.sleep(self._interval)

    async def run_once(self, today: date, batch: int = 20) -> int:
        """Make the digests of `today`'s week still to make; returns how many persons."""
        week = week_of(today)
        count = 0
        while True:
            async with self._pool.acquire() as conn:
                found = await store.digest_candidates(conn, week, batch)
            for row in found:
                ws, person = row["workspace_id"], row["person_id"]
                async with self._pool.acquire() as conn, conn.transaction():
                    if await store.claim_digest(conn, ws, person, week):
                        await self._make(conn, ws, person, week, digest_id(ws, person, week))
            count += len(found)
            if len(found) < batch:
                return count
