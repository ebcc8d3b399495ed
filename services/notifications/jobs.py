"""The sender: a supervised job that sends recorded e-mails and marks them sent.

Each mail is taken in a transaction of its own with FOR UPDATE SKIP LOCKED, handed to the
mail server, then marked sent in that same transaction: two replicas never hold one mail, and
a mail is marked only after the server took it. A mail that cannot be handed over now is tried
again with exponential backoff (FRONTDESK_NOTIFICATIONS_RETRY_BASE .. _RETRY_MAX seconds) and
marked failed once it is older than FRONTDESK_NOTIFICATIONS_GIVE_UP_AFTER; one the server
refuses for good (5xx) is failed at once. The one window left is a crash after the server
took a mail and before the commit: the mail is sent again with the same Message-ID, which the
receiving side can use to drop the copy.

It wakes on LISTEN/NOTIFY when an intent commits, so a mail leaves within milliseconds.
Several senders run side by side (FRONTDESK_NOTIFICATIONS_SENDERS), each with its own SMTP
connection; the row locks keep them from ever taking one mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from prometheus_client import Counter

from services.chassis.smtp import Mailer, Refused, Unreachable
from services.notifications import store
from services.notifications.compose import to_message

log = logging.getLogger(__name__)

SENT = Counter(
    "frontdesk_notification_mails_total",
    "E-mails of the notifications service by outcome (sent, retry, failed)",
    ["outcome"],
)


class Sender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        mailer: Mailer,
        *,
        name: str = "notifications-sender",
        dsn: str = "",
        retry_base: float = 1.0,
        retry_max: float = 300.0,
        give_up_after: float = 86400.0,
        idle_poll: float = 5.0,
    ) -> None:
        self.name = name
        self._pool = pool
        self._mailer = mailer
        self._dsn = dsn
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._give_up_after = give_up_after
        self._idle_poll = idle_poll
        self._wake = asyncio.Event()

    async def run(self) -> None:
        listener: asyncpg.Connection | None = None
        if self._dsn:
            listener = await asyncpg.connect(self._dsn)
            await listener.add_listener(store.CHANNEL, lambda *_: self._wake.set())
        try:
            while True:
                self._wake.clear()
                if await self.send_one():
                    continue
                async with self._pool.acquire() as conn:
                    due_in = await store.next_due_in(conn)
                wait = self._idle_poll if due_in is None else min(due_in, self._idle_poll)
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            await self._mailer.close()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def send_due(self) -> int:
        """Send every mail due now (tests and tools); returns how many were attempted."""
        count = 0
        while await self.send_one():
            count += 1
        return count

    async def send_one(self) -> bool:
        """Take one due mail, try to send it and record the outcome; False when none is due."""
        async with self._pool.acquire() as conn, conn.transaction():
            due = await store.due_deliveries(conn, 1)
            if not due:
                return False
            d = due[0]
            try:
                await self._mailer.send(to_message(d.headers, d.body_text, d.body_html))
            except Refused as exc:
                await store.mark_retry(conn, d.workspace_id, d.id, f"refused: {exc}", 0, 0)
                log.warning("mail %s to person %s refused: %s", d.id, d.person_id, exc)
                SENT.labels("failed").inc()
                return True
            except Unreachable as exc:
                delay = min(self._retry_base * 2 ** min(d.attempts, 30), self._retry_max)
                status = await store.mark_retry(
                    conn, d.workspace_id, d.id, str(exc), delay, self._give_up_after
                )
                SENT.labels("failed" if status == "failed" else "retry").inc()
                if status == "failed":
                    log.error("mail %s to person %s given up: %s", d.id, d.person_id, exc)
                else:
                    log.warning("mail %s not sent (retry in %.1fs): %s", d.id, delay, exc)
                return True
            await store.mark_sent(conn, d.workspace_id, d.id)
            SENT.labels("sent").inc()
        return True
