"""Use cases of person imports: start a job, follow it, and the worker's run of a job in chunks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from frontdesk.v1 import events_pb2

from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, NotFound
from services.directory import (
    events,
    importfile,
    store,
    store_groups,
    store_imports,
)
from services.directory.domain import (
    GROUP_ADMINISTRATORS,
    GROUP_PORTAL_USERS,
    ImportJob,
    Notifications,
    Person,
    PortalSettings,
    require,
)
from services.directory.service_base import ServiceBase, keep, person_events

log = logging.getLogger(__name__)

IMPORT_CHUNK = 1000
MAX_STORED_ERRORS = 1000

# How long a dry run keeps its file for ApplyImport.
CHECKED_FILE_SECONDS = 3600.0


@dataclass
class _ChunkPlan:
    creates: list[Person] = field(default_factory=list)
    updates: list[tuple[Person, Person, list[str]]] = field(default_factory=list)
    new_members: list[tuple[uuid.UUID, uuid.UUID, bool]] = field(default_factory=list)
    unchanged: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Builtins:
    admins: uuid.UUID | None  # never deactivated by an import
    portal_users: uuid.UUID | None  # every new person joins it, as on every other path


async def _builtins(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> _Builtins:
    admins = await store_groups.get_builtin_group(conn, workspace_id, GROUP_ADMINISTRATORS)
    portal = await store_groups.get_builtin_group(conn, workspace_id, GROUP_PORTAL_USERS)
    return _Builtins(None if admins is None else admins.id, None if portal is None else portal.id)


async def _plan_chunk(
    conn: asyncpg.Connection,
    settings: PortalSettings,
    groups: dict[str, uuid.UUID],
    rows: Sequence[importfile.ImportRow],
    builtins: _Builtins,
) -> _ChunkPlan:
    """What the rows would change, against the database as it is now (no writes).

    An import never deactivates an administrator (it could lock everyone out of the console).
    A new person joins Portal Users besides the row's groups, as a person created in the form,
    self-registered or provisioned by SCIM does (else their portal access would open nothing)."""
    admins = builtins.admins
    plan = _ChunkPlan()
    emails = [r.email.lower() for r in rows if r.ok]
    logins = [r.login_name.lower() for r in rows if r.ok and r.login_name]
    persons, owners, members = await store_imports.import_lookup(
        conn, settings.workspace_id, emails, logins
    )
    for row in rows:
        group_ids: list[uuid.UUID] = []
        if row.ok and row.groups:
            unknown = [g for g in row.groups if g.lower() not in groups]
            if unknown:
                row_errors = [("groups", f"unknown group {unknown[0]!r}")]
            else:
                row_errors = []
                group_ids = list(dict.fromkeys(groups[g.lower()] for g in row.groups))
        else:
            row_errors = []
        existing = persons.get(row.email.lower()) if row.ok else None
        if row.ok and row.login_name:
            owner = owners.get(row.login_name.lower())
            if owner is not None and (existing is None or owner != existing.id):
                row_errors.append(("login_name", f"{row.login_name!r} is used by another person"))
        if row.ok and existing is None and not row.name:
            row_errors.append(("name", "required for a new person"))
        if (
            existing is not None
            and row.active is False
            and existing.active
            and admins in members.get(existing.id, set())
        ):
            row_errors.append(
                ("active", "administrators are not deactivated by an import; use the person's page")
            )
        errors = row.errors + row_errors
        if errors:
            plan.failed += 1
            plan.errors.extend({"line": row.line, "field": f, "message": m} for f, m in errors)
            continue
        if existing is None:
            access = (
                settings.portal_access_for(row.email)
                if row.portal_access is None
                else row.portal_access
            )
            person = Person(
                uuid.uuid4(),
                settings.workspace_id,
                row.email,
                row.name or "",
                row.login_name or "",
                True if row.active is None else row.active,
                access,
                Notifications(),
            )
            plan.creates.append(person)
            joins = group_ids
            if builtins.portal_users is not None and builtins.portal_users not in joins:
                joins = [*joins, builtins.portal_users]
            plan.new_members.extend((g, person.id, True) for g in joins)
            continue
        after = replace(
            existing,
            name=keep(row.name, existing.name),
            login_name=keep(row.login_name, existing.login_name),
            active=keep(row.active, existing.active),
            portal_access=keep(row.portal_access, existing.portal_access),
        )
        old, new = existing.as_json(), after.as_json()
        changed = [k for k in new if new[k] != old[k]]
        joins = [g for g in group_ids if g not in members.get(existing.id, set())]
        if changed:
            plan.updates.append((existing, after, changed))
        plan.new_members.extend((g, existing.id, False) for g in joins)
        if not changed and not joins:
            plan.unchanged += 1
        elif not changed:
            plan.updates.append((existing, existing, []))
    return plan


async def _apply_chunk(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    import_id: uuid.UUID,
    actor: str,
    plan: _ChunkPlan,
) -> None:
    """One chunk's persons, memberships, audit rows and events, in the caller's transaction.

    Creations and name changes go out as one persons_imported event per chunk; changes of access
    of existing persons (active, portal access, new group memberships) as one event each."""
    await store_imports.insert_persons_bulk(conn, workspace_id, plan.creates)
    changed = [(b, a, c) for b, a, c in plan.updates if c]
    await store_imports.update_persons_bulk(conn, workspace_id, [a for _, a, _ in changed])
    await store_imports.add_members_bulk(
        conn, workspace_id, [(g, p) for g, p, _ in plan.new_members]
    )
    outgoing: list[events_pb2.Event] = []
    audit: list[tuple[str, str, str, dict[str, Any] | None, dict[str, Any] | None]] = []
    for person in plan.creates:
        audit.append(("person.imported", "person", str(person.id), None, person.as_json()))
    renamed: list[uuid.UUID] = []
    for before, after, fields in changed:
        if {"active", "portal_access"} & set(fields):
            outgoing.extend(person_events(before, after, fields, actor))
        else:
            renamed.append(after.id)
        audit.append(
            ("person.imported", "person", str(after.id), before.as_json(), after.as_json())
        )
    if plan.creates or renamed:
        outgoing.append(
            events.persons_imported(
                workspace_id, import_id, [p.id for p in plan.creates], renamed, actor
            )
        )
    for group_id, person_id, is_new in plan.new_members:
        if not is_new:
            outgoing.append(
                events.membership("group_member_added", workspace_id, group_id, person_id, actor)
            )
            audit.append(
                (
                    "group.member_added",
                    "group",
                    str(group_id),
                    None,
                    {"person_id": str(person_id), "member": True, "via": "import"},
                )
            )
    await store.insert_audit_many(conn, workspace_id, actor, audit)
    await outbox.add_many(conn, outgoing)


def _count(job: ImportJob, plan: _ChunkPlan) -> None:
    job.created += len(plan.creates)
    job.updated += len(plan.updates)
    job.unchanged += plan.unchanged
    job.failed += plan.failed
    job.errors.extend(plan.errors)


def _summary(job: ImportJob, *, dry_run: bool) -> str:
    verb = "would be" if dry_run else "were"
    capped = (
        f"; the first {MAX_STORED_ERRORS} errors are listed"
        if len(job.errors) >= MAX_STORED_ERRORS
        else ""
    )
    return _summary_counts(job, verb) + capped


def _summary_counts(job: ImportJob, verb: str) -> str:
    return (
        f"{job.total_rows} rows: {job.created} {verb} created, {job.updated} {verb} updated, "
        f"{job.unchanged} unchanged, {job.failed} failed"
    )


class ImportUseCases(ServiceBase):
    # ---- bulk import ----

    async def start_import(
        self, caller: Caller, fmt: str, content: bytes, dry_run: bool
    ) -> ImportJob:
        """A dry run answers at once with what would change; a real run is stored as a pending job
        that a worker of any replica picks up. A bad file fails here and nothing is written."""
        require(caller, "Person:manage")
        rows = await asyncio.to_thread(importfile.parse, content, fmt)
        async with self._read() as conn:
            await self._settings(conn, caller.workspace_id)
            names = {g.lower() for r in rows for g in (r.groups or [])}
            if names:
                for group in await store_groups.list_groups(conn, caller.workspace_id):
                    if group.name.lower() in names:
                        await self._may_grant(
                            conn,
                            caller,
                            await self._group_permissions(conn, group),
                            f"group {group.name!r}",
                        )
        job = ImportJob(uuid.uuid4(), caller.workspace_id, "pending", dry_run, total_rows=len(rows))
        if dry_run:
            async with self._read() as conn, conn.transaction(readonly=True):
                settings = await self._settings(conn, caller.workspace_id)
                groups = await store_groups.groups_by_name(conn, caller.workspace_id)
                builtins = await _builtins(conn, caller.workspace_id)
                for start in range(0, len(rows), IMPORT_CHUNK):
                    plan = await _plan_chunk(
                        conn, settings, groups, rows[start : start + IMPORT_CHUNK], builtins
                    )
                    _count(job, plan)
            job.rows_done = len(rows)
            job.status = "done"
            job.finished_at = datetime.now(UTC)
            job.message = _summary(job, dry_run=True)
            job.errors = job.errors[:MAX_STORED_ERRORS]
            async with self._tx() as conn:
                # The file is kept an hour, so "apply this import" needs no second upload.
                return await store_imports.insert_import_job(conn, job, caller.actor, fmt, content)
        async with self._tx() as conn:
            stored = await store_imports.insert_import_job(conn, job, caller.actor, fmt, content)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "import.started",
                "import",
                str(job.id),
                None,
                {"format": fmt, "rows": len(rows), "bytes": len(content)},
            )
        if self._on_import_queued is not None:
            self._on_import_queued()
        return stored

    async def apply_import(self, caller: Caller, checked_id: uuid.UUID) -> ImportJob:
        """Start the real import of the file a dry run checked, once and within an hour."""
        require(caller, "Person:manage")
        async with self._tx() as conn:
            taken = await store_imports.take_checked_file(
                conn, caller.workspace_id, checked_id, CHECKED_FILE_SECONDS
            )
        if taken is None:
            raise NotFound("import not found")
        if isinstance(taken, str):
            raise FailedPrecondition(
                "this check was applied already or is over an hour old: check the file again"
            )
        fmt, content = taken
        return await self.start_import(caller, fmt, content, dry_run=False)

    async def get_import(self, caller: Caller, job_id: uuid.UUID) -> ImportJob:
        require(caller, "Person:manage")
        async with self._read() as conn:
            job = await store_imports.get_import_job(conn, caller.workspace_id, job_id)
        if job is None:
            raise NotFound("import not found")
        return job

    async def run_next_import(self, stale_seconds: float = 60.0) -> bool:
        """Claim one waiting job (FOR UPDATE SKIP LOCKED) and run it; False when there was none."""
        async with self._pool.acquire() as conn:
            await store_imports.drop_old_checked_files(conn, CHECKED_FILE_SECONDS)
            claimed = await store_imports.claim_import_job(conn, stale_seconds)
        if claimed is None:
            return False
        job, actor, fmt, content = claimed
        try:
            await self._run_import(job, actor, fmt, content)
        except Exception as exc:
            log.exception("import %s failed", job.id)
            async with self._pool.acquire() as conn:
                await store_imports.finish_import_job(
                    conn,
                    job.workspace_id,
                    job.id,
                    "failed",
                    f"the import stopped: {type(exc).__name__}",
                )
        return True

    async def _run_import(self, job: ImportJob, actor: str, fmt: str, content: bytes) -> None:
        rows = await asyncio.to_thread(importfile.parse, content, fmt)
        ws = job.workspace_id
        async with self._pool.acquire() as conn:
            settings = await self._settings(conn, ws)
            groups = await store_groups.groups_by_name(conn, ws)
            builtins = await _builtins(conn, ws)
        stored_errors = len(job.errors)
        done = job.rows_done
        while done < len(rows):
            chunk = rows[done : done + IMPORT_CHUNK]
            for attempt in range(3):
                try:
                    async with self._tx() as conn:
                        plan = await _plan_chunk(conn, settings, groups, chunk, builtins)
                        await _apply_chunk(conn, ws, job.id, actor, plan)
                        room = max(MAX_STORED_ERRORS - stored_errors, 0)
                        await store_imports.import_progress(
                            conn,
                            ws,
                            job.id,
                            rows_done=done + len(chunk),
                            created=len(plan.creates),
                            updated=len(plan.updates),
                            unchanged=plan.unchanged,
                            failed=plan.failed,
                            errors=plan.errors[:room],
                        )
                    stored_errors += min(len(plan.errors), room)
                    _count(job, plan)
                    break
                except asyncpg.UniqueViolationError:
                    # A concurrent change took an e-mail or login name: plan the chunk again.
                    if attempt == 2:
                        raise
            done += len(chunk)
        async with self._pool.acquire() as conn:
            job.rows_done = done
            current = await store_imports.get_import_job(conn, ws, job.id)
            summary = _summary(current or job, dry_run=False)
            await store_imports.finish_import_job(conn, ws, job.id, "done", summary)
            await store.insert_audit(
                conn,
                ws,
                actor,
                "import.finished",
                "import",
                str(job.id),
                None,
                {"message": summary},
            )
        log.info("import %s done: %s", job.id, summary)
