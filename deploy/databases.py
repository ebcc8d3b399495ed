"""Database roles for the services: each service logs in as its own role, which owns only its
database and may not create databases or roles. The launcher (or a migration job) runs this
as the PostgreSQL superuser before the services start."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg


async def _ident(conn: asyncpg.Connection, name: str) -> str:
    # Identifiers cannot be parameters; PostgreSQL quotes them itself.
    quoted: str = await conn.fetchval("select quote_ident($1)", name)
    return quoted


def _url_for(admin_url: str, database: str, role: str, password: str) -> str:
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, "/" + database, parts.query, ""))


async def provision_service_database(
    admin_url: str, *, database: str, role: str, password: str
) -> str:
    """Create (or bring up to date) `role` (LOGIN, no SUPERUSER/CREATEDB/CREATEROLE, with
    `password`) and `database` owned by it, with CONNECT taken from PUBLIC; returns the URL the
    service connects with. Idempotent: run at every start."""
    admin = await asyncpg.connect(admin_url)
    try:
        r = await _ident(admin, role)
        d = await _ident(admin, database)
        exists = await admin.fetchval("select 1 from pg_roles where rolname = $1", role)
        verb = "alter" if exists else "create"
        # The password cannot be a parameter either; quote_literal escapes it.
        literal = await admin.fetchval("select quote_literal($1)", password)
        await admin.execute(
            f"{verb} role {r} login nosuperuser nocreatedb nocreaterole noinherit "
            f"password {literal}"
        )
        owner = await admin.fetchval(
            "select pg_get_userbyid(datdba) from pg_database where datname = $1", database
        )
        if owner is None:
            try:
                await admin.execute(f"create database {d} owner {r}")
            except asyncpg.DuplicateDatabaseError:
                await admin.execute(f"alter database {d} owner to {r}")
        elif owner != role:
            await admin.execute(f"alter database {d} owner to {r}")
        await admin.execute(f"revoke all on database {d} from public")
        await admin.execute(f"grant connect, temporary on database {d} to {r}")
    finally:
        await admin.close()
    await _hand_over_objects(admin_url, database, role)
    return _url_for(admin_url, database, role, password)


async def _hand_over_objects(admin_url: str, database: str, role: str) -> None:
    """Tables and sequences made before the service had its own role (an older data folder)
    become the role's, so its migrations can alter them."""
    parts = urlsplit(admin_url)
    conn = await asyncpg.connect(urlunsplit((*parts[:2], "/" + database, parts.query, "")))
    try:
        r = await _ident(conn, role)
        rows = await conn.fetch(
            """
            select c.relname, c.relkind from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'public' and c.relkind in ('r', 'S', 'v', 'p')
              and pg_get_userbyid(c.relowner) <> $1
            """,
            role,
        )
        for row in rows:
            name = await _ident(conn, row["relname"])
            kind = {"S": "sequence", "v": "view"}.get(row["relkind"], "table")
            await conn.execute(f"alter {kind} public.{name} owner to {r}")
    finally:
        await conn.close()
