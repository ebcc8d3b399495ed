"""Every SQL statement of the auth service; each takes `conn` and filters by workspace_id."""

from __future__ import annotations

import uuid
from typing import TypeAlias

import asyncpg

from services.auth.domain import ApiToken, Credential, PendingLogin, Session, SsoState, Totp

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


# --- SSO ----------------------------------------------------------------------------------


async def get_sso_config(conn: asyncpg.Connection, ws: str) -> Row | None:
    row: Row | None = await conn.fetchrow("select * from sso_configs where workspace_id = $1", ws)
    return row


async def put_sso_config(
    conn: asyncpg.Connection,
    ws: str,
    *,
    enabled: bool,
    issuer: str,
    client_id: str,
    sealed_secret: str | None,
    allowed_domains: list[str],
    create_unknown_persons: bool,
) -> Row:
    """Upsert; `sealed_secret` None keeps the stored secret."""
    row = await conn.fetchrow(
        """
        insert into sso_configs (workspace_id, enabled, issuer, client_id, client_secret,
                                 allowed_domains, create_unknown_persons, updated_at)
        values ($1, $2, $3, $4, coalesce($5, ''), $6, $7, now())
        on conflict (workspace_id) do update
        set enabled = excluded.enabled, issuer = excluded.issuer, client_id = excluded.client_id,
            client_secret = coalesce($5, sso_configs.client_secret),
            allowed_domains = excluded.allowed_domains,
            create_unknown_persons = excluded.create_unknown_persons, updated_at = now()
        returning *
        """,
        ws,
        enabled,
        issuer,
        client_id,
        sealed_secret,
        allowed_domains,
        create_unknown_persons,
    )
    assert row is not None
    return row


async def insert_sso_state(
    conn: asyncpg.Connection, ws: str, state_hash: str, state: SsoState, ttl_seconds: int
) -> None:
    await conn.execute(
        """
        insert into sso_states (workspace_id, state_hash, nonce, code_verifier, redirect_uri,
                                surface, next, expires_at)
        values ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
        """,
        ws,
        state_hash,
        state.nonce,
        state.code_verifier,
        state.redirect_uri,
        state.surface,
        state.next,
        float(ttl_seconds),
    )


async def consume_sso_state(conn: asyncpg.Connection, ws: str, state_hash: str) -> SsoState | None:
    """Take the state once: a second callback with it finds nothing."""
    row = await conn.fetchrow(
        """
        delete from sso_states
        where workspace_id = $1 and state_hash = $2 and expires_at > now()
        returning *
        """,
        ws,
        state_hash,
    )
    if row is None:
        return None
    return SsoState(
        row["nonce"], row["code_verifier"], row["redirect_uri"], row["surface"], row["next"]
    )


async def find_external_identity(
    conn: asyncpg.Connection, ws: str, issuer: str, subject: str
) -> str | None:
    value = await conn.fetchval(
        """
        update external_identities set last_login_at = now()
        where workspace_id = $1 and issuer = $2 and subject = $3
        returning person_id
        """,
        ws,
        issuer,
        subject,
    )
    return None if value is None else str(value)


async def link_external_identity(
    conn: asyncpg.Connection, ws: str, issuer: str, subject: str, person_id: str, email: str
) -> bool:
    status = await conn.execute(
        """
        insert into external_identities (workspace_id, issuer, subject, person_id, email, last_login_at)
        values ($1, $2, $3, $4, $5, now())
        on conflict do nothing
        """,
        ws,
        issuer,
        subject,
        person_id,
        email,
    )
    return bool(status != "INSERT 0 0")
