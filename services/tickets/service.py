"""Ticket use cases: each state change and its outbox event commit in one transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.chassis import outbox
from services.chassis.attachments import Limits, LimitsFor, parse_ids
from services.chassis.caller import Caller
from services.chassis.directory_client import DirectoryClient
from services.chassis.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.chassis.malware import Clamd
from services.chassis.objectstore import ObjectStore
from services.chassis.on_behalf import MAX_KEY, acting_person
from services.chassis.paging import Keyset, KeyType
from services.tickets import events, store
from services.tickets.attachments import TicketAttachments
from services.tickets.domain import (
    REOPENED_BY_REQUESTER,
    Comment,
    Edit,
    Filters,
    NewTicket,
    Sort,
    Status,
    Ticket,
    TicketDetail,
    TicketType,
    apply_edit,
    can_see,
    check_transition,
    clean_query,
    creates,
    is_requester,
    manages,
    page_size,
    parse_number,
    parse_uuid,
    reads_own,
    validate_new,
)

log = logging.getLogger(__name__)

MAX_COMMENT = 20_000
MAX_NOTE = 2_000
AGENT_PERMISSION = "Ticket:manage"
ON_BEHALF_RIGHT = "Ticket:comment-as-person"
NO_SUCH_PERSON = "no such active person in this workspace"


class TicketService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        directory: DirectoryClient,
        objects: ObjectStore | None = None,
        limits: LimitsFor | None = None,
        scanner: Clamd | None = None,
    ) -> None:
        self._pool = pool
        self._directory = directory
        self.attachments = TicketAttachments(
            pool, objects, limits or _default_limits, self._load, scanner
        )

    # -- persons ------------------------------------------------------------------------

    async def _check_requester(self, ws: uuid.UUID, person_id: uuid.UUID) -> None:
        """A requester named by the caller is an active person of the caller's workspace."""
        found = await self._directory.persons(str(ws), [person_id])
        person = found.get(str(person_id))
        if person is None or not person.active:
            raise InvalidArgument([f"requester_id: {NO_SUCH_PERSON}"])

    async def _check_assignee(self, ws: uuid.UUID, person_id: uuid.UUID) -> None:
        """An assignee is an active person of the caller's workspace who is an agent."""
        access = await self._directory.effective_permissions(str(ws), person_id)
        if access is None or not access.active:
            raise InvalidArgument([f"assignee_id: {NO_SUCH_PERSON}"])
        if AGENT_PERMISSION not in access.permissions:
            raise InvalidArgument([f"assignee_id: must be an agent (hold {AGENT_PERMISSION})"])

    async def on_behalf_of(self, actor: Caller, person_ref: str) -> Caller:
        """The person a service comments for (notifications: a reply by e-mail), with their own
        access now; the service needs Ticket:comment-as-person."""
        return await acting_person(
            self._directory, actor, person_ref, right=ON_BEHALF_RIGHT, manage=AGENT_PERMISSION
        )

    # -- create -------------------------------------------------------------------------

    async def create(
        self, actor: Caller, new: NewTicket, attachment_ids: Sequence[str] = ()
    ) -> Ticket:
        """Create a ticket with the next number of its type (writes an outbox row), attaching
        the caller's staged files `attachment_ids` in the same transaction.

        A retry with the same idempotency key by the same requester returns the first ticket.
        """
        if not creates(actor):
            raise PermissionDenied("Ticket:create is needed to submit a ticket")
        valid = validate_new(actor, new)
        files = parse_ids(attachment_ids)
        ws = actor.workspace_id
        if valid.requester_id != actor.person_id:
            await self._check_requester(ws, valid.requester_id)
        async with self._pool.acquire() as conn:
            if valid.idempotency_key:
                existing = await store.find_by_idempotency_key(
                    conn, ws, valid.requester_id, valid.idempotency_key
                )
                if existing is not None:
                    return existing
            try:
                async with conn.transaction():
                    seq = await store.next_seq(conn, ws, valid.type)
                    draft = Ticket(
                        id=uuid.uuid4(),
                        workspace_id=ws,
                        type=valid.type,
                        seq=seq,
                        title=valid.title,
                        description=valid.description,
                        status=Status.NEW,
                        requester_id=valid.requester_id,
                        assignee_id=None,
                        impact=valid.impact,
                        urgency=valid.urgency,
                        priority=valid.priority,
                        reason=valid.reason,
                        risk=valid.risk,
                        planned_start=valid.planned_start,
                        planned_end=valid.planned_end,
                        created_at=datetime.min,
                        updated_at=datetime.min,
                        idempotency_key=valid.idempotency_key,
                    )
                    ticket = await store.insert_ticket(conn, draft)
                    await store.add_history(
                        conn,
                        ws,
                        ticket.id,
                        kind="status",
                        field="status",
                        old_value="",
                        new_value=Status.NEW.value,
                        actor_id=actor.person_id,
                    )
                    await outbox.add(conn, events.created(ticket, actor))
                    await self.attachments.attach(conn, actor, ticket, None, False, files)
            except asyncpg.UniqueViolationError as exc:
                # A concurrent retry with the same key won the race: answer with its ticket.
                if exc.constraint_name != "tickets_idempotency" or not valid.idempotency_key:
                    raise
                existing = await store.find_by_idempotency_key(
                    conn, ws, valid.requester_id, valid.idempotency_key
                )
                if existing is None:
                    raise
                return existing
        log.info("ticket %s created as %s", ticket.id, ticket.number)
        return ticket

    # -- read ---------------------------------------------------------------------------

    async def _load(
        self, conn: asyncpg.Connection, actor: Caller, ref: str, *, for_update: bool = False
    ) -> Ticket:
        """The ticket `ref` (id or number) when the actor may see it, else NotFound."""
        ticket: Ticket | None = None
        ticket_id = parse_uuid(ref)
        if ticket_id is not None:
            ticket = await store.get_ticket(
                conn, actor.workspace_id, ticket_id, for_update=for_update
            )
        else:
            number = parse_number(ref)
            if number is not None:
                ticket = await store.get_ticket_by_number(
                    conn, actor.workspace_id, number[0], number[1], for_update=for_update
                )
        if ticket is None or not can_see(actor, ticket):
            raise NotFound("ticket not found")
        return ticket

    async def get(self, actor: Caller, ref: str) -> TicketDetail:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            ticket = await self._load(conn, actor, ref)
            comments = await store.list_comments(
                conn, actor.workspace_id, ticket.id, include_internal=manages(actor)
            )
            kinds = ["status", "field"] if manages(actor) else ["status"]
            history = await store.list_history(conn, actor.workspace_id, ticket.id, kinds=kinds)
            attachments = await self.attachments.list(conn, actor, ticket)
        ticket.comment_count = len(comments)
        return TicketDetail(
            ticket=ticket,
            comments=comments,
            status_history=[h for h in history if h.kind == "status"],
            field_history=[h for h in history if h.kind == "field"],
            attachments=attachments,
        )

    async def list_mine(
        self,
        actor: Caller,
        *,
        statuses: tuple[Status, ...],
        type_: TicketType | None,
        query: str,
        page_size_: int,
        page_token: str,
    ) -> tuple[list[Ticket], str]:
        """The actor's own tickets, newest first; returns (page, next_page_token)."""
        if not reads_own(actor):
            raise PermissionDenied("Ticket:read is needed to list your tickets")
        assert actor.person_id is not None
        return await self._list(
            actor,
            statuses=statuses,
            type_=type_,
            priorities=(),
            assignee="",
            requester=str(actor.person_id),
            query=query,
            sort=Sort.CREATED_DESC,
            page_size_=page_size_,
            page_token=page_token,
        )

    async def list_queue(
        self,
        actor: Caller,
        *,
        statuses: tuple[Status, ...],
        type_: TicketType | None,
        priorities: tuple[int, ...],
        assignee: str,
        requester: str,
        query: str,
        sort: Sort,
        page_size_: int,
        page_token: str,
    ) -> tuple[list[Ticket], str]:
        if not manages(actor):
            raise PermissionDenied("Ticket:manage is needed to see the ticket queue")
        return await self._list(
            actor,
            statuses=statuses,
            type_=type_,
            priorities=priorities,
            assignee=assignee,
            requester=requester,
            query=query,
            sort=sort,
            page_size_=page_size_,
            page_token=page_token,
        )

    async def _list(
        self,
        actor: Caller,
        *,
        statuses: tuple[Status, ...],
        type_: TicketType | None,
        priorities: tuple[int, ...],
        assignee: str,
        requester: str,
        query: str,
        sort: Sort,
        page_size_: int,
        page_token: str,
    ) -> tuple[list[Ticket], str]:
        problems: list[str] = []
        text = clean_query(problems, query)
        size = page_size(problems, page_size_)
        assignee_id: uuid.UUID | None = None
        unassigned = assignee.strip().lower() == "none"
        if assignee and not unassigned:
            assignee_id = parse_uuid(assignee)
            if assignee_id is None:
                problems.append('assignee_id: must be a person id or "none"')
        requester_id: uuid.UUID | None = None
        if requester:
            requester_id = parse_uuid(requester)
            if requester_id is None:
                problems.append("requester_id: must be a person id")
        after = None
        if page_token:
            after = decode_token(page_token, sort)
            if after is None:
                problems.append("page_token: not a token of this listing")
        if any(p < 1 or p > 5 for p in priorities):
            problems.append("priorities: must be between 1 and 5")
        if problems:
            raise InvalidArgument(problems)
        filters = Filters(
            statuses=statuses,
            type=type_,
            priorities=priorities,
            assignee_id=assignee_id,
            unassigned=unassigned,
            requester_id=requester_id,
            query=text,
            number=parse_number(text) if text else None,
            sort=sort,
            page_size=size,
            after=after,
        )
        async with self._pool.acquire() as conn:
            tickets, last = await store.list_tickets(conn, actor.workspace_id, filters)
        return tickets, encode_token(sort, last) if last is not None else ""

    # -- change -------------------------------------------------------------------------

    async def update(self, actor: Caller, ref: str, edit: Edit) -> Ticket:
        """Edit fields and the assignee (writes ticket_updated and/or ticket_assigned)."""
        if not manages(actor):
            raise PermissionDenied("Ticket:manage is needed to edit a ticket")
        wanted = parse_uuid(edit.assignee_id) if edit.assignee_id else None
        if wanted is not None:
            # Asked before the transaction, so no row stays locked while the directory answers;
            # keeping the current assignee needs no check (they may have left since).
            async with self._pool.acquire() as conn:
                current = await self._load(conn, actor, ref)
            if current.assignee_id != wanted:
                await self._check_assignee(actor.workspace_id, wanted)
        async with self._pool.acquire() as conn, conn.transaction():
            ticket = await self._load(conn, actor, ref, for_update=True)
            changes, previous_assignee = apply_edit(ticket, edit)
            if not changes:
                return ticket
            ticket = await store.update_ticket(conn, ticket)
            for name, old, new in changes:
                await store.add_history(
                    conn,
                    actor.workspace_id,
                    ticket.id,
                    kind="field",
                    field=name,
                    old_value=old,
                    new_value=new,
                    actor_id=actor.person_id,
                )
            fields = [name for name, _, _ in changes if name != "assignee"]
            if fields:
                await outbox.add(conn, events.updated(ticket, actor, fields))
            if ticket.assignee_id != previous_assignee:
                await outbox.add(conn, events.assigned(ticket, actor, previous_assignee))
        return ticket

    async def change_status(self, actor: Caller, ref: str, target: Status, note: str) -> Ticket:
        """Move the ticket along the workflow (writes ticket_status_changed)."""
        problems: list[str] = []
        note = note.strip()
        if len(note) > MAX_NOTE:
            problems.append(f"note: at most {MAX_NOTE} characters")
        if not manages(actor):
            raise PermissionDenied("Ticket:manage is needed to change a ticket's status")
        if problems:
            raise InvalidArgument(problems)
        async with self._pool.acquire() as conn, conn.transaction():
            ticket = await self._load(conn, actor, ref, for_update=True)
            check_transition(ticket.status, target)
            ticket = await self._move(conn, actor, ticket, target, note=note, by_comment=False)
        return ticket

    async def _move(
        self,
        conn: asyncpg.Connection,
        actor: Caller,
        ticket: Ticket,
        target: Status,
        *,
        note: str,
        by_comment: bool,
    ) -> Ticket:
        previous = ticket.status
        moved = await store.set_status(conn, actor.workspace_id, ticket.id, target)
        await store.add_history(
            conn,
            actor.workspace_id,
            ticket.id,
            kind="status",
            field="status",
            old_value=previous.value,
            new_value=target.value,
            actor_id=actor.person_id,
            note=note,
            by_requester_comment=by_comment,
        )
        await outbox.add(conn, events.status_changed(moved, actor, previous, by_comment))
        return moved

    async def add_comment(
        self,
        actor: Caller,
        ref: str,
        body: str,
        internal: bool,
        attachment_ids: Sequence[str] = (),
        idempotency_key: str = "",
    ) -> tuple[Comment, Ticket]:
        """Add a comment or internal note with the caller's staged files (writes
        ticket_commented, attachment_added, and ticket_status_changed when the requester's
        comment reopens the ticket). With `idempotency_key`, the same author's second call
        adds nothing and answers the first comment."""
        files = parse_ids(attachment_ids)
        problems: list[str] = []
        key = idempotency_key.strip() or None
        if key is not None and len(key) > MAX_KEY:
            problems.append(f"idempotency_key: at most {MAX_KEY} characters")
        text = body.strip()
        if not text and not files:
            problems.append("body: required")
        elif len(text) > MAX_COMMENT:
            problems.append(f"body: at most {MAX_COMMENT} characters")
        elif "\x00" in text:
            problems.append("body: must not contain NUL characters")
        async with self._pool.acquire() as conn, conn.transaction():
            ticket = await self._load(conn, actor, ref, for_update=True)
            if internal and not manages(actor):
                raise PermissionDenied("Ticket:manage is needed to write an internal note")
            if problems:
                raise InvalidArgument(problems)
            if key is not None and actor.person_id is not None:
                # the ticket row is locked: two deliveries of one key wait for each other here
                earlier = await store.comment_by_key(conn, actor.workspace_id, actor.person_id, key)
                if earlier is not None:
                    return earlier, ticket
            if ticket.status is Status.CLOSED:
                raise FailedPrecondition("ticket: closed tickets take no more comments")
            comment = await store.insert_comment(
                conn,
                actor.workspace_id,
                Comment(
                    id=uuid.uuid4(),
                    ticket_id=ticket.id,
                    author_id=actor.person_id,
                    body=text,
                    internal=internal,
                    created_at=datetime.min,
                ),
                idempotency_key=key,
            )
            await outbox.add(conn, events.commented(ticket, actor, comment))
            await self.attachments.attach(conn, actor, ticket, comment.id, internal, files)
            if (
                not internal
                and is_requester(actor, ticket)
                and ticket.status in REOPENED_BY_REQUESTER
            ):
                ticket = await self._move(
                    conn, actor, ticket, Status.IN_PROGRESS, note="", by_comment=True
                )
            else:
                await store.touch(conn, actor.workspace_id, ticket.id)
        return comment, ticket


async def _default_limits(workspace_id: uuid.UUID) -> Limits:
    return Limits()


# -- page tokens ----------------------------------------------------------------------------


_KEY_TYPES: dict[str, KeyType] = {
    "id": uuid.UUID,
    "priority": int,
    "created_at": datetime,
    "updated_at": datetime,
}
ORDERS = {
    sort: Keyset(sort.value, tuple(_KEY_TYPES[k] for k in store.SORT_KEYS[sort][0]))
    for sort in Sort
}
"""Each sort is a listing of its own: a token of one sort is no token of another."""


def encode_token(sort: Sort, last: tuple[Any, ...]) -> str:
    return ORDERS[sort].token(last)


def decode_token(token: str, sort: Sort) -> tuple[Any, ...] | None:
    """The keyset position a token holds, or None when it is not a token of `sort`."""
    return ORDERS[sort].position(token)
