"""Ticket attachments: who may stage, attach, read and remove a ticket's files, and the events
and history entries that go with it. Rows and objects are kept by the chassis (Files); a
staged file becomes attached in the same transaction as its ticket or comment, so a failed
item transaction leaves it staged, and the sweeper (jobs.py) removes it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
from frontdesk.v1 import events_pb2, tickets_events_pb2

from services.chassis import outbox
from services.chassis.attachment_store import Attachment
from services.chassis.attachments import AttachmentRefused, Files, LimitsFor
from services.chassis.caller import Caller as Actor
from services.chassis.errors import PermissionDenied
from services.chassis.events import new_event
from services.chassis.malware import Clamd
from services.chassis.objectstore import ObjectStore
from services.tickets import store
from services.tickets.domain import Status, Ticket, creates, manages

log = logging.getLogger(__name__)

DOWNLOAD_URL_SECONDS = 60
KIND = "ticket"


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value else ""


def added_event(ticket: Ticket, actor: Actor, a: Attachment) -> events_pb2.Event:
    payload = tickets_events_pb2.TicketAttachmentAdded(
        ticket_id=str(ticket.id),
        number=ticket.number,
        attachment_id=str(a.id),
        comment_id=_id(a.comment_id),
        name=a.name,
        size=a.size,
        content_type=a.content_type,
        internal=a.internal,
        requester_id=str(ticket.requester_id),
    )
    return new_event(
        str(ticket.workspace_id), _id(actor.person_id), "tickets", "attachment_added", payload
    )


def removed_event(ticket: Ticket, actor: Actor, a: Attachment) -> events_pb2.Event:
    payload = tickets_events_pb2.TicketAttachmentRemoved(
        ticket_id=str(ticket.id),
        number=ticket.number,
        attachment_id=str(a.id),
        name=a.name,
        uploader_id=_id(a.uploader_id),
        requester_id=str(ticket.requester_id),
    )
    return new_event(
        str(ticket.workspace_id), _id(actor.person_id), "tickets", "attachment_removed", payload
    )


class TicketAttachments:
    def __init__(
        self,
        pool: asyncpg.Pool,
        objects: ObjectStore | None,
        limits: LimitsFor,
        load_ticket: Callable[[asyncpg.Connection, Actor, str], Awaitable[Ticket]],
        scanner: Clamd | None = None,
    ) -> None:
        self._pool = pool
        self.files = Files(pool, objects, "tickets", limits, scanner)
        self._load = load_ticket

    async def upload(
        self, actor: Actor, ticket_ref: str, raw_name: str, chunks: AsyncIterator[bytes]
    ) -> Attachment:
        """Stage one file for the actor (a new ticket, or a comment on `ticket_ref`)."""
        item: tuple[str, uuid.UUID] | None = None
        if ticket_ref:
            async with self._pool.acquire() as conn:
                ticket = await self._load(conn, actor, ticket_ref)
            if ticket.status is Status.CLOSED:
                raise AttachmentRefused("ticket: closed tickets take no more files")
            item = (KIND, ticket.id)
        elif not creates(actor):
            raise PermissionDenied("Ticket:create is needed to attach files to a new ticket")
        return await self.files.stage(actor.workspace_id, actor.person_id, raw_name, chunks, item)

    async def attach(
        self,
        conn: asyncpg.Connection,
        actor: Actor,
        ticket: Ticket,
        comment_id: uuid.UUID | None,
        internal: bool,
        ids: Sequence[uuid.UUID],
    ) -> list[Attachment]:
        """Attach staged files to the ticket (or its comment), in the caller's transaction;
        writes attachment_added events and field-history entries."""
        ws = actor.workspace_id
        attached = await self.files.attach(
            conn, ws, actor.person_id, (KIND, ticket.id), comment_id, internal, ids
        )
        for a in attached:
            await store.add_history(
                conn,
                ws,
                ticket.id,
                kind="field",
                field="attachment",
                old_value="",
                new_value=a.name,
                actor_id=actor.person_id,
            )
            await outbox.add(conn, added_event(ticket, actor, a))
        return attached

    async def list(
        self, conn: asyncpg.Connection, actor: Actor, ticket: Ticket
    ) -> list[Attachment]:
        return await self.files.list(conn, actor.workspace_id, (KIND, ticket.id), manages(actor))

    async def download(self, actor: Actor, ticket_ref: str, ref: str) -> tuple[Attachment, str]:
        """The attachment when the actor may see it, and a short-lived presigned GET URL."""
        async with self._pool.acquire() as conn:
            ticket = await self._load(conn, actor, ticket_ref)
            attachment = await self.files.find(
                conn, actor.workspace_id, (KIND, ticket.id), ref, manages(actor)
            )
        return attachment, await self.files.url(attachment, DOWNLOAD_URL_SECONDS)

    async def remove(self, actor: Actor, ticket_ref: str, ref: str) -> None:
        """By the uploader or an agent: field history + attachment_removed; then the object."""
        async with self._pool.acquire() as conn, conn.transaction():
            ticket = await self._load(conn, actor, ticket_ref)
            attachment = await self.files.find(
                conn, actor.workspace_id, (KIND, ticket.id), ref, manages(actor), for_update=True
            )
            uploader = actor.person_id is not None and attachment.uploader_id == actor.person_id
            if not (manages(actor) or uploader):
                raise PermissionDenied(
                    "only the uploader or an agent (Ticket:manage) removes a file"
                )
            await self.files.mark_removed(conn, attachment)
            await store.add_history(
                conn,
                actor.workspace_id,
                ticket.id,
                kind="field",
                field="attachment",
                old_value=attachment.name,
                new_value="",
                actor_id=actor.person_id,
            )
            await outbox.add(conn, removed_event(ticket, actor, attachment))
        await self.files.purge(attachment)
