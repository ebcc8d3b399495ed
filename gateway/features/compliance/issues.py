"""Issues (management): create, list, view, edit, move through statuses, comment; their JSON shape and conversions.

Over 600 lines on purpose: one concept (management issues) whose pages, JSON and attachment hooks share their form and conversion helpers; split by sub-concept next (comments, attachments).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, compliance_pb2

from gateway.errors import ApiError
from gateway.features.compliance.attachments import stager
from gateway.features.compliance.comments import (
    CommentIn,
    IssueChangeOut,
    IssueCommentOut,
    change_out,
    comment_out,
    issue_history,
)
from gateway.features.compliance.common import (
    IM,
    NOTICES,
    STATUSES,
    C,
    choices,
    management_route,
    person_choices,
)
from gateway.forms import form_action
from gateway.present import (
    copy_given,
    enum_name,
    enum_value,
    flag,
    form_errors,
    me_or,
    notice,
    page_links,
    page_request,
    person_names,
    pretty_time,
    query_params,
    raise_invalid,
    time_of,
    who,
)
from gateway.routing import Ctx, Route
from gateway.uploads import (
    MAX_UPLOAD_REQUEST,
    AttachmentOut,
    attachment_out,
    attachment_view,
    files_by_comment,
    read_upload_form,
)

Severity = Literal["critical", "high", "medium", "low"]
Status = Literal["open", "investigating", "remediation", "resolved", "closed", "accepted"]
SEVERITIES = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"}
SEVERITY_BADGES = {"critical": "danger", "high": "danger", "medium": "warn", "low": ""}
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


def severity_value(name: str | None) -> Any:
    return enum_value(C.IssueSeverity, "ISSUE_SEVERITY_", name)


def status_value(name: str | None) -> Any:
    return enum_value(C.IssueStatus, "ISSUE_STATUS_", name)


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


class IssueDetailOut(msgspec.Struct):
    issue: IssueOut
    comments: list[IssueCommentOut]
    history: list[IssueChangeOut]
    attachments: list[AttachmentOut] = msgspec.field(default_factory=list)


class IssueListOut(msgspec.Struct):
    items: list[IssueOut]
    next_page_token: str
    total: int


class IssueIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    severity: Severity
    description: str = ""
    assignee_id: str = ""
    remediation_due_date: str = ""
    control_id: str = ""
    control_test_id: str = ""
    # Files staged with POST /management/api/v1/issues/uploads.
    attachment_ids: list[str] = msgspec.field(default_factory=list)


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


class IssuesQuery(msgspec.Struct):
    status: str = ""
    severity: str = ""
    assignee: str = ""
    overdue: str = ""  # "true" | "false"
    control: str = ""
    q: str = ""
    page_size: int = 25
    page_token: str = ""


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


def detail_out(d: compliance_pb2.IssueDetail, files_base: str = "/api/v1/issues") -> IssueDetailOut:
    return IssueDetailOut(
        issue=issue_out(d.issue),
        comments=[comment_out(c) for c in d.comments],
        history=[change_out(h) for h in d.history],
        attachments=[attachment_out(a, f"{files_base}/{d.issue.number}") for a in d.attachments],
    )


def issues_request(ctx: Ctx, q: IssuesQuery) -> compliance_pb2.ListIssuesRequest:
    fields: dict[str, str] = {}
    req = C.ListIssuesRequest(
        caller=ctx.caller(),
        statuses=[status_value(s) for s in choices(q.status, STATUSES, "status", fields)],
        severities=[severity_value(s) for s in choices(q.severity, SEVERITIES, "severity", fields)],
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


def issue_patch(
    caller: common_pb2.Caller, ref: str, body: IssuePatchIn
) -> compliance_pb2.UpdateIssueRequest:
    req = C.UpdateIssueRequest(caller=caller, issue_id=ref, severity=severity_value(body.severity))
    copy_given(
        body,
        req,
        (
            "title",
            "description",
            "assignee_id",
            "remediation_due_date",
            "control_id",
            "control_test_id",
        ),
    )
    return req


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
            attachment_ids=body.attachment_ids,
        ),
    )
    return ctx.json(issue_out(issue), status=201)


async def api_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    detail = await ctx.call(
        ctx.backends.compliance.GetIssue,
        C.GetIssueRequest(caller=ctx.caller(), issue_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(detail_out(detail, "/management/api/v1/issues"))


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
            caller=ctx.caller(),
            issue_id=request.match_info["id"],
            body=body.body,
            attachment_ids=body.attachment_ids,
        ),
    )
    return ctx.json(comment_out(comment), status=201)


def issue_view(s: compliance_pb2.Issue) -> dict[str, Any]:
    out = msgspec.structs.asdict(issue_out(s))
    out["status_label"] = STATUSES.get(out["status"], out["status"])
    out["status_badge"] = STATUS_BADGES.get(out["status"], "")
    out["severity_label"] = SEVERITIES.get(out["severity"], out["severity"])
    out["severity_badge"] = SEVERITY_BADGES.get(out["severity"], "")
    out["next_statuses"] = [(s, STATUSES[s]) for s in NEXT_STATUSES.get(out["status"], [])]
    return out


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
        issues = [issue_view(s) for s in resp.issues]
        first, nxt = page_links("/management/issues", params, resp.next_page_token)
    people = await person_choices(ctx)
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
    return await form_action(
        ctx.call(
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
        ),
        lambda exc: page_issues(request, ctx, form_errors(exc), raw, 422),
        lambda issue: f"/management/issues/{issue.number}?done=created",
        expected=(422,),
    )


async def _render_issue(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
    files: list[tuple[str, str]] | None = None,
) -> web.Response:
    detail = await ctx.call(
        ctx.backends.compliance.GetIssue,
        C.GetIssueRequest(caller=ctx.caller(), issue_id=ref),
        safe=True,
    )
    view = issue_view(detail.issue)
    ids = {view["assignee_id"] or "", view["reporter_id"] or ""}
    ids |= {c.author_id for c in detail.comments} | {h.actor_id for h in detail.history}
    ids |= {h.old_value for h in detail.history if h.field == "assignee_id"}
    ids |= {h.new_value for h in detail.history if h.field == "assignee_id"}
    people = await person_choices(ctx)
    names = await person_names(ctx, ids)
    attached = files_by_comment(
        [
            attachment_view(a, f"/management/issues/{detail.issue.number}", may_remove=True)
            for a in detail.attachments
        ]
    )
    comments = [
        {
            "body": c.body,
            "created_at": pretty_time(time_of(c, "created_at")),
            "author": who(names, c.author_id),
            "files": attached.get(c.id, []),
        }
        for c in detail.comments
    ]
    return ctx.render(
        "compliance/issue.html",
        {
            "s": view,
            "names": names,
            "comments": comments,
            "history": issue_history(detail, names),
            "people": people,
            "severities": SEVERITIES,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
            "pretty": pretty_time,
            "files": attached.get("", []),
            "kept_files": files or [],
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
    return await form_action(
        ctx.call(ctx.backends.compliance.UpdateIssue, issue_patch(ctx.caller(), ref, patch)),
        lambda exc: _render_issue(ctx, ref, form_errors(exc), raw, exc.status),
        f"/management/issues/{ref}?done=updated",
    )


async def page_issue_status(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    target = raw.get("status", "")
    if target not in STATUSES:
        return await _render_issue(ctx, ref, {"status": "choose a status"}, raw, 422)
    return await form_action(
        ctx.call(
            ctx.backends.compliance.ChangeIssueStatus,
            C.ChangeIssueStatusRequest(
                caller=ctx.caller(),
                issue_id=ref,
                status=status_value(target),
                acceptance_deadline=raw.get("acceptance_deadline", "").strip(),
                note=raw.get("note", ""),
            ),
        ),
        lambda exc: _render_issue(
            ctx,
            ref,
            exc.fields or {"status": exc.message.partition(": ")[2] or exc.message},
            raw,
            exc.status,
        ),
        f"/management/issues/{ref}?done=status",
    )


async def page_comment_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    upload = await read_upload_form(ctx, stager(ctx, ctx.caller(), "issue", ref))
    raw = upload.fields
    if upload.error is not None:
        message = upload.error.fields.get("file") or upload.error.message
        return await _render_issue(
            ctx, ref, {"body": message}, raw, upload.error.status, files=upload.files
        )
    return await form_action(
        ctx.call(
            ctx.backends.compliance.AddIssueComment,
            C.AddIssueCommentRequest(
                caller=ctx.caller(),
                issue_id=ref,
                body=raw.get("body", ""),
                attachment_ids=upload.attachment_ids,
            ),
        ),
        lambda exc: _render_issue(
            ctx,
            ref,
            {"body": exc.fields.get("body") or exc.message},
            raw,
            exc.status,
            files=upload.files,
        ),
        f"/management/issues/{ref}?done=commented#comments",
        expected=(409, 413, 422),
    )


ROUTES: list[Route] = [
    # Management JSON: issues.
    management_route(
        "GET",
        "/management/api/v1/issues",
        api_issues,
        IM,
        query=IssuesQuery,
        response=IssueListOut,
        summary="Issues with filters (status, severity, assignee, overdue, control, q)",
    ),
    management_route(
        "POST",
        "/management/api/v1/issues",
        api_create_issue,
        IM,
        body=IssueIn,
        response=IssueOut,
        status=201,
        summary="Create an issue",
    ),
    management_route(
        "GET",
        "/management/api/v1/issues/{id}",
        api_issue,
        IM,
        response=IssueDetailOut,
        summary="An issue with comments and history",
    ),
    management_route(
        "PATCH",
        "/management/api/v1/issues/{id}",
        api_update_issue,
        IM,
        body=IssuePatchIn,
        response=IssueOut,
        summary='Edit and assign an issue ("" clears assignee or due date)',
    ),
    management_route(
        "POST",
        "/management/api/v1/issues/{id}/status",
        api_issue_status,
        IM,
        body=IssueStatusIn,
        response=IssueOut,
        summary="Move an issue along its workflow (illegal transitions are 409)",
    ),
    management_route(
        "POST",
        "/management/api/v1/issues/{id}/comments",
        api_comment_issue,
        IM,
        body=CommentIn,
        response=IssueCommentOut,
        status=201,
        summary="Comment on an issue",
    ),
    management_route("GET", "/management/issues", page_issues, IM, kind="page", summary="Issues"),
    management_route(
        "POST",
        "/management/issues",
        page_create_issue,
        IM,
        kind="page",
        summary="Create an issue (form)",
    ),
    management_route(
        "GET", "/management/issues/{id}", page_issue, IM, kind="page", summary="An issue"
    ),
    management_route(
        "POST",
        "/management/issues/{id}",
        page_update_issue,
        IM,
        kind="page",
        summary="Edit an issue (form)",
    ),
    management_route(
        "POST",
        "/management/issues/{id}/status",
        page_issue_status,
        IM,
        kind="page",
        summary="Change an issue's status (form)",
    ),
    management_route(
        "POST",
        "/management/issues/{id}/comments",
        page_comment_issue,
        IM,
        kind="page",
        summary="Comment on an issue (form, with files: multipart)",
        streams_body=True,
        max_body=MAX_UPLOAD_REQUEST,
    ),
]
