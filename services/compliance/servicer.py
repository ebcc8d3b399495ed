"""The gRPC face of the compliance service: proto <-> domain, refusals -> status codes. Thin."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import grpc
from frontdesk.v1 import common_pb2, compliance_pb2, compliance_pb2_grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp

from services.chassis.directory_client import DirectoryUnavailable
from services.chassis.grpcio import maps_errors
from services.compliance.domain import (
    Caller,
    ComplianceError,
    Conflict,
    Control,
    ControlTest,
    Forbidden,
    Invalid,
    Issue,
    IssueChange,
    IssueComment,
    NotFound,
    Page,
    format_number,
)
from services.compliance.service import ComplianceService, make_caller, make_page, next_token

R = TypeVar("R")

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (Invalid, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (ComplianceError, grpc.StatusCode.FAILED_PRECONDITION),
    (DirectoryUnavailable, grpc.StatusCode.UNAVAILABLE),
]
_rpc = maps_errors(_CODES)


def _caller(request: Any) -> Caller:
    c = request.caller
    return make_caller(c.workspace_id, c.person_id, list(c.permissions))


def _page(request: Any) -> Page:
    return make_page(request.page.page_size, request.page.page_token)


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
            raise Invalid([f"{field}: unknown value {value}"]) from None

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


def _opt(request: Any, name: str) -> Any:
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


class ComplianceServicer(compliance_pb2_grpc.ComplianceServiceServicer):
    def __init__(self, service: ComplianceService, today: Callable[[], date]) -> None:
        self._service = service
        self._today = today

    @_rpc
    async def Ping(
        self, request: compliance_pb2.PingComplianceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        _caller(request)
        return common_pb2.Empty()

    # Controls

    @_rpc
    async def CreateControl(
        self, request: compliance_pb2.CreateControlRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Control:
        control = await self._service.create_control(
            _caller(request),
            title=request.title,
            description=request.description,
            test_procedure=request.test_procedure,
            framework_ref=request.framework_ref,
            frequency=FREQUENCY.to_str(request.frequency, "frequency"),
            owner_id=request.owner_id,
            active=_opt(request, "active"),
        )
        return control_pb(control)

    @_rpc
    async def UpdateControl(
        self, request: compliance_pb2.UpdateControlRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Control:
        control = await self._service.update_control(
            _caller(request),
            request.control_id,
            title=_opt(request, "title"),
            description=_opt(request, "description"),
            test_procedure=_opt(request, "test_procedure"),
            framework_ref=_opt(request, "framework_ref"),
            frequency=FREQUENCY.to_str(request.frequency, "frequency"),
            owner_id=_opt(request, "owner_id"),
            active=_opt(request, "active"),
        )
        return control_pb(control)

    @_rpc
    async def GetControl(
        self, request: compliance_pb2.GetControlRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Control:
        return control_pb(await self._service.get_control(_caller(request), request.control_id))

    @_rpc
    async def ListControls(
        self, request: compliance_pb2.ListControlsRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListControlsResponse:
        page = _page(request)
        controls, total = await self._service.list_controls(
            _caller(request),
            page,
            query=request.query,
            active=_opt(request, "active"),
            frequency=FREQUENCY.to_str(request.frequency, "frequency"),
            owner_id=request.owner_id,
        )
        return compliance_pb2.ListControlsResponse(
            controls=[control_pb(c) for c in controls],
            next_page_token=next_token(page, len(controls), total),
            total=total,
        )

    # Control tests

    @_rpc
    async def CreateControlTest(
        self, request: compliance_pb2.CreateControlTestRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ControlTest:
        test = await self._service.create_test(
            _caller(request),
            control_ref=request.control_id,
            due_date=request.due_date,
            period_start=request.period_start,
            period_end=request.period_end,
            assignee_id=request.assignee_id,
        )
        return test_pb(test, self._today())

    @_rpc
    async def UpdateControlTest(
        self, request: compliance_pb2.UpdateControlTestRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ControlTest:
        test = await self._service.update_test(
            _caller(request),
            request.control_test_id,
            assignee_id=_opt(request, "assignee_id"),
            due_date=_opt(request, "due_date"),
        )
        return test_pb(test, self._today())

    @_rpc
    async def GetControlTest(
        self, request: compliance_pb2.GetControlTestRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ControlTest:
        test = await self._service.get_test(_caller(request), request.control_test_id)
        return test_pb(test, self._today())

    @_rpc
    async def ListControlTests(
        self, request: compliance_pb2.ListControlTestsRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListControlTestsResponse:
        page = _page(request)
        tests, total = await self._service.list_tests(
            _caller(request),
            page,
            control_ref=request.control_id,
            state=STATE.to_str(request.state, "state"),
            assignee_id=request.assignee_id,
            result=RESULT.to_str(request.result, "result"),
        )
        return self._tests(tests, page, total)

    @_rpc
    async def ListMyControlTests(
        self, request: compliance_pb2.ListMyControlTestsRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListControlTestsResponse:
        page = _page(request)
        tests, total = await self._service.list_my_tests(
            _caller(request), page, state=STATE.to_str(request.state, "state")
        )
        return self._tests(tests, page, total)

    def _tests(
        self, tests: list[ControlTest], page: Page, total: int
    ) -> compliance_pb2.ListControlTestsResponse:
        today = self._today()
        return compliance_pb2.ListControlTestsResponse(
            control_tests=[test_pb(t, today) for t in tests],
            next_page_token=next_token(page, len(tests), total),
            total=total,
        )

    @_rpc
    async def CompleteControlTest(
        self,
        request: compliance_pb2.CompleteControlTestRequest,
        context: grpc.aio.ServicerContext,
    ) -> compliance_pb2.CompleteControlTestResponse:
        done = await self._service.complete_test(
            _caller(request),
            request.control_test_id,
            result=RESULT.to_str(request.result, "result"),
            notes=request.notes,
            evidence=request.evidence,
        )
        today = self._today()
        response = compliance_pb2.CompleteControlTestResponse(
            control_test=test_pb(done.test, today)
        )
        if done.issue is not None:
            response.issue.CopyFrom(issue_pb(done.issue, today))
        if done.next_test is not None:
            response.next_test.CopyFrom(test_pb(done.next_test, today))
        return response

    @_rpc
    async def ReviewControlTest(
        self, request: compliance_pb2.ReviewControlTestRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ControlTest:
        test = await self._service.review_test(
            _caller(request),
            request.control_test_id,
            decision=REVIEW.to_str(request.decision, "decision"),
            notes=request.notes,
        )
        return test_pb(test, self._today())

    @_rpc
    async def SweepControlTests(
        self, request: compliance_pb2.SweepControlTestsRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.SweepControlTestsResponse:
        overdue, scheduled = await self._service.sweep(_caller(request))
        return compliance_pb2.SweepControlTestsResponse(marked_overdue=overdue, scheduled=scheduled)

    # Issues

    @_rpc
    async def CreateIssue(
        self, request: compliance_pb2.CreateIssueRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Issue:
        issue = await self._service.create_issue(
            _caller(request),
            title=request.title,
            description=request.description,
            severity=SEVERITY.to_str(request.severity, "severity"),
            assignee_id=request.assignee_id,
            remediation_due_date=request.remediation_due_date,
            control_ref=request.control_id,
            test_ref=request.control_test_id,
        )
        return issue_pb(issue, self._today())

    @_rpc
    async def UpdateIssue(
        self, request: compliance_pb2.UpdateIssueRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Issue:
        issue = await self._service.update_issue(
            _caller(request),
            request.issue_id,
            title=_opt(request, "title"),
            description=_opt(request, "description"),
            severity=SEVERITY.to_str(request.severity, "severity"),
            assignee_id=_opt(request, "assignee_id"),
            remediation_due_date=_opt(request, "remediation_due_date"),
            control_ref=_opt(request, "control_id"),
            test_ref=_opt(request, "control_test_id"),
        )
        return issue_pb(issue, self._today())

    @_rpc
    async def ChangeIssueStatus(
        self, request: compliance_pb2.ChangeIssueStatusRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Issue:
        issue = await self._service.change_issue_status(
            _caller(request),
            request.issue_id,
            status=STATUS.to_str(request.status, "status"),
            acceptance_deadline=request.acceptance_deadline,
            note=request.note,
        )
        return issue_pb(issue, self._today())

    @_rpc
    async def GetIssue(
        self, request: compliance_pb2.GetIssueRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.IssueDetail:
        detail = await self._service.get_issue(_caller(request), request.issue_id)
        return compliance_pb2.IssueDetail(
            issue=issue_pb(detail.issue, self._today()),
            comments=[comment_pb(c) for c in detail.comments],
            history=[change_pb(c) for c in detail.history],
        )

    @_rpc
    async def ListIssues(
        self, request: compliance_pb2.ListIssuesRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListIssuesResponse:
        page = _page(request)
        issues, total = await self._service.list_issues(
            _caller(request),
            page,
            statuses=_values(STATUS, request.statuses, "statuses"),
            severities=_values(SEVERITY, request.severities, "severities"),
            assignee_id=request.assignee_id,
            overdue=_opt(request, "overdue"),
            control_ref=request.control_id,
            query=request.query,
        )
        return self._issues(issues, page, total)

    @_rpc
    async def ListMyIssues(
        self, request: compliance_pb2.ListMyIssuesRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListIssuesResponse:
        page = _page(request)
        issues, total = await self._service.list_my_issues(
            _caller(request), page, statuses=_values(STATUS, request.statuses, "statuses")
        )
        return self._issues(issues, page, total)

    def _issues(
        self, issues: list[Issue], page: Page, total: int
    ) -> compliance_pb2.ListIssuesResponse:
        today = self._today()
        return compliance_pb2.ListIssuesResponse(
            issues=[issue_pb(s, today) for s in issues],
            next_page_token=next_token(page, len(issues), total),
            total=total,
        )

    @_rpc
    async def AddIssueComment(
        self, request: compliance_pb2.AddIssueCommentRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.IssueComment:
        comment = await self._service.add_comment(
            _caller(request), request.issue_id, body=request.body
        )
        return comment_pb(comment)


def _values(enum: _Enum, values: Any, field: str) -> list[str]:
    out = [enum.to_str(v, field) for v in values]
    return [v for v in out if v is not None]
