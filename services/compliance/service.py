"""Use cases of the compliance service: each change and its events commit in one transaction.

Every use case takes the Caller, scopes all reads and writes to its workspace and checks the
caller's right to the item (NOT_FOUND when they may not see it, whatever the id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime

import asyncpg

from services.chassis import outbox
from services.chassis.directory_client import DirectoryClient
from services.compliance import events, store
from services.compliance.domain import (
    CONTROL_MANAGE,
    CONTROL_READ,
    FREQUENCIES,
    ISSUE_MANAGE,
    ISSUE_READ,
    MAX_COMMENT,
    MAX_TITLE,
    PREFIX_CONTROL,
    PREFIX_ISSUE,
    PREFIX_TEST,
    RESULTS,
    REVIEWS,
    SEVERITIES,
    TEST_READ,
    TEST_UPDATE,
    Caller,
    Completion,
    Conflict,
    Control,
    ControlTest,
    Forbidden,
    Invalid,
    Issue,
    IssueChange,
    IssueComment,
    IssueDetail,
    NotFound,
    Page,
    can_see_issue,
    can_see_test,
    check_text,
    check_transition,
    next_period,
    parse_date,
    parse_number,
    parse_uuid,
    period_containing,
)
from services.compliance.domain import today as utc_today

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
NO_SUCH_PERSON = "no such active person in this workspace"
MAX_PAGE = 200

_Unset = object()


def make_caller(workspace_id: str, person_id: str, permissions: Sequence[str]) -> Caller:
    problems: list[str] = []
    ws = parse_uuid(workspace_id, "caller.workspace_id", problems, required=True)
    person = parse_uuid(person_id, "caller.person_id", problems, required=False)
    if problems or ws is None:
        raise Invalid(problems)
    return Caller(workspace_id=ws, person_id=person, permissions=frozenset(permissions))


def make_page(size: int, token: str) -> Page:
    if size < 0:
        raise Invalid(["page.page_size: must not be negative"])
    offset = 0
    if token:
        if not token.isdigit() or len(token) > 9:
            raise Invalid(["page.page_token: invalid"])
        offset = int(token)
    return Page(size=min(size or DEFAULT_PAGE, MAX_PAGE), offset=offset)


def next_token(page: Page, returned: int, total: int) -> str:
    end = page.offset + returned
    return str(end) if returned and end < total else ""


def _choice(value: str | None, name: str, allowed: Sequence[str], problems: list[str]) -> None:
    if value is not None and value not in allowed:
        problems.append(f"{name}: must be one of {', '.join(allowed)}")


def _text(value: uuid.UUID | date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class ComplianceService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        directory: DirectoryClient,
        *,
        clock: Callable[[], date] = utc_today,
    ) -> None:
        self._pool = pool
        self._directory = directory
        self._today = clock

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
            raise Invalid(problems)

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

    # -- controls ----------------------------------------------------------------------------

    async def create_control(
        self,
        caller: Caller,
        *,
        title: str,
        description: str,
        test_procedure: str,
        framework_ref: str,
        frequency: str | None,
        owner_id: str,
        active: bool | None,
    ) -> Control:
        """Writes the control, and for a recurring one its first test, with outbox rows."""
        if not caller.has(CONTROL_MANAGE):
            raise Forbidden("Control:manage required")
        problems: list[str] = []
        title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        description = check_text(description, "description", problems, required=False)
        test_procedure = check_text(test_procedure, "test_procedure", problems, required=False)
        framework_ref = check_text(
            framework_ref, "framework_ref", problems, required=False, limit=MAX_TITLE
        )
        if frequency is None:
            problems.append("frequency: required")
        _choice(frequency, "frequency", FREQUENCIES, problems)
        owner = parse_uuid(owner_id, "owner_id", problems, required=True)
        if problems or owner is None or frequency is None:
            raise Invalid(problems)
        await self._check_persons(caller.workspace_id, {"owner_id": owner})
        async with self._pool.acquire() as conn, conn.transaction():
            control = Control(
                id=uuid.uuid4(),
                workspace_id=caller.workspace_id,
                seq=await store.next_seq(conn, caller.workspace_id, PREFIX_CONTROL),
                title=title,
                description=description,
                test_procedure=test_procedure,
                framework_ref=framework_ref,
                frequency=frequency,
                owner_id=owner,
                active=True if active is None else active,
            )
            control = await store.insert_control(conn, control)
            await self._schedule_if_due(conn, control, None, caller.person_id)
        return control

    async def update_control(
        self,
        caller: Caller,
        control_ref: str,
        *,
        title: str | None = None,
        description: str | None = None,
        test_procedure: str | None = None,
        framework_ref: str | None = None,
        frequency: str | None = None,
        owner_id: str | None = None,
        active: bool | None = None,
    ) -> Control:
        if not caller.has(CONTROL_MANAGE):
            raise Forbidden("Control:manage required")
        problems: list[str] = []
        if title is not None:
            title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        if description is not None:
            description = check_text(description, "description", problems, required=False)
        if test_procedure is not None:
            test_procedure = check_text(test_procedure, "test_procedure", problems, required=False)
        if framework_ref is not None:
            framework_ref = check_text(
                framework_ref, "framework_ref", problems, required=False, limit=MAX_TITLE
            )
        _choice(frequency, "frequency", FREQUENCIES, problems)
        owner = None
        if owner_id is not None:
            owner = parse_uuid(owner_id, "owner_id", problems, required=True)
        if problems:
            raise Invalid(problems)
        if owner is not None:
            async with self._pool.acquire() as conn:
                current = await self._control(conn, caller.workspace_id, control_ref)
            if current.owner_id != owner:
                await self._check_persons(caller.workspace_id, {"owner_id": owner})
        async with self._pool.acquire() as conn, conn.transaction():
            control = await self._control(conn, caller.workspace_id, control_ref, for_update=True)
            changed = replace(
                control,
                title=control.title if title is None else title,
                description=control.description if description is None else description,
                test_procedure=(
                    control.test_procedure if test_procedure is None else test_procedure
                ),
                framework_ref=control.framework_ref if framework_ref is None else framework_ref,
                frequency=frequency or control.frequency,
                owner_id=owner or control.owner_id,
                active=control.active if active is None else active,
            )
            control = await store.update_control(conn, changed)
            if not await store.has_open_test(conn, control.workspace_id, control.id):
                latest = await store.latest_scheduled_test(conn, control.workspace_id, control.id)
                if latest is None or latest.period_end < self._today():
                    with contextlib.suppress(_LostRace):
                        await self._schedule_if_due(
                            conn, control, latest.assignee_id if latest else None, caller.person_id
                        )
        return control

    async def get_control(self, caller: Caller, control_ref: str) -> Control:
        if not caller.has_any(CONTROL_MANAGE, CONTROL_READ):
            raise Forbidden("Control:read required")
        async with self._pool.acquire() as conn:
            return await self._control(conn, caller.workspace_id, control_ref)

    async def list_controls(
        self,
        caller: Caller,
        page: Page,
        *,
        query: str = "",
        active: bool | None = None,
        frequency: str | None = None,
        owner_id: str = "",
    ) -> tuple[list[Control], int]:
        if not caller.has_any(CONTROL_MANAGE, CONTROL_READ):
            raise Forbidden("Control:read required")
        problems: list[str] = []
        owner = parse_uuid(owner_id, "owner_id", problems, required=False)
        _choice(frequency, "frequency", FREQUENCIES, problems)
        if problems:
            raise Invalid(problems)
        async with self._pool.acquire() as conn:
            return await store.list_controls(
                conn,
                caller.workspace_id,
                page,
                query=query.strip()[:200],
                active=active,
                frequency=frequency,
                owner_id=owner,
            )

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
                raise _LostRace
        await outbox.add(conn, events.test_scheduled(test, control, actor))
        await outbox.add(conn, events.test_assigned(test, control, None, actor))
        return test

    # -- control tests -----------------------------------------------------------------------

    async def create_test(
        self,
        caller: Caller,
        *,
        control_ref: str,
        due_date: str,
        period_start: str = "",
        period_end: str = "",
        assignee_id: str = "",
    ) -> ControlTest:
        """An ad hoc test (writes control_test_scheduled and control_test_assigned)."""
        if not caller.has(CONTROL_MANAGE):
            raise Forbidden("Control:manage required")
        problems: list[str] = []
        if not control_ref.strip():
            problems.append("control_id: required")
        due = parse_date(due_date, "due_date", problems, required=True)
        start = parse_date(period_start, "period_start", problems, required=False)
        end = parse_date(period_end, "period_end", problems, required=False)
        assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        now = self._today()
        if due is not None and due < now:
            problems.append("due_date: must be today or later")
        start = start or now
        end = end or due
        if end is not None and start > end:
            problems.append("period_end: must not be before period_start")
        if problems or due is None or end is None:
            raise Invalid(problems)
        await self._check_persons(caller.workspace_id, {"assignee_id": assignee})
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                control = await self._control(conn, caller.workspace_id, control_ref)
            except NotFound:
                raise Invalid(["control_id: unknown control"]) from None
            if not control.active:
                raise Conflict("control_id: the control is not active")
            test = ControlTest(
                id=uuid.uuid4(),
                workspace_id=caller.workspace_id,
                seq=await store.next_seq(conn, caller.workspace_id, PREFIX_TEST),
                control_id=control.id,
                ad_hoc=True,
                period_start=start,
                period_end=end,
                due_date=due,
                assignee_id=assignee or control.owner_id,
            )
            await store.insert_test(conn, test)
            await outbox.add(conn, events.test_scheduled(test, control, caller.person_id))
            await outbox.add(conn, events.test_assigned(test, control, None, caller.person_id))
            return await self._test(conn, caller.workspace_id, str(test.id))

    async def update_test(
        self,
        caller: Caller,
        test_ref: str,
        *,
        assignee_id: str | None = None,
        due_date: str | None = None,
    ) -> ControlTest:
        """Reassign or move the due date of an open test (control_test_assigned on a change)."""
        if not caller.has(CONTROL_MANAGE):
            raise Forbidden("Control:manage required")
        problems: list[str] = []
        assignee = due = None
        if assignee_id is not None:
            assignee = parse_uuid(assignee_id, "assignee_id", problems, required=True)
        if due_date is not None:
            due = parse_date(due_date, "due_date", problems, required=True)
            if due is not None and due < self._today():
                problems.append("due_date: must be today or later")
        if problems:
            raise Invalid(problems)
        if assignee is not None:
            async with self._pool.acquire() as conn:
                current = await self._test(conn, caller.workspace_id, test_ref)
            if current.completed:
                raise Conflict("state: a completed test is locked")
            if current.assignee_id != assignee:
                await self._check_persons(caller.workspace_id, {"assignee_id": assignee})
        async with self._pool.acquire() as conn, conn.transaction():
            test = await self._test(conn, caller.workspace_id, test_ref, for_update=True)
            if test.completed:
                raise Conflict("state: a completed test is locked")
            previous = test.assignee_id
            if assignee is not None:
                test.assignee_id = assignee
            if due is not None:
                test.due_date = due
                if test.state == "overdue":
                    test.state = "scheduled"
            await store.update_test(conn, test)
            if assignee is not None and assignee != previous:
                await outbox.add(conn, events.test_assigned(test, None, previous, caller.person_id))
            return await self._test(conn, caller.workspace_id, str(test.id))

    async def get_test(self, caller: Caller, test_ref: str) -> ControlTest:
        if not caller.has(CONTROL_MANAGE) and not caller.has(CONTROL_READ, TEST_READ):
            raise Forbidden("Control:read and ControlTest:read required")
        async with self._pool.acquire() as conn:
            test = await self._test(conn, caller.workspace_id, test_ref)
        if not can_see_test(caller, test):
            raise NotFound("control test not found")
        return test

    async def list_tests(
        self,
        caller: Caller,
        page: Page,
        *,
        control_ref: str = "",
        state: str | None = None,
        assignee_id: str = "",
        result: str | None = None,
    ) -> tuple[list[ControlTest], int]:
        if not caller.has(CONTROL_MANAGE):
            raise Forbidden("Control:manage required")
        problems: list[str] = []
        assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        _choice(result, "result", RESULTS, problems)
        if problems:
            raise Invalid(problems)
        async with self._pool.acquire() as conn:
            control_id = None
            if control_ref.strip():
                try:
                    control_id = (await self._control(conn, caller.workspace_id, control_ref)).id
                except NotFound:
                    return [], 0
            return await store.list_tests(
                conn,
                caller.workspace_id,
                page,
                today=self._today(),
                control_id=control_id,
                state=state,
                assignee_id=assignee,
                result=result,
            )

    async def list_my_tests(
        self, caller: Caller, page: Page, *, state: str | None = None
    ) -> tuple[list[ControlTest], int]:
        if not caller.has(CONTROL_READ, TEST_READ):
            raise Forbidden("Control:read and ControlTest:read required")
        if caller.person_id is None:
            return [], 0
        async with self._pool.acquire() as conn:
            return await store.list_tests(
                conn,
                caller.workspace_id,
                page,
                today=self._today(),
                state=state,
                assignee_id=caller.person_id,
            )

    async def complete_test(
        self,
        caller: Caller,
        test_ref: str,
        *,
        result: str | None,
        notes: str,
        evidence: str,
    ) -> Completion:
        """Record the result and lock the test. In the same transaction a failure opens an
        issue and a scheduled test's completion schedules the next period; outbox rows for
        each (control_test_completed, issue_created, issue_assigned, control_test_scheduled,
        control_test_assigned)."""
        problems: list[str] = []
        if result is None:
            problems.append("result: required")
        _choice(result, "result", RESULTS, problems)
        notes = check_text(notes, "notes", problems, required=False)
        evidence = check_text(evidence, "evidence", problems, required=False)
        if problems or result is None:
            raise Invalid(problems)
        ws = caller.workspace_id
        async with self._pool.acquire() as conn, conn.transaction():
            test = await self._test(conn, ws, test_ref, for_update=True)
            if not can_see_test(caller, test):
                raise NotFound("control test not found")
            if not caller.is_system and not (
                caller.is_person(test.assignee_id) and caller.has(TEST_UPDATE)
            ):
                raise Forbidden("only the assignee with ControlTest:update completes a test")
            if test.completed:
                raise Conflict("state: the test is completed and locked")
            control = await self._control(conn, ws, str(test.control_id))
            test.state = "completed"
            test.result = result
            test.notes = notes
            test.evidence = evidence
            test.tester_id = caller.person_id
            test.completed_at = datetime.now(UTC)
            issue = None
            if result == "fail":
                issue = await self._open_failure_issue(conn, control, test, caller.person_id)
                test.issue_id = issue.id
            await store.update_test(conn, test)
            await outbox.add(conn, events.test_completed(test, caller.person_id))
            next_test = None
            if not test.ad_hoc and control.recurring:
                start, end = next_period(control.frequency, test.period_end, self._today())
                try:
                    next_test = await self._schedule(
                        conn, control, start, end, test.assignee_id, caller.person_id
                    )
                except _LostRace:
                    next_test = None
            done = await self._test(conn, ws, str(test.id))
            if next_test is not None:
                next_test = await self._test(conn, ws, str(next_test.id))
            if issue is not None:
                issue = await self._issue(conn, ws, str(issue.id))
        return Completion(test=done, issue=issue, next_test=next_test)

    async def _open_failure_issue(
        self,
        conn: asyncpg.Connection,
        control: Control,
        test: ControlTest,
        actor: uuid.UUID | None,
    ) -> Issue:
        description = f"{test.number} of {control.number} failed."
        if test.notes:
            description += f"\n\nTester's notes:\n{test.notes}"
        issue = Issue(
            id=uuid.uuid4(),
            workspace_id=control.workspace_id,
            seq=await store.next_seq(conn, control.workspace_id, PREFIX_ISSUE),
            title=f"Control failure: {control.title}"[:MAX_TITLE],
            description=description,
            severity="medium",
            status="open",
            reporter_id=actor,
            assignee_id=control.owner_id,
            control_id=control.id,
            control_test_id=test.id,
        )
        await store.insert_issue(conn, issue)
        await store.insert_history(
            conn,
            issue.workspace_id,
            issue.id,
            [IssueChange("created", "", "open", actor, f"opened by the failure of {test.number}")],
        )
        await outbox.add(conn, events.issue_created(issue, actor, from_failed_test=True))
        await outbox.add(conn, events.issue_assigned(issue, None, actor))
        return issue

    async def review_test(
        self, caller: Caller, test_ref: str, *, decision: str | None, notes: str
    ) -> ControlTest:
        if not caller.has(CONTROL_MANAGE):
            raise Forbidden("Control:manage required")
        problems: list[str] = []
        if decision is None:
            problems.append("decision: required")
        _choice(decision, "decision", REVIEWS, problems)
        notes = check_text(notes, "notes", problems, required=False)
        if problems:
            raise Invalid(problems)
        async with self._pool.acquire() as conn, conn.transaction():
            test = await self._test(conn, caller.workspace_id, test_ref, for_update=True)
            if not test.completed:
                raise Conflict("state: only a completed test can be reviewed")
            if test.review is not None:
                raise Conflict("review: the test has been reviewed already")
            if caller.is_person(test.tester_id):
                raise Forbidden("the tester cannot review their own test")
            test.review = decision
            test.reviewer_id = caller.person_id
            test.review_notes = notes
            test.reviewed_at = datetime.now(UTC)
            await store.update_test(conn, test)
            return await self._test(conn, caller.workspace_id, str(test.id))

    # -- the sweep ---------------------------------------------------------------------------

    async def sweep(self, caller: Caller) -> tuple[int, int]:
        if not caller.has(CONTROL_MANAGE):
            raise Forbidden("Control:manage required")
        return await self.sweep_workspace(caller.workspace_id)

    async def sweep_all(self) -> tuple[int, int]:
        """Overdue transitions and new periods' tests in every workspace (any replica)."""
        async with self._pool.acquire() as conn:
            workspaces = await store.sweep_workspaces(conn, self._today())
        overdue = scheduled = 0
        for ws in workspaces:
            o, s = await self.sweep_workspace(ws)
            overdue += o
            scheduled += s
        return overdue, scheduled

    async def sweep_workspace(self, ws: uuid.UUID) -> tuple[int, int]:
        """Persist overdue tests (control_test_overdue once per test) and create the tests of
        periods that have started (control_test_scheduled/assigned); outbox rows for each."""
        now = self._today()
        async with self._pool.acquire() as conn, conn.transaction():
            marked = await store.mark_overdue(conn, ws, now)
            for test_id, first in marked:
                if first:
                    test = await self._test(conn, ws, str(test_id))
                    await outbox.add(conn, events.test_overdue(test))
        scheduled = 0
        async with self._pool.acquire() as conn:
            for control, last_assignee in await store.controls_due_for_schedule(conn, ws, now):
                try:
                    async with conn.transaction():
                        if await self._schedule_if_due(conn, control, last_assignee, None):
                            scheduled += 1
                except _LostRace:
                    continue
        return len(marked), scheduled

    # -- issues ------------------------------------------------------------------------------

    async def _related(
        self,
        conn: asyncpg.Connection,
        ws: uuid.UUID,
        control_ref: str,
        test_ref: str,
        problems: list[str],
    ) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        control_id = test_id = None
        if control_ref.strip():
            try:
                control_id = (await self._control(conn, ws, control_ref)).id
            except NotFound:
                problems.append("control_id: unknown control")
        if test_ref.strip():
            try:
                test = await self._test(conn, ws, test_ref)
                test_id = test.id
                if control_id is None:
                    control_id = test.control_id
                elif control_id != test.control_id:
                    problems.append("control_test_id: belongs to another control")
            except NotFound:
                problems.append("control_test_id: unknown control test")
        return control_id, test_id

    async def create_issue(
        self,
        caller: Caller,
        *,
        title: str,
        description: str,
        severity: str | None,
        assignee_id: str,
        remediation_due_date: str,
        control_ref: str,
        test_ref: str,
    ) -> Issue:
        """Writes the issue, its history and issue_created (+ issue_assigned) outbox rows."""
        if not caller.has(ISSUE_MANAGE):
            raise Forbidden("Issue:manage required")
        problems: list[str] = []
        title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        description = check_text(description, "description", problems, required=False)
        if severity is None:
            problems.append("severity: required")
        _choice(severity, "severity", SEVERITIES, problems)
        assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        due = parse_date(remediation_due_date, "remediation_due_date", problems, required=False)
        ws = caller.workspace_id
        if not problems:
            await self._check_persons(ws, {"assignee_id": assignee})
        async with self._pool.acquire() as conn, conn.transaction():
            control_id, test_id = await self._related(conn, ws, control_ref, test_ref, problems)
            if problems or severity is None:
                raise Invalid(problems)
            issue = Issue(
                id=uuid.uuid4(),
                workspace_id=ws,
                seq=await store.next_seq(conn, ws, PREFIX_ISSUE),
                title=title,
                description=description,
                severity=severity,
                status="open",
                reporter_id=caller.person_id,
                assignee_id=assignee,
                remediation_due_date=due,
                control_id=control_id,
                control_test_id=test_id,
            )
            await store.insert_issue(conn, issue)
            await store.insert_history(
                conn, ws, issue.id, [IssueChange("created", "", "open", caller.person_id)]
            )
            await outbox.add(
                conn, events.issue_created(issue, caller.person_id, from_failed_test=False)
            )
            if assignee is not None:
                await outbox.add(conn, events.issue_assigned(issue, None, caller.person_id))
            return await self._issue(conn, ws, str(issue.id))

    async def update_issue(
        self,
        caller: Caller,
        issue_ref: str,
        *,
        title: str | None = None,
        description: str | None = None,
        severity: str | None = None,
        assignee_id: str | None = None,
        remediation_due_date: str | None = None,
        control_ref: str | None = None,
        test_ref: str | None = None,
    ) -> Issue:
        """Changes the fields that are set; history rows, issue_assigned on a new assignee."""
        if not caller.has(ISSUE_MANAGE):
            raise Forbidden("Issue:manage required")
        problems: list[str] = []
        if title is not None:
            title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        if description is not None:
            description = check_text(description, "description", problems, required=False)
        _choice(severity, "severity", SEVERITIES, problems)
        assignee: object = _Unset
        if assignee_id is not None:
            assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        due: object = _Unset
        if remediation_due_date is not None:
            due = parse_date(remediation_due_date, "remediation_due_date", problems, required=False)
        ws = caller.workspace_id
        if isinstance(assignee, uuid.UUID) and not problems:
            async with self._pool.acquire() as conn:
                current = await self._issue(conn, ws, issue_ref)
            if current.status == "closed":
                raise Conflict("status: a closed issue cannot be changed")
            if current.assignee_id != assignee:
                await self._check_persons(ws, {"assignee_id": assignee})
        async with self._pool.acquire() as conn, conn.transaction():
            issue = await self._issue(conn, ws, issue_ref, for_update=True)
            control_id, test_id = issue.control_id, issue.control_test_id
            if control_ref is not None or test_ref is not None:
                new_control, new_test = await self._related(
                    conn, ws, control_ref or "", test_ref or "", problems
                )
                if control_ref is not None:
                    control_id = new_control
                if test_ref is not None:
                    test_id = new_test
                    if control_ref is None and new_test is not None:
                        control_id = new_control
            if problems:
                raise Invalid(problems)
            if issue.status == "closed":
                raise Conflict("status: a closed issue cannot be changed")
            before = replace(issue)
            if title is not None:
                issue.title = title
            if description is not None:
                issue.description = description
            if severity is not None:
                issue.severity = severity
            if assignee is not _Unset:
                issue.assignee_id = assignee  # type: ignore[assignment]
            if due is not _Unset:
                issue.remediation_due_date = due  # type: ignore[assignment]
            issue.control_id, issue.control_test_id = control_id, test_id
            changes = [
                IssueChange(
                    name,
                    _text(getattr(before, name)),
                    _text(getattr(issue, name)),
                    caller.person_id,
                )
                for name in (
                    "title",
                    "description",
                    "severity",
                    "assignee_id",
                    "remediation_due_date",
                    "control_id",
                    "control_test_id",
                )
                if getattr(before, name) != getattr(issue, name)
            ]
            if not changes:
                return issue
            await store.update_issue(conn, issue)
            await store.insert_history(conn, ws, issue.id, changes)
            if issue.assignee_id != before.assignee_id and issue.assignee_id is not None:
                await outbox.add(
                    conn, events.issue_assigned(issue, before.assignee_id, caller.person_id)
                )
            return await self._issue(conn, ws, str(issue.id))

    async def change_issue_status(
        self,
        caller: Caller,
        issue_ref: str,
        *,
        status: str | None,
        acceptance_deadline: str,
        note: str,
    ) -> Issue:
        """Moves an issue along its workflow; a history row and issue_status_changed."""
        if not caller.has(ISSUE_MANAGE):
            raise Forbidden("Issue:manage required")
        problems: list[str] = []
        if status is None:
            problems.append("status: required")
        note = check_text(note, "note", problems, required=False, limit=MAX_COMMENT)
        deadline = parse_date(acceptance_deadline, "acceptance_deadline", problems, required=False)
        if status == "accepted":
            if deadline is None and not acceptance_deadline.strip():
                problems.append("acceptance_deadline: required to accept an issue")
            elif deadline is not None and deadline < self._today():
                problems.append("acceptance_deadline: must be today or later")
        if problems or status is None:
            raise Invalid(problems)
        ws = caller.workspace_id
        async with self._pool.acquire() as conn, conn.transaction():
            issue = await self._issue(conn, ws, issue_ref, for_update=True)
            previous = issue.status
            check_transition(previous, status)
            issue.status = status
            now = datetime.now(UTC)
            issue.acceptance_deadline = deadline if status == "accepted" else None
            if status == "resolved":
                issue.resolved_at = now
            elif status == "closed":
                issue.closed_at = now
                issue.resolved_at = issue.resolved_at or now
            elif status == "open":
                issue.resolved_at = None
            await store.update_issue(conn, issue)
            new_value = (
                status
                if deadline is None or status != "accepted"
                else f"{status} until {deadline.isoformat()}"
            )
            await store.insert_history(
                conn,
                ws,
                issue.id,
                [IssueChange("status", previous, new_value, caller.person_id, note)],
            )
            await outbox.add(
                conn, events.issue_status_changed(issue, previous, note, caller.person_id)
            )
            return await self._issue(conn, ws, str(issue.id))

    async def get_issue(self, caller: Caller, issue_ref: str) -> IssueDetail:
        if not caller.has_any(ISSUE_MANAGE, ISSUE_READ):
            raise Forbidden("Issue:read required")
        async with self._pool.acquire() as conn:
            issue = await self._issue(conn, caller.workspace_id, issue_ref)
            if not can_see_issue(caller, issue):
                raise NotFound("issue not found")
            comments = await store.list_comments(conn, caller.workspace_id, issue.id)
            history = await store.list_history(conn, caller.workspace_id, issue.id)
        return IssueDetail(issue=issue, comments=comments, history=history)

    async def list_issues(
        self,
        caller: Caller,
        page: Page,
        *,
        statuses: Sequence[str] = (),
        severities: Sequence[str] = (),
        assignee_id: str = "",
        overdue: bool | None = None,
        control_ref: str = "",
        query: str = "",
    ) -> tuple[list[Issue], int]:
        if not caller.has(ISSUE_MANAGE):
            raise Forbidden("Issue:manage required")
        problems: list[str] = []
        assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        if problems:
            raise Invalid(problems)
        async with self._pool.acquire() as conn:
            control_id = None
            if control_ref.strip():
                try:
                    control_id = (await self._control(conn, caller.workspace_id, control_ref)).id
                except NotFound:
                    return [], 0
            return await store.list_issues(
                conn,
                caller.workspace_id,
                page,
                today=self._today(),
                statuses=statuses,
                severities=severities,
                assignee_id=assignee,
                overdue=overdue,
                control_id=control_id,
                query=query.strip()[:200],
            )

    async def list_my_issues(
        self, caller: Caller, page: Page, *, statuses: Sequence[str] = ()
    ) -> tuple[list[Issue], int]:
        if not caller.has(ISSUE_READ):
            raise Forbidden("Issue:read required")
        if caller.person_id is None:
            return [], 0
        async with self._pool.acquire() as conn:
            return await store.list_issues(
                conn,
                caller.workspace_id,
                page,
                today=self._today(),
                statuses=statuses,
                assignee_id=caller.person_id,
            )

    async def add_comment(self, caller: Caller, issue_ref: str, *, body: str) -> IssueComment:
        """A comment by the assignee or a manager; writes issue_commented."""
        if not caller.has_any(ISSUE_MANAGE, ISSUE_READ):
            raise Forbidden("Issue:read required")
        problems: list[str] = []
        body = check_text(body, "body", problems, required=True, limit=MAX_COMMENT)
        if problems:
            raise Invalid(problems)
        async with self._pool.acquire() as conn, conn.transaction():
            issue = await self._issue(conn, caller.workspace_id, issue_ref, for_update=True)
            if not can_see_issue(caller, issue):
                raise NotFound("issue not found")
            if issue.status == "closed":
                raise Conflict("status: a closed issue takes no comments")
            comment = IssueComment(
                id=uuid.uuid4(), issue_id=issue.id, author_id=caller.person_id, body=body
            )
            comment = await store.insert_comment(conn, caller.workspace_id, comment)
            await outbox.add(conn, events.issue_commented(issue, comment.id, caller.person_id))
        return comment


class _LostRace(Exception):
    """Another replica scheduled the same period first."""


class Sweeper:
    """Runs the sweep on a timer in every replica (concurrent sweeps are safe)."""

    def __init__(self, service: ComplianceService, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="compliance-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                overdue, scheduled = await self._service.sweep_all()
                if overdue or scheduled:
                    log.info("sweep: %d tests overdue, %d scheduled", overdue, scheduled)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sweep failed: %s", exc)
            await asyncio.sleep(self._interval)
