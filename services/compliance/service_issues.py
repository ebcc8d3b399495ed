"""Use cases of issues: create, update, change status, get, list (all and mine), comment."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime

import asyncpg

from services.chassis import outbox
from services.chassis.attachments import parse_ids
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.chassis.on_behalf import MAX_KEY, acting_person
from services.chassis.paging import Page
from services.compliance import events, store
from services.compliance.domain import (
    ISSUE_MANAGE,
    ISSUE_READ,
    MAX_COMMENT,
    MAX_TITLE,
    PREFIX_ISSUE,
    SEVERITIES,
    Issue,
    IssueChange,
    IssueComment,
    IssueDetail,
    can_see_issue,
    check_text,
    check_transition,
    parse_date,
    parse_uuid,
)
from services.compliance.service_base import ServiceBase, check_choice

_Unset = object()


def _text(value: uuid.UUID | date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


ON_BEHALF_RIGHT = "Issue:comment-as-person"


class IssueUseCases(ServiceBase):
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
        attachment_ids: Sequence[str] = (),
    ) -> Issue:
        """Writes the issue, its history and issue_created (+ issue_assigned) outbox rows, and
        attaches the caller's staged files."""
        if not caller.has(ISSUE_MANAGE):
            raise PermissionDenied("Issue:manage required")
        problems: list[str] = []
        title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        description = check_text(description, "description", problems, required=False)
        if severity is None:
            problems.append("severity: required")
        check_choice(severity, "severity", SEVERITIES, problems)
        assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        due = parse_date(remediation_due_date, "remediation_due_date", problems, required=False)
        ws = caller.workspace_id
        if not problems:
            await self._check_persons(ws, {"assignee_id": assignee})
        async with self._pool.acquire() as conn, conn.transaction():
            control_id, test_id = await self._related(conn, ws, control_ref, test_ref, problems)
            if problems or severity is None:
                raise InvalidArgument(problems)
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
            await self.attachments.attach(conn, caller, issue, parse_ids(attachment_ids))
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
            raise PermissionDenied("Issue:manage required")
        problems: list[str] = []
        if title is not None:
            title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        if description is not None:
            description = check_text(description, "description", problems, required=False)
        check_choice(severity, "severity", SEVERITIES, problems)
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
                raise FailedPrecondition("status: a closed issue cannot be changed")
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
                raise InvalidArgument(problems)
            if issue.status == "closed":
                raise FailedPrecondition("status: a closed issue cannot be changed")
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
            raise PermissionDenied("Issue:manage required")
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
            raise InvalidArgument(problems)
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
            raise PermissionDenied("Issue:read required")
        async with self._pool.acquire() as conn:
            issue = await self._issue(conn, caller.workspace_id, issue_ref)
            if not can_see_issue(caller, issue):
                raise NotFound("issue not found")
            comments = await store.list_comments(conn, caller.workspace_id, issue.id)
            history = await store.list_history(conn, caller.workspace_id, issue.id)
            files = await self.attachments.list(conn, caller, issue)
        return IssueDetail(issue=issue, comments=comments, history=history, attachments=files)

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
            raise PermissionDenied("Issue:manage required")
        problems: list[str] = []
        assignee = parse_uuid(assignee_id, "assignee_id", problems, required=False)
        if problems:
            raise InvalidArgument(problems)
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
            raise PermissionDenied("Issue:read required")
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

    async def on_behalf_of(self, actor: Caller, person_ref: str) -> Caller:
        """The person a service comments for (notifications: a reply by e-mail), with their own
        access now; the service needs Issue:comment-as-person."""
        return await acting_person(
            self._directory, actor, person_ref, right=ON_BEHALF_RIGHT, manage=ISSUE_MANAGE
        )

    async def add_comment(
        self,
        caller: Caller,
        issue_ref: str,
        *,
        body: str,
        attachment_ids: Sequence[str] = (),
        idempotency_key: str = "",
    ) -> IssueComment:
        """A comment by the assignee or a manager, with the caller's staged files; writes
        issue_commented (and attachment_added). With `idempotency_key`, the same author's
        second call adds nothing and answers the first comment."""
        files = parse_ids(attachment_ids)
        if not caller.has_any(ISSUE_MANAGE, ISSUE_READ):
            raise PermissionDenied("Issue:read required")
        problems: list[str] = []
        body = check_text(body, "body", problems, required=not files, limit=MAX_COMMENT)
        key = idempotency_key.strip() or None
        if key is not None and len(key) > MAX_KEY:
            problems.append(f"idempotency_key: at most {MAX_KEY} characters")
        if problems:
            raise InvalidArgument(problems)
        async with self._pool.acquire() as conn, conn.transaction():
            issue = await self._issue(conn, caller.workspace_id, issue_ref, for_update=True)
            if not can_see_issue(caller, issue):
                raise NotFound("issue not found")
            if issue.status == "closed":
                raise FailedPrecondition("status: a closed issue takes no comments")
            if key is not None and caller.person_id is not None:
                # the issue row is locked: two deliveries of one key wait for each other here
                earlier = await store.comment_by_key(
                    conn, caller.workspace_id, caller.person_id, key
                )
                if earlier is not None:
                    return earlier
            comment = IssueComment(
                id=uuid.uuid4(), issue_id=issue.id, author_id=caller.person_id, body=body
            )
            comment = await store.insert_comment(conn, caller.workspace_id, comment, key)
            await outbox.add(conn, events.issue_commented(issue, comment.id, caller.person_id))
            await self.attachments.attach(conn, caller, issue, files, comment_id=comment.id)
        return comment
