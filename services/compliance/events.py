"""The compliance service's events: envelopes built from domain objects for the outbox."""

from __future__ import annotations

import uuid

from frontdesk.v1 import compliance_events_pb2 as pb
from frontdesk.v1 import events_pb2
from google.protobuf.message import Message

from services.chassis.events import new_event
from services.compliance.domain import Control, ControlTest, Issue


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value else ""


def _event(
    workspace_id: uuid.UUID, actor_id: uuid.UUID | None, name: str, payload: Message
) -> events_pb2.Event:
    return new_event(str(workspace_id), _id(actor_id), "compliance", name, payload)


def _test_ref(test: ControlTest, control: Control | None = None) -> pb.ControlTestRef:
    return pb.ControlTestRef(
        control_test_id=str(test.id),
        number=test.number,
        control_id=str(test.control_id),
        control_number=control.number if control else f"CTL-{test.control_seq}",
        control_title=control.title if control else test.control_title,
        assignee_id=_id(test.assignee_id),
        due_date=test.due_date.isoformat(),
    )


def _issue_ref(issue: Issue) -> pb.IssueRef:
    return pb.IssueRef(
        issue_id=str(issue.id),
        number=issue.number,
        title=issue.title,
        severity=issue.severity,
        status=issue.status,
        assignee_id=_id(issue.assignee_id),
        control_id=_id(issue.control_id),
        control_test_id=_id(issue.control_test_id),
    )


def test_scheduled(
    test: ControlTest, control: Control, actor_id: uuid.UUID | None
) -> events_pb2.Event:
    payload = pb.ControlTestScheduled(
        test=_test_ref(test, control),
        period_start=test.period_start.isoformat(),
        period_end=test.period_end.isoformat(),
        ad_hoc=test.ad_hoc,
    )
    return _event(test.workspace_id, actor_id, "control_test_scheduled", payload)


def test_assigned(
    test: ControlTest,
    control: Control | None,
    previous: uuid.UUID | None,
    actor_id: uuid.UUID | None,
) -> events_pb2.Event:
    payload = pb.ControlTestAssigned(
        test=_test_ref(test, control), previous_assignee_id=_id(previous)
    )
    return _event(test.workspace_id, actor_id, "control_test_assigned", payload)


def test_completed(test: ControlTest, actor_id: uuid.UUID | None) -> events_pb2.Event:
    payload = pb.ControlTestCompleted(
        test=_test_ref(test),
        result=test.result or "",
        tester_id=_id(test.tester_id),
        issue_id=_id(test.issue_id),
    )
    return _event(test.workspace_id, actor_id, "control_test_completed", payload)


def test_overdue(test: ControlTest) -> events_pb2.Event:
    payload = pb.ControlTestOverdue(test=_test_ref(test))
    return _event(test.workspace_id, None, "control_test_overdue", payload)


def issue_created(
    issue: Issue, actor_id: uuid.UUID | None, *, from_failed_test: bool
) -> events_pb2.Event:
    payload = pb.IssueCreated(
        issue=_issue_ref(issue),
        reporter_id=_id(issue.reporter_id),
        from_failed_test=from_failed_test,
    )
    return _event(issue.workspace_id, actor_id, "issue_created", payload)


def issue_assigned(
    issue: Issue, previous: uuid.UUID | None, actor_id: uuid.UUID | None
) -> events_pb2.Event:
    payload = pb.IssueAssigned(issue=_issue_ref(issue), previous_assignee_id=_id(previous))
    return _event(issue.workspace_id, actor_id, "issue_assigned", payload)


def issue_status_changed(
    issue: Issue, from_status: str, note: str, actor_id: uuid.UUID | None
) -> events_pb2.Event:
    payload = pb.IssueStatusChanged(
        issue=_issue_ref(issue), from_status=from_status, to_status=issue.status, note=note
    )
    return _event(issue.workspace_id, actor_id, "issue_status_changed", payload)


def issue_commented(
    issue: Issue, comment_id: uuid.UUID, actor_id: uuid.UUID | None
) -> events_pb2.Event:
    payload = pb.IssueCommented(
        issue=_issue_ref(issue), comment_id=str(comment_id), author_id=_id(actor_id)
    )
    return _event(issue.workspace_id, actor_id, "issue_commented", payload)
