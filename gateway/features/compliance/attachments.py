"""Files of compliance items through the gateway: a control test's evidence (staged by its
assignee, attached when completing it, from the portal too) and the files of issues and their
comments; their downloads and removal. The compliance service checks every file against its
item; the portal sections Issues and Control Tests hide their files with the rest.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from frontdesk.v1 import common_pb2

from gateway.errors import ApiError
from gateway.features.compliance.common import (
    CM,
    IM,
    PORTAL_PERMISSIONS,
    TEST_COMPLETE,
    C,
    issues_route,
    management_route,
    tests_route,
)
from gateway.present import portal_caller
from gateway.routing import Ctx, Route
from gateway.uploads import (
    MAX_UPLOAD_REQUEST,
    Stage,
    StagedOut,
    attachment_out,
    read_upload_form,
    send_file,
    stream_download,
)

ISSUE, TEST = "issue", "control_test"
FILES_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "description": "one or more files (repeat the field); the type is judged by content",
            "type": "array",
            "items": {"type": "string", "format": "binary"},
        }
    },
}


def stager(ctx: Ctx, caller: common_pb2.Caller, kind: str, item_id: str) -> Stage:
    """Stage each file of a form for item `item_id` of `kind` ("" with issue: a new issue)."""

    async def stage(name: str, chunks: Any) -> Any:
        header = C.ComplianceAttachmentHeader(
            caller=caller, item_kind=kind, item_id=item_id, name=name
        )
        return await send_file(
            ctx,
            ctx.backends.compliance.UploadAttachment,
            C.UploadComplianceAttachmentRequest(header=header),
            chunks,
            lambda c: C.UploadComplianceAttachmentRequest(chunk=c),
        )

    return stage


def caller_of(ctx: Ctx) -> common_pb2.Caller:
    if ctx.route.surface == "portal":
        return portal_caller(ctx, PORTAL_PERMISSIONS)
    return ctx.caller()


def _kind(ctx: Ctx) -> str:
    return TEST if "/control-tests/" in ctx.request.path else ISSUE


async def api_stage(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    form = await read_upload_form(
        ctx, stager(ctx, caller_of(ctx), _kind(ctx), request.match_info.get("id", ""))
    )
    if form.error is not None:
        raise form.error
    if not form.staged:
        raise ApiError(422, "invalid", "send at least one file", {"file": "required"})
    return ctx.json(StagedOut([attachment_out(a, "") for a in form.staged]), status=201)


async def download(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    got = await ctx.call(
        ctx.backends.compliance.GetAttachment,
        C.GetComplianceAttachmentRequest(
            caller=caller_of(ctx),
            item_kind=_kind(ctx),
            item_id=request.match_info["id"],
            attachment_id=request.match_info["aid"],
        ),
        safe=True,
    )
    a = got.attachment
    return await stream_download(
        ctx,
        got.url,
        name=a.name,
        content_type=a.content_type,
        size=int(a.size),
        inline=request.query.get("inline") == "1",
    )


async def _remove(request: web.Request, ctx: Ctx) -> None:
    await ctx.call(
        ctx.backends.compliance.RemoveAttachment,
        C.RemoveComplianceAttachmentRequest(
            caller=caller_of(ctx),
            item_kind=_kind(ctx),
            item_id=request.match_info["id"],
            attachment_id=request.match_info["aid"],
        ),
    )


async def api_remove(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _remove(request, ctx)
    return web.Response(status=204)


async def page_remove(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _remove(request, ctx)
    item = request.path.rsplit("/attachments/", 1)[0]
    raise ctx.redirect(f"{item}?done=removed#attachments")


_UPLOAD: dict[str, Any] = {
    "uploads": ("multipart/form-data",),
    "upload_schema": FILES_SCHEMA,
    "streams_body": True,
    "max_body": MAX_UPLOAD_REQUEST,
    "response": StagedOut,
    "status": 201,
}
_FILE = "/attachments/{aid}"
_DOWNLOAD = "Download a file (inline=1 shows an image)"


def _files(prefix: str, route: Any, page_prefix: str, **kw: Any) -> list[Route]:
    """Download (JSON and page) and removal (JSON and form) routes of one item path."""
    return [
        route("GET", f"{prefix}{_FILE}", download, downloads=True, summary=_DOWNLOAD, **kw),
        route("DELETE", f"{prefix}{_FILE}", api_remove, status=204, summary="Remove a file", **kw),
        route("GET", f"{page_prefix}{_FILE}", download, kind="page", summary="A file", **kw),
        route(
            "POST",
            f"{page_prefix}{_FILE}/remove",
            page_remove,
            kind="page",
            summary="Remove a file (form)",
            **kw,
        ),
    ]


def _cm(method: str, path: str, handler: Any, **kw: Any) -> Route:
    return management_route(method, path, handler, CM, **kw)


def _im(method: str, path: str, handler: Any, **kw: Any) -> Route:
    return management_route(method, path, handler, IM, **kw)


ROUTES: list[Route] = [
    tests_route(
        "POST",
        "/api/v1/control-tests/{id}/uploads",
        api_stage,
        permissions=TEST_COMPLETE,
        summary="Stage evidence files for a test assigned to me (multipart, fields 'file'); "
        "name their ids in attachment_ids when completing it",
        **_UPLOAD,
    ),
    *_files("/api/v1/control-tests/{id}", tests_route, "/control-tests/{id}"),
    issues_route(
        "POST",
        "/api/v1/issues/{id}/uploads",
        api_stage,
        summary="Stage files for a comment on an issue assigned to me (multipart, 'file')",
        **_UPLOAD,
    ),
    *_files("/api/v1/issues/{id}", issues_route, "/issues/{id}"),
    _im(
        "POST",
        "/management/api/v1/issues/uploads",
        api_stage,
        summary="Stage files for a new issue (multipart, fields 'file')",
        **_UPLOAD,
    ),
    _im(
        "POST",
        "/management/api/v1/issues/{id}/uploads",
        api_stage,
        summary="Stage files for a comment on an issue (multipart, fields 'file')",
        **_UPLOAD,
    ),
    *_files("/management/api/v1/issues/{id}", _im, "/management/issues/{id}"),
    *_files("/management/api/v1/control-tests/{id}", _cm, "/management/control-tests/{id}"),
]
