"""Protobuf <-> domain for the compliance service: enums, timestamps, dates, pages and messages."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from frontdesk.v1 import compliance_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp

from services.chassis.attachment_store import Attachment
from services.chassis.errors import InvalidArgument
from services.chassis.filetypes import INLINE_IMAGES
from services.chassis.paging import Keyset, Page
from services.compliance.domain import (
    Control,
    ControlTest,
    Issue,
    IssueChange,
    IssueComment,
    format_number,
)


def page_of(request: Any, order: Keyset) -> Page:
    return order.page(request.page.page_size, request.page.page_token)


class _Enum:
    """proto enum <-> lower_snake strings ("ad_hoc"); UNSPECIFIED <-> None."""

    def __init__(self, wrapper: Any, prefix: str) -> None:
        self._wrapper: EnumTypeWrapper = wrapper
        self._prefix = prefix

    def to_str(self, value: int, field: str) -> str | None:
        if value == 0:
            return None
        try:
            return str(self._wrapper.Name(value))[len(self._prefix) :].lower()
        except ValueError:
            raise InvalidArgument([f"{field}: unknown value {value}"]) from None

    def to_proto(self, value: str | None) -> int:
        if not value:
            return 0
        return int(self._wrapper.Value(self._prefix + value.upper()))


FREQUENCY = _Enum(compliance_pb2.ControlFrequency, "CONTROL_FREQUENCY_")
STATE = _Enum(compliance_pb2.ControlTestState, "CONTROL_TEST_STATE_")
RESULT = _Enum(compliance_pb2.ControlTestResult, "CONTROL_TEST_RESULT_")
REVIEW = _Enum(compliance_pb2.ReviewDecision, "REVIEW_DECISION_")
SEVERITY = _Enum(compliance_pb2.IssueSeverity, "ISSUE_SEVERITY_")
STATUS = _Enum(compliance_pb2.IssueStatus, "ISSUE_STATUS_")


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value else ""


def _date(value: date | None) -> str:
    return value.isoformat() if value else ""


def optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def control_pb(c: Control) -> compliance_pb2.Control:
    return compliance_pb2.Control(
        id=str(c.id),
        workspace_id=str(c.workspace_id),
        number=c.number,
        title=c.title,
        description=c.description,
        test_procedure=c.test_procedure,
        framework_ref=c.framework_ref,
        frequency=FREQUENCY.to_proto(c.frequency),  # type: ignore[arg-type]
        owner_id=str(c.owner_id),
        active=c.active,
        created_at=_ts(c.created_at),
        updated_at=_ts(c.updated_at),
    )


def test_pb(t: ControlTest, today: date) -> compliance_pb2.ControlTest:
    return compliance_pb2.ControlTest(
        id=str(t.id),
        workspace_id=str(t.workspace_id),
        number=t.number,
        control_id=str(t.control_id),
        control_number=format_number("CTL", t.control_seq),
        control_title=t.control_title,
        test_procedure=t.test_procedure,
        period_start=_date(t.period_start),
        period_end=_date(t.period_end),
        due_date=_date(t.due_date),
        assignee_id=_id(t.assignee_id),
        state=STATE.to_proto(t.effective_state(today)),  # type: ignore[arg-type]
        ad_hoc=t.ad_hoc,
        result=RESULT.to_proto(t.result),  # type: ignore[arg-type]
        notes=t.notes,
        evidence=t.evidence,
        tester_id=_id(t.tester_id),
        completed_at=_ts(t.completed_at),
        review=REVIEW.to_proto(t.review),  # type: ignore[arg-type]
        reviewer_id=_id(t.reviewer_id),
        review_notes=t.review_notes,
        reviewed_at=_ts(t.reviewed_at),
        issue_id=_id(t.issue_id),
        issue_number=format_number("ISS", t.issue_seq) if t.issue_seq else "",
        created_at=_ts(t.created_at),
        updated_at=_ts(t.updated_at),
        evidence_files=[attachment_pb(a) for a in t.evidence_files],
    )


def attachment_pb(a: Attachment) -> compliance_pb2.ComplianceAttachment:
    return compliance_pb2.ComplianceAttachment(
        id=str(a.id),
        item_kind=a.item_kind or "",
        item_id=_id(a.item_id),
        comment_id=_id(a.comment_id),
        uploader_id=_id(a.uploader_id),
        name=a.name,
        content_type=a.content_type,
        size=a.size,
        sha256=a.sha256,
        created_at=_ts(a.created_at),
        inline_image=a.content_type in INLINE_IMAGES,
    )


def issue_pb(s: Issue, today: date) -> compliance_pb2.Issue:
    return compliance_pb2.Issue(
        id=str(s.id),
        workspace_id=str(s.workspace_id),
        number=s.number,
        title=s.title,
        description=s.description,
        severity=SEVERITY.to_proto(s.severity),  # type: ignore[arg-type]
        status=STATUS.to_proto(s.status),  # type: ignore[arg-type]
        reporter_id=_id(s.reporter_id),
        assignee_id=_id(s.assignee_id),
        remediation_due_date=_date(s.remediation_due_date),
        acceptance_deadline=_date(s.acceptance_deadline),
        control_id=_id(s.control_id),
        control_number=format_number("CTL", s.control_seq) if s.control_seq else "",
        control_test_id=_id(s.control_test_id),
        control_test_number=format_number("TST", s.control_test_seq) if s.control_test_seq else "",
        overdue=s.overdue(today),
        created_at=_ts(s.created_at),
        updated_at=_ts(s.updated_at),
        resolved_at=_ts(s.resolved_at),
        closed_at=_ts(s.closed_at),
        comment_count=s.comment_count,
    )


def comment_pb(c: IssueComment) -> compliance_pb2.IssueComment:
    return compliance_pb2.IssueComment(
        id=str(c.id),
        issue_id=str(c.issue_id),
        author_id=_id(c.author_id),
        body=c.body,
        created_at=_ts(c.created_at),
    )


def change_pb(c: IssueChange) -> compliance_pb2.IssueChange:
    return compliance_pb2.IssueChange(
        field=c.field,
        old_value=c.old_value,
        new_value=c.new_value,
        actor_id=_id(c.actor_id),
        note=c.note,
        changed_at=_ts(c.changed_at),
    )


def enum_values(enum: _Enum, values: Any, field: str) -> list[str]:
    out = [enum.to_str(v, field) for v in values]
    return [v for v in out if v is not None]
