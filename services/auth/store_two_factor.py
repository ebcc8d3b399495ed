"""SQL of TOTP secrets and recovery codes."""

from __future__ import annotations

import asyncpg

from services.auth.domain import Totp

# --- TOTP ---------------------------------------------------------------------------------


async def get_totp(conn: asyncpg.Connection, ws: str, person_id: str) -> Totp | None:
    row = await conn.fetchrow(
        "select * from totp where workspace_id = $1 and person_id = $2", ws, person_id
    )
    if row is None:
        return None
    return Totp(
        str(row["person_id"]),
        row["secret"],
        row["enabled"],
        row["pending_secret"],
        row["last_used_step"],
    )


async def set_pending_totp(conn: asyncpg.Connection, ws: str, person_id: str, sealed: str) -> None:
    await conn.execute(
        """
        insert into totp (workspace_id, person_id, pending_secret) values ($1, $2, $3)
        on conflict (workspace_id, person_id) do update set pending_secret = excluded.pending_secret
        """,
        ws,
        person_id,
        sealed,
    )


async def enable_totp(conn: asyncpg.Connection, ws: str, person_id: str, step: int) -> bool:
    """Move the pending secret to the active one (once); false when already enabled."""
    status = await conn.execute(
        """
        update totp set secret = pending_secret, pending_secret = null, enabled = true,
                        enabled_at = now(), last_used_step = $3
        where workspace_id = $1 and person_id = $2 and not enabled and pending_secret is not null
        """,
        ws,
        person_id,
        step,
    )
    return bool(status != "UPDATE 0")


async def use_totp_step(conn: asyncpg.Connection, ws: str, person_id: str, step: int) -> bool:
    """Accept a code of `step` only if no code of this or a later step was accepted before;
    the conditional update makes that hold across replicas."""
    status = await conn.execute(
        """
        update totp set last_used_step = $3
        where workspace_id = $1 and person_id = $2 and enabled
          and (last_used_step is null or last_used_step < $3)
        """,
        ws,
        person_id,
        step,
    )
    return bool(status != "UPDATE 0")


async def delete_totp(conn: asyncpg.Connection, ws: str, person_id: str) -> bool:
    status = await conn.execute(
        "delete from totp where workspace_id = $1 and person_id = $2 and enabled", ws, person_id
    )
    await conn.execute(
        "delete from recovery_codes where workspace_id = $1 and person_id = $2", ws, person_id
    )
    return bool(status != "DELETE 0")


async def replace_recovery_codes(
    conn: asyncpg.Connection, ws: str, person_id: str, hashes: list[str]
) -> None:
    await conn.execute(
        "delete from recovery_codes where workspace_id = $1 and person_id = $2", ws, person_id
    )
    await conn.executemany(
        "insert into recovery_codes (workspace_id, person_id, code_hash) values ($1, $2, $3)",
        [(ws, person_id, h) for h in hashes],
    )


async def use_recovery_code(
    conn: asyncpg.Connection, ws: str, person_id: str, code_hash: str
) -> bool:
    status = await conn.execute(
        """
        update recovery_codes set used_at = now()
        where workspace_id = $1 and person_id = $2 and code_hash = $3 and used_at is null
        """,
        ws,
        person_id,
        code_hash,
    )
    return bool(status != "UPDATE 0")


async def recovery_codes_left(conn: asyncpg.Connection, ws: str, person_id: str) -> int:
    value = await conn.fetchval(
        """
        select count(*) from recovery_codes
        where workspace_id = $1 and person_id = $2 and used_at is null
        """,
        ws,
        person_id,
    )
    return int(value or 0)
