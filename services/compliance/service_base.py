"""What every compliance use case needs: the pool and the directory, the lookups of controls,
tests and issues, the person checks, paging, and scheduling a control's next test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from datetime import date

import asyncpg

from services.chassis import outbox
from services.chassis.attachments import AttachmentLimits, LimitsFor
from services.chassis.directory_client import DirectoryClient
from services.chassis.errors import InvalidArgument, NotFound
from services.chassis.malware import Clamd
from services.chassis.objectstore import ObjectStore
from services.chassis.paging import Keyset
from services.compliance import events, store
from services.compliance.attachments import ComplianceAttachments
from services.compliance.domain import (
    PREFIX_CONTROL,
    PREFIX_ISSUE,
    PREFIX_TEST,
    Control,
    ControlTest,
    Issue,
    parse_number,
    period_containing,
)
from services.compliance.domain import today as utc_today

DEFAULT_PAGE = 50
NO_SUCH_PERSON = "no such active person in this workspace"
MAX_PAGE = 200


CONTROLS_ORDER = Keyset("controls", (int,), DEFAULT_PAGE, MAX_PAGE)
"""Controls page by number (seq)."""
TESTS_ORDER = Keyset("control-tests", (bool, date, int), DEFAULT_PAGE, MAX_PAGE)
"""Control tests page open first, then by due date and number: (completed, due_date, seq)."""
ISSUES_ORDER = Keyset("issues", (int,), DEFAULT_PAGE, MAX_PAGE)
"""Issues page newest first: by number (seq), descending."""


def control_test_key(t: ControlTest) -> tuple[bool, date, int]:
    return (t.state == "completed", t.due_date, t.seq)


def check_choice(value: str | None, name: str, allowed: Sequence[str], problems: list[str]) -> None:
    if value is not None and value not in allowed:
        problems.append(f"{name}: must be one of {', '.join(allowed)}")


class LostRace(Exception):
    """Another replica scheduled the same period first."""


class ServiceBase:
    """The collaborators and helpers the concept mixins share; ComplianceService combines them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        directory: DirectoryClient,
        *,
        clock: Callable[[], date] = utc_today,
        objects: ObjectStore | None = None,
        limits: LimitsFor | None = None,
        scanner: Clamd | None = None,
    ) -> None:
        self._pool = pool
        self._directory = directory
        self._today = clock
        self.attachments = ComplianceAttachments(
            pool, objects, limits or AttachmentLimits().get, self._issue, self._test, scanner
        )

    # -- persons -----------------------------------------------------------------------------

    async def _check_persons(self, ws: uuid.UUID, named: dict[str, uuid.UUID | None]) -> None:
        """Each person a caller names (field -> id) is an active person of the caller's
        workspace; one directory call for all of them. Asked outside any transaction."""
        wanted = {name: pid for name, pid in named.items() if pid is not None}
        if not wanted:
            return
        found = await self._directory.persons(str(ws), wanted.values())
        problems = [
            f"{name}: {NO_SUCH_PERSON}"
            for name, pid in wanted.items()
            if (person := found.get(str(pid))) is None or not person.active
        ]
        if problems:
            raise InvalidArgument(problems)

    # -- lookups -----------------------------------------------------------------------------

    async def _control(
        self, conn: asyncpg.Connection, ws: uuid.UUID, ref: str, *, for_update: bool = False
    ) -> Control:
        seq = parse_number(ref, PREFIX_CONTROL)
        cid = None
        if seq is None:
            with contextlib.suppress(ValueError):
                cid = uuid.UUID(ref.strip())
            if cid is None:
                raise NotFound("control not found")
        found = await store.get_control(conn, ws, control_id=cid, seq=seq, for_update=for_update)
        if found is None:
            raise NotFound("control not found")
        return found

    async def _test(
        self, conn: asyncpg.Connection, ws: uuid.UUID, ref: str, *, for_update: bool = False
    ) -> ControlTest:
        seq = parse_number(ref, PREFIX_TEST)
        tid = None
        if seq is None:
            with contextlib.suppress(ValueError):
                tid = uuid.UUID(ref.strip())
            if tid is None:
                raise NotFound("control test not found")
        found = await store.get_test(conn, ws, test_id=tid, seq=seq, for_update=for_update)
        if found is None:
            raise NotFound("control test not found")
        return found

    async def _issue(
        self, conn: asyncpg.Connection, ws: uuid.UUID, ref: str, *, for_update: bool = False
    ) -> Issue:
        seq = parse_number(ref, PREFIX_ISSUE)
        iid = None
        if seq is None:
            with contextlib.suppress(ValueError):
                iid = uuid.UUID(ref.strip())
            if iid is None:
                raise NotFound("issue not found")
        found = await store.get_issue(conn, ws, issue_id=iid, seq=seq, for_update=for_update)
        if found is None:
            raise NotFound("issue not found")
        return found

    # -- scheduling --------------------------------------------------------------------------

    async def _schedule_if_due(
        self,
        conn: asyncpg.Connection,
        control: Control,
        last_assignee: uuid.UUID | None,
        actor: uuid.UUID | None,
    ) -> ControlTest | None:
        """The current period's test of a recurring control (writes outbox rows)."""
        if not control.recurring:
            return None
        start, end = period_containing(control.frequency, self._today())
        return await self._schedule(conn, control, start, end, last_assignee, actor)

    async def _schedule(
        self,
        conn: asyncpg.Connection,
        control: Control,
        start: date,
        end: date,
        assignee: uuid.UUID | None,
        actor: uuid.UUID | None,
    ) -> ControlTest | None:
        """Create the scheduled test of `control` for a period unless it exists (any replica
        may try at once: the unique period index makes one of them win)."""
        test = ControlTest(
            id=uuid.uuid4(),
            workspace_id=control.workspace_id,
            seq=0,
            control_id=control.id,
            ad_hoc=False,
            period_start=start,
            period_end=end,
            due_date=end,
            assignee_id=assignee or control.owner_id,
        )
        existing = await store.latest_scheduled_test(conn, control.workspace_id, control.id)
        if existing is not None and existing.period_start >= start:
            return None
        async with conn.transaction():  # a savepoint: a lost race undoes the number too
            test.seq = await store.next_seq(conn, control.workspace_id, PREFIX_TEST)
            if not await store.insert_test(conn, test):
                raise LostRace
        await outbox.add(conn, events.test_scheduled(test, control, actor))
        await outbox.add(conn, events.test_assigned(test, control, None, actor))
        return test
