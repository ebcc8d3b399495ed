"""SQL of groups, their roles and their members."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from services.directory.domain import (
    Group,
)

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
