"""asyncpg pools and the migration runner every service uses for its own database."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

CHASSIS_MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number works: it only has to be the same for every replica of a service.
_MIGRATION_LOCK = 0x46_44_4D_49  # "FDMI"


async def ensure_database(database_url: str) -> None:
    """Create the database the URL names when it does not exist yet (safe under races)."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
        if not exists:
            try:
                # Identifiers cannot be parameters; the name is quoted by PostgreSQL itself.
                quoted = await conn.fetchval("select quote_ident($1)", name)
                await conn.execute(f"create database {quoted}")
                log.info("created database %s", name)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass
    finally:
        await conn.close()


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    # A server that is away must fail a connection attempt quickly (the call answers
    # UNAVAILABLE within the caller's deadline), not after asyncpg's default of 60 s.
    pool = await asyncpg.create_pool(
        database_url, min_size=min_size, max_size=max_size, command_timeout=30, timeout=3
    )
    assert pool is not None
    return pool


class MigrationChanged(RuntimeError):
    """An applied migration file no longer has the content it was applied with: the database
    and the code disagree about the schema, so the service refuses to start."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(
            f"applied migration(s) changed since they were applied: {', '.join(names)}; "
            "restore the file(s) and add a new migration for the change"
        )
        self.names = names


def _migration_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.sql") if p.name[:4].isdigit())


async def migrate(pool: asyncpg.Pool, service: str, directory: Path) -> list[str]:
    """Apply the chassis's and then the service's pending migrations, each in a transaction.

    Several replicas may start at once: a session advisory lock makes them take turns,
    and each file is recorded by name and checksum so it is applied exactly once. A file that
    was applied and has changed since raises MigrationChanged before anything is applied.
    Returns the names applied by this call.
    """
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                """
                create table if not exists schema_migrations (
                    name text primary key,
                    checksum text not null,
                    applied_at timestamptz not null default now()
                )
                """
            )
            done = {
                r["name"]: r["checksum"]
                for r in await conn.fetch("select name, checksum from schema_migrations")
            }
            plan = [("chassis", p) for p in _migration_files(CHASSIS_MIGRATIONS)]
            plan += [(service, p) for p in _migration_files(directory)]
            files = []
            for owner, path in plan:
                sql = path.read_text(encoding="utf-8")
                files.append(
                    (f"{owner}/{path.name}", sql, hashlib.sha256(sql.encode()).hexdigest())
                )
            changed = [name for name, _, checksum in files if done.get(name, checksum) != checksum]
            if changed:
                raise MigrationChanged(changed)
            for name, sql, checksum in files:
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "insert into schema_migrations (name, checksum) values ($1, $2)",
                        name,
                        checksum,
                    )
                applied.append(name)
                log.info("applied migration %s", name)
        finally:
            await conn.execute("select pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
