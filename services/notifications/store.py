"""Every SQL statement of the notifications service; functions take `conn`, filter by workspace."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.chassis.paging import Page
from services.notifications.domain import Delivery, Notification

CHANNEL = "fd_notifications_due"


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        workspace_id=row["workspace_id"],
        event_id=row["event_id"],
        person_id=row["person_id"],
        kind=row["kind"],
        email=row["email"],
        subject=row["subject"],
        body_text=row["body_text"],
        body_html=row["body_html"],
        headers=json.loads(row["headers"]),
        message_id=row["message_id"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        sent_at=row["sent_at"],
    )


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(
        id=row["id"],
        workspace_id=row["workspace_id"],
        person_id=row["person_id"],
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        link=row["link"],
        item_kind=row["item_kind"],
        item_id=row["item_id"],
        read=row["read_at"] is not None,
        created_at=row["created_at"],
    )


async def insert_delivery(conn: asyncpg.Connection, d: dict[str, Any]) -> bool:
    """Record an e-mail to send (once per event, person and kind); wakes the senders."""
    inserted = await conn.fetchval(
        """
        insert into deliveries (workspace_id, id, event_id, person_id, kind, email, subject,
                                body_text, body_html, headers, message_id)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        on conflict (event_id, person_id, kind) do nothing
        returning true
        """,
        d["workspace_id"],
        d["id"],
        d["event_id"],
        d["person_id"],
        d["kind"],
        d["email"],
        d["subject"],
        d["body_text"],
        d["body_html"],
        json.dumps(d["headers"]),
        d["message_id"],
    )
    if inserted:
        await conn.execute("select pg_notify($1, '')", CHANNEL)
    return bool(inserted)


async def insert_notification(conn: asyncpg.Connection, n: dict[str, Any]) -> bool:
    inserted = await conn.fetchval(
        """
        insert into notifications (workspace_id, id, event_id, person_id, kind, title, body,
                                   link, item_kind, item_id)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        on conflict (event_id, person_id, kind) do nothing
        returning true
        """,
        n["workspace_id"],
        n["id"],
        n["event_id"],
        n["person_id"],
        n["kind"],
        n["title"],
        n["body"],
        n["link"],
        n["item_kind"],
        n["item_id"],
    )
    return bool(inserted)


async def due_deliveries(conn: asyncpg.Connection, limit: int) -> list[Delivery]:
    """Pending mails whose time has come, locked for this sender until its transaction ends
    (other replicas skip them): the lock is what makes two senders never send one mail."""
    rows = await conn.fetch(
        """
        select * from deliveries
        where status = 'pending' and next_attempt_at <= now()
        order by next_attempt_at
        limit $1
        for update skip locked
        """,
        limit,
    )
    return [_delivery(r) for r in rows]


async def mark_sent(conn: asyncpg.Connection, ws: uuid.UUID, delivery_id: uuid.UUID) -> None:
    await conn.execute(
        """
        update deliveries set status = 'sent', sent_at = now(), attempts = attempts + 1,
            last_error = ''
        where workspace_id = $1 and id = $2
        """,
        ws,
        delivery_id,
    )


async def mark_retry(
    conn: asyncpg.Connection,
    ws: uuid.UUID,
    delivery_id: uuid.UUID,
    error: str,
    delay: float,
    give_up_after: float,
) -> str:
    """Count a failed attempt: try again after `delay` seconds, or fail for good once the mail
    is older than `give_up_after` seconds. Returns the new status."""
    status: str = await conn.fetchval(
        """
        update deliveries set attempts = attempts + 1, last_error = $3,
            next_attempt_at = now() + make_interval(secs => $4),
            status = case when created_at + make_interval(secs => $5) <= now()
                          then 'failed' else 'pending' end
        where workspace_id = $1 and id = $2
        returning status
        """,
        ws,
        delivery_id,
        error[:1000],
        delay,
        give_up_after,
    )
    return status


async def next_due_in(conn: asyncpg.Connection) -> float | None:
    """Seconds until the next pending mail is due (None when none is pending)."""
    value = await conn.fetchval(
        """
        select extract(epoch from min(next_attempt_at) - now())::float8
        from deliveries where status = 'pending'
        """
    )
    return None if value is None else max(0.0, float(value))


async def list_deliveries(
    conn: asyncpg.Connection, ws: uuid.UUID, person_id: uuid.UUID, page: Page
) -> list[Delivery]:
    after = page.after
    rows = await conn.fetch(
        """
        select * from deliveries
        where workspace_id = $1 and person_id = $2
          and ($3::timestamptz is null or (created_at, id) < ($3, $4))
        order by created_at desc, id desc
        limit $5
        """,
        ws,
        person_id,
        after[0] if after else None,
        after[1] if after else None,
        page.size + 1,
    )
    return [_delivery(r) for r in rows]


async def list_notifications(
    conn: asyncpg.Connection, ws: uuid.UUID, person_id: uuid.UUID, page: Page, unread_only: bool
) -> list[Notification]:
    after = page.after
    rows = await conn.fetch(
        """
        select * from notifications
        where workspace_id = $1 and person_id = $2 and (not $3 or read_at is null)
          and ($4::timestamptz is null or (created_at, id) < ($4, $5))
        order by created_at desc, id desc
        limit $6
        """,
        ws,
        person_id,
        unread_only,
        after[0] if after else None,
        after[1] if after else None,
        page.size + 1,
    )
    return [_notification(r) for r in rows]


async def unread_count(conn: asyncpg.Connection, ws: uuid.UUID, person_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        """
        select count(*) from notifications
        where workspace_id = $1 and person_id = $2 and read_at is null
        """,
        ws,
        person_id,
    )
    return count


async def mark_read(
    conn: asyncpg.Connection,
    ws: uuid.UUID,
    person_id: uuid.UUID,
    ids: list[uuid.UUID] | None,
) -> int:
    """Mark the person's notifications read (`ids`, or all when None); returns how many."""
    result: str = await conn.execute(
        """
        update notifications set read_at = now()
        where workspace_id = $1 and person_id = $2 and read_at is null
          and ($3::uuid[] is null or id = any($3::uuid[]))
        """,
        ws,
        person_id,
        ids,
    )
    return int(result.split()[-1])


def key_of(created_at: datetime, row_id: uuid.UUID) -> tuple[datetime, uuid.UUID]:
    return (created_at, row_id)


async def remember_sign_in(
    conn: asyncpg.Connection, ws: uuid.UUID, person_id: uuid.UUID, address: str, device: str
) -> tuple[bool, bool]:
    """Record the digests of a sign-in's address and device; returns (seen before: the person
    had signed in before, new: the address or the device is one not seen for them)."""
    before: bool = await conn.fetchval(
        "select exists (select 1 from sign_ins where workspace_id = $1 and person_id = $2)",
        ws,
        person_id,
    )
    added = await conn.fetch(
        """
        insert into sign_ins (workspace_id, person_id, what, digest)
        select $1, $2, w, d from unnest($3::text[], $4::text[]) as t(w, d)
        on conflict do nothing
        returning what
        """,
        ws,
        person_id,
        ["address", "device"],
        [address, device],
    )
    return before, bool(added)


async def upsert_due_test(conn: asyncpg.Connection, t: dict[str, Any]) -> None:
    """An open control test as the latest compliance event tells it."""
    await conn.execute(
        """
        insert into due_tests (workspace_id, control_test_id, number, title, assignee_id, due_date)
        values ($1, $2, $3, $4, $5, $6)
        on conflict (workspace_id, control_test_id) do update
        set number = excluded.number, title = excluded.title,
            assignee_id = excluded.assignee_id, due_date = excluded.due_date
        """,
        t["workspace_id"],
        t["control_test_id"],
        t["number"],
        t["title"],
        t["assignee_id"],
        t["due_date"],
    )


async def forget_due_test(conn: asyncpg.Connection, ws: uuid.UUID, test_id: uuid.UUID) -> None:
    await conn.execute(
        "delete from due_tests where workspace_id = $1 and control_test_id = $2", ws, test_id
    )


async def tests_due_in(conn: asyncpg.Connection, days: int, limit: int) -> list[asyncpg.Record]:
    """Assigned open tests due within `days` days (not past) and not yet reminded for that
    date, locked for this job's transaction (replicas skip them). Across workspaces: the job
    works for every workspace, and each row it returns names its own."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        select * from due_tests
        where assignee_id is not null
          and due_date between current_date and current_date + $1::int
          and reminded_for is distinct from due_date
        order by due_date
        limit $2
        for update skip locked
        """,
        days,
        limit,
    )
    return rows


async def mark_reminded(conn: asyncpg.Connection, ws: uuid.UUID, test_id: uuid.UUID) -> None:
    await conn.execute(
        """
        update due_tests set reminded_for = due_date
        where workspace_id = $1 and control_test_id = $2
        """,
        ws,
        test_id,
    )


async def upsert_open_item(conn: asyncpg.Connection, i: dict[str, Any]) -> None:
    """An open ticket or issue as the latest event tells it; a None field keeps what is known
    (an assignment does not repeat the title)."""
    await conn.execute(
        """
        insert into open_items (workspace_id, item_kind, item_id, number, title, requester_id,
                                assignee_id, status)
        values ($1, $2, $3, $4, coalesce($5, ''), $6, $7, $8)
        on conflict (workspace_id, item_kind, item_id) do update
        set number = excluded.number,
            title = coalesce($5, open_items.title),
            requester_id = coalesce($6, open_items.requester_id),
            assignee_id = case when $9 then $7 else open_items.assignee_id end,
            status = coalesce($8, open_items.status)
        """,
        i["workspace_id"],
        i["item_kind"],
        i["item_id"],
        i["number"],
        i.get("title"),
        i.get("requester_id"),
        i.get("assignee_id"),
        i.get("status") or "open",
        "assignee_id" in i,
    )


async def forget_open_item(
    conn: asyncpg.Connection, ws: uuid.UUID, item_kind: str, item_id: uuid.UUID
) -> None:
    await conn.execute(
        "delete from open_items where workspace_id = $1 and item_kind = $2 and item_id = $3",
        ws,
        item_kind,
        item_id,
    )


async def digest_candidates(
    conn: asyncpg.Connection, week: str, limit: int
) -> list[asyncpg.Record]:
    """Persons something is open for (requester, assignee, control test assignee) who have no
    digest for `week` yet. Across workspaces: each row names its own."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        select distinct workspace_id, person_id from (
            select workspace_id, requester_id as person_id from open_items
            union all select workspace_id, assignee_id from open_items
            union all select workspace_id, assignee_id from due_tests
        ) p
        where person_id is not null and not exists (
            select 1 from digests d
            where d.workspace_id = p.workspace_id and d.person_id = p.person_id and d.week = $1
        )
        limit $2
        """,
        week,
        limit,
    )
    return rows


async def claim_digest(
    conn: asyncpg.Connection, ws: uuid.UUID, person_id: uuid.UUID, week: str
) -> bool:
    """Take the person's digest of `week` (False: made already, by us or another replica)."""
    claimed = await conn.fetchval(
        """
        insert into digests (workspace_id, person_id, week) values ($1, $2, $3)
        on conflict do nothing returning true
        """,
        ws,
        person_id,
        week,
    )
    return bool(claimed)


async def open_for(
    conn: asyncpg.Connection, ws: uuid.UUID, person_id: uuid.UUID
) -> list[asyncpg.Record]:
    """What is open for a person: tickets they asked for or are assigned, issues and control
    tests assigned to them (item_kind, item_id, number, title, status, role)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        select item_kind, item_id, number, title, status,
               case when assignee_id = $2 then 'assignee' else 'requester' end as role
        from open_items where workspace_id = $1 and (requester_id = $2 or assignee_id = $2)
        union all
        select 'control_test', control_test_id, number, title, 'due ' || due_date::text,
               'assignee'
        from due_tests where workspace_id = $1 and assignee_id = $2
        order by 1, 3
        """,
        ws,
        person_id,
    )
    return rows
