"""SQL of sessions and of sign-ins waiting for their second factor."""

from __future__ import annotations

import asyncpg

from services.auth.domain import PendingLogin, Session
from services.auth.store import Row

# --- sessions -----------------------------------------------------------------------------


def _session(row: Row) -> Session:
    return Session(
        id=row["id"],
        workspace_id=str(row["workspace_id"]),
        person_id=str(row["person_id"]),
        surface=row["surface"],
        kind="session",
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        idle_expires_at=row["idle_expires_at"],
        last_seen_at=row["last_seen_at"],
        client_ip=row["client_ip"],
        user_agent=row["user_agent"],
        enroll_only=row["enroll_only"],
    )


async def insert_session(
    conn: asyncpg.Connection,
    *,
    ws: str,
    session_id: str,
    person_id: str,
    surface: str,
    method: str,
    client_ip: str,
    user_agent: str,
    enroll_only: bool,
    idle_seconds: int,
    max_seconds: int,
) -> Session:
    row = await conn.fetchrow(
        """
        insert into sessions (workspace_id, id, person_id, surface, method, client_ip, user_agent,
                              enroll_only, idle_expires_at, expires_at)
        values ($1, $2, $3, $4, $5, $6, $7, $8,
                now() + make_interval(secs => $9), now() + make_interval(secs => $10))
        returning *
        """,
        ws,
        session_id,
        person_id,
        surface,
        method,
        client_ip,
        user_agent[:512],
        enroll_only,
        float(idle_seconds),
        float(max_seconds),
    )
    assert row is not None
    return _session(row)


async def resolve_session(
    conn: asyncpg.Connection, ws: str, session_id: str, *, touch: bool, idle_seconds: int
) -> Session | None:
    """The live session, its idle timeout extended when `touch` (at most every 15 seconds,
    so a busy page does not write on every request)."""
    if touch:
        row = await conn.fetchrow(
            """
            update sessions
            set last_seen_at = now(),
                idle_expires_at = least(expires_at, now() + make_interval(secs => $3))
            where workspace_id = $1 and id = $2 and expires_at > now() and idle_expires_at > now()
              and last_seen_at < now() - interval '15 seconds'
            returning *
            """,
            ws,
            session_id,
            float(idle_seconds),
        )
        if row is not None:
            return _session(row)
    row = await conn.fetchrow(
        """
        select * from sessions
        where workspace_id = $1 and id = $2 and expires_at > now() and idle_expires_at > now()
        """,
        ws,
        session_id,
    )
    return None if row is None else _session(row)


async def list_sessions(conn: asyncpg.Connection, ws: str, person_id: str) -> list[Session]:
    rows = await conn.fetch(
        """
        select * from sessions
        where workspace_id = $1 and person_id = $2 and expires_at > now() and idle_expires_at > now()
        order by last_seen_at desc
        """,
        ws,
        person_id,
    )
    return [_session(r) for r in rows]


async def delete_session(
    conn: asyncpg.Connection, ws: str, session_id: str, person_id: str | None = None
) -> Session | None:
    row = await conn.fetchrow(
        """
        delete from sessions
        where workspace_id = $1 and id = $2 and ($3::uuid is null or person_id = $3)
        returning *
        """,
        ws,
        session_id,
        person_id,
    )
    return None if row is None else _session(row)


async def delete_sessions_of(
    conn: asyncpg.Connection,
    ws: str,
    person_id: str,
    *,
    except_id: str | None = None,
    surface: str | None = None,
) -> list[str]:
    """End a person's sessions (all, or of one surface, or all but one); their ids."""
    rows = await conn.fetch(
        """
        delete from sessions
        where workspace_id = $1 and person_id = $2
          and ($3::text is null or id <> $3) and ($4::text is null or surface = $4)
        returning id
        """,
        ws,
        person_id,
        except_id,
        surface,
    )
    await conn.execute(
        "delete from pending_logins where workspace_id = $1 and person_id = $2 and ($3::text is null or surface = $3)",
        ws,
        person_id,
        surface,
    )
    return [r["id"] for r in rows]


async def lift_enroll_only(conn: asyncpg.Connection, ws: str, session_id: str) -> None:
    await conn.execute(
        "update sessions set enroll_only = false where workspace_id = $1 and id = $2",
        ws,
        session_id,
    )


async def delete_expired(conn: asyncpg.Connection) -> int:
    """Housekeeping across workspaces: rows whose own expiry has passed (no tenant data read)."""
    total = 0
    for statement in (
        "delete from sessions where expires_at < now() or idle_expires_at < now()",
        "delete from pending_logins where expires_at < now()",
        "delete from sso_states where expires_at < now()",
        "delete from email_confirmations where expires_at < now()",
        "delete from login_failures where (blocked_until is null or blocked_until < now())"
        " and last_failure_at < now() - interval '1 day'",
    ):
        status = await conn.execute(statement)
        total += int(status.rsplit(" ", 1)[-1])
    return total


# --- pending second factor ----------------------------------------------------------------


async def insert_pending(
    conn: asyncpg.Connection,
    ws: str,
    pending_id: str,
    person_id: str,
    surface: str,
    throttle_key: str,
    ttl: int,
) -> None:
    await conn.execute(
        """
        insert into pending_logins (workspace_id, id, person_id, surface, throttle_key, expires_at)
        values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
        """,
        ws,
        pending_id,
        person_id,
        surface,
        throttle_key,
        float(ttl),
    )


async def attempt_pending(
    conn: asyncpg.Connection, ws: str, pending_id: str
) -> PendingLogin | None:
    """Count one attempt on a live pending sign-in and return it (None when unknown/expired)."""
    row = await conn.fetchrow(
        """
        update pending_logins set attempts = attempts + 1
        where workspace_id = $1 and id = $2 and expires_at > now()
        returning *
        """,
        ws,
        pending_id,
    )
    if row is None:
        return None
    return PendingLogin(
        row["id"],
        str(row["workspace_id"]),
        str(row["person_id"]),
        row["surface"],
        row["attempts"],
        row["throttle_key"],
    )


async def consume_pending(conn: asyncpg.Connection, ws: str, pending_id: str) -> bool:
    status = await conn.execute(
        "delete from pending_logins where workspace_id = $1 and id = $2", ws, pending_id
    )
    return bool(status != "DELETE 0")


async def session_strength(
    conn: asyncpg.Connection, ws: str, session_id: str
) -> tuple[str, str, float] | None:
    """(person id, sign-in method, age in seconds) of a live interactive session, or None."""
    row = await conn.fetchrow(
        """
        select person_id, method, extract(epoch from now() - created_at)::float8 as age
        from sessions
        where workspace_id = $1 and id = $2 and expires_at > now() and idle_expires_at > now()
          and not enroll_only
        """,
        ws,
        session_id,
    )
    return None if row is None else (str(row["person_id"]), row["method"], row["age"])
