# ruff: noqa: S608  -- queries are assembled from constant fragments and $n placeholders only
"""SQL of persons: insert, update, look up, list, portal logins, effective permissions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.chassis import sql
from services.chassis.paging import Page
from services.directory.domain import (
    EffectivePermissions,
    Notifications,
    Person,
)

# ---- persons ----

PERSON_COLUMNS = """
    p.id, p.workspace_id, p.email, p.name, p.login_name, p.active, p.portal_access,
    p.notify_ticket_updates, p.notify_issue_assigned, p.notify_control_test_assigned,
    p.notify_weekly_digest, p.created_at, p.updated_at, p.last_portal_login_at
"""


def person_from_row(
    row: asyncpg.Record,
    role_ids: Sequence[uuid.UUID] = (),
    group_ids: Sequence[uuid.UUID] = (),
) -> Person:
    return Person(
        id=row["id"],
        workspace_id=row["workspace_id"],
        email=row["email"],
        name=row["name"],
        login_name=row["login_name"],
        active=row["active"],
        portal_access=row["portal_access"],
        notifications=Notifications(
            row["notify_ticket_updates"],
            row["notify_issue_assigned"],
            row["notify_control_test_assigned"],
            row["notify_weekly_digest"],
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_portal_login_at=row["last_portal_login_at"],
        role_ids=tuple(role_ids),
        group_ids=tuple(group_ids),
    )


async def insert_person(conn: asyncpg.Connection, p: Person) -> None:
    await conn.execute(
        """
        insert into persons (id, workspace_id, email, name, login_name, active, portal_access,
            notify_ticket_updates, notify_issue_assigned, notify_control_test_assigned,
            notify_weekly_digest)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        """,
        p.id,
        p.workspace_id,
        p.email,
        p.name,
        p.login_name,
        p.active,
        p.portal_access,
        p.notifications.ticket_updates,
        p.notifications.issue_assigned,
        p.notifications.control_test_assigned,
        p.notifications.weekly_digest,
    )


async def update_person(conn: asyncpg.Connection, p: Person) -> None:
    await conn.execute(
        """
        update persons set email = $3, name = $4, login_name = $5, active = $6,
            portal_access = $7, notify_ticket_updates = $8, notify_issue_assigned = $9,
            notify_control_test_assigned = $10, notify_weekly_digest = $11, updated_at = now()
        where workspace_id = $1 and id = $2
        """,
        p.workspace_id,
        p.id,
        p.email,
        p.name,
        p.login_name,
        p.active,
        p.portal_access,
        p.notifications.ticket_updates,
        p.notifications.issue_assigned,
        p.notifications.control_test_assigned,
        p.notifications.weekly_digest,
    )


async def _with_links(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, rows: Sequence[asyncpg.Record]
) -> list[Person]:
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    roles: dict[uuid.UUID, list[uuid.UUID]] = {}
    groups: dict[uuid.UUID, list[uuid.UUID]] = {}
    for link in await conn.fetch(
        """
        select person_id, role_id from person_roles
        where workspace_id = $1 and person_id = any($2::uuid[]) order by created_at, role_id
        """,
        workspace_id,
        ids,
    ):
        roles.setdefault(link["person_id"], []).append(link["role_id"])
    for link in await conn.fetch(
        """
        select person_id, group_id from group_members
        where workspace_id = $1 and person_id = any($2::uuid[]) order by created_at, group_id
        """,
        workspace_id,
        ids,
    ):
        groups.setdefault(link["person_id"], []).append(link["group_id"])
    return [person_from_row(r, roles.get(r["id"], ()), groups.get(r["id"], ())) for r in rows]


async def get_person(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    person_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Person | None:
    row = await conn.fetchrow(
        f"select {PERSON_COLUMNS} from persons p where p.workspace_id = $1 and p.id = $2"
        + (" for update" if for_update else ""),
        workspace_id,
        person_id,
    )
    if row is None:
        return None
    return (await _with_links(conn, workspace_id, [row]))[0]


async def find_person_by_email(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, email: str, *, or_login_name: bool = False
) -> Person | None:
    by_login = or_login_name and "@" not in email
    row = await conn.fetchrow(
        f"select {PERSON_COLUMNS} from persons p where p.workspace_id = $1 and "
        + (
            "p.login_name <> '' and lower(p.login_name) = lower($2)"
            if by_login
            else "lower(p.email) = lower($2)"
        ),
        workspace_id,
        email,
    )
    if row is None:
        return None
    return (await _with_links(conn, workspace_id, [row]))[0]


async def list_persons(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    page: Page,
    *,
    pattern: str | None = None,
    active: bool | None = None,
    portal_access: bool | None = None,
    group_id: uuid.UUID | None = None,
    role_id: uuid.UUID | None = None,
    permission: str | None = None,
    usage: str | None = None,
    stale_before: datetime | None = None,
    ids: list[uuid.UUID] | None = None,
) -> tuple[list[Person], int, bool]:
    """One page in e-mail order (keyset on lower(email)), the filtered total, and whether more follow."""
    where = sql.Where("p.workspace_id", workspace_id)
    if ids is not None:
        where.add("p.id = any({}::uuid[])", ids)
    if pattern is not None:
        where.add(
            "(lower(p.email) || ' ' || lower(p.name) || ' ' || lower(p.login_name)) like {}",
            pattern,
        )
    if active is not None:
        where.add("p.active = {}", active)
    if portal_access is not None:
        where.add("p.portal_access = {}", portal_access)
    if group_id is not None:
        where.add(
            "exists (select 1 from group_members gm where gm.workspace_id = $1"
            " and gm.group_id = {} and gm.person_id = p.id)",
            group_id,
        )
    if role_id is not None:
        where.add(
            """(exists (select 1 from person_roles pr where pr.workspace_id = $1
                    and pr.role_id = {0} and pr.person_id = p.id)
                 or exists (select 1 from group_members gm join group_roles gr
                    on gr.group_id = gm.group_id where gm.workspace_id = $1
                    and gr.role_id = {0} and gm.person_id = p.id))""",
            role_id,
        )
    if permission is not None:
        where.add(
            """(exists (select 1 from person_roles pr join roles r on r.id = pr.role_id
                    where pr.workspace_id = $1 and pr.person_id = p.id
                    and {0} = any(r.permissions))
                 or exists (select 1 from group_members gm
                    join group_roles gr on gr.group_id = gm.group_id
                    join roles r on r.id = gr.role_id
                    where gm.workspace_id = $1 and gm.person_id = p.id
                    and {0} = any(r.permissions)))""",
            permission,
        )
    if usage is not None:
        where.add("p.portal_access")
        if usage == "never":
            where.add("p.last_portal_login_at is null")
        elif usage == "stale":
            where.add(
                "(p.last_portal_login_at is null or p.last_portal_login_at < {})", stale_before
            )
    total: int = await conn.fetchval(
        f"select count(*) from persons p where {where.sql()}", *where.params
    )
    where.after(["lower(p.email)"], [str(page.after[0])] if page.after else None)
    limit = where.limit(page.size + 1)
    rows = await conn.fetch(
        f"select {PERSON_COLUMNS} from persons p where {where.sql()}"
        f" order by lower(p.email) {limit}",
        *where.params,
    )
    more = len(rows) > page.size
    persons = await _with_links(conn, workspace_id, rows[: page.size])
    return persons, total, more


async def record_portal_login(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, person_id: uuid.UUID
) -> bool:
    result: str = await conn.execute(
        "update persons set last_portal_login_at = now() where workspace_id = $1 and id = $2",
        workspace_id,
        person_id,
    )
    return result.endswith(" 1")


async def effective_permissions(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, person_id: uuid.UUID
) -> EffectivePermissions | None:
    """The union of the permissions of the person's direct roles and their groups' roles."""
    row = await conn.fetchrow(
        """
        select p.active, p.portal_access,
            coalesce(array(
                select distinct perm from (
                    select unnest(r.permissions) as perm
                    from person_roles pr join roles r on r.id = pr.role_id
                    where pr.workspace_id = $1 and pr.person_id = p.id
                    union
                    select unnest(r.permissions)
                    from group_members gm
                    join group_roles gr on gr.group_id = gm.group_id
                    join roles r on r.id = gr.role_id
                    where gm.workspace_id = $1 and gm.person_id = p.id
                ) granted order by perm
            ), '{}') as permissions
        from persons p where p.workspace_id = $1 and p.id = $2
        """,
        workspace_id,
        person_id,
    )
    if row is None:
        return None
    return EffectivePermissions(
        person_id, tuple(row["permissions"]), row["active"], row["portal_access"]
    )
