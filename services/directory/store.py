# ruff: noqa: S608  -- queries are assembled from constant fragments and $n placeholders only
"""Every SQL statement of the directory; each takes a connection and filters by workspace_id.

The one exception is `claim_import_job`, which picks any workspace's waiting job for a worker;
everything it then does is scoped to that job's workspace.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.directory.domain import (
    AuditEntry,
    DomainRule,
    EffectivePermissions,
    Group,
    ImportJob,
    Notifications,
    Page,
    Person,
    PortalSettings,
    Role,
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
    )


async def update_settings(conn: asyncpg.Connection, s: PortalSettings) -> datetime:
    updated_at: datetime = await conn.fetchval(
        """
        update portal_settings set tickets_enabled = $2, issues_enabled = $3,
            control_tests_enabled = $4, self_registration = $5, registration_domains = $6,
            portal_access_default = $7, portal_access_rules = $8::jsonb,
            require_two_factor = $9, updated_at = now()
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
    )
    return updated_at


# ---- persons ----

_PERSON_COLUMNS = """
    p.id, p.workspace_id, p.email, p.name, p.login_name, p.active, p.portal_access,
    p.notify_ticket_updates, p.notify_issue_assigned, p.notify_control_test_assigned,
    p.notify_weekly_digest, p.created_at, p.updated_at, p.last_portal_login_at
"""


def _person(
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
    return [_person(r, roles.get(r["id"], ()), groups.get(r["id"], ())) for r in rows]


async def get_person(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    person_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Person | None:
    row = await conn.fetchrow(
        f"select {_PERSON_COLUMNS} from persons p where p.workspace_id = $1 and p.id = $2"
        + (" for update" if for_update else ""),
        workspace_id,
        person_id,
    )
    if row is None:
        return None
    return (await _with_links(conn, workspace_id, [row]))[0]


async def find_person_by_email(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, email: str
) -> Person | None:
    row = await conn.fetchrow(
        f"select {_PERSON_COLUMNS} from persons p"
        " where p.workspace_id = $1 and lower(p.email) = lower($2)",
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
    where = ["p.workspace_id = $1"]
    args: list[Any] = [workspace_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if ids is not None:
        where.append(f"p.id = any({arg(ids)}::uuid[])")

    if pattern is not None:
        where.append(
            "(lower(p.email) || ' ' || lower(p.name) || ' ' || lower(p.login_name))"
            f" like {arg(pattern)}"
        )
    if active is not None:
        where.append(f"p.active = {arg(active)}")
    if portal_access is not None:
        where.append(f"p.portal_access = {arg(portal_access)}")
    if group_id is not None:
        where.append(
            "exists (select 1 from group_members gm where gm.workspace_id = $1"
            f" and gm.group_id = {arg(group_id)} and gm.person_id = p.id)"
        )
    if role_id is not None:
        r = arg(role_id)
        where.append(
            f"""(exists (select 1 from person_roles pr where pr.workspace_id = $1
                    and pr.role_id = {r} and pr.person_id = p.id)
                 or exists (select 1 from group_members gm join group_roles gr
                    on gr.group_id = gm.group_id where gm.workspace_id = $1
                    and gr.role_id = {r} and gm.person_id = p.id))"""
        )
    if permission is not None:
        perm = arg(permission)
        where.append(
            f"""(exists (select 1 from person_roles pr join roles r on r.id = pr.role_id
                    where pr.workspace_id = $1 and pr.person_id = p.id
                    and {perm} = any(r.permissions))
                 or exists (select 1 from group_members gm
                    join group_roles gr on gr.group_id = gm.group_id
                    join roles r on r.id = gr.role_id
                    where gm.workspace_id = $1 and gm.person_id = p.id
                    and {perm} = any(r.permissions)))"""
        )
    if usage is not None:
        where.append("p.portal_access")
        if usage == "never":
            where.append("p.last_portal_login_at is null")
        elif usage == "stale":
            where.append(
                f"(p.last_portal_login_at is null or p.last_portal_login_at < {arg(stale_before)})"
            )
    filters = " and ".join(where)
    total: int = await conn.fetchval(f"select count(*) from persons p where {filters}", *args)
    page_where = filters
    if page.after:
        page_where += f" and lower(p.email) > {arg(str(page.after[0]))}"
    limit = arg(page.size + 1)
    rows = await conn.fetch(
        f"select {_PERSON_COLUMNS} from persons p where {page_where}"
        f" order by lower(p.email) limit {limit}",
        *args,
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


# ---- roles ----


def _role(row: asyncpg.Record) -> Role:
    return Role(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        description=row["description"],
        permissions=tuple(row["permissions"]),
        builtin_key=row["builtin_key"],
        assigned_count=row["assigned_count"],
    )


_ROLE_SELECT = """
    select r.id, r.workspace_id, r.name, r.description, r.permissions, r.builtin_key,
        ((select count(*) from person_roles pr where pr.workspace_id = r.workspace_id
            and pr.role_id = r.id)
         + (select count(*) from group_roles gr where gr.workspace_id = r.workspace_id
            and gr.role_id = r.id))::int as assigned_count
    from roles r
"""


async def insert_role(conn: asyncpg.Connection, role: Role) -> None:
    await conn.execute(
        """
        insert into roles (id, workspace_id, name, description, permissions, builtin_key)
        values ($1, $2, $3, $4, $5, $6)
        """,
        role.id,
        role.workspace_id,
        role.name,
        role.description,
        list(role.permissions),
        role.builtin_key,
    )


async def update_role(conn: asyncpg.Connection, role: Role) -> None:
    await conn.execute(
        """
        update roles set name = $3, description = $4, permissions = $5, updated_at = now()
        where workspace_id = $1 and id = $2
        """,
        role.workspace_id,
        role.id,
        role.name,
        role.description,
        list(role.permissions),
    )


async def delete_role(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, role_id: uuid.UUID
) -> None:
    await conn.execute(
        "delete from roles where workspace_id = $1 and id = $2", workspace_id, role_id
    )


async def get_role(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    role_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Role | None:
    row = await conn.fetchrow(
        _ROLE_SELECT
        + " where r.workspace_id = $1 and r.id = $2"
        + (" for update" if for_update else ""),
        workspace_id,
        role_id,
    )
    return _role(row) if row else None


async def get_builtin_role(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, key: str
) -> Role | None:
    row = await conn.fetchrow(
        _ROLE_SELECT + " where r.workspace_id = $1 and r.builtin_key = $2", workspace_id, key
    )
    return _role(row) if row else None


async def list_roles(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> list[Role]:
    rows = await conn.fetch(
        _ROLE_SELECT + " where r.workspace_id = $1 order by r.builtin_key is null, lower(r.name)",
        workspace_id,
    )
    return [_role(r) for r in rows]


async def existing_role_ids(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "select id from roles where workspace_id = $1 and id = any($2::uuid[])",
        workspace_id,
        list(ids),
    )
    return {r["id"] for r in rows}


async def role_holders(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, role_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Everyone holding any of the roles, directly or through a group."""
    rows = await conn.fetch(
        """
        select person_id from person_roles where workspace_id = $1 and role_id = any($2::uuid[])
        union
        select gm.person_id from group_roles gr join group_members gm on gm.group_id = gr.group_id
        where gr.workspace_id = $1 and gr.role_id = any($2::uuid[])
        """,
        workspace_id,
        list(role_ids),
    )
    return [r["person_id"] for r in rows]


async def role_usage(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, role_id: uuid.UUID
) -> tuple[int, int]:
    """(persons holding it directly, groups carrying it)."""
    row = await conn.fetchrow(
        """
        select (select count(*) from person_roles where workspace_id = $1 and role_id = $2)::int as persons,
               (select count(*) from group_roles where workspace_id = $1 and role_id = $2)::int as groups
        """,
        workspace_id,
        role_id,
    )
    return row["persons"], row["groups"]


async def grant_role(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, person_id: uuid.UUID, role_id: uuid.UUID
) -> bool:
    done = await conn.fetchval(
        """
        insert into person_roles (workspace_id, person_id, role_id) values ($1, $2, $3)
        on conflict do nothing returning true
        """,
        workspace_id,
        person_id,
        role_id,
    )
    return bool(done)


async def revoke_role(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, person_id: uuid.UUID, role_id: uuid.UUID
) -> bool:
    result: str = await conn.execute(
        "delete from person_roles where workspace_id = $1 and person_id = $2 and role_id = $3",
        workspace_id,
        person_id,
        role_id,
    )
    return result.endswith(" 1")


# ---- groups ----

_GROUP_SELECT = """
    select g.id, g.workspace_id, g.name, g.description, g.builtin_key,
        array(select gr.role_id from group_roles gr where gr.workspace_id = g.workspace_id
              and gr.group_id = g.id order by gr.role_id) as role_ids,
        (select count(*) from group_members gm where gm.workspace_id = g.workspace_id
              and gm.group_id = g.id)::int as member_count
    from groups g
"""


def _group(row: asyncpg.Record) -> Group:
    return Group(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        description=row["description"],
        role_ids=tuple(row["role_ids"]),
        builtin_key=row["builtin_key"],
        member_count=row["member_count"],
    )


async def insert_group(conn: asyncpg.Connection, group: Group) -> None:
    await conn.execute(
        """
        insert into groups (id, workspace_id, name, description, builtin_key)
        values ($1, $2, $3, $4, $5)
        """,
        group.id,
        group.workspace_id,
        group.name,
        group.description,
        group.builtin_key,
    )
    await set_group_roles(conn, group.workspace_id, group.id, group.role_ids)


async def update_group(conn: asyncpg.Connection, group: Group) -> None:
    await conn.execute(
        """
        update groups set name = $3, description = $4, updated_at = now()
        where workspace_id = $1 and id = $2
        """,
        group.workspace_id,
        group.id,
        group.name,
        group.description,
    )


async def set_group_roles(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    group_id: uuid.UUID,
    role_ids: Sequence[uuid.UUID],
) -> None:
    await conn.execute(
        "delete from group_roles where workspace_id = $1 and group_id = $2 and not (role_id = any($3::uuid[]))",
        workspace_id,
        group_id,
        list(role_ids),
    )
    await conn.execute(
        """
        insert into group_roles (workspace_id, group_id, role_id)
        select $1, $2, unnest($3::uuid[]) on conflict do nothing
        """,
        workspace_id,
        group_id,
        list(role_ids),
    )


async def delete_group(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_id: uuid.UUID
) -> None:
    await conn.execute(
        "delete from groups where workspace_id = $1 and id = $2", workspace_id, group_id
    )


async def get_group(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    group_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Group | None:
    row = await conn.fetchrow(
        _GROUP_SELECT
        + " where g.workspace_id = $1 and g.id = $2"
        + (" for update of g" if for_update else ""),
        workspace_id,
        group_id,
    )
    return _group(row) if row else None


async def get_builtin_group(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, key: str
) -> Group | None:
    row = await conn.fetchrow(
        _GROUP_SELECT + " where g.workspace_id = $1 and g.builtin_key = $2", workspace_id, key
    )
    return _group(row) if row else None


async def list_groups(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> list[Group]:
    rows = await conn.fetch(
        _GROUP_SELECT + " where g.workspace_id = $1 order by g.builtin_key is null, lower(g.name)",
        workspace_id,
    )
    return [_group(r) for r in rows]


async def groups_by_name(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> dict[str, uuid.UUID]:
    rows = await conn.fetch("select id, name from groups where workspace_id = $1", workspace_id)
    return {r["name"].lower(): r["id"] for r in rows}


async def existing_group_ids(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "select id from groups where workspace_id = $1 and id = any($2::uuid[])",
        workspace_id,
        list(ids),
    )
    return {r["id"] for r in rows}


async def group_member_ids(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_id: uuid.UUID
) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "select person_id from group_members where workspace_id = $1 and group_id = $2",
        workspace_id,
        group_id,
    )
    return [r["person_id"] for r in rows]


async def add_member(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_id: uuid.UUID, person_id: uuid.UUID
) -> bool:
    done = await conn.fetchval(
        """
        insert into group_members (workspace_id, group_id, person_id) values ($1, $2, $3)
        on conflict do nothing returning true
        """,
        workspace_id,
        group_id,
        person_id,
    )
    return bool(done)


async def remove_member(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_id: uuid.UUID, person_id: uuid.UUID
) -> bool:
    result: str = await conn.execute(
        "delete from group_members where workspace_id = $1 and group_id = $2 and person_id = $3",
        workspace_id,
        group_id,
        person_id,
    )
    return result.endswith(" 1")


async def other_active_admins(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, person_id: uuid.UUID
) -> tuple[uuid.UUID | None, int]:
    """(Administrators group id, its active members other than person_id). Locks the group row,
    so two concurrent removals of the last two administrators take turns."""
    group_id = await conn.fetchval(
        """
        select id from groups where workspace_id = $1 and builtin_key = 'administrators'
        for update
        """,
        workspace_id,
    )
    if group_id is None:
        return None, 0
    others: int = await conn.fetchval(
        """
        select count(*) from group_members gm join persons p on p.id = gm.person_id
        where gm.workspace_id = $1 and gm.group_id = $2 and gm.person_id <> $3 and p.active
        """,
        workspace_id,
        group_id,
        person_id,
    )
    return group_id, others


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
    where = ["workspace_id = $1"]
    args: list[Any] = [workspace_id]
    if object_type:
        args.append(object_type)
        where.append(f"object_type = ${len(args)}")
    if object_id:
        args.append(object_id)
        where.append(f"object_id = ${len(args)}")
    if page.after:
        args.append(int(page.after[0]))
        where.append(f"seq < ${len(args)}")
    args.append(page.size + 1)
    rows = await conn.fetch(
        f"""
        select seq, id, actor_id, action, object_type, object_id,
            coalesce(before::text, '') as before, coalesce(after::text, '') as after, at
        from audit_log where {" and ".join(where)} order by seq desc limit ${len(args)}
        """,
        *args,
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


# ---- bulk import ----


async def import_lookup(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, emails: Sequence[str], logins: Sequence[str]
) -> tuple[dict[str, Person], dict[str, uuid.UUID], dict[uuid.UUID, set[uuid.UUID]]]:
    """Existing persons by lower(email), owners of login names, and group memberships."""
    rows = await conn.fetch(
        f"select {_PERSON_COLUMNS} from persons p"
        " where p.workspace_id = $1 and lower(p.email) = any($2::text[])",
        workspace_id,
        list(emails),
    )
    persons = {r["email"].lower(): _person(r) for r in rows}
    login_rows = await conn.fetch(
        """
        select id, lower(login_name) as login from persons
        where workspace_id = $1 and login_name <> '' and lower(login_name) = any($2::text[])
        """,
        workspace_id,
        list(logins),
    )
    owners = {r["login"]: r["id"] for r in login_rows}
    members: dict[uuid.UUID, set[uuid.UUID]] = {}
    if persons:
        for r in await conn.fetch(
            "select person_id, group_id from group_members where workspace_id = $1 and person_id = any($2::uuid[])",
            workspace_id,
            [p.id for p in persons.values()],
        ):
            members.setdefault(r["person_id"], set()).add(r["group_id"])
    return persons, owners, members


async def insert_persons_bulk(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, persons: Sequence[Person]
) -> None:
    if not persons:
        return
    await conn.execute(
        """
        insert into persons (id, workspace_id, email, name, login_name, active, portal_access)
        select u.id, $1, u.email, u.name, u.login_name, u.active, u.portal_access
        from unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[])
            as u(id, email, name, login_name, active, portal_access)
        """,
        workspace_id,
        [p.id for p in persons],
        [p.email for p in persons],
        [p.name for p in persons],
        [p.login_name for p in persons],
        [p.active for p in persons],
        [p.portal_access for p in persons],
    )


async def update_persons_bulk(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, persons: Sequence[Person]
) -> None:
    if not persons:
        return
    await conn.execute(
        """
        update persons p set name = u.name, login_name = u.login_name, active = u.active,
            portal_access = u.portal_access, updated_at = now()
        from unnest($2::uuid[], $3::text[], $4::text[], $5::bool[], $6::bool[])
            as u(id, name, login_name, active, portal_access)
        where p.workspace_id = $1 and p.id = u.id
        """,
        workspace_id,
        [p.id for p in persons],
        [p.name for p in persons],
        [p.login_name for p in persons],
        [p.active for p in persons],
        [p.portal_access for p in persons],
    )


async def add_members_bulk(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """(group_id, person_id) pairs; existing memberships are kept."""
    if not pairs:
        return
    await conn.execute(
        """
        insert into group_members (workspace_id, group_id, person_id)
        select $1, u.g, u.p from unnest($2::uuid[], $3::uuid[]) as u(g, p)
        on conflict do nothing
        """,
        workspace_id,
        [g for g, _ in pairs],
        [p for _, p in pairs],
    )


def _job(row: asyncpg.Record) -> ImportJob:
    return ImportJob(
        id=row["id"],
        workspace_id=row["workspace_id"],
        status=row["status"],
        dry_run=row["dry_run"],
        total_rows=row["total_rows"],
        rows_done=row["rows_done"],
        created=row["created"],
        updated=row["updated"],
        unchanged=row["unchanged"],
        failed=row["failed"],
        errors=json.loads(row["errors"]),
        message=row["message"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


_JOB_COLUMNS = """id, workspace_id, status, dry_run, total_rows, rows_done, created, updated,
    unchanged, failed, errors, message, created_at, finished_at"""


async def insert_import_job(
    conn: asyncpg.Connection, job: ImportJob, actor_id: str, fmt: str, content: bytes | None
) -> ImportJob:
    row = await conn.fetchrow(
        f"""
        insert into import_jobs (id, workspace_id, actor_id, format, content, dry_run, status,
            total_rows, rows_done, created, updated, unchanged, failed, errors, message, finished_at)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16)
        returning {_JOB_COLUMNS}
        """,
        job.id,
        job.workspace_id,
        actor_id,
        fmt,
        content,
        job.dry_run,
        job.status,
        job.total_rows,
        job.rows_done,
        job.created,
        job.updated,
        job.unchanged,
        job.failed,
        json.dumps(job.errors),
        job.message,
        job.finished_at,
    )
    return _job(row)


async def get_import_job(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, job_id: uuid.UUID
) -> ImportJob | None:
    row = await conn.fetchrow(
        f"select {_JOB_COLUMNS} from import_jobs where workspace_id = $1 and id = $2",
        workspace_id,
        job_id,
    )
    return _job(row) if row else None


async def claim_import_job(
    conn: asyncpg.Connection, stale_seconds: float
) -> tuple[ImportJob, str, str, bytes] | None:
    """Take the oldest pending job (or one whose worker stopped beating); any replica may call it."""
    row = await conn.fetchrow(
        f"""
        update import_jobs set status = 'running', attempts = attempts + 1,
            started_at = coalesce(started_at, now()), heartbeat_at = now()
        where id = (
            select id from import_jobs
            where status = 'pending'
               or (status = 'running' and heartbeat_at < now() - make_interval(secs => $1))
            order by created_at
            limit 1
            for update skip locked
        )
        returning {_JOB_COLUMNS}, actor_id, format, content
        """,
        stale_seconds,
    )
    if row is None:
        return None
    return _job(row), row["actor_id"], row["format"], bytes(row["content"] or b"")


async def import_progress(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    job_id: uuid.UUID,
    *,
    rows_done: int,
    created: int,
    updated: int,
    unchanged: int,
    failed: int,
    errors: Sequence[dict[str, Any]],
) -> None:
    """Add one chunk's counts; in the chunk's transaction, so progress is exact after a crash."""
    await conn.execute(
        """
        update import_jobs set rows_done = $3, created = created + $4, updated = updated + $5,
            unchanged = unchanged + $6, failed = failed + $7, errors = errors || $8::jsonb,
            heartbeat_at = now()
        where workspace_id = $1 and id = $2
        """,
        workspace_id,
        job_id,
        rows_done,
        created,
        updated,
        unchanged,
        failed,
        json.dumps(list(errors)),
    )


async def finish_import_job(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, job_id: uuid.UUID, status: str, message: str
) -> None:
    """The stored file is dropped once the job ends."""
    await conn.execute(
        """
        update import_jobs set status = $3, message = $4, finished_at = now(), content = null
        where workspace_id = $1 and id = $2
        """,
        workspace_id,
        job_id,
        status,
        message,
    )
