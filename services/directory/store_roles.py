"""SQL of roles and role grants."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from services.directory.domain import (
    Role,
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
