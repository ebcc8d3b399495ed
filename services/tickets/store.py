"""Every SQL statement of the tickets service; each takes `conn` and filters by workspace_id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.chassis import sql
from services.tickets.domain import (
    Comment,
    Filters,
    HistoryEntry,
    Level,
    Sort,
    Status,
    Ticket,
    TicketType,
)

_COLUMNS = """
    id, workspace_id, type, seq, title, description, status, requester_id, assignee_id,
    impact, urgency, priority, reason, risk, planned_start, planned_end, idempotency_key,
    created_at, updated_at, resolved_at, closed_at
"""


def _ticket(row: asyncpg.Record) -> Ticket:
    return Ticket(
        id=row["id"],
        workspace_id=row["workspace_id"],
        type=TicketType(row["type"]),
        seq=row["seq"],
        title=row["title"],
        description=row["description"],
        status=Status(row["status"]),
        requester_id=row["requester_id"],
        assignee_id=row["assignee_id"],
        impact=Level(row["impact"]),
        urgency=Level(row["urgency"]),
        priority=row["priority"],
        reason=row["reason"],
        risk=Level(row["risk"]) if row["risk"] else None,
        planned_start=row["planned_start"],
        planned_end=row["planned_end"],
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
        closed_at=row["closed_at"],
    )


async def next_seq(conn: asyncpg.Connection, workspace_id: uuid.UUID, type_: TicketType) -> int:
    """The next number of `type_` in the workspace; the row lock serialises concurrent creates
    and a rolled-back create rolls the counter back too, so numbers have no gaps."""
    value: int = await conn.fetchval(
        """
        insert into ticket_counters (workspace_id, type, last_seq) values ($1, $2, 1)
        on conflict (workspace_id, type) do update set last_seq = ticket_counters.last_seq + 1
        returning last_seq
        """,
        workspace_id,
        type_.value,
    )
    return value


async def insert_ticket(conn: asyncpg.Connection, t: Ticket) -> Ticket:
    row = await conn.fetchrow(
        f"""
        insert into tickets (id, workspace_id, type, seq, title, description, status,
            requester_id, assignee_id, impact, urgency, priority, reason, risk,
            planned_start, planned_end, idempotency_key)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        returning {_COLUMNS}
        """,  # noqa: S608
        t.id,
        t.workspace_id,
        t.type.value,
        t.seq,
        t.title,
        t.description,
        t.status.value,
        t.requester_id,
        t.assignee_id,
        t.impact.value,
        t.urgency.value,
        t.priority,
        t.reason,
        t.risk.value if t.risk else None,
        t.planned_start,
        t.planned_end,
        t.idempotency_key,
    )
    return _ticket(row)


async def find_by_idempotency_key(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, requester_id: uuid.UUID, key: str
) -> Ticket | None:
    row = await conn.fetchrow(
        f"""
        select {_COLUMNS} from tickets
        where workspace_id = $1 and requester_id = $2 and idempotency_key = $3
        """,  # noqa: S608
        workspace_id,
        requester_id,
        key,
    )
    return _ticket(row) if row else None


async def get_ticket(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Ticket | None:
    lock = "for update" if for_update else ""
    row = await conn.fetchrow(
        f"select {_COLUMNS} from tickets where workspace_id = $1 and id = $2 {lock}",  # noqa: S608
        workspace_id,
        ticket_id,
    )
    return _ticket(row) if row else None


async def get_ticket_by_number(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    type_: TicketType,
    seq: int,
    *,
    for_update: bool = False,
) -> Ticket | None:
    lock = "for update" if for_update else ""
    row = await conn.fetchrow(
        f"""
        select {_COLUMNS} from tickets
        where workspace_id = $1 and type = $2 and seq = $3 {lock}
        """,  # noqa: S608
        workspace_id,
        type_.value,
        seq,
    )
    return _ticket(row) if row else None


async def update_ticket(conn: asyncpg.Connection, t: Ticket) -> Ticket:
    """Write every editable column of `t` and bump updated_at."""
    row = await conn.fetchrow(
        f"""
        update tickets set title = $3, description = $4, status = $5, assignee_id = $6,
            impact = $7, urgency = $8, priority = $9, reason = $10, risk = $11,
            planned_start = $12, planned_end = $13, resolved_at = $14, closed_at = $15,
            updated_at = now()
        where workspace_id = $1 and id = $2
        returning {_COLUMNS}
        """,  # noqa: S608
        t.workspace_id,
        t.id,
        t.title,
        t.description,
        t.status.value,
        t.assignee_id,
        t.impact.value,
        t.urgency.value,
        t.priority,
        t.reason,
        t.risk.value if t.risk else None,
        t.planned_start,
        t.planned_end,
        t.resolved_at,
        t.closed_at,
    )
    return _ticket(row)


async def set_status(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, ticket_id: uuid.UUID, status: Status
) -> Ticket:
    """Set the status and its timestamps: resolved_at when resolved (kept when closed),
    closed_at when closed; both cleared when the ticket is reopened."""
    row = await conn.fetchrow(
        f"""
        update tickets set status = $3,
            resolved_at = case
                when $3 = 'resolved' then now()
                when $3 = 'closed' then coalesce(resolved_at, now())
                else null end,
            closed_at = case when $3 = 'closed' then now() else null end,
            updated_at = now()
        where workspace_id = $1 and id = $2
        returning {_COLUMNS}
        """,  # noqa: S608
        workspace_id,
        ticket_id,
        status.value,
    )
    return _ticket(row)


async def touch(conn: asyncpg.Connection, workspace_id: uuid.UUID, ticket_id: uuid.UUID) -> None:
    await conn.execute(
        "update tickets set updated_at = now() where workspace_id = $1 and id = $2",
        workspace_id,
        ticket_id,
    )


async def insert_comment(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    c: Comment,
    idempotency_key: str | None = None,
) -> Comment:
    row = await conn.fetchrow(
        """
        insert into ticket_comments (id, workspace_id, ticket_id, author_id, body, internal,
                                     idempotency_key)
        values ($1, $2, $3, $4, $5, $6, $7)
        returning id, ticket_id, author_id, body, internal, created_at
        """,
        c.id,
        workspace_id,
        c.ticket_id,
        c.author_id,
        c.body,
        c.internal,
        idempotency_key,
    )
    return _comment(row)


async def comment_by_key(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, author_id: uuid.UUID, key: str
) -> Comment | None:
    """The author's comment added earlier with this idempotency key, if any."""
    row = await conn.fetchrow(
        """
        select id, ticket_id, author_id, body, internal, created_at from ticket_comments
        where workspace_id = $1 and author_id = $2 and idempotency_key = $3
        """,
        workspace_id,
        author_id,
        key,
    )
    return None if row is None else _comment(row)


def _comment(row: asyncpg.Record) -> Comment:
    return Comment(
        id=row["id"],
        ticket_id=row["ticket_id"],
        author_id=row["author_id"],
        body=row["body"],
        internal=row["internal"],
        created_at=row["created_at"],
    )


async def list_comments(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    include_internal: bool,
) -> list[Comment]:
    rows = await conn.fetch(
        """
        select id, ticket_id, author_id, body, internal, created_at from ticket_comments
        where workspace_id = $1 and ticket_id = $2 and (not internal or $3)
        order by created_at, id
        """,
        workspace_id,
        ticket_id,
        include_internal,
    )
    return [_comment(r) for r in rows]


async def add_history(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    kind: str,
    field: str,
    old_value: str,
    new_value: str,
    actor_id: uuid.UUID | None,
    note: str = "",
    by_requester_comment: bool = False,
) -> None:
    await conn.execute(
        """
        insert into ticket_history (workspace_id, ticket_id, kind, field, old_value, new_value,
            actor_id, note, by_requester_comment)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        workspace_id,
        ticket_id,
        kind,
        field,
        old_value,
        new_value,
        actor_id,
        note,
        by_requester_comment,
    )


async def list_history(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    kinds: Sequence[str],
) -> list[HistoryEntry]:
    rows = await conn.fetch(
        """
        select kind, field, old_value, new_value, actor_id, note, by_requester_comment,
            created_at
        from ticket_history
        where workspace_id = $1 and ticket_id = $2 and kind = any($3::text[])
        order by id
        """,
        workspace_id,
        ticket_id,
        list(kinds),
    )
    return [
        HistoryEntry(
            kind=r["kind"],
            field=r["field"],
            old_value=r["old_value"],
            new_value=r["new_value"],
            actor_id=r["actor_id"],
            note=r["note"],
            by_requester_comment=r["by_requester_comment"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


# Each sort: the key columns (the last is always id) and the direction of all of them, so
# that a keyset condition is a single row comparison that an index can serve.
SORT_KEYS: dict[Sort, tuple[tuple[str, ...], sql.Direction]] = {
    Sort.CREATED_DESC: (("created_at", "id"), "desc"),
    Sort.CREATED_ASC: (("created_at", "id"), "asc"),
    Sort.UPDATED_DESC: (("updated_at", "id"), "desc"),
    Sort.UPDATED_ASC: (("updated_at", "id"), "asc"),
    Sort.PRIORITY: (("priority", "created_at", "id"), "asc"),
    Sort.PRIORITY_DESC: (("priority", "created_at", "id"), "desc"),
}


async def list_tickets(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, f: Filters
) -> tuple[list[Ticket], tuple[Any, ...] | None]:
    """One page of tickets matching `f`, and the sort key of its last row when more follow.

    The statement is assembled from fixed fragments only; every value is a $n parameter.
    """
    where = sql.Where("workspace_id", workspace_id)
    if f.requester_id is not None:
        where.add("requester_id = {}", f.requester_id)
    if f.statuses:
        where.add("status = any({}::text[])", [s.value for s in f.statuses])
    if f.type is not None:
        where.add("type = {}", f.type.value)
    if f.priorities:
        where.add("priority = any({}::smallint[])", list(f.priorities))
    if f.unassigned:
        where.add("assignee_id is null")
    elif f.assignee_id is not None:
        where.add("assignee_id = {}", f.assignee_id)
    if f.number is not None:
        where.add("type = {} and seq = {}", f.number[0].value, f.number[1])
    elif f.query:
        for word in f.query.split()[:10]:
            where.add("(title || ' ' || description) ilike {}", sql.like_pattern(word))
    keys, direction = SORT_KEYS[f.sort]
    where.after(keys, f.after, direction)
    limit = where.limit(f.page_size + 1)
    rows = await conn.fetch(
        f"select {_COLUMNS} from tickets where {where.sql()} {sql.order_by(keys, direction)} {limit}",  # noqa: S608
        *where.params,
    )
    tickets = [_ticket(r) for r in rows[: f.page_size]]
    if len(rows) <= f.page_size:
        return tickets, None
    last = rows[f.page_size - 1]
    return tickets, tuple(last[k] for k in keys)
