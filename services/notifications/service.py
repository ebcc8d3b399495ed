"""Use cases of the notifications service.

`on_event` runs inside the consumer's inbox transaction: the in-app entries and the e-mail
intents of one event commit with its inbox row, so a redelivered event records nothing twice
(and the unique (event, person, kind) keys would refuse a second row anyway). The sender job
(jobs.py) sends the intents afterwards.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import asyncpg
from frontdesk.v1 import events_pb2

from services.chassis.caller import Caller
from services.chassis.errors import InvalidArgument, InvalidField, NotFound, PermissionDenied
from services.chassis.paging import Keyset
from services.notifications import digest, due, store
from services.notifications.compose import Composer
from services.notifications.domain import (
    PREFERENCE,
    Delivery,
    Intent,
    Item,
    Kind,
    Notification,
)
from services.notifications.people import People
from services.notifications.rules import Rules
from services.notifications.tokens import BadToken, Tokens, Unsubscribe

log = logging.getLogger(__name__)

NOTIFICATIONS = Keyset("notifications", (datetime, uuid.UUID))
DELIVERIES = Keyset("deliveries", (datetime, uuid.UUID))


class NotificationService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        people: People,
        rules: Rules,
        composer: Composer,
        tokens: Tokens,
        sender_name: str = "",
    ) -> None:
        self._pool = pool
        self._people = people
        self._rules = rules
        self._composer = composer
        self._tokens = tokens
        self._sender_name = sender_name

    # -- from events --------------------------------------------------------------------------
    async def on_event(self, conn: asyncpg.Connection, event: events_pb2.Event) -> int:
        """Record the in-app entries and e-mail intents of one event (in the caller's
        transaction, with the inbox row); returns how many e-mails were recorded."""
        await due.track(conn, event)
        await digest.track(conn, event)
        intents = [i for i in await self._rules.intents(event) if await self._keep(conn, i)]
        return await self._record_all(conn, event.workspace_id, intents)

    async def remind_due(
        self, conn: asyncpg.Connection, test: asyncpg.Record, reminder: uuid.UUID
    ) -> None:
        """Record the reminder of a control test due soon (due.py's job, in its transaction)."""
        ws = str(test["workspace_id"])
        intent = await self._rules.due_soon(ws, reminder, dict(test), datetime.now(UTC).date())
        await self._record_all(conn, ws, [intent] if intent else [])

    async def make_digest(
        self,
        conn: asyncpg.Connection,
        ws: uuid.UUID,
        person_id: uuid.UUID,
        week: str,
        digest_id: uuid.UUID,
    ) -> None:
        """Record a person's weekly digest (digest.py's job, in its transaction)."""
        rows = await store.open_for(conn, ws, person_id)
        items = [
            Item(r["item_kind"], str(r["item_id"]), r["number"], f"{r['title']} ({r['status']})")
            for r in rows
        ]
        intent = await self._rules.digest(str(ws), str(person_id), digest_id, week, items)
        await self._record_all(conn, str(ws), [intent] if intent else [])

    async def _record_all(self, conn: asyncpg.Connection, ws: str, intents: list[Intent]) -> int:
        if not intents:
            return 0
        workspace = await self._people.workspace(ws)
        mails = 0
        for intent in intents:
            await self._record(conn, intent, workspace.slug, self._sender_name or workspace.name)
            if intent.person.wants(intent.kind) and intent.person.email:
                mails += 1
        return mails

    async def _keep(self, conn: asyncpg.Connection, intent: Intent) -> bool:
        """False for a sign-in from what the person signed in from before (and for their very
        first sign-in): only a new device or address is told. Remembers this one."""
        if intent.kind is not Kind.NEW_SIGN_IN:
            return True
        before, new = await store.remember_sign_in(
            conn,
            intent.workspace_id,
            uuid.UUID(intent.person.id),
            self._tokens.digest("address", intent.extra.get("address", "")),
            self._tokens.digest("device", intent.extra.get("device", "")),
        )
        return before and new

    async def _record(
        self, conn: asyncpg.Connection, intent: Intent, slug: str, sender: str
    ) -> None:
        person_id = uuid.UUID(intent.person.id)
        await store.insert_notification(
            conn,
            {
                "workspace_id": intent.workspace_id,
                "id": uuid.uuid4(),
                "event_id": intent.event_id,
                "person_id": person_id,
                "kind": intent.kind.value,
                "title": intent.title,
                "body": intent.text[:4000],
                "link": intent.link,
                "item_kind": intent.item.kind,
                "item_id": intent.item.number or intent.item.id,
            },
        )
        if not intent.person.wants(intent.kind) or not intent.person.email:
            log.info(
                "no e-mail of kind %s to person %s (preference off)", intent.kind.value, person_id
            )
            return
        delivery_id = uuid.uuid4()
        mail = self._composer.compose(intent, delivery_id, slug, sender)
        await store.insert_delivery(
            conn,
            {
                "workspace_id": intent.workspace_id,
                "id": delivery_id,
                "event_id": intent.event_id,
                "person_id": person_id,
                "kind": intent.kind.value,
                "email": intent.person.email,
                "subject": mail.subject,
                "body_text": mail.text,
                "body_html": mail.html,
                "headers": mail.headers,
                "message_id": mail.message_id,
            },
        )

    # -- a person's own list ------------------------------------------------------------------
    async def list_notifications(
        self, caller: Caller, page_size: int, page_token: str, unread_only: bool
    ) -> tuple[list[Notification], str, int]:
        person = _person_of(caller)
        page = NOTIFICATIONS.page(page_size, page_token)
        async with self._pool.acquire() as conn:
            rows = await store.list_notifications(
                conn, caller.workspace_id, person, page, unread_only
            )
            unread = await store.unread_count(conn, caller.workspace_id, person)
        kept, token = NOTIFICATIONS.cut(page, rows, lambda n: (n.created_at, n.id))
        return kept, token, unread

    async def mark_read(self, caller: Caller, ids: list[str], everything: bool) -> tuple[int, int]:
        person = _person_of(caller)
        parsed: list[uuid.UUID] | None = None
        if not everything:
            try:
                parsed = [uuid.UUID(i) for i in ids]
            except ValueError:
                raise InvalidField("ids", "must be notification ids") from None
            if not parsed:
                raise InvalidArgument("ids: name at least one notification, or set all")
        async with self._pool.acquire() as conn, conn.transaction():
            marked = await store.mark_read(conn, caller.workspace_id, person, parsed)
            unread = await store.unread_count(conn, caller.workspace_id, person)
        return marked, unread

    # -- the delivery log ---------------------------------------------------------------------
    async def list_deliveries(
        self, caller: Caller, person_id: str, page_size: int, page_token: str
    ) -> tuple[list[Delivery], str]:
        try:
            person = uuid.UUID(person_id)
        except ValueError:
            raise InvalidField("person_id", "must be a person id") from None
        if not caller.is_self(person) and not caller.has("Person:manage"):
            raise PermissionDenied("Person:manage is needed to see another person's e-mails")
        page = DELIVERIES.page(page_size, page_token)
        async with self._pool.acquire() as conn:
            rows = await store.list_deliveries(conn, caller.workspace_id, person, page)
        return DELIVERIES.cut(page, rows, lambda d: (d.created_at, d.id))

    # -- one-click unsubscribe ----------------------------------------------------------------
    async def unsubscribe(self, token: str, workspace_id: str) -> tuple[Unsubscribe, str]:
        try:
            found = self._tokens.read_unsubscribe(token)
        except BadToken as exc:
            raise InvalidField("token", str(exc)) from None
        if workspace_id and str(found.workspace_id) != workspace_id:
            raise NotFound("unsubscribe link not found")
        preference = PREFERENCE[found.kind]
        assert preference is not None  # read_unsubscribe refuses security kinds
        await self._people.turn_off(str(found.workspace_id), str(found.person_id), preference)
        log.info("person %s unsubscribed from %s", found.person_id, preference)
        return found, preference


def _person_of(caller: Caller) -> uuid.UUID:
    if caller.person_id is None:
        raise PermissionDenied("notifications belong to a person")
    return caller.person_id
