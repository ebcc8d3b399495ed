# ruff: noqa: S608  -- queries are assembled from constant fragments and $n placeholders only
"""The SQL of SCIM provisioning: tokens, the SCIM side of persons and groups, and searches.

Every statement filters by workspace_id. WHERE and ORDER BY fragments of searches come from
`scim_filter` (constant column expressions and `$n` placeholders, never values).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.directory.domain import Notifications, Person

# ---- tokens ----


@dataclass(frozen=True)
class TokenRow:
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_TOKEN_COLUMNS = "id, workspace_id, name, prefix, created_by, created_at, last_used_at, revoked_at"


def _token(row: asyncpg.Record) -> TokenRow:
    return TokenRow(**{k: row[k] for k in TokenRow.__dataclass_fields__})


async def insert_token(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    token_id: uuid.UUID,
    name: str,
    token_hash: bytes,
    prefix: str,
    created_by: str,
) -> TokenRow:
    row = await conn.fetchrow(
        f"""
        insert into scim_tokens (id, workspace_id, name, token_hash, prefix, created_by)
        values ($1, $2, $3, $4, $5, $6) returning {_TOKEN_COLUMNS}
        """,
        token_id,
        workspace_id,
        name,
        token_hash,
        prefix,
        created_by,
    )
    return _token(row)


async def list_tokens(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> list[TokenRow]:
    rows = await conn.fetch(
        f"select {_TOKEN_COLUMNS} from scim_tokens where workspace_id = $1"
        " order by created_at desc, id",
        workspace_id,
    )
    return [_token(r) for r in rows]


async def revoke_token(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, token_id: uuid.UUID
) -> TokenRow | None:
    row = await conn.fetchrow(
        f"""
        update scim_tokens set revoked_at = coalesce(revoked_at, now())
        where workspace_id = $1 and id = $2 returning {_TOKEN_COLUMNS}
        """,
        workspace_id,
        token_id,
    )
    return _token(row) if row else None


async def live_token(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, token_hash: bytes
) -> uuid.UUID | None:
    """The id of the workspace's unrevoked token with this hash; marks it used (at most once a
    minute, so a busy provisioning run does not queue on one row)."""
    token_id: uuid.UUID | None = await conn.fetchval(
        """
        select id from scim_tokens
        where workspace_id = $1 and token_hash = $2 and revoked_at is null
        """,
        workspace_id,
        token_hash,
    )
    if token_id is not None:
        await conn.execute(
            """
            update scim_tokens set last_used_at = now()
            where workspace_id = $1 and id = $2
              and (last_used_at is null or last_used_at < now() - interval '1 minute')
            """,
            workspace_id,
            token_id,
        )
    return token_id


# ---- users ----


@dataclass(frozen=True)
class ScimUserRow:
    person_id: uuid.UUID
    user_name: str
    external_id: str | None
    resource: dict[str, Any]
    updated_at: datetime
    deleted: bool


def _user(row: asyncpg.Record) -> ScimUserRow:
    return ScimUserRow(
        row["person_id"],
        row["user_name"],
        row["external_id"],
        json.loads(row["resource"]),
        row["updated_at"],
        row["deleted_at"] is not None,
    )


async def get_scim_users(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ScimUserRow]:
    rows = await conn.fetch(
        """
        select person_id, user_name, external_id, resource, updated_at, deleted_at
        from scim_users where workspace_id = $1 and person_id = any($2::uuid[])
        """,
        workspace_id,
        list(person_ids),
    )
    return {r["person_id"]: _user(r) for r in rows}


# Live persons whose SCIM userName is $2: provisioned ones by their userName, the others by
# their login name or (without one) their e-mail. Written so each branch uses an index.
USER_NAME_MATCH = """
    select su.person_id from scim_users su
    where su.workspace_id = $1 and lower(su.user_name) = lower({value}) and su.deleted_at is null
    union all
    select p2.id from persons p2
    where p2.workspace_id = $1
      and ((p2.login_name <> '' and lower(p2.login_name) = lower({value}))
           or (p2.login_name = '' and lower(p2.email) = lower({value})))
      and not exists (select 1 from scim_users su3 where su3.person_id = p2.id)
"""


async def user_name_owner(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, user_name: str
) -> uuid.UUID | None:
    """The live person whose SCIM userName (or, unprovisioned, login name or e-mail) it is."""
    owner: uuid.UUID | None = await conn.fetchval(
        USER_NAME_MATCH.format(value="$2") + " limit 1", workspace_id, user_name
    )
    return owner


async def group_names(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await conn.fetch("select id, name from groups where workspace_id = $1", workspace_id)
    return {r["id"]: r["name"] for r in rows}


async def builtin_group_id(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, key: str
) -> uuid.UUID | None:
    found: uuid.UUID | None = await conn.fetchval(
        "select id from groups where workspace_id = $1 and builtin_key = $2", workspace_id, key
    )
    return found


async def upsert_scim_user(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    person_id: uuid.UUID,
    user_name: str,
    external_id: str | None,
    resource: dict[str, Any],
) -> None:
    await conn.execute(
        """
        insert into scim_users (workspace_id, person_id, user_name, external_id, resource)
        values ($1, $2, $3, $4, $5::jsonb)
        on conflict (person_id) do update set user_name = excluded.user_name,
            external_id = excluded.external_id, resource = excluded.resource,
            updated_at = now(), deleted_at = null
        where scim_users.workspace_id = $1
        """,
        workspace_id,
        person_id,
        user_name,
        external_id,
        json.dumps(resource),
    )


async def mark_user_deleted(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, person_id: uuid.UUID, user_name: str
) -> None:
    await conn.execute(
        """
        insert into scim_users (workspace_id, person_id, user_name, deleted_at)
        values ($1, $2, $3, now())
        on conflict (person_id) do update set deleted_at = now(), updated_at = now()
        where scim_users.workspace_id = $1
        """,
        workspace_id,
        person_id,
        user_name,
    )


async def search_users(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    where: str,
    args: list[Any],
    order: str,
    offset: int,
    limit: int,
) -> tuple[list[uuid.UUID], int]:
    """Ids of one page of live SCIM users matching `where` (args[0] is the workspace), and
    the total."""
    base = f"""
        from persons p
        left join scim_users su on su.workspace_id = p.workspace_id and su.person_id = p.id
        where p.workspace_id = $1 and su.deleted_at is null and ({where})
    """
    args = [workspace_id, *args[1:]]
    total: int = await conn.fetchval(f"select count(*) {base}", *args)
    if limit <= 0:
        return [], total
    n = len(args)
    rows = await conn.fetch(
        f"select p.id {base} order by {order} offset ${n + 1} limit ${n + 2}",
        *args,
        offset,
        limit,
    )
    return [r["id"] for r in rows], total


async def person_ids_by_email(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, email: str
) -> uuid.UUID | None:
    found: uuid.UUID | None = await conn.fetchval(
        "select id from persons where workspace_id = $1 and lower(email) = lower($2)",
        workspace_id,
        email,
    )
    return found


# ---- groups ----


@dataclass(frozen=True)
class ScimGroupRow:
    group_id: uuid.UUID
    external_id: str | None
    resource: dict[str, Any]
    updated_at: datetime


async def get_scim_groups(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ScimGroupRow]:
    rows = await conn.fetch(
        """
        select group_id, external_id, resource, updated_at from scim_groups
        where workspace_id = $1 and group_id = any($2::uuid[])
        """,
        workspace_id,
        list(group_ids),
    )
    return {
        r["group_id"]: ScimGroupRow(
            r["group_id"], r["external_id"], json.loads(r["resource"]), r["updated_at"]
        )
        for r in rows
    }


async def upsert_scim_group(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    group_id: uuid.UUID,
    external_id: str | None,
    resource: dict[str, Any],
) -> None:
    await conn.execute(
        """
        insert into scim_groups (workspace_id, group_id, external_id, resource)
        values ($1, $2, $3, $4::jsonb)
        on conflict (group_id) do update set external_id = excluded.external_id,
            resource = excluded.resource, updated_at = now()
        where scim_groups.workspace_id = $1
        """,
        workspace_id,
        group_id,
        external_id,
        json.dumps(resource),
    )


async def group_times(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[datetime, datetime]]:
    rows = await conn.fetch(
        """
        select g.id, g.created_at, greatest(g.updated_at, sg.updated_at,
            (select max(m.created_at) from group_members m
             where m.workspace_id = g.workspace_id and m.group_id = g.id)) as modified
        from groups g left join scim_groups sg on sg.group_id = g.id and sg.workspace_id = $1
        where g.workspace_id = $1 and g.id = any($2::uuid[])
        """,
        workspace_id,
        list(group_ids),
    )
    return {r["id"]: (r["created_at"], r["modified"]) for r in rows}


async def touch_group(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_id: uuid.UUID
) -> None:
    """Membership changes move the group's lastModified (and so its ETag)."""
    await conn.execute(
        "update groups set updated_at = now() where workspace_id = $1 and id = $2",
        workspace_id,
        group_id,
    )


async def members_of(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[uuid.UUID, str]]]:
    """Members (person id, display name) of each group, in joining order."""
    rows = await conn.fetch(
        """
        select m.group_id, p.id, p.name from group_members m
        join persons p on p.id = m.person_id and p.workspace_id = m.workspace_id
        where m.workspace_id = $1 and m.group_id = any($2::uuid[])
        order by m.created_at, p.id
        """,
        workspace_id,
        list(group_ids),
    )
    out: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {g: [] for g in group_ids}
    for r in rows:
        out[r["group_id"]].append((r["id"], r["name"]))
    return out


async def search_groups(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    where: str,
    args: list[Any],
    order: str,
    offset: int,
    limit: int,
) -> tuple[list[uuid.UUID], int]:
    base = f"""
        from groups g left join scim_groups sg on sg.workspace_id = g.workspace_id
            and sg.group_id = g.id
        where g.workspace_id = $1 and ({where})
    """
    args = [workspace_id, *args[1:]]
    total: int = await conn.fetchval(f"select count(*) {base}", *args)
    if limit <= 0:
        return [], total
    n = len(args)
    rows = await conn.fetch(
        f"select g.id {base} order by {order} offset ${n + 1} limit ${n + 2}",
        *args,
        offset,
        limit,
    )
    return [r["id"] for r in rows], total


async def existing_person_ids(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "select id from persons where workspace_id = $1 and id = any($2::uuid[])",
        workspace_id,
        list(ids),
    )
    return {r["id"] for r in rows}


async def set_members(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    group_id: uuid.UUID,
    add: Sequence[uuid.UUID],
    remove: Sequence[uuid.UUID],
) -> None:
    if remove:
        await conn.execute(
            """
            delete from group_members
            where workspace_id = $1 and group_id = $2 and person_id = any($3::uuid[])
            """,
            workspace_id,
            group_id,
            list(remove),
        )
    if add:
        await conn.execute(
            """
            insert into group_members (workspace_id, group_id, person_id)
            select $1, $2, unnest($3::uuid[]) on conflict do nothing
            """,
            workspace_id,
            group_id,
            list(add),
        )


async def persons_by_ids(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Person]:
    """The persons (with their groups; direct roles are not part of SCIM) in one query."""
    rows = await conn.fetch(
        """
        select p.id, p.workspace_id, p.email, p.name, p.login_name, p.active, p.portal_access,
            p.created_at, p.updated_at,
            array(select gm.group_id from group_members gm
                  where gm.workspace_id = $1 and gm.person_id = p.id
                  order by gm.created_at, gm.group_id) as group_ids
        from persons p where p.workspace_id = $1 and p.id = any($2::uuid[])
        """,
        workspace_id,
        list(ids),
    )
    return {
        r["id"]: Person(
            id=r["id"],
            workspace_id=r["workspace_id"],
            email=r["email"],
            name=r["name"],
            login_name=r["login_name"],
            active=r["active"],
            portal_access=r["portal_access"],
            notifications=Notifications(),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            group_ids=tuple(r["group_ids"]),
        )
        for r in rows
    }
