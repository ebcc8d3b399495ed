"""Files on tickets: staging uploads (JSON), downloads and removal, in the portal and the
management console. The tickets service decides who sees which file with the same checks as
for the ticket (the portal's Caller carries no management permission, so a file of an internal
note never reaches it); the section toggle hides these routes with the rest of Tickets.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2

from gateway.errors import ApiError
from gateway.features.tickets.common import MANAGE, PORTAL_PERMISSIONS, T
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


class DownloadQuery(msgspec.Struct):
    inline: str = ""  # "1": show a raster image inline (previews); other files ignore it


def stager(ctx: Ctx, caller: common_pb2.Caller, ticket_id: str) -> Stage:
    """Stage each file of a form for a new ticket ("") or a comment on `ticket_id`."""

    async def stage(name: str, chunks: Any) -> Any:
        header = T.AttachmentHeader(caller=caller, ticket_id=ticket_id, name=name)
        return await send_file(
            ctx,
            ctx.backends.tickets.UploadAttachment,
            T.UploadAttachmentRequest(header=header),
            chunks,
            lambda c: T.UploadAttachmentRequest(chunk=c),
        )

    return stage


def _caller(ctx: Ctx) -> common_pb2.Caller:
    if ctx.route.surface == "portal":
        return portal_caller(ctx, PORTAL_PERMISSIONS)
    return ctx.caller()


async def api_stage(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ticket_id = request.match_info.get("id", "")
    form = await read_upload_form(ctx, stager(ctx, _caller(ctx), ticket_id))
    if form.error is not None:
        raise form.error
    if not form.staged:
        raise ApiError(422, "invalid", "send at least one file", {"file": "required"})
    return ctx.json(StagedOut([attachment_out(a, "") for a in form.staged]), status=201)


async def download(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ticket_id = request.match_info["id"]
    got = await ctx.call(
        ctx.backends.tickets.GetAttachment,
        T.GetAttachmentRequest(
            caller=_caller(ctx), ticket_id=ticket_id, attachment_id=request.match_info["aid"]
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
        ctx.backends.tickets.RemoveAttachment,
        T.RemoveAttachmentRequest(
            caller=_caller(ctx),
            ticket_id=request.match_info["id"],
            attachment_id=request.match_info["aid"],
        ),
    )


async def api_remove(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _remove(request, ctx)
    return web.Response(status=204)


async def page_remove(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _remove(request, ctx)
    prefix = "/management" if ctx.route.surface == "management" else ""
    raise ctx.redirect(f"{prefix}/tickets/{request.match_info['id']}?done=removed#attachments")


def _portal(method: str, path: str, handler: Any, **kw: Any) -> Route:
    kw.setdefault("permissions", ("Ticket:read",))
    return Route(method, path, handler, surface="portal", section="tickets", **kw)


def _manage(method: str, path: str, handler: Any, **kw: Any) -> Route:
    return Route(method, path, handler, surface="management", permissions=MANAGE, **kw)


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
_UPLOAD = {
    "uploads": ("multipart/form-data",),
    "upload_schema": FILES_SCHEMA,
    "streams_body": True,
    "max_body": MAX_UPLOAD_REQUEST,
    "response": StagedOut,
    "status": 201,
}
_FILE = "/attachments/{aid}"

ROUTES: list[Route] = [
    _portal(
        "POST",
        "/api/v1/tickets/uploads",
        api_stage,
        permissions=PORTAL_PERMISSIONS,
        summary="Stage files for a new ticket (multipart, fields 'file'); then name their ids "
        "in attachment_ids when submitting it",
        **_UPLOAD,
    ),
    _portal(
        "POST",
        "/api/v1/tickets/{id}/uploads",
        api_stage,
        summary="Stage files for a comment on my ticket (multipart, fields 'file')",
        **_UPLOAD,
    ),
    _portal(
        "GET",
        "/api/v1/tickets/{id}" + _FILE,
        download,
        query=DownloadQuery,
        downloads=True,
        summary="Download a file of my ticket (inline=1 shows an image)",
    ),
    _portal(
        "DELETE",
        "/api/v1/tickets/{id}" + _FILE,
        api_remove,
        status=204,
        summary="Remove a file I attached",
    ),
    _portal("GET", "/tickets/{id}" + _FILE, download, kind="page", summary="A file of my ticket"),
    _portal(
        "POST",
        "/tickets/{id}" + _FILE + "/remove",
        page_remove,
        kind="page",
        summary="Remove a file I attached (form)",
    ),
    _manage(
        "POST",
        "/management/api/v1/tickets/uploads",
        api_stage,
        summary="Stage files for a new ticket (multipart, fields 'file')",
        **_UPLOAD,
    ),
    _manage(
        "POST",
        "/management/api/v1/tickets/{id}/uploads",
        api_stage,
        summary="Stage files for a comment or internal note (multipart, fields 'file')",
        **_UPLOAD,
    ),
    _manage(
        "GET",
        "/management/api/v1/tickets/{id}" + _FILE,
        download,
        query=DownloadQuery,
        downloads=True,
        summary="Download a file of a ticket (inline=1 shows an image)",
    ),
    _manage(
        "DELETE",
        "/management/api/v1/tickets/{id}" + _FILE,
        api_remove,
        status=204,
        summary="Remove a file (recorded in the ticket's history)",
    ),
    _manage(
        "GET", "/management/tickets/{id}" + _FILE, download, kind="page", summary="A ticket's file"
    ),
    _manage(
        "POST",
        "/management/tickets/{id}" + _FILE + "/remove",
        page_remove,
        kind="page",
        summary="Remove a file (form)",
    ),
]
