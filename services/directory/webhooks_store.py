# ruff: noqa: S608  -- queries are assembled from constant fragments and $n placeholders only
"""The SQL of webhooks: endpoints, the delivery log, and claiming due deliveries.

Every statement filters by workspace_id, except `claim_due`, which takes any workspace's due
deliveries for a sender (FOR UPDATE SKIP LOCKED, so replicas share the work); what it then
writes is scoped to each delivery's own workspace.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    workspace_id: uuid.UUID
    url: str
    description: str
    secret: str
    event_types: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    workspace_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    body: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime


_ENDPOINT = "id, workspace_id, url, description, secret, event_types, created_at"
_DELIVERY = (
    "id, workspace_id, endpoint_id, event_id, event_type, body, status, attempts, last_status,"
    " last_error, created_at, delivered_at, next_attempt_at"
)


def _endpoint(r: asyncpg.Record) -> Endpoint:
    return Endpoint(
        r["id"],
        r["workspace_id"],
        r["url"],
        r["description"],
        r["secret"],
        tuple(r["event_types"]),
        r["created_at"],
    )


def _delivery(r: asyncpg.Record) -> Delivery:
    return Delivery(**{k: r[k] for k in Delivery.__dataclass_fields__})


async def insert_endpoint(conn: asyncpg.Connection, e: Endpoint, created_by: str) -> Endpoint:
    row = await conn.fetchrow(
        f"""
        insert into webhook_endpoints (id, workspace_id, url, description, secret, event_types,
            created_by)
        values ($1, $2, $3, $4, $5, $6, $7) returning {_ENDPOINT}
        """,
        e.id,
        e.workspace_id,
        e.url,
        e.description,
        e.secret,
        list(e.event_types),
        created_by,
    )
    return _endpoint(row)


async def list_endpoints(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> list[Endpoint]:
    rows = await conn.fetch(
        f"select {_ENDPOINT} from webhook_endpoints where workspace_id = $1"
        " and deleted_at is null order by created_at, id",
        workspace_id,
    )
    return [_endpoint(r) for r in rows]


async def delete_endpoint(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, endpoint_id: uuid.UUID
) -> bool:
    """Stops deliveries (pending ones fail); the log stays."""
    result: str = await conn.execute(
        "update webhook_endpoints set deleted_at = now()"
        " where workspace_id = $1 and id = $2 and deleted_at is null",
        workspace_id,
        endpoint_id,
    )
    await conn.execute(
        "update webhook_deliveries set status = 'failed', last_error = 'endpoint deleted'"
        " where workspace_id = $1 and endpoint_id = $2 and status = 'pending'",
        workspace_id,
        endpoint_id,
    )
    return result.endswith(" 1")


async def enqueue(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    body: str,
) -> int:
    """One pending delivery per live endpoint that wants the event; a repeat changes nothing."""
    result: str = await conn.execute(
        """
        insert into webhook_deliveries (workspace_id, endpoint_id, event_id, event_type, body)
        select $1, e.id, $2, $3, $4 from webhook_endpoints e
        where e.workspace_id = $1 and e.deleted_at is null
          and (cardinality(e.event_types) = 0 or $3 = any(e.event_types))
        on conflict (endpoint_id, event_id) do nothing
        """,
        workspace_id,
        event_id,
        event_type,
        body,
    )
    return int(result.rsplit(" ", 1)[-1])


async def claim_due(
    conn: asyncpg.Connection, limit: int, lease_seconds: float
) -> list[tuple[Delivery, Endpoint]]:
    """Due pending deliveries with their endpoints, leased (next attempt moved on) so that
    another sender does not take them while this one sends."""
    rows = await conn.fetch(
        f"""
        with due as (
            select d.id from webhook_deliveries d
            where d.status = 'pending' and d.next_attempt_at <= now()
            order by d.next_attempt_at, d.id
            limit $1
            for update skip locked
        )
        update webhook_deliveries d
        set next_attempt_at = now() + make_interval(secs => $2)
        from due where d.id = due.id
        returning d.{_DELIVERY.replace(", ", ", d.")}
        """,
        limit,
        lease_seconds,
    )
    deliveries = [_delivery(r) for r in rows]
    if not deliveries:
        return []
    endpoints = await conn.fetch(
        f"select {_ENDPOINT} from webhook_endpoints where id = any($1::uuid[])",
        list({d.endpoint_id for d in deliveries}),
    )
    by_id = {r["id"]: _endpoint(r) for r in endpoints}
    return [(d, by_id[d.endpoint_id]) for d in deliveries if d.endpoint_id in by_id]


async def record_attempt(
    conn: asyncpg.Connection,
    delivery: Delivery,
    *,
    delivered: bool,
    status: int | None,
    error: str,
    retry_in: float | None,
) -> None:
    """retry_in None after a failure: given up (failed)."""
    new_status = "delivered" if delivered else ("pending" if retry_in is not None else "failed")
    await conn.execute(
        """
        update webhook_deliveries set attempts = attempts + 1, status = $3, last_status = $4,
            last_error = $5, delivered_at = case when $3 = 'delivered' then now() end,
            next_attempt_at = now() + make_interval(secs => $6)
        where workspace_id = $1 and id = $2
        """,
        delivery.workspace_id,
        delivery.id,
        new_status,
        status,
        error[:500],
        retry_in or 0.0,
    )


async def list_deliveries(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID | None,
    limit: int,
) -> list[Delivery]:
    rows = await conn.fetch(
        f"""
        select {_DELIVERY} from webhook_deliveries
        where workspace_id = $1 and ($2::uuid is null or endpoint_id = $2)
        order by id desc limit $3
        """,
        workspace_id,
        endpoint_id,
        limit,
    )
    return [_delivery(r) for r in rows]
