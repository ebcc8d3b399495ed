"""SQL of OIDC single sign-on: configuration, login states, linked external identities."""

from __future__ import annotations

import asyncpg

from services.auth.domain import SsoState
from services.auth.store import Row

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
