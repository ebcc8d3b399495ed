"""SQL of credentials, e-mail confirmations and sign-in throttling; each function takes `conn`
and filters by workspace_id. The other concepts' SQL is in store_<concept>.py."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from services.auth.domain import Credential

Row: TypeAlias = asyncpg.Record


# --- credentials --------------------------------------------------------------------------


async def get_credential(conn: asyncpg.Connection, ws: str, person_id: str) -> Credential | None:
    row = await conn.fetchrow(
        """
        select person_id, password_hash, email_confirmed from credentials
        where workspace_id = $1 and person_id = $2
        """,
        ws,
        person_id,
    )
    if row is None:
        return None
    return Credential(str(row["person_id"]), row["password_hash"], row["email_confirmed"])


async def put_password(
    conn: asyncpg.Connection,
    ws: str,
    person_id: str,
    password_hash: str,
    *,
    email_confirmed: bool | None = None,
) -> None:
    """Set the password; `email_confirmed` None keeps the current flag (true for new rows)."""
    await conn.execute(
        """
        insert into credentials (workspace_id, person_id, password_hash, email_confirmed,
                                 password_changed_at)
        values ($1, $2, $3, coalesce($4, true), now())
        on conflict (workspace_id, person_id) do update
        set password_hash = excluded.password_hash,
            password_changed_at = now(),
            email_confirmed = coalesce($4, credentials.email_confirmed)
        """,
        ws,
        person_id,
        password_hash,
        email_confirmed,
    )


async def rehash_password(
    conn: asyncpg.Connection, ws: str, person_id: str, old: str, new: str
) -> None:
    await conn.execute(
        """
        update credentials set password_hash = $4
        where workspace_id = $1 and person_id = $2 and password_hash = $3
        """,
        ws,
        person_id,
        old,
        new,
    )


async def confirm_email(conn: asyncpg.Connection, ws: str, token_hash: str) -> str | None:
    """Consume a confirmation token and mark the e-mail confirmed; the person id or None."""
    row = await conn.fetchrow(
        """
        delete from email_confirmations
        where workspace_id = $1 and token_hash = $2 and expires_at > now()
        returning person_id
        """,
        ws,
        token_hash,
    )
    if row is None:
        return None
    await conn.execute(
        "update credentials set email_confirmed = true where workspace_id = $1 and person_id = $2",
        ws,
        row["person_id"],
    )
    return str(row["person_id"])


async def add_email_confirmation(
    conn: asyncpg.Connection, ws: str, token_hash: str, person_id: str, ttl_seconds: int
) -> None:
    await conn.execute(
        """
        insert into email_confirmations (workspace_id, token_hash, person_id, expires_at)
        values ($1, $2, $3, now() + make_interval(secs => $4))
        """,
        ws,
        token_hash,
        person_id,
        float(ttl_seconds),
    )


# --- throttling ---------------------------------------------------------------------------


async def blocked_for(conn: asyncpg.Connection, ws: str, keys: list[str]) -> int:
    """Seconds until all of `keys` may try again (0: none is blocked)."""
    value = await conn.fetchval(
        """
        select ceil(extract(epoch from max(blocked_until) - now()))::int from login_failures
        where workspace_id = $1 and key = any($2::text[]) and blocked_until > now()
        """,
        ws,
        keys,
    )
    return int(value or 0)


async def count_failure(conn: asyncpg.Connection, ws: str, key: str, reset_seconds: int) -> int:
    """Add one failure to `key` (starting over after `reset_seconds` of quiet); the new count.
    The upsert locks the row, so concurrent replicas count every failure."""
    value = await conn.fetchval(
        """
        insert into login_failures (workspace_id, key, failures, last_failure_at)
        values ($1, $2, 1, now())
        on conflict (workspace_id, key) do update
        set failures = case
                when login_failures.last_failure_at < now() - make_interval(secs => $3)
                then 1 else login_failures.failures + 1 end,
            last_failure_at = now()
        returning failures
        """,
        ws,
        key,
        float(reset_seconds),
    )
    return int(value)


async def block(conn: asyncpg.Connection, ws: str, key: str, seconds: int) -> None:
    await conn.execute(
        """
        update login_failures
        set blocked_until = greatest(coalesce(blocked_until, now()), now() + make_interval(secs => $3))
        where workspace_id = $1 and key = $2
        """,
        ws,
        key,
        float(seconds),
    )


async def clear_failures(conn: asyncpg.Connection, ws: str, key: str) -> None:
    await conn.execute("delete from login_failures where workspace_id = $1 and key = $2", ws, key)


async def delete_registration(conn: asyncpg.Connection, ws: str, person_id: str) -> None:
    """Undo the credentials a registration stored before the directory refused the person."""
    await conn.execute(
        "delete from email_confirmations where workspace_id = $1 and person_id = $2",
        ws,
        person_id,
    )
    await conn.execute(
        "delete from credentials where workspace_id = $1 and person_id = $2", ws, person_id
    )
