# ruff: noqa: S608  -- queries are assembled from constant fragments and $n placeholders only
"""The SQL of the access snapshot: persons with their effective permissions, roles and groups.

Every statement filters by workspace_id; callers run them in one repeatable-read transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class PersonAccess:
    person_id: uuid.UUID
    email: str
    name: str
    active: bool
    portal_access: bool
    permissions: tuple[str, ...]
    group_ids: tuple[uuid.UUID, ...]
    role_ids: tuple[uuid.UUID, ...]


async def persons_page(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    after: str | None,
    size: int,
    ids: list[uuid.UUID] | None,
) -> tuple[list[PersonAccess], bool, int]:
    """One page in lower(email) order after `after`, whether more follow, and the total."""
    where = "p.workspace_id = $1 and ($2::text is null or lower(p.email) > $2)"
    if ids is not None:
        where += " and p.id = any($4::uuid[])"
    args: list[object] = [workspace_id, after, size + 1]
    if ids is not None:
        args.append(ids)
    rows = await conn.fetch(
        f"""
        select p.id, p.email, p.name, p.active, p.portal_access,
            array(select pr.role_id from person_roles pr
                  where pr.workspace_id = $1 and pr.person_id = p.id order by pr.role_id) as role_ids,
            array(select gm.group_id from group_members gm
                  where gm.workspace_id = $1 and gm.person_id = p.id order by gm.group_id) as group_ids,
            array(select distinct perm from (
                    select unnest(r.permissions) as perm
                    from person_roles pr join roles r on r.id = pr.role_id
                    where pr.workspace_id = $1 and pr.person_id = p.id
                    union
                    select unnest(r.permissions)
                    from group_members gm
                    join group_roles gr on gr.group_id = gm.group_id
                    join roles r on r.id = gr.role_id
                    where gm.workspace_id = $1 and gm.person_id = p.id
                ) granted order by perm) as permissions
        from persons p where {where}
        order by lower(p.email) limit $3
        """,
        *args,
    )
    total: int = await conn.fetchval(
        "select count(*) from persons where workspace_id = $1", workspace_id
    )
    persons = [
        PersonAccess(
            r["id"],
            r["email"],
            r["name"],
            r["active"],
            r["portal_access"],
            tuple(r["permissions"]),
            tuple(r["group_ids"]),
            tuple(r["role_ids"]),
        )
        for r in rows[:size]
    ]
    return persons, len(rows) > size, total


async def roles(
    conn: asyncpg.Connection, workspace_id: uuid.UUID
) -> list[tuple[uuid.UUID, str, tuple[str, ...]]]:
    rows = await conn.fetch(
        "select id, name, permissions from roles where workspace_id = $1 order by id", workspace_id
    )
    return [(r["id"], r["name"], tuple(r["permissions"])) for r in rows]


async def groups(
    conn: asyncpg.Connection, workspace_id: uuid.UUID
) -> list[tuple[uuid.UUID, str, tuple[uuid.UUID, ...]]]:
    rows = await conn.fetch(
        """
        select g.id, g.name, array(select gr.role_id from group_roles gr
            where gr.workspace_id = g.workspace_id and gr.group_id = g.id order by gr.role_id)
            as role_ids
        from groups g where g.workspace_id = $1 order by g.id
        """,
        workspace_id,
    )
    return [(r["id"], r["name"], tuple(r["role_ids"])) for r in rows]
