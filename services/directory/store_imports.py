# ruff: noqa: S608  -- queries are assembled from constant fragments and $n placeholders only
"""SQL of person imports: lookups and bulk writes, import jobs.

The one statement not filtered by workspace is `claim_import_job`, which picks any workspace's
waiting job for a worker; everything it then does is scoped to that job's workspace."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.directory.domain import (
    ImportJob,
    Person,
)
from services.directory.store_persons import PERSON_COLUMNS, person_from_row

# ---- bulk import ----


async def import_lookup(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, emails: Sequence[str], logins: Sequence[str]
) -> tuple[dict[str, Person], dict[str, uuid.UUID], dict[uuid.UUID, set[uuid.UUID]]]:
    """Existing persons by lower(email), owners of login names, and group memberships."""
    rows = await conn.fetch(
        f"select {PERSON_COLUMNS} from persons p"
        " where p.workspace_id = $1 and lower(p.email) = any($2::text[])",
        workspace_id,
        list(emails),
    )
    persons = {r["email"].lower(): person_from_row(r) for r in rows}
    login_rows = await conn.fetch(
        """
        select id, lower(login_name) as login from persons
        where workspace_id = $1 and login_name <> '' and lower(login_name) = any($2::text[])
        """,
        workspace_id,
        list(logins),
    )
    owners = {r["login"]: r["id"] for r in login_rows}
    members: dict[uuid.UUID, set[uuid.UUID]] = {}
    if persons:
        for r in await conn.fetch(
            "select person_id, group_id from group_members where workspace_id = $1 and person_id = any($2::uuid[])",
            workspace_id,
            [p.id for p in persons.values()],
        ):
            members.setdefault(r["person_id"], set()).add(r["group_id"])
    return persons, owners, members


async def insert_persons_bulk(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, persons: Sequence[Person]
) -> None:
    if not persons:
        return
    await conn.execute(
        """
        insert into persons (id, workspace_id, email, name, login_name, active, portal_access)
        select u.id, $1, u.email, u.name, u.login_name, u.active, u.portal_access
        from unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[])
            as u(id, email, name, login_name, active, portal_access)
        """,
        workspace_id,
        [p.id for p in persons],
        [p.email for p in persons],
        [p.name for p in persons],
        [p.login_name for p in persons],
        [p.active for p in persons],
        [p.portal_access for p in persons],
    )


async def update_persons_bulk(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, persons: Sequence[Person]
) -> None:
    if not persons:
        return
    await conn.execute(
        """
        update persons p set name = u.name, login_name = u.login_name, active = u.active,
            portal_access = u.portal_access, updated_at = now()
        from unnest($2::uuid[], $3::text[], $4::text[], $5::bool[], $6::bool[])
            as u(id, name, login_name, active, portal_access)
        where p.workspace_id = $1 and p.id = u.id
        """,
        workspace_id,
        [p.id for p in persons],
        [p.name for p in persons],
        [p.login_name for p in persons],
        [p.active for p in persons],
        [p.portal_access for p in persons],
    )


async def add_members_bulk(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """(group_id, person_id) pairs; existing memberships are kept."""
    if not pairs:
        return
    await conn.execute(
        """
        insert into group_members (workspace_id, group_id, person_id)
        select $1, u.g, u.p from unnest($2::uuid[], $3::uuid[]) as u(g, p)
        on conflict do nothing
        """,
        workspace_id,
        [g for g, _ in pairs],
        [p for _, p in pairs],
    )


def _job(row: asyncpg.Record) -> ImportJob:
    return ImportJob(
        id=row["id"],
        workspace_id=row["workspace_id"],
        status=row["status"],
        dry_run=row["dry_run"],
        total_rows=row["total_rows"],
        rows_done=row["rows_done"],
        created=row["created"],
        updated=row["updated"],
        unchanged=row["unchanged"],
        failed=row["failed"],
        errors=json.loads(row["errors"]),
        message=row["message"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


_JOB_COLUMNS = """id, workspace_id, status, dry_run, total_rows, rows_done, created, updated,
    unchanged, failed, errors, message, created_at, finished_at"""


async def insert_import_job(
    conn: asyncpg.Connection, job: ImportJob, actor_id: str, fmt: str, content: bytes | None
) -> ImportJob:
    row = await conn.fetchrow(
        f"""
        insert into import_jobs (id, workspace_id, actor_id, format, content, dry_run, status,
            total_rows, rows_done, created, updated, unchanged, failed, errors, message, finished_at)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16)
        returning {_JOB_COLUMNS}
        """,
        job.id,
        job.workspace_id,
        actor_id,
        fmt,
        content,
        job.dry_run,
        job.status,
        job.total_rows,
        job.rows_done,
        job.created,
        job.updated,
        job.unchanged,
        job.failed,
        json.dumps(job.errors),
        job.message,
        job.finished_at,
    )
    return _job(row)


async def get_import_job(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, job_id: uuid.UUID
) -> ImportJob | None:
    row = await conn.fetchrow(
        f"select {_JOB_COLUMNS} from import_jobs where workspace_id = $1 and id = $2",
        workspace_id,
        job_id,
    )
    return _job(row) if row else None


async def take_checked_file(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, job_id: uuid.UUID, max_age_seconds: float
) -> tuple[str, bytes] | str | None:
    """The format and file of a dry run, taken (its copy is dropped: it applies once).
    None: no such dry run here; "spent": it expired or was applied already."""
    row = await conn.fetchrow(
        """
        with checked as (
            select id, format, content, created_at from import_jobs
            where workspace_id = $1 and id = $2 and dry_run
            for update
        )
        update import_jobs j set content = null
        from checked where j.id = checked.id
        returning checked.format, checked.content,
            checked.created_at > now() - make_interval(secs => $3) as fresh
        """,
        workspace_id,
        job_id,
        max_age_seconds,
    )
    if row is None:
        return None
    if row["content"] is None or not row["fresh"]:
        return "spent"
    return row["format"], bytes(row["content"])


async def drop_old_checked_files(conn: asyncpg.Connection, max_age_seconds: float) -> int:
    """Dry runs keep their file for ApplyImport only so long (files may be 50 MB)."""
    done = await conn.execute(
        """
        update import_jobs set content = null
        where dry_run and content is not null
          and created_at < now() - make_interval(secs => $1)
        """,
        max_age_seconds,
    )
    return int(done.split()[-1])


async def claim_import_job(
    conn: asyncpg.Connection, stale_seconds: float
) -> tuple[ImportJob, str, str, bytes] | None:
    """Take the oldest pending job (or one whose worker stopped beating); any replica may call it."""
    row = await conn.fetchrow(
        f"""
        update import_jobs set status = 'running', attempts = attempts + 1,
            started_at = coalesce(started_at, now()), heartbeat_at = now()
        where id = (
            select id from import_jobs
            where status = 'pending'
               or (status = 'running' and heartbeat_at < now() - make_interval(secs => $1))
            order by created_at
            limit 1
            for update skip locked
        )
        returning {_JOB_COLUMNS}, actor_id, format, content
        """,
        stale_seconds,
    )
    if row is None:
        return None
    return _job(row), row["actor_id"], row["format"], bytes(row["content"] or b"")


async def import_progress(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    job_id: uuid.UUID,
    *,
    rows_done: int,
    created: int,
    updated: int,
    unchanged: int,
    failed: int,
    errors: Sequence[dict[str, Any]],
) -> None:
    """Add one chunk's counts; in the chunk's transaction, so progress is exact after a crash."""
    await conn.execute(
        """
        update import_jobs set rows_done = $3, created = created + $4, updated = updated + $5,
            unchanged = unchanged + $6, failed = failed + $7, errors = errors || $8::jsonb,
            heartbeat_at = now()
        where workspace_id = $1 and id = $2
        """,
        workspace_id,
        job_id,
        rows_done,
        created,
        updated,
        unchanged,
        failed,
        json.dumps(list(errors)),
    )


async def finish_import_job(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, job_id: uuid.UUID, status: str, message: str
) -> None:
    """The stored file is dropped once the job ends."""
    await conn.execute(
        """
        update import_jobs set status = $3, message = $4, finished_at = now(), content = null
        where workspace_id = $1 and id = $2
        """,
        workspace_id,
        job_id,
        status,
        message,
    )
