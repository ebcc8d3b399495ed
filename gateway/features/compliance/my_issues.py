"""My issues (portal): the ones assigned to me, view and comment on them."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import compliance_pb2

from gateway.errors import ApiError
from gateway.features.compliance.attachments import stager
from gateway.features.compliance.comments import (
    CommentIn,
    IssueCommentOut,
    comment_out,
    issue_history,
)
from gateway.features.compliance.common import (
    PORTAL_PERMISSIONS,
    STATUSES,
    C,
    choices,
    issues_route,
)
from gateway.features.compliance.issues import (
    IssueDetailOut,
    IssueListOut,
    detail_out,
    issue_out,
    issue_view,
    status_value,
)
from gateway.forms import form_action
from gateway.present import (
    page_links,
    page_request,
    person_names,
    portal_caller,
    pretty_time,
    query_params,
    raise_invalid,
    time_of,
    who,
)
from gateway.routing import Ctx, Route
from gateway.uploads import (
    MAX_UPLOAD_REQUEST,
    attachment_view,
    files_by_comment,
    read_upload_form,
)


class MyIssuesQuery(msgspec.Struct):
    status: str = ""  # comma-separated
    page_size: int = 25
    page_token: str = ""


def my_issues_request(ctx: Ctx, q: MyIssuesQuery) -> compliance_pb2.ListMyIssuesRequest:
    fields: dict[str, str] = {}
    req = C.ListMyIssuesRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        statuses=[status_value(s) for s in choices(q.status, STATUSES, "status", fields)],
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    return req


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
            attachment_ids=body.attachment_ids,
        ),
    )
    return ctx.json(comment_out(comment), status=201)


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
        issues = [issue_view(s) for s in resp.issues]
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
    ctx: Ctx,
    ref: str,
    comment_error: str = "",
    comment_raw: str = "",
    status: int = 200,
    files: list[tuple[str, str]] | None = None,
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
    open_ = detail.issue.status != C.ISSUE_STATUS_CLOSED
    attached = files_by_comment(
        [
            attachment_view(a, f"/issues/{detail.issue.number}", me if open_ else "")
            for a in detail.attachments
        ]
    )
    comments = [
        {
            "body": c.body,
            "created_at": pretty_time(time_of(c, "created_at")),
            "author": who(names, c.author_id, me, "Compliance team"),
            "files": attached.get(c.id, []),
        }
        for c in detail.comments
    ]
    return ctx.render(
        "compliance/my_issue.html",
        {
            "s": issue_view(detail.issue),
            "comments": comments,
            "history": issue_history(detail, names, me),
            "comment_error": comment_error,
            "comment_raw": comment_raw,
            "files": attached.get("", []),
            "kept_files": files or [],
            "pretty": pretty_time,
            "commented": ctx.request.query.get("done") == "commented",
        },
        status=status,
    )


async def page_my_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_my_issue(ctx, request.match_info["id"])


async def page_comment_my_issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    caller = portal_caller(ctx, PORTAL_PERMISSIONS)
    upload = await read_upload_form(ctx, stager(ctx, caller, "issue", ref))
    body = upload.fields.get("body", "")
    if upload.error is not None:
        message = upload.error.fields.get("file") or upload.error.message
        return await _render_my_issue(
            ctx, ref, message, body, status=upload.error.status, files=upload.files
        )
    return await form_action(
        ctx.call(
            ctx.backends.compliance.AddIssueComment,
            C.AddIssueCommentRequest(
                caller=caller, issue_id=ref, body=body, attachment_ids=upload.attachment_ids
            ),
        ),
        lambda exc: _render_my_issue(
            ctx,
            ref,
            exc.fields.get("body") or exc.message,
            body,
            status=exc.status,
            files=upload.files,
        ),
        f"/issues/{ref}?done=commented#comments",
        expected=(409, 413, 422),
    )


ROUTES: list[Route] = [
    # Portal JSON: issues assigned to me.
    issues_route(
        "GET",
        "/api/v1/issues",
        api_my_issues,
        query=MyIssuesQuery,
        response=IssueListOut,
        summary="Issues assigned to me (filter by comma-separated status)",
    ),
    issues_route(
        "GET",
        "/api/v1/issues/{id}",
        api_my_issue,
        response=IssueDetailOut,
        summary="An issue assigned to me, with comments and history",
    ),
    issues_route(
        "POST",
        "/api/v1/issues/{id}/comments",
        api_comment_my_issue,
        body=CommentIn,
        response=IssueCommentOut,
        status=201,
        summary="Comment on an issue assigned to me",
    ),
    # Portal pages.
    issues_route("GET", "/issues", page_my_issues, kind="page", summary="My issues"),
    issues_route("GET", "/issues/{id}", page_my_issue, kind="page", summary="An issue of mine"),
    issues_route(
        "POST",
        "/issues/{id}/comments",
        page_comment_my_issue,
        kind="page",
        summary="Comment on an issue (form, with files: multipart)",
        streams_body=True,
        max_body=MAX_UPLOAD_REQUEST,
    ),
]
