"""Control tests due soon: a read model of the open tests fed by the compliance events, and the
reminders a supervised job sends from it ("due in N days", FRONTDESK_NOTIFICATIONS_DUE_SOON_DAYS).

The compliance service tells when a test is scheduled, assigned, overdue (its own sweeper) or
completed; the notifications service keeps each open test's assignee and due date from those
events, in the consumer's inbox transaction. The job looks every
FRONTDESK_NOTIFICATIONS_REMINDER_INTERVAL seconds for tests due within N days that were not
reminded for that date, and records one reminder each (in-app and, as the assignee's
"control test assigned to me" preference says, an e-mail) with the visibility checks of every
other notification. A reminder's id is derived from the test and its due date, so a job
restarted halfway never records one twice; a test moved to a later date is reminded again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import date

import asyncpg
from frontdesk.v1 import events_pb2

from services.notifications import store

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5d1f3c8e-6b0a-4b53-9f51-2f0f4e7b9a10")

Remind = Callable[[asyncpg.Connection, asyncpg.Record, uuid.UUID], Awaitable[None]]


def reminder_id(ws: uuid.UUID, test_id: uuid.UUID, due: date) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{ws}:{test_id}:{due.isoformat()}")


async def track(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
    """Keep the read model of open control tests up to date with a compliance event."""
    if event.WhichOneof("payload") != "compliance":
        return
    kind = event.compliance.WhichOneof("kind")
    if kind not in (
        "control_test_scheduled",
        "control_test_assigned",
        "control_test_overdue",
        "control_test_completed",
    ):
        return
    test = getattr(event.compliance, kind).test
    try:
        ws, test_id = uuid.UUID(event.workspace_id), uuid.UUID(test.control_test_id)
    except ValueError:
        return
    if kind == "control_test_completed" or not test.due_date:
        await store.forget_due_test(conn, ws, test_id)
        return
    await store.upsert_due_test(
        conn,
        {
            "workspace_id": ws,
            "control_test_id": test_id,
            "number": test.number,
            "title": f"{test.control_number} {test.control_title}".strip(),
            "assignee_id": uuid.UUID(test.assignee_id) if test.assignee_id else None,
            "due_date": date.fromisoformat(test.due_date),
        },
    )


class Reminders:
    """The supervised job: reminders of tests due within `days` days, every `interval` s."""

    name = "notifications-reminders"

    def __init__(self, pool: asyncpg.Pool, remind: Remind, days: int, interval: float) -> None:
        self._pool = pool
        self._remind = remind
        self._days = days
        self._interval = interval

    async def run(self) -> None:
        while True:
            sent = await self.run_once()
            if sent:
                log.info("%d control test reminders recorded", sent)
            await asyncio.sleep(self._interval)

    async def run_once(self, batch: int = 20) -> int:
        """Record every reminder due now; returns how many."""
        count = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await store.tests_due_in(conn, self._days, batch)
                for row in rows:
                    rid = reminder_id(row["workspace_id"], row["control_test_id"], row["due_date"])
                    await self._remind(conn, row, rid)
                    await store.mark_reminded(conn, row["workspace_id"], row["control_test_id"])
            count += len(rows)
            if len(rows) < batch:
                return count
