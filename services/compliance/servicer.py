"""The gRPC face of the compliance service: requests -> use cases, refusals -> status codes.
Thin; protobuf <-> domain conversion is in convert.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import TypeVar

import grpc
from frontdesk.v1 import common_pb2, compliance_pb2, compliance_pb2_grpc

from services.chassis.attachments import reason_metadata
from services.chassis.caller import Caller, current_caller
from services.chassis.grpcio import maps_errors
from services.chassis.paging import Page
from services.chassis.upload_stream import ReceivedUpload
from services.compliance.convert import (
    FREQUENCY,
    RESULT,
    REVIEW,
    SEVERITY,
    STATE,
    STATUS,
    attachment_pb,
    change_pb,
    comment_pb,
    control_pb,
    enum_values,
    issue_pb,
    optional,
    page_of,
    test_pb,
)
from services.compliance.domain import ControlTest, Issue
from services.compliance.service import ComplianceService
from services.compliance.service_base import (
    CONTROLS_ORDER,
    ISSUES_ORDER,
    TESTS_ORDER,
    control_test_key,
)

R = TypeVar("R")

_rpc = maps_errors(trailing=reason_metadata)


def _caller() -> Caller:
    """The verified caller (principal interceptor); `request.caller` is not believed."""
    return current_caller()


class ComplianceServicer(compliance_pb2_grpc.ComplianceServiceServicer):
    def __init__(self, service: ComplianceService, today: Callable[[], date]) -> None:
        self._service = service
        self._today = today

    @_rpc
    async def Ping(
        self, request: compliance_pb2.PingComplianceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        _caller()
        return common_pb2.Empty()

    # Controls

    @_rpc
    async def CreateControl(
        self, request: compliance_pb2.CreateControlRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Control:
        control = await self._service.create_control(
            _caller(),
            title=request.title,
            description=request.description,
            test_procedure=request.test_procedure,
            framework_ref=request.framework_ref,
            frequency=FREQUENCY.to_str(request.frequency, "frequency"),
            owner_id=request.owner_id,
            active=optional(request, "active"),
        )
        return control_pb(control)

    @_rpc
    async def UpdateControl(
        self, request: compliance_pb2.UpdateControlRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Control:
        control = await self._service.update_control(
            _caller(),
            request.control_id,
            title=optional(request, "title"),
            description=optional(request, "description"),
            test_procedure=optional(request, "test_procedure"),
            framework_ref=optional(request, "framework_ref"),
            frequency=FREQUENCY.to_str(request.frequency, "frequency"),
            owner_id=optional(request, "owner_id"),
            active=optional(request, "active"),
        )
        return control_pb(control)

    @_rpc
    async def GetControl(
        self, request: compliance_pb2.GetControlRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Control:
        return control_pb(await self._service.get_control(_caller(), request.control_id))

    @_rpc
    async def ListControls(
        self, request: compliance_pb2.ListControlsRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListControlsResponse:
        page = page_of(request, CONTROLS_ORDER)
        controls, total = await self._service.list_controls(
            _caller(),
            page,
            query=request.query,
            active=optional(request, "active"),
            frequency=FREQUENCY.to_str(request.frequency, "frequency"),
            owner_id=request.owner_id,
        )
        controls, token = CONTROLS_ORDER.cut(page, controls, lambda c: (c.seq,))
        return compliance_pb2.ListControlsResponse(
            controls=[control_pb(c) for c in controls], next_page_token=token, total=total
        )

    # Control tests

    @_rpc
    async def CreateControlTest(
        self, request: compliance_pb2.CreateControlTestRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ControlTest:
        test = await self._service.create_test(
            _caller(),
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
            _caller(),
            request.control_test_id,
            assignee_id=optional(request, "assignee_id"),
            due_date=optional(request, "due_date"),
        )
        return test_pb(test, self._today())

    @_rpc
    async def GetControlTest(
        self, request: compliance_pb2.GetControlTestRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ControlTest:
        test = await self._service.get_test(_caller(), request.control_test_id)
        return test_pb(test, self._today())

    @_rpc
    async def ListControlTests(
        self, request: compliance_pb2.ListControlTestsRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListControlTestsResponse:
        page = page_of(request, TESTS_ORDER)
        tests, total = await self._service.list_tests(
            _caller(),
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
        page = page_of(request, TESTS_ORDER)
        tests, total = await self._service.list_my_tests(
            _caller(), page, state=STATE.to_str(request.state, "state")
        )
        return self._tests(tests, page, total)

    def _tests(
        self, tests: list[ControlTest], page: Page, total: int
    ) -> compliance_pb2.ListControlTestsResponse:
        today = self._today()
        tests, token = TESTS_ORDER.cut(page, tests, control_test_key)
        return compliance_pb2.ListControlTestsResponse(
            control_tests=[test_pb(t, today) for t in tests], next_page_token=token, total=total
        )

    @_rpc
    async def CompleteControlTest(
        self,
        request: compliance_pb2.CompleteControlTestRequest,
        context: grpc.aio.ServicerContext,
    ) -> compliance_pb2.CompleteControlTestResponse:
        done = await self._service.complete_test(
            _caller(),
            request.control_test_id,
            result=RESULT.to_str(request.result, "result"),
            notes=request.notes,
            evidence=request.evidence,
            attachment_ids=list(request.attachment_ids),
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
            _caller(),
            request.control_test_id,
            decision=REVIEW.to_str(request.decision, "decision"),
            notes=request.notes,
        )
        return test_pb(test, self._today())

    @_rpc
    async def SweepControlTests(
        self, request: compliance_pb2.SweepControlTestsRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.SweepControlTestsResponse:
        overdue, scheduled = await self._service.sweep(_caller())
        return compliance_pb2.SweepControlTestsResponse(marked_overdue=overdue, scheduled=scheduled)

    # Issues

    @_rpc
    async def CreateIssue(
        self, request: compliance_pb2.CreateIssueRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Issue:
        issue = await self._service.create_issue(
            _caller(),
            title=request.title,
            description=request.description,
            severity=SEVERITY.to_str(request.severity, "severity"),
            assignee_id=request.assignee_id,
            remediation_due_date=request.remediation_due_date,
            control_ref=request.control_id,
            test_ref=request.control_test_id,
            attachment_ids=list(request.attachment_ids),
        )
        return issue_pb(issue, self._today())

    @_rpc
    async def UpdateIssue(
        self, request: compliance_pb2.UpdateIssueRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Issue:
        issue = await self._service.update_issue(
            _caller(),
            request.issue_id,
            title=optional(request, "title"),
            description=optional(request, "description"),
            severity=SEVERITY.to_str(request.severity, "severity"),
            assignee_id=optional(request, "assignee_id"),
            remediation_due_date=optional(request, "remediation_due_date"),
            control_ref=optional(request, "control_id"),
            test_ref=optional(request, "control_test_id"),
        )
        return issue_pb(issue, self._today())

    @_rpc
    async def ChangeIssueStatus(
        self, request: compliance_pb2.ChangeIssueStatusRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.Issue:
        issue = await self._service.change_issue_status(
            _caller(),
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
        detail = await self._service.get_issue(_caller(), request.issue_id)
        return compliance_pb2.IssueDetail(
            issue=issue_pb(detail.issue, self._today()),
            comments=[comment_pb(c) for c in detail.comments],
            attachments=[attachment_pb(a) for a in detail.attachments],
            history=[change_pb(c) for c in detail.history],
        )

    @_rpc
    async def ListIssues(
        self, request: compliance_pb2.ListIssuesRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListIssuesResponse:
        page = page_of(request, ISSUES_ORDER)
        issues, total = await self._service.list_issues(
            _caller(),
            page,
            statuses=enum_values(STATUS, request.statuses, "statuses"),
            severities=enum_values(SEVERITY, request.severities, "severities"),
            assignee_id=request.assignee_id,
            overdue=optional(request, "overdue"),
            control_ref=request.control_id,
            query=request.query,
        )
        return self._issues(issues, page, total)

    @_rpc
    async def ListMyIssues(
        self, request: compliance_pb2.ListMyIssuesRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.ListIssuesResponse:
        page = page_of(request, ISSUES_ORDER)
        issues, total = await self._service.list_my_issues(
            _caller(), page, statuses=enum_values(STATUS, request.statuses, "statuses")
        )
        return self._issues(issues, page, total)

    def _issues(
        self, issues: list[Issue], page: Page, total: int
    ) -> compliance_pb2.ListIssuesResponse:
        today = self._today()
        issues, token = ISSUES_ORDER.cut(page, issues, lambda s: (s.seq,))
        return compliance_pb2.ListIssuesResponse(
            issues=[issue_pb(s, today) for s in issues], next_page_token=token, total=total
        )

    @_rpc
    async def AddIssueComment(
        self, request: compliance_pb2.AddIssueCommentRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.IssueComment:
        caller = _caller()
        if request.on_behalf_of:
            caller = await self._service.on_behalf_of(caller, request.on_behalf_of)
        comment = await self._service.add_comment(
            caller,
            request.issue_id,
            body=request.body,
            attachment_ids=list(request.attachment_ids),
            idempotency_key=request.idempotency_key,
        )
        return comment_pb(comment)

    @_rpc
    async def UploadAttachment(
        self,
        request_iterator: AsyncIterator[compliance_pb2.UploadComplianceAttachmentRequest],
        context: grpc.aio.ServicerContext,
    ) -> compliance_pb2.ComplianceAttachment:
        upload = await ReceivedUpload.open(request_iterator)
        h = upload.header
        try:
            attachment = await self._service.attachments.upload(
                _caller(), h.item_kind, h.item_id, h.name, upload.chunks()
            )
        except Exception:
            await upload.drain()
            raise
        return attachment_pb(attachment)

    @_rpc
    async def GetAttachment(
        self,
        request: compliance_pb2.GetComplianceAttachmentRequest,
        context: grpc.aio.ServicerContext,
    ) -> compliance_pb2.ComplianceAttachmentDownload:
        attachment, url = await self._service.attachments.download(
            _caller(), request.item_kind, request.item_id, request.attachment_id
        )
        return compliance_pb2.ComplianceAttachmentDownload(
            attachment=attachment_pb(attachment), url=url
        )

    @_rpc
    async def RemoveAttachment(
        self,
        request: compliance_pb2.RemoveComplianceAttachmentRequest,
        context: grpc.aio.ServicerContext,
    ) -> common_pb2.Empty:
        await self._service.attachments.remove(
            _caller(), request.item_kind, request.item_id, request.attachment_id
        )
        return common_pb2.Empty()
