"""SQL of personal API tokens."""

from __future__ import annotations

import uuid

import asyncpg

from services.auth.domain import ApiToken
from services.auth.store import Row

# --- API tokens ---------------------------------------------------------------------------


def _api_token(row: Row) -> ApiToken:
    return ApiToken(
        id=str(row["id"]),
        workspace_id=str(row["workspace_id"]),
        person_id=str(row["person_id"]),
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
    )


async def insert_api_token(
    conn: asyncpg.Connection,
    ws: str,
    person_id: str,
    name: str,
    prefix: str,
    token_hash: str,
    expires_in_days: int,
) -> ApiToken:
    row = await conn.fetchrow(
        """
        insert into api_tokens (workspace_id, id, person_id, name, prefix, token_hash, expires_at)
        values ($1, $2, $3, $4, $5, $6,
                case when $7 > 0 then now() + make_interval(days => $7) end)
        returning *
        """,
        ws,
        uuid.uuid4(),
        person_id,
        name,
        prefix,
        token_hash,
        expires_in_days,
    )
    assert row is not None
    return _api_token(row)


async def list_api_tokens(conn: asyncpg.Connection, ws: str, person_id: str) -> list[ApiToken]:
    rows = await conn.fetch(
        """
        select * from api_tokens
        where workspace_id = $1 and person_id = $2 and revoked_at is null
          and (expires_at is null or expires_at > now())
        order by created_at desc
        """,
        ws,
        person_id,
    )
    return [_api_token(r) for r in rows]


async def revoke_api_token(
    conn: asyncpg.Connection, ws: str, person_id: str, token_id: str
) -> bool:
    status = await conn.execute(
        """
        update api_tokens set revoked_at = now()
        where workspace_id = $1 and person_id = $2 and id = $3 and revoked_at is null
        """,
        ws,
        person_id,
        token_id,
    )
    return bool(status != "UPDATE 0")


async def revoke_api_tokens_of(conn: asyncpg.Connection, ws: str, person_id: str) -> int:
    status = await conn.execute(
        """
        update api_tokens set revoked_at = now()
        where workspace_id = $1 and person_id = $2 and revoked_at is null
        """,
        ws,
        person_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def resolve_api_token(conn: asyncpg.Connection, ws: str, token_hash: str) -> ApiToken | None:
    row = await conn.fetchrow(
        """
        update api_tokens set last_used_at = now()
        where workspace_id = $1 and token_hash = $2 and revoked_at is null
          and (expires_at is null or expires_at > now())
        returning *
        """,
        ws,
        token_hash,
    )
    return None if row is None else _api_token(row)
