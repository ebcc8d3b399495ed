# ruff: noqa: S608  -- queries are assembled from constant fragments and $n placeholders only
"""SQL of the directory's workspaces, portal settings and audit trail; each function takes a
connection and filters by workspace_id. The other concepts' SQL is in store_<concept>.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.chassis import sql
from services.chassis.paging import Page
from services.directory.domain import (
    AuditEntry,
    DomainRule,
    PortalSettings,
    Workspace,
)

# ---- workspaces and settings ----


async def insert_workspace(conn: asyncpg.Connection, ws: Workspace) -> None:
    await conn.execute(
        "insert into workspaces (id, slug, name, created_at) values ($1, $2, $3, $4)",
        ws.id,
        ws.slug,
        ws.name,
        ws.created_at,
    )


def _workspace(row: asyncpg.Record) -> Workspace:
    return Workspace(row["id"], row["slug"], row["name"], row["created_at"])


async def get_workspace(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> Workspace | None:
    row = await conn.fetchrow(
        "select id, slug, name, created_at from workspaces where id = $1", workspace_id
    )
    return _workspace(row) if row else None


async def get_workspace_by_slug(conn: asyncpg.Connection, slug: str) -> Workspace | None:
    row = await conn.fetchrow(
        "select id, slug, name, created_at from workspaces where slug = $1", slug
    )
    return _workspace(row) if row else None


async def insert_settings(conn: asyncpg.Connection, s: PortalSettings) -> None:
    await conn.execute(
        """
        insert into portal_settings (workspace_id, tickets_enabled, issues_enabled,
            control_tests_enabled, self_registration, registration_domains,
            portal_access_default, portal_access_rules, require_two_factor)
        values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
        """,
        s.workspace_id,
        s.tickets_enabled,
        s.issues_enabled,
        s.control_tests_enabled,
        s.self_registration,
        list(s.registration_domains),
        s.portal_access_default,
        json.dumps(
            [{"domain": r.domain, "portal_access": r.portal_access} for r in s.portal_access_rules]
        ),
        s.require_two_factor,
    )


async def get_settings(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, *, for_update: bool = False
) -> PortalSettings | None:
    row = await conn.fetchrow(
        "select * from portal_settings where workspace_id = $1"
        + (" for update" if for_update else ""),
        workspace_id,
    )
    if row is None:
        return None
    rules = tuple(
        DomainRule(r["domain"], bool(r["portal_access"]))
        for r in json.loads(row["portal_access_rules"])
    )
    return PortalSettings(
        workspace_id=row["workspace_id"],
        tickets_enabled=row["tickets_enabled"],
        issues_enabled=row["issues_enabled"],
        control_tests_enabled=row["control_tests_enabled"],
        self_registration=row["self_registration"],
        registration_domains=tuple(row["registration_domains"]),
        portal_access_default=row["portal_access_default"],
        portal_access_rules=rules,
        require_two_factor=row["require_two_factor"],
        updated_at=row["updated_at"],
        api_token_max_days=row["api_token_max_days"],
        attachment_max_file_mb=row["attachment_max_file_mb"],
        attachment_max_item_mb=row["attachment_max_item_mb"],
        attachment_max_files=row["attachment_max_files"],
    )


async def update_settings(conn: asyncpg.Connection, s: PortalSettings) -> datetime:
    updated_at: datetime = await conn.fetchval(
        """
        update portal_settings set tickets_enabled = $2, issues_enabled = $3,
            control_tests_enabled = $4, self_registration = $5, registration_domains = $6,
            portal_access_default = $7, portal_access_rules = $8::jsonb,
            require_two_factor = $9, api_token_max_days = $10, attachment_max_file_mb = $11,
            attachment_max_item_mb = $12, attachment_max_files = $13, updated_at = now()
        where workspace_id = $1
        returning updated_at
        """,
        s.workspace_id,
        s.tickets_enabled,
        s.issues_enabled,
        s.control_tests_enabled,
        s.self_registration,
        list(s.registration_domains),
        s.portal_access_default,
        json.dumps(
            [{"domain": r.domain, "portal_access": r.portal_access} for r in s.portal_access_rules]
        ),
        s.require_two_factor,
        s.api_token_max_days,
        s.attachment_max_file_mb,
        s.attachment_max_item_mb,
        s.attachment_max_files,
    )
    return updated_at


# ---- audit ----


async def insert_audit(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    actor_id: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Writes an audit row in the caller's transaction."""
    await conn.execute(
        """
        insert into audit_log (id, workspace_id, actor_id, action, object_type, object_id, before, after)
        values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
        """,
        uuid.uuid4(),
        workspace_id,
        actor_id,
        action,
        object_type,
        object_id,
        None if before is None else json.dumps(before, default=str),
        None if after is None else json.dumps(after, default=str),
    )


async def insert_audit_many(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    actor_id: str,
    rows: Sequence[tuple[str, str, str, dict[str, Any] | None, dict[str, Any] | None]],
) -> None:
    """Many audit rows (action, object_type, object_id, before, after) in one statement."""
    if not rows:
        return
    await conn.execute(
        """
        insert into audit_log (id, workspace_id, actor_id, action, object_type, object_id, before, after)
        select u.id, $1, $2, u.action, u.object_type, u.object_id, u.before::jsonb, u.after::jsonb
        from unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
            as u(id, action, object_type, object_id, before, after)
        """,
        workspace_id,
        actor_id,
        [uuid.uuid4() for _ in rows],
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [None if r[3] is None else json.dumps(r[3], default=str) for r in rows],
        [None if r[4] is None else json.dumps(r[4], default=str) for r in rows],
    )


async def list_audit(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    page: Page,
    object_type: str | None,
    object_id: str | None,
) -> tuple[list[AuditEntry], bool]:
    where = sql.Where("workspace_id", workspace_id)
    if object_type:
        where.add("object_type = {}", object_type)
    if object_id:
        where.add("object_id = {}", object_id)
    where.after(["seq"], page.after, "desc")
    limit = where.limit(page.size + 1)
    rows = await conn.fetch(
        f"""
        select seq, id, actor_id, action, object_type, object_id,
            coalesce(before::text, '') as before, coalesce(after::text, '') as after, at
        from audit_log where {where.sql()} order by seq desc {limit}
        """,
        *where.params,
    )
    entries = [
        AuditEntry(
            r["seq"],
            r["id"],
            r["actor_id"],
            r["action"],
            r["object_type"],
            r["object_id"],
            r["before"],
            r["after"],
            r["at"],
        )
        for r in rows[: page.size]
    ]
    return entries, len(rows) > page.size
