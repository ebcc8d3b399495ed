"""Gateway surface of the compliance capability: the portal's issues and control tests assigned
to me (read, comment, complete), and the management console's controls, control tests and
issues. The compliance service checks every item against the Caller itself; portal calls pass a
Caller stripped down to the portal permissions, so a portal response only ever holds items
assigned to the signed-in person, whatever management roles they also hold."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, compliance_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.present import (
    assignee_text,
    change_text,
    checked,
    enum_name,
    enum_value,
    flag,
    form_errors,
    me_or,
    notice,
    page_links,
    page_request,
    person_names,
    portal_caller,
    pretty_time,
    query_params,
    raise_invalid,
    remember_names,
    split_list,
    system_caller,
    time_of,
    who,
)
from gateway.routing import Ctx, Route

C = compliance_pb2
PORTAL_PERMISSIONS = ("Issue:read", "Control:read", "ControlTest:read", "ControlTest:update")
TEST_READ = ("Control:read", "ControlTest:read")
TEST_COMPLETE = (*TEST_READ, "ControlTest:update")

Frequency = Literal["ad_hoc", "daily", "weekly", "monthly", "quarterly", "yearly"]
Result = Literal["pass", "fail", "not_applicable"]
Decision = Literal["approved", "rejected"]
Severity = Literal["critical", "high", "medium", "low"]
Status = Literal["open", "investigating", "remediation", "resolved", "closed", "accepted"]

FREQUENCIES = {
    "ad_hoc": "Ad hoc",
    "daily": "Daily",
    "weekly": "Weekly",
    "monthly": "Monthly",
    "quarterly": "Quarterly",
    "yearly": "Yearly",
}
STATES = {"scheduled": "Scheduled", "overdue": "Overdue", "completed": "Completed"}
STATE_BADGES = {"scheduled": "", "overdue": "danger", "completed": "ok"}
RESULTS = {"pass": "Pass", "fail": "Fail", "not_applicable": "Not applicable"}
RESULT_BADGES = {"pass": "ok", "fail": "danger", "not_applicable": ""}
REVIEWS = {"approved": "Approved", "rejected": "Rejected"}
SEVERITIES = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"}
SEVERITY_BADGES = {"critical": "danger", "high": "danger", "medium": "warn", "low": ""}
STATUSES = {
    "open": "Open",
    "investigating": "Investigating",
    "remediation": "Remediation",
    "resolved": "Resolved",
    "closed": "Closed",
    "accepted": "Accepted",
}
STATUS_BADGES = {
    "open": "warn",
    "investigating": "warn",
    "remediation": "warn",
    "resolved": "ok",
    "closed": "ok",
    "accepted": "",
}
# The workflow as the service enforces it; pages only offer these moves.
NEXT_STATUSES = {
    "open": ["investigating", "remediation", "resolved", "accepted", "closed"],
    "investigating": ["open", "remediation", "resolved", "accepted", "closed"],
    "remediation": ["investigating", "resolved", "accepted", "closed"],
    "resolved": ["open", "closed"],
    "accepted": ["open", "closed"],
    "closed": [],
}


# -- enums --------------------------------------------------------------------------------


def freq_value(name: str | None) -> Any:
    return enum_value(C.ControlFrequency, "CONTROL_FREQUENCY_", name)


def state_value(name: str | None) -> Any:
    return enum_value(C.ControlTestState, "CONTROL_TEST_STATE_", name)


def result_value(name: str | None) -> Any:
    return enum_value(C.ControlTestResult, "CONTROL_TEST_RESULT_", name)


def severity_value(name: str | None) -> Any:
    return enum_value(C.IssueSeverity, "ISSUE_SEVERITY_", name)


def status_value(name: str | None) -> Any:
    return enum_value(C.IssueStatus, "ISSUE_STATUS_", name)


# -- JSON schemas --------------------------------------------------------------------------


class ControlOut(msgspec.Struct):
    id: str
    number: str
    title: str
    description: str
    test_procedure: str
    framework_ref: str
    frequency: str
    owner_id: str
    active: bool
    created_at: str | None
    updated_at: str | None


class ControlListOut(msgspec.Struct):
    items: list[ControlOut]
    next_page_token: str
    total: int


class ControlTestOut(msgspec.Struct):
    id: str
    number: str
    control_id: str
    control_number: str
    control_title: str
    test_procedure: str
    period_start: str
    period_end: str
    due_date: str
    assignee_id: str | None
    state: str
    ad_hoc: bool
    result: str | None
    notes: str
    evidence: str
    tester_id: str | None
    completed_at: str | None
    review: str | None
    reviewer_id: str | None
    review_notes: str
    reviewed_at: str | None
    issue_id: str | None
    issue_number: str | None
    created_at: str | None


class ControlTestListOut(msgspec.Struct):
    items: list[ControlTestOut]
    next_page_token: str
    total: int


class IssueOut(msgspec.Struct):
    id: str
    number: str
    title: str
    description: str
    severity: str
    status: str
    reporter_id: str | None
    assignee_id: str | None
    remediation_due_date: str | None
    acceptance_deadline: str | None
    control_id: str | None
    control_number: str | None
    control_test_id: str | None
    control_test_number: str | None
    overdue: bool
    comment_count: int
    created_at: str | None
    updated_at: str | None
    resolved_at: str | None
    closed_at: str | None


class IssueCommentOut(msgspec.Struct):
    id: str
    author_id: str | None
    body: str
    created_at: str | None


class IssueChangeOut(msgspec.Struct):
    field: str
    old_value: str
    new_value: str
    actor_id: str | None
    note: str
    changed_at: str | None


class IssueDetailOut(msgspec.Struct):
    issue: IssueOut
    comments: list[IssueCommentOut]
    history: list[IssueChangeOut]


class IssueListOut(msgspec.Struct):
    items: list[IssueOut]
    next_page_token: str
    total: int


class CompletionOut(msgspec.Struct):
    control_test: ControlTestOut
    issue: IssueOut | None
    next_test: ControlTestOut | None


class CommentIn(msgspec.Struct, forbid_unknown_fields=True):
    body: str


class CompleteIn(msgspec.Struct, forbid_unknown_fields=True):
    result: Result
    notes: str = ""
    evidence: str = ""


class ControlIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    frequency: Frequency
    owner_id: str
    description: str = ""
    test_procedure: str = ""
    framework_ref: str = ""
    active: bool = True


class ControlPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str | None = None
    description: str | None = None
    test_procedure: str | None = None
    framework_ref: str | None = None
    frequency: Frequency | None = None
    owner_id: str | None = None
    active: bool | None = None


class ControlTestIn(msgspec.Struct, forbid_unknown_fields=True):
    control_id: str
    due_date: str
    period_start: str = ""
    period_end: str = ""
    assignee_id: str = ""


class ControlTestPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    assignee_id: str | None = None
    due_date: str | None = None


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True):
    decision: Decision
    notes: str = ""


class IssueIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    severity: Severity
    description: str = ""
    assignee_id: str = ""
    remediation_due_date: str = ""
    control_id: str = ""
    control_test_id: str = ""


class IssuePatchIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str | None = None
    description: str | None = None
    severity: Severity | None = None
    assignee_id: str | None = None  # "" unassigns
    remediation_due_date: str | None = None  # "" clears
    control_id: str | None = None
    control_test_id: str | None = None


class IssueStatusIn(msgspec.Struct, forbid_unknown_fields=True):
    status: Status
    acceptance_deadline: str = ""
    note: str = ""


class MyIssuesQuery(msgspec.Struct):
    status: str = ""  # comma-separated
    page_size: int = 25
    page_token: str = ""


class MyTestsQuery(msgspec.Struct):
    state: str = ""
    page_size: int = 25
    page_token: str = ""


class ControlsQuery(msgspec.Struct):
    q: str = ""
    active: str = ""  # "true" | "false"
    frequency: str = ""
    owner: str = ""
    page_size: int = 25
    page_token: str = ""


class TestsQuery(msgspec.Struct):
    control: str = ""
    state: str = ""
    assignee: str = ""  # a person id or "me"
    result: str = ""
    page_size: int = 25
    page_token: str = ""


class IssuesQuery(msgspec.Struct):
    status: str = ""
    severity: str = ""
    assignee: str = ""
    overdue: str = ""  # "true" | "false"
    control: str = ""
    q: str = ""
    page_size: int = 25
    page_token: str = ""


# -- conversions ---------------------------------------------------------------------------


def control_out(c: compliance_pb2.Control) -> ControlOut:
    return ControlOut(
        id=c.id,
        number=c.number,
        title=c.title,
        description=c.description,
        test_procedure=c.test_procedure,
        framework_ref=c.framework_ref,
        frequency=enum_name(C.ControlFrequency, "CONTROL_FREQUENCY_", c.frequency),
        owner_id=c.owner_id,
        active=c.active,
        created_at=time_of(c, "created_at"),
        updated_at=time_of(c, "updated_at"),
    )


def test_out(t: compliance_pb2.ControlTest) -> ControlTestOut:
    return ControlTestOut(
        id=t.id,
        number=t.number,
        control_id=t.control_id,
        control_number=t.control_number,
        control_title=t.control_title,
        test_procedure=t.test_procedure,
        period_start=t.period_start,
        period_end=t.period_end,
        due_date=t.due_date,
        assignee_id=t.assignee_id or None,
        state=enum_name(C.ControlTestState, "CONTROL_TEST_STATE_", t.state),
        ad_hoc=t.ad_hoc,
        result=enum_name(C.ControlTestResult, "CONTROL_TEST_RESULT_", t.result) or None,
        notes=t.notes,
        evidence=t.evidence,
        tester_id=t.tester_id or None,
        completed_at=time_of(t, "completed_at"),
        review=enum_name(C.ReviewDecision, "REVIEW_DECISION_", t.review) or None,
        reviewer_id=t.reviewer_id or None,
        review_notes=t.review_notes,
        reviewed_at=time_of(t, "reviewed_at"),
        issue_id=t.issue_id or None,
        issue_number=t.issue_number or None,
        created_at=time_of(t, "created_at"),
    )


def issue_out(s: compliance_pb2.Issue) -> IssueOut:
    return IssueOut(
        id=s.id,
        number=s.number,
        title=s.title,
        description=s.description,
        severity=enum_name(C.IssueSeverity, "ISSUE_SEVERITY_", s.severity),
        status=enum_name(C.IssueStatus, "ISSUE_STATUS_", s.status),
        reporter_id=s.reporter_id or None,
        assignee_id=s.assignee_id or None,
        remediation_due_date=s.remediation_due_date or None,
        acceptance_deadline=s.acceptance_deadline or None,
        control_id=s.control_id or None,
        control_number=s.control_number or None,
        control_test_id=s.control_test_id or None,
        control_test_number=s.control_test_number or None,
        overdue=s.overdue,
        comment_count=s.comment_count,
        created_at=time_of(s, "created_at"),
        updated_at=time_of(s, "updated_at"),
        resolved_at=time_of(s, "resolved_at"),
        closed_at=time_of(s, "closed_at"),
    )


def comment_out(c: compliance_pb2.IssueComment) -> IssueCommentOut:
    return IssueCommentOut(
        id=c.id, author_id=c.author_id or None, body=c.body, created_at=time_of(c, "created_at")
    )


def change_out(h: compliance_pb2.IssueChange) -> IssueChangeOut:
    return IssueChangeOut(
        field=h.field,
        old_value=h.old_value,
        new_value=h.new_value,
        actor_id=h.actor_id or None,
        note=h.note,
        changed_at=time_of(h, "changed_at"),
    )


def detail_out(d: compliance_pb2.IssueDetail) -> IssueDetailOut:
    return IssueDetailOut(
        issue=issue_out(d.issue),
        comments=[comment_out(c) for c in d.comments],
        history=[change_out(h) for h in d.history],
    )


def completion_out(r: compliance_pb2.CompleteControlTestResponse) -> CompletionOut:
    return CompletionOut(
        control_test=test_out(r.control_test),
        issue=issue_out(r.issue) if r.HasField("issue") else None,
        next_test=test_out(r.next_test) if r.HasField("next_test") else None,
    )


def _choices(raw: str, allowed: dict[str, str], field: str, fields: dict[str, str]) -> list[str]:
    out = []
    for name in split_list(raw):
        if name not in allowed:
            fields[field] = f"unknown value {name!r}; use {', '.join(allowed)}"
        else:
            out.append(name)
    return out


def _one(raw: str, allowed: dict[str, str], field: str, fields: dict[str, str]) -> str | None:
    values = _choices(raw, allowed, field, fields)
    if len(values) > 1:
        fields[field] = "choose one value"
    return values[0] if values else None


# -- requests shared by JSON and pages -----------------------------------------------------


def my_issues_request(ctx: Ctx, q: MyIssuesQuery) -> compliance_pb2.ListMyIssuesRequest:
    fields: dict[str, str] = {}
    req = C.ListMyIssuesRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        statuses=[status_value(s) for s in _choices(q.status, STATUSES, "status", fields)],
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    return req


def my_tests_request(ctx: Ctx, q: MyTestsQuery) -> compliance_pb2.ListMyControlTestsRequest:
    fields: dict[str, str] = {}
    req = C.ListMyControlTestsRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        state=state_value(_one(q.state, STATES, "state", fields)),
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    return req


def controls_request(ctx: Ctx, q: ControlsQuery) -> compliance_pb2.ListControlsRequest:
    fields: dict[str, str] = {}
    req = C.ListControlsRequest(
        caller=ctx.caller(),
        query=q.q[:200],
        frequency=freq_value(_one(q.frequency, FREQUENCIES, "frequency", fields)),
        owner_id=me_or(ctx, q.owner),
        page=page_request(q.page_size, q.page_token, fields),
    )
    active = flag(q.active, "active", fields)
    if active is not None:
        req.active = active
    raise_invalid(fields)
    return req


def tests_request(ctx: Ctx, q: TestsQuery) -> compliance_pb2.ListControlTestsRequest:
    fields: dict[str, str] = {}
    req = C.ListControlTestsRequest(
        caller=ctx.caller(),
        control_id=q.control.strip(),
        state=state_value(_one(q.state, STATES, "state", fields)),
        assignee_id=me_or(ctx, q.assignee),
        result=result_value(_one(q.result, RESULTS, "result", fields)),
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    return req


def issues_request(ctx: Ctx, q: IssuesQuery) -> compliance_pb2.ListIssuesRequest:
    fields: dict[str, str] = {}
    req = C.ListIssuesRequest(
        caller=ctx.caller(),
        statuses=[status_value(s) for s in _choices(q.status, STATUSES, "status", fields)],
        severities=[
            severity_value(s) for s in _choices(q.severity, SEVERITIES, "severity", fields)
        ],
        assignee_id=me_or(ctx, q.assignee),
        control_id=q.control.strip(),
        query=q.q[:200],
        page=page_request(q.page_size, q.page_token, fields),
    )
    overdue = flag(q.overdue, "overdue", fields)
    if overdue is not None:
        req.overdue = overdue
    raise_invalid(fields)
    return req


def control_patch(
    caller: common_pb2.Caller, ref: str, body: ControlPatchIn
) -> compliance_pb2.UpdateControlRequest:
    req = C.UpdateControlRequest(
        caller=caller, control_id=ref, frequency=freq_value(body.frequency)
    )
    for name in ("title", "description", "test_procedure", "framework_ref", "owner_id", "active"):
        value = getattr(body, name)
        if value is not None:
            setattr(req, name, value)
    return req


def issue_patch(
    caller: common_pb2.Caller, ref: str, body: IssuePatchIn
) -> compliance_pb2.UpdateIssueRequest:
    req = C.UpdateIssueRequest(caller=caller, issue_id=ref, severity=severity_value(body.severity))
    for name in (
        "title",
        "description",
        "assignee_id",
        "remediation_due_date",
        "control_id",
        "control_test_id",
    ):
        value = getattr(body, name)
        if value is not None:
            setattr(req, name, value)
    return req


# -- portal JSON ---------------------------------------------------------------------------


async def api_my_issues(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListMyIssues, my_issues_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        IssueListOut(
            items=[issue_out(s) for s in resp.issues],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_my_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    detail = await ctx.call(
        ctx.backends.compliance.GetIssue,
        C.GetIssueRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS), issue_id=request.match_info["id"]
        ),
        safe=True,
    )
    return ctx.json(detail_out(detail))


async def api_comment_my_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: CommentIn = ctx.body
    comment = await ctx.call(
        ctx.backends.compliance.AddIssueComment,
        C.AddIssueCommentRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS),
            issue_id=request.match_info["id"],
            body=body.body,
        ),
    )
    return ctx.json(comment_out(comment), status=201)


async def api_my_tests(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListMyControlTests, my_tests_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        ControlTestListOut(
            items=[test_out(t) for t in resp.control_tests],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS), control_test_id=request.match_info["id"]
        ),
        safe=True,
    )
    return ctx.json(test_out(test))


async def api_complete_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: CompleteIn = ctx.body
    resp = await ctx.call(
        ctx.backends.compliance.CompleteControlTest,
        C.CompleteControlTestRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS),
            control_test_id=request.match_info["id"],
            result=result_value(body.result),
            notes=body.notes,
            evidence=body.evidence,
        ),
    )
    return ctx.json(completion_out(resp))


# -- management JSON -----------------------------------------------------------------------


async def api_controls(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListControls, controls_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        ControlListOut(
            items=[control_out(c) for c in resp.controls],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_create_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ControlIn = ctx.body
    control = await ctx.call(
        ctx.backends.compliance.CreateControl,
        C.CreateControlRequest(
            caller=ctx.caller(),
            title=body.title,
            description=body.description,
            test_procedure=body.test_procedure,
            framework_ref=body.framework_ref,
            frequency=freq_value(body.frequency),
            owner_id=body.owner_id,
            active=body.active,
        ),
    )
    return ctx.json(control_out(control), status=201)


async def api_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    control = await ctx.call(
        ctx.backends.compliance.GetControl,
        C.GetControlRequest(caller=ctx.caller(), control_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(control_out(control))


async def api_update_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    control = await ctx.call(
        ctx.backends.compliance.UpdateControl,
        control_patch(ctx.caller(), request.match_info["id"], ctx.body),
    )
    return ctx.json(control_out(control))


async def api_tests(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListControlTests, tests_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        ControlTestListOut(
            items=[test_out(t) for t in resp.control_tests],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_create_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ControlTestIn = ctx.body
    test = await ctx.call(
        ctx.backends.compliance.CreateControlTest,
        C.CreateControlTestRequest(
            caller=ctx.caller(),
            control_id=body.control_id,
            due_date=body.due_date,
            period_start=body.period_start,
            period_end=body.period_end,
            assignee_id=body.assignee_id,
        ),
    )
    return ctx.json(test_out(test), status=201)


async def api_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(caller=ctx.caller(), control_test_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(test_out(test))


async def api_update_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ControlTestPatchIn = ctx.body
    req = C.UpdateControlTestRequest(caller=ctx.caller(), control_test_id=request.match_info["id"])
    if body.assignee_id is not None:
        req.assignee_id = body.assignee_id
    if body.due_date is not None:
        req.due_date = body.due_date
    test = await ctx.call(ctx.backends.compliance.UpdateControlTest, req)
    return ctx.json(test_out(test))


async def api_review_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ReviewIn = ctx.body
    test = await ctx.call(
        ctx.backends.compliance.ReviewControlTest,
        C.ReviewControlTestRequest(
            caller=ctx.caller(),
            control_test_id=request.match_info["id"],
            decision=enum_value(C.ReviewDecision, "REVIEW_DECISION_", body.decision),
            notes=body.notes,
        ),
    )
    return ctx.json(test_out(test))


async def api_issues(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListIssues, issues_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        IssueListOut(
            items=[issue_out(s) for s in resp.issues],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_create_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: IssueIn = ctx.body
    issue = await ctx.call(
        ctx.backends.compliance.CreateIssue,
        C.CreateIssueRequest(
            caller=ctx.caller(),
            title=body.title,
            description=body.description,
            severity=severity_value(body.severity),
            assignee_id=body.assignee_id,
            remediation_due_date=body.remediation_due_date,
            control_id=body.control_id,
            control_test_id=body.control_test_id,
        ),
    )
    return ctx.json(issue_out(issue), status=201)


async def api_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    detail = await ctx.call(
        ctx.backends.compliance.GetIssue,
        C.GetIssueRequest(caller=ctx.caller(), issue_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(detail_out(detail))


async def api_update_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    issue = await ctx.call(
        ctx.backends.compliance.UpdateIssue,
        issue_patch(ctx.caller(), request.match_info["id"], ctx.body),
    )
    return ctx.json(issue_out(issue))


async def api_issue_status(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: IssueStatusIn = ctx.body
    issue = await ctx.call(
        ctx.backends.compliance.ChangeIssueStatus,
        C.ChangeIssueStatusRequest(
            caller=ctx.caller(),
            issue_id=request.match_info["id"],
            status=status_value(body.status),
            acceptance_deadline=body.acceptance_deadline,
            note=body.note,
        ),
    )
    return ctx.json(issue_out(issue))


async def api_comment_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: CommentIn = ctx.body
    comment = await ctx.call(
        ctx.backends.compliance.AddIssueComment,
        C.AddIssueCommentRequest(
            caller=ctx.caller(), issue_id=request.match_info["id"], body=body.body
        ),
    )
    return ctx.json(comment_out(comment), status=201)


# -- names of persons (pages; best effort) -------------------------------------------------


async def _people(ctx: Ctx) -> list[tuple[str, str]]:
    """(id, name) of active persons for the owner and assignee menus; [] when unknown."""
    try:
        resp = await ctx.call(
            ctx.backends.directory.ListPersons,
            directory_pb2.ListPersonsRequest(
                caller=system_caller(ctx),
                active=True,
                page=common_pb2.PageRequest(page_size=200),
            ),
            safe=True,
        )
    except Exception:
        return []
    remember_names(ctx, resp.persons)
    return sorted(((p.id, p.name or p.email) for p in resp.persons), key=lambda x: x[1].lower())


def _test_view(t: compliance_pb2.ControlTest) -> dict[str, Any]:
    out = msgspec.structs.asdict(test_out(t))
    out["state_label"] = STATES.get(out["state"], out["state"])
    out["state_badge"] = STATE_BADGES.get(out["state"], "")
    out["result_label"] = RESULTS.get(out["result"] or "", "")
    out["result_badge"] = RESULT_BADGES.get(out["result"] or "", "")
    out["review_label"] = REVIEWS.get(out["review"] or "", "")
    return out


def _issue_view(s: compliance_pb2.Issue) -> dict[str, Any]:
    out = msgspec.structs.asdict(issue_out(s))
    out["status_label"] = STATUSES.get(out["status"], out["status"])
    out["status_badge"] = STATUS_BADGES.get(out["status"], "")
    out["severity_label"] = SEVERITIES.get(out["severity"], out["severity"])
    out["severity_badge"] = SEVERITY_BADGES.get(out["severity"], "")
    out["next_statuses"] = [(s, STATUSES[s]) for s in NEXT_STATUSES.get(out["status"], [])]
    return out


def _control_view(c: compliance_pb2.Control) -> dict[str, Any]:
    out = msgspec.structs.asdict(control_out(c))
    out["frequency_label"] = FREQUENCIES.get(out["frequency"], out["frequency"])
    return out


def _history(
    detail: compliance_pb2.IssueDetail, names: dict[str, str], me: str = ""
) -> list[dict[str, str]]:
    out = []
    for h in detail.history:
        old, new = h.old_value, h.new_value
        if h.field == "assignee_id":
            old, new = assignee_text(names, old), assignee_text(names, new)
        if h.field == "status":
            old = STATUSES.get(old, old)
            new = " ".join(
                [STATUSES.get(new.split(" ")[0], new.split(" ")[0]), *new.split(" ")[1:]]
            )
        what = (
            "Created"
            if h.field == "created"
            else change_text(h.field.removesuffix("_id").replace("_", " ").capitalize(), old, new)
        )
        out.append(
            {
                "at": pretty_time(time_of(h, "changed_at")),
                "who": who(names, h.actor_id, me),
                "what": what,
                "note": h.note,
            }
        )
    return out


# -- portal pages --------------------------------------------------------------------------


async def page_my_issues(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, ("status", "page_token"))
    issues: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        req = my_issues_request(
            ctx, MyIssuesQuery(status=params["status"], page_token=params["page_token"])
        )
        resp = await ctx.call(ctx.backends.compliance.ListMyIssues, req, safe=True)
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        issues = [_issue_view(s) for s in resp.issues]
        first, nxt = page_links("/issues", params, resp.next_page_token)
    return ctx.render(
        "compliance/my_issues.html",
        {
            "issues": issues,
            "params": params,
            "statuses": STATUSES,
            "error": error,
            "first_link": first,
            "next_link": nxt,
            "pretty": pretty_time,
        },
    )


async def _render_my_issue(
    ctx: Ctx, ref: str, comment_error: str = "", comment_raw: str = "", status: int = 200
) -> web.Response:
    detail = await ctx.call(
        ctx.backends.compliance.GetIssue,
        C.GetIssueRequest(caller=portal_caller(ctx, PORTAL_PERMISSIONS), issue_id=ref),
        safe=True,
    )
    me = ctx.person_id
    ids = {c.author_id for c in detail.comments} | {h.actor_id for h in detail.history}
    ids |= {h.old_value for h in detail.history if h.field == "assignee_id"}
    ids |= {h.new_value for h in detail.history if h.field == "assignee_id"}
    names = await person_names(ctx, ids - {me, ""})
    comments = [
        {
            "body": c.body,
            "created_at": pretty_time(time_of(c, "created_at")),
            "author": who(names, c.author_id, me, "Compliance team"),
        }
        for c in detail.comments
    ]
    return ctx.render(
        "compliance/my_issue.html",
        {
            "s": _issue_view(detail.issue),
            "comments": comments,
            "history": _history(detail, names, me),
            "comment_error": comment_error,
            "comment_raw": comment_raw,
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_my_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_my_issue(ctx, request.match_info["id"])


async def page_comment_my_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    body = raw.get("body", "")
    try:
        await ctx.call(
            ctx.backends.compliance.AddIssueComment,
            C.AddIssueCommentRequest(
                caller=portal_caller(ctx, PORTAL_PERMISSIONS), issue_id=ref, body=body
            ),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        message = exc.fields.get("body") or exc.message
        return await _render_my_issue(ctx, ref, message, body, status=exc.status)
    raise ctx.redirect(f"/issues/{ref}#comments")


async def page_my_tests(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, ("state", "page_token"))
    tests: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        req = my_tests_request(
            ctx, MyTestsQuery(state=params["state"], page_token=params["page_token"])
        )
        resp = await ctx.call(ctx.backends.compliance.ListMyControlTests, req, safe=True)
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        tests = [_test_view(t) for t in resp.control_tests]
        first, nxt = page_links("/control-tests", params, resp.next_page_token)
    return ctx.render(
        "compliance/my_tests.html",
        {
            "tests": tests,
            "params": params,
            "states": STATES,
            "error": error,
            "first_link": first,
            "next_link": nxt,
        },
    )


async def _render_my_test(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(caller=portal_caller(ctx, PORTAL_PERMISSIONS), control_test_id=ref),
        safe=True,
    )
    return ctx.render(
        "compliance/my_test.html",
        {
            "t": _test_view(test),
            "can_complete": ctx.has(*TEST_COMPLETE),
            "results": RESULTS,
            "errors": errors or {},
            "form": raw or {},
            "done": ctx.request.query.get("done") == "1",
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_my_test(ctx, request.match_info["id"])


async def page_complete_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    result = raw.get("result", "")
    if result not in RESULTS:
        return await _render_my_test(
            ctx, ref, {"result": "choose pass, fail or not applicable"}, raw, status=422
        )
    try:
        await ctx.call(
            ctx.backends.compliance.CompleteControlTest,
            C.CompleteControlTestRequest(
                caller=portal_caller(ctx, PORTAL_PERMISSIONS),
                control_test_id=ref,
                result=result_value(result),
                notes=raw.get("notes", ""),
                evidence=raw.get("evidence", ""),
            ),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_my_test(ctx, ref, form_errors(exc), raw, status=exc.status)
    raise ctx.redirect(f"/control-tests/{ref}?done=1")


# -- management pages ----------------------------------------------------------------------


NOTICES = {
    "created": "Created.",
    "updated": "Saved.",
    "status": "Status changed.",
    "commented": "Comment added.",
    "reviewed": "Review recorded.",
}


async def page_controls(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    keys = ("q", "active", "frequency", "owner", "page_token")
    params = query_params(request, keys)
    controls: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        q = ControlsQuery(**params)  # type: ignore[arg-type]
        resp = await ctx.call(
            ctx.backends.compliance.ListControls, controls_request(ctx, q), safe=True
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        controls = [_control_view(c) for c in resp.controls]
        first, nxt = page_links("/management/controls", params, resp.next_page_token)
    people = await _people(ctx)
    names = await person_names(ctx, {c["owner_id"] for c in controls})
    return ctx.render(
        "compliance/controls.html",
        {
            "controls": controls,
            "params": params,
            "frequencies": FREQUENCIES,
            "names": names,
            "people": people,
            "errors": errors or {},
            "form": raw or {},
            "error": error,
            "notice": notice(request, NOTICES),
            "first_link": first,
            "next_link": nxt,
        },
        status=status,
    )


async def page_create_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    frequency = raw.get("frequency", "")
    if frequency not in FREQUENCIES:
        return await page_controls(request, ctx, {"frequency": "choose a frequency"}, raw, 422)
    try:
        control = await ctx.call(
            ctx.backends.compliance.CreateControl,
            C.CreateControlRequest(
                caller=ctx.caller(),
                title=raw.get("title", ""),
                description=raw.get("description", ""),
                test_procedure=raw.get("test_procedure", ""),
                framework_ref=raw.get("framework_ref", ""),
                frequency=freq_value(frequency),
                owner_id=raw.get("owner_id", "").strip(),
            ),
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await page_controls(request, ctx, form_errors(exc), raw, 422)
    raise ctx.redirect(f"/management/controls/{control.number}?done=created")


async def _render_control(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    control = await ctx.call(
        ctx.backends.compliance.GetControl,
        C.GetControlRequest(caller=ctx.caller(), control_id=ref),
        safe=True,
    )
    tests = await ctx.call(
        ctx.backends.compliance.ListControlTests,
        C.ListControlTestsRequest(
            caller=ctx.caller(),
            control_id=control.id,
            page=common_pb2.PageRequest(page_size=50),
        ),
        safe=True,
    )
    views = [_test_view(t) for t in tests.control_tests]
    people = await _people(ctx)
    names = await person_names(ctx, {control.owner_id} | {t["assignee_id"] or "" for t in views})
    return ctx.render(
        "compliance/control.html",
        {
            "c": _control_view(control),
            "tests": views,
            "names": names,
            "people": people,
            "frequencies": FREQUENCIES,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
        },
        status=status,
    )


async def page_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_control(ctx, request.match_info["id"])


async def page_update_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    frequency = raw.get("frequency") or None
    if frequency is not None and frequency not in FREQUENCIES:
        return await _render_control(ctx, ref, {"frequency": "choose a frequency"}, raw, 422)
    patch = ControlPatchIn(
        title=raw.get("title"),
        description=raw.get("description"),
        test_procedure=raw.get("test_procedure"),
        framework_ref=raw.get("framework_ref"),
        frequency=frequency,  # type: ignore[arg-type]
        owner_id=raw.get("owner_id") or None,
        active=checked(raw, "active"),
    )
    try:
        await ctx.call(
            ctx.backends.compliance.UpdateControl, control_patch(ctx.caller(), ref, patch)
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _render_control(ctx, ref, form_errors(exc), raw, 422)
    raise ctx.redirect(f"/management/controls/{ref}?done=updated")


async def page_tests(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    keys = ("control", "state", "assignee", "result", "page_token")
    params = query_params(request, keys)
    tests: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        q = TestsQuery(**params)  # type: ignore[arg-type]
        resp = await ctx.call(
            ctx.backends.compliance.ListControlTests, tests_request(ctx, q), safe=True
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        tests = [_test_view(t) for t in resp.control_tests]
        first, nxt = page_links("/management/control-tests", params, resp.next_page_token)
    people = await _people(ctx)
    names = await person_names(ctx, {t["assignee_id"] or "" for t in tests})
    return ctx.render(
        "compliance/tests.html",
        {
            "tests": tests,
            "params": params,
            "states": STATES,
            "results": RESULTS,
            "names": names,
            "people": people,
            "errors": errors or {},
            "form": raw or {},
            "error": error,
            "notice": notice(request, NOTICES),
            "first_link": first,
            "next_link": nxt,
        },
        status=status,
    )


async def page_create_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    try:
        test = await ctx.call(
            ctx.backends.compliance.CreateControlTest,
            C.CreateControlTestRequest(
                caller=ctx.caller(),
                control_id=raw.get("control_id", "").strip(),
                due_date=raw.get("due_date", ""),
                period_start=raw.get("period_start", ""),
                period_end=raw.get("period_end", ""),
                assignee_id=raw.get("assignee_id", "").strip(),
            ),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await page_tests(request, ctx, form_errors(exc), raw, exc.status)
    raise ctx.redirect(f"/management/control-tests/{test.number}?done=created")


async def _render_test(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(caller=ctx.caller(), control_test_id=ref),
        safe=True,
    )
    view = _test_view(test)
    people = await _people(ctx)
    names = await person_names(
        ctx, {view["assignee_id"] or "", view["tester_id"] or "", view["reviewer_id"] or ""}
    )
    return ctx.render(
        "compliance/test.html",
        {
            "t": view,
            "names": names,
            "people": people,
            "reviews": REVIEWS,
            "can_review": view["state"] == "completed"
            and not view["review"]
            and view["tester_id"] != ctx.person_id,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_test(ctx, request.match_info["id"])


async def page_update_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    req = C.UpdateControlTestRequest(caller=ctx.caller(), control_test_id=ref)
    if raw.get("assignee_id", "").strip():
        req.assignee_id = raw["assignee_id"].strip()
    if raw.get("due_date", "").strip():
        req.due_date = raw["due_date"].strip()
    try:
        await ctx.call(ctx.backends.compliance.UpdateControlTest, req)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_test(ctx, ref, form_errors(exc), raw, exc.status)
    raise ctx.redirect(f"/management/control-tests/{ref}?done=updated")


async def page_review_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    decision = raw.get("decision", "")
    if decision not in REVIEWS:
        return await _render_test(ctx, ref, {"decision": "approve or reject"}, raw, 422)
    try:
        await ctx.call(
            ctx.backends.compliance.ReviewControlTest,
            C.ReviewControlTestRequest(
                caller=ctx.caller(),
                control_test_id=ref,
                decision=enum_value(C.ReviewDecision, "REVIEW_DECISION_", decision),
                notes=raw.get("review_notes", ""),
            ),
        )
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _render_test(ctx, ref, {"decision": exc.message}, raw, exc.status)
    raise ctx.redirect(f"/management/control-tests/{ref}?done=reviewed")


async def page_issues(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    keys = ("status", "severity", "assignee", "overdue", "control", "q", "page_token")
    params = query_params(request, keys)
    issues: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        q = IssuesQuery(**params)  # type: ignore[arg-type]
        resp = await ctx.call(ctx.backends.compliance.ListIssues, issues_request(ctx, q), safe=True)
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        issues = [_issue_view(s) for s in resp.issues]
        first, nxt = page_links("/management/issues", params, resp.next_page_token)
    people = await _people(ctx)
    names = await person_names(ctx, {s["assignee_id"] or "" for s in issues})
    return ctx.render(
        "compliance/issues.html",
        {
            "issues": issues,
            "params": params,
            "statuses": STATUSES,
            "severities": SEVERITIES,
            "names": names,
            "people": people,
            "errors": errors or {},
            "form": raw or {},
            "error": error,
            "notice": notice(request, NOTICES),
            "first_link": first,
            "next_link": nxt,
        },
        status=status,
    )


async def page_create_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    severity = raw.get("severity", "")
    if severity not in SEVERITIES:
        return await page_issues(request, ctx, {"severity": "choose a severity"}, raw, 422)
    try:
        issue = await ctx.call(
            ctx.backends.compliance.CreateIssue,
            C.CreateIssueRequest(
                caller=ctx.caller(),
                title=raw.get("title", ""),
                description=raw.get("description", ""),
                severity=severity_value(severity),
                assignee_id=raw.get("assignee_id", "").strip(),
                remediation_due_date=raw.get("remediation_due_date", "").strip(),
                control_id=raw.get("control_id", "").strip(),
                control_test_id=raw.get("control_test_id", "").strip(),
            ),
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await page_issues(request, ctx, form_errors(exc), raw, 422)
    raise ctx.redirect(f"/management/issues/{issue.number}?done=created")


async def _render_issue(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    detail = await ctx.call(
        ctx.backends.compliance.GetIssue,
        C.GetIssueRequest(caller=ctx.caller(), issue_id=ref),
        safe=True,
    )
    view = _issue_view(detail.issue)
    ids = {view["assignee_id"] or "", view["reporter_id"] or ""}
    ids |= {c.author_id for c in detail.comments} | {h.actor_id for h in detail.history}
    ids |= {h.old_value for h in detail.history if h.field == "assignee_id"}
    ids |= {h.new_value for h in detail.history if h.field == "assignee_id"}
    people = await _people(ctx)
    names = await person_names(ctx, ids)
    comments = [
        {
            "body": c.body,
            "created_at": pretty_time(time_of(c, "created_at")),
            "author": who(names, c.author_id),
        }
        for c in detail.comments
    ]
    return ctx.render(
        "compliance/issue.html",
        {
            "s": view,
            "names": names,
            "comments": comments,
            "history": _history(detail, names),
            "people": people,
            "severities": SEVERITIES,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_issue(ctx, request.match_info["id"])


async def page_update_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    severity = raw.get("severity") or None
    if severity is not None and severity not in SEVERITIES:
        return await _render_issue(ctx, ref, {"severity": "choose a severity"}, raw, 422)
    patch = IssuePatchIn(
        title=raw.get("title"),
        description=raw.get("description"),
        severity=severity,  # type: ignore[arg-type]
        assignee_id=raw.get("assignee_id"),
        remediation_due_date=raw.get("remediation_due_date"),
    )
    try:
        await ctx.call(ctx.backends.compliance.UpdateIssue, issue_patch(ctx.caller(), ref, patch))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_issue(ctx, ref, form_errors(exc), raw, exc.status)
    raise ctx.redirect(f"/management/issues/{ref}?done=updated")


async def page_issue_status(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    target = raw.get("status", "")
    if target not in STATUSES:
        return await _render_issue(ctx, ref, {"status": "choose a status"}, raw, 422)
    try:
        await ctx.call(
            ctx.backends.compliance.ChangeIssueStatus,
            C.ChangeIssueStatusRequest(
                caller=ctx.caller(),
                issue_id=ref,
                status=status_value(target),
                acceptance_deadline=raw.get("acceptance_deadline", "").strip(),
                note=raw.get("note", ""),
            ),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        fields = exc.fields or {"status": exc.message.partition(": ")[2] or exc.message}
        return await _render_issue(ctx, ref, fields, raw, exc.status)
    raise ctx.redirect(f"/management/issues/{ref}?done=status")


async def page_comment_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    try:
        await ctx.call(
            ctx.backends.compliance.AddIssueComment,
            C.AddIssueCommentRequest(caller=ctx.caller(), issue_id=ref, body=raw.get("body", "")),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        message = exc.fields.get("body") or exc.message
        return await _render_issue(ctx, ref, {"body": message}, raw, exc.status)
    raise ctx.redirect(f"/management/issues/{ref}?done=commented#comments")


# -- the route table -----------------------------------------------------------------------


def _issues_portal(method: str, path: str, handler: Any, **kw: Any) -> Route:
    kw.setdefault("permissions", ("Issue:read",))
    return Route(method, path, handler, surface="portal", section="issues", **kw)


def _tests_portal(method: str, path: str, handler: Any, **kw: Any) -> Route:
    kw.setdefault("permissions", TEST_READ)
    return Route(method, path, handler, surface="portal", section="control_tests", **kw)


def _manage(method: str, path: str, handler: Any, perm: str, **kw: Any) -> Route:
    return Route(method, path, handler, surface="management", permissions=(perm,), **kw)


CM, IM = "Control:manage", "Issue:manage"

ROUTES: list[Route] = [
    # Portal JSON: issues assigned to me.
    _issues_portal(
        "GET",
        "/api/v1/issues",
        api_my_issues,
        query=MyIssuesQuery,
        response=IssueListOut,
        summary="Issues assigned to me (filter by comma-separated status)",
    ),
    _issues_portal(
        "GET",
        "/api/v1/issues/{id}",
        api_my_issue,
        response=IssueDetailOut,
        summary="An issue assigned to me, with comments and history",
    ),
    _issues_portal(
        "POST",
        "/api/v1/issues/{id}/comments",
        api_comment_my_issue,
        body=CommentIn,
        response=IssueCommentOut,
        status=201,
        summary="Comment on an issue assigned to me",
    ),
    # Portal JSON: control tests assigned to me.
    _tests_portal(
        "GET",
        "/api/v1/control-tests",
        api_my_tests,
        query=MyTestsQuery,
        response=ControlTestListOut,
        summary="Control tests assigned to me (filter by state)",
    ),
    _tests_portal(
        "GET",
        "/api/v1/control-tests/{id}",
        api_my_test,
        response=ControlTestOut,
        summary="A control test assigned to me, with the control's test procedure",
    ),
    _tests_portal(
        "POST",
        "/api/v1/control-tests/{id}/complete",
        api_complete_my_test,
        permissions=TEST_COMPLETE,
        body=CompleteIn,
        response=CompletionOut,
        summary="Complete a test assigned to me (a fail opens an issue; completed tests are locked)",
    ),
    # Portal pages.
    _issues_portal("GET", "/issues", page_my_issues, kind="page", summary="My issues"),
    _issues_portal("GET", "/issues/{id}", page_my_issue, kind="page", summary="An issue of mine"),
    _issues_portal(
        "POST",
        "/issues/{id}/comments",
        page_comment_my_issue,
        kind="page",
        summary="Comment on an issue (form)",
    ),
    _tests_portal("GET", "/control-tests", page_my_tests, kind="page", summary="My control tests"),
    _tests_portal(
        "GET", "/control-tests/{id}", page_my_test, kind="page", summary="A control test of mine"
    ),
    _tests_portal(
        "POST",
        "/control-tests/{id}/complete",
        page_complete_my_test,
        kind="page",
        permissions=TEST_COMPLETE,
        summary="Complete a control test (form)",
    ),
    # Management JSON: controls.
    _manage(
        "GET",
        "/management/api/v1/controls",
        api_controls,
        CM,
        query=ControlsQuery,
        response=ControlListOut,
        summary="Controls with search and filters",
    ),
    _manage(
        "POST",
        "/management/api/v1/controls",
        api_create_control,
        CM,
        body=ControlIn,
        response=ControlOut,
        status=201,
        summary="Create a control (a recurring one gets its first test)",
    ),
    _manage(
        "GET",
        "/management/api/v1/controls/{id}",
        api_control,
        CM,
        response=ControlOut,
        summary="A control",
    ),
    _manage(
        "PATCH",
        "/management/api/v1/controls/{id}",
        api_update_control,
        CM,
        body=ControlPatchIn,
        response=ControlOut,
        summary="Edit a control",
    ),
    # Management JSON: control tests.
    _manage(
        "GET",
        "/management/api/v1/control-tests",
        api_tests,
        CM,
        query=TestsQuery,
        response=ControlTestListOut,
        summary="Control tests with filters (control, state, assignee, result)",
    ),
    _manage(
        "POST",
        "/management/api/v1/control-tests",
        api_create_test,
        CM,
        body=ControlTestIn,
        response=ControlTestOut,
        status=201,
        summary="Create an ad hoc control test",
    ),
    _manage(
        "GET",
        "/management/api/v1/control-tests/{id}",
        api_test,
        CM,
        response=ControlTestOut,
        summary="A control test",
    ),
    _manage(
        "PATCH",
        "/management/api/v1/control-tests/{id}",
        api_update_test,
        CM,
        body=ControlTestPatchIn,
        response=ControlTestOut,
        summary="Reassign or move the due date of an open test",
    ),
    _manage(
        "POST",
        "/management/api/v1/control-tests/{id}/review",
        api_review_test,
        CM,
        body=ReviewIn,
        response=ControlTestOut,
        summary="Approve or reject a completed test (not by its tester)",
    ),
    # Management JSON: issues.
    _manage(
        "GET",
        "/management/api/v1/issues",
        api_issues,
        IM,
        query=IssuesQuery,
        response=IssueListOut,
        summary="Issues with filters (status, severity, assignee, overdue, control, q)",
    ),
    _manage(
        "POST",
        "/management/api/v1/issues",
        api_create_issue,
        IM,
        body=IssueIn,
        response=IssueOut,
        status=201,
        summary="Create an issue",
    ),
    _manage(
        "GET",
        "/management/api/v1/issues/{id}",
        api_issue,
        IM,
        response=IssueDetailOut,
        summary="An issue with comments and history",
    ),
    _manage(
        "PATCH",
        "/management/api/v1/issues/{id}",
        api_update_issue,
        IM,
        body=IssuePatchIn,
        response=IssueOut,
        summary='Edit and assign an issue ("" clears assignee or due date)',
    ),
    _manage(
        "POST",
        "/management/api/v1/issues/{id}/status",
        api_issue_status,
        IM,
        body=IssueStatusIn,
        response=IssueOut,
        summary="Move an issue along its workflow (illegal transitions are 409)",
    ),
    _manage(
        "POST",
        "/management/api/v1/issues/{id}/comments",
        api_comment_issue,
        IM,
        body=CommentIn,
        response=IssueCommentOut,
        status=201,
        summary="Comment on an issue",
    ),
    # Management pages.
    _manage("GET", "/management/controls", page_controls, CM, kind="page", summary="Controls"),
    _manage(
        "POST",
        "/management/controls",
        page_create_control,
        CM,
        kind="page",
        summary="Create a control (form)",
    ),
    _manage("GET", "/management/controls/{id}", page_control, CM, kind="page", summary="A control"),
    _manage(
        "POST",
        "/management/controls/{id}",
        page_update_control,
        CM,
        kind="page",
        summary="Edit a control (form)",
    ),
    _manage(
        "GET", "/management/control-tests", page_tests, CM, kind="page", summary="Control tests"
    ),
    _manage(
        "POST",
        "/management/control-tests",
        page_create_test,
        CM,
        kind="page",
        summary="Create an ad hoc control test (form)",
    ),
    _manage(
        "GET",
        "/management/control-tests/{id}",
        page_test,
        CM,
        kind="page",
        summary="A control test",
    ),
    _manage(
        "POST",
        "/management/control-tests/{id}",
        page_update_test,
        CM,
        kind="page",
        summary="Reassign a control test (form)",
    ),
    _manage(
        "POST",
        "/management/control-tests/{id}/review",
        page_review_test,
        CM,
        kind="page",
        summary="Review a control test (form)",
    ),
    _manage("GET", "/management/issues", page_issues, IM, kind="page", summary="Issues"),
    _manage(
        "POST",
        "/management/issues",
        page_create_issue,
        IM,
        kind="page",
        summary="Create an issue (form)",
    ),
    _manage("GET", "/management/issues/{id}", page_issue, IM, kind="page", summary="An issue"),
    _manage(
        "POST",
        "/management/issues/{id}",
        page_update_issue,
        IM,
        kind="page",
        summary="Edit an issue (form)",
    ),
    _manage(
        "POST",
        "/management/issues/{id}/status",
        page_issue_status,
        IM,
        kind="page",
        summary="Change an issue's status (form)",
    ),
    _manage(
        "POST",
        "/management/issues/{id}/comments",
        page_comment_issue,
        IM,
        kind="page",
        summary="Comment on an issue (form)",
    ),
]
