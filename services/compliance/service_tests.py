"""Use cases of control tests: create, update, get, list (all and mine), complete, review."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from services.chassis import outbox
from services.chassis.attachments import parse_ids
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.chassis.paging import Page
from services.compliance import events, store
from services.compliance.domain import (
    CONTROL_MANAGE,
    CONTROL_READ,
    MAX_TITLE,
    PREFIX_ISSUE,
    PREFIX_TEST,
    RESULTS,
    REVIEWS,
    TEST_READ,
    TEST_UPDATE,
    Completion,
    Control,
    ControlTest,
    Issue,
    IssueChange,
    can_see_test,
    check_text,
    next_period,
    parse_date,
    parse_uuid,
)
from services.compliance.service_base import LostRace, ServiceBase, check_choice


class ControlTestUseCases(ServiceBase):
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
            raise PermissionDenied("Control:manage required")
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
            raise InvalidArgument(problems)
        await self._check_persons(caller.workspace_id, {"assignee_id": assignee})
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                control = await self._control(conn, caller.workspace_id, control_ref)
            except NotFound:
                raise InvalidArgument(["control_id: unknown control"]) from None
            if not control.active:
                raise FailedPrecondition("control_id: the control is not active")
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
            raise PermissionDenied("Control:manage required")
        problems: list[str] = []
        assignee = due = None
        if assignee_id is not None:
            assignee = parse_uuid(assignee_id, "assignee_id", problems, required=True)
        if due_date is not None:
            due = parse_date(due_date, "due_date", problems, required=True)
            if due is not None and due < self._today():
                problems.append("due_date: must be today or later")
        if problems:
            raise InvalidArgument(problems)
        if assignee is not None:
            async with self._pool.acquire() as conn:
                current = await self._test(conn, caller.workspace_id, test_ref)
            if current.completed:
                raise FailedPrecondition("state: a completed test is locked")
            if current.assignee_id != assignee:
                await self._check_persons(caller.workspace_id, {"assignee_id": assignee})
        async with self._pool.acquire() as conn, conn.transaction():
            test = await self._test(conn, caller.workspace_id, test_ref, for_update=True)
            if test.completed:
                raise FailedPrecondition("state: a completed test is locked")
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
            raise PermissionDenied("Control:read and ControlTest:read required")
        async with self._pool.acquire() as conn:
            test = await self._test(conn, caller.workspace_id, test_ref)
            if not can_see_test(caller, test):
                raise NotFound("control test not found")
            test.evidence_files = await self.attachments.list(conn, caller, test)
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
            raise PermissionDenied("Control:manage required")
        problems: list[str] = []
        assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        check_choice(result, "result", RESULTS, problems)
        if problems:
            raise InvalidArgument(problems)
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
            raise PermissionDenied("Control:read and ControlTest:read required")
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
        attachment_ids: Sequence[str] = (),
    ) -> Completion:
        """Record the result and lock the test. In the same transaction a failure opens an
        issue and a scheduled test's completion schedules the next period; outbox rows for
        each (control_test_completed, issue_created, issue_assigned, control_test_scheduled,
        control_test_assigned)."""
        problems: list[str] = []
        if result is None:
            problems.append("result: required")
        check_choice(result, "result", RESULTS, problems)
        notes = check_text(notes, "notes", problems, required=False)
        evidence = check_text(evidence, "evidence", problems, required=False)
        if problems or result is None:
            raise InvalidArgument(problems)
        files = parse_ids(attachment_ids)
        ws = caller.workspace_id
        async with self._pool.acquire() as conn, conn.transaction():
            test = await self._test(conn, ws, test_ref, for_update=True)
            if not can_see_test(caller, test):
                raise NotFound("control test not found")
            if not (caller.is_service and caller.has(TEST_UPDATE)) and not (
                caller.is_self(test.assignee_id) and caller.has(TEST_UPDATE)
            ):
                raise PermissionDenied("only the assignee with ControlTest:update completes a test")
            if test.completed:
                raise FailedPrecondition("state: the test is completed and locked")
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
            await self.attachments.attach(conn, caller, test, files)
            await store.update_test(conn, test)
            await outbox.add(conn, events.test_completed(test, caller.person_id))
            next_test = None
            if not test.ad_hoc and control.recurring:
                start, end = next_period(control.frequency, test.period_end, self._today())
                try:
                    next_test = await self._schedule(
                        conn, control, start, end, test.assignee_id, caller.person_id
                    )
                except LostRace:
                    next_test = None
            done = await self._test(conn, ws, str(test.id))
            done.evidence_files = await self.attachments.list(conn, caller, done)
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
            raise PermissionDenied("Control:manage required")
        problems: list[str] = []
        if decision is None:
            problems.append("decision: required")
        check_choice(decision, "decision", REVIEWS, problems)
        notes = check_text(notes, "notes", problems, required=False)
        if problems:
            raise InvalidArgument(problems)
        async with self._pool.acquire() as conn, conn.transaction():
            test = await self._test(conn, caller.workspace_id, test_ref, for_update=True)
            if not test.completed:
                raise FailedPrecondition("state: only a completed test can be reviewed")
            if test.review is not None:
                raise FailedPrecondition("review: the test has been reviewed already")
            if caller.is_self(test.tester_id):
                raise PermissionDenied("the tester cannot review their own test")
            test.review = decision
            test.reviewer_id = caller.person_id
            test.review_notes = notes
            test.reviewed_at = datetime.now(UTC)
            await store.update_test(conn, test)
            return await self._test(conn, caller.workspace_id, str(test.id))
