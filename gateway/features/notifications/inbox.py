"""My notifications in the portal: the list (JSON and page), mark read, open one."""

from __future__ import annotations

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2

from gateway.errors import ApiError
from gateway.features.notifications.common import (
    N,
    NotificationListOut,
    notification_out,
    stub,
)
from gateway.present import pretty_time
from gateway.routing import Ctx, Route


class NotificationsQuery(msgspec.Struct):
    unread_only: bool = False
    page_size: int = 25
    page_token: str = ""


class MarkReadIn(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[str] = []
    all: bool = False


class MarkReadOut(msgspec.Struct):
    marked: int
    unread: int


async def _list(ctx: Ctx, unread_only: bool, size: int, token: str) -> N.ListNotificationsResponse:
    if not 0 <= size <= 100:
        raise ApiError(422, "invalid", "page_size: 1 to 100", {"page_size": "1 to 100"})
    return await ctx.call(
        stub(ctx).ListNotifications,
        N.ListNotificationsRequest(
            caller=ctx.caller(),
            page=common_pb2.PageRequest(page_size=size, page_token=token),
            unread_only=unread_only,
        ),
        safe=True,
    )


async def api_list(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: NotificationsQuery = ctx.query
    resp = await _list(ctx, q.unread_only, q.page_size, q.page_token)
    return ctx.json(
        NotificationListOut(
            items=[notification_out(n) for n in resp.notifications],
            next_page_token=resp.next_page_token,
            unread=resp.unread,
        )
    )


async def _mark(ctx: Ctx, ids: list[str], everything: bool) -> N.MarkReadResponse:
    return await ctx.call(
        stub(ctx).MarkRead, N.MarkReadRequest(caller=ctx.caller(), ids=ids, all=everything)
    )


async def api_mark_read(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: MarkReadIn = ctx.body
    resp = await _mark(ctx, body.ids, body.all)
    return ctx.json(MarkReadOut(marked=resp.marked, unread=resp.unread))


async def page_list(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: NotificationsQuery = ctx.query
    resp = await _list(ctx, q.unread_only, q.page_size, q.page_token)
    items = [
        {
            **msgspec.structs.asdict(notification_out(n)),
            "when": pretty_time(n.created_at.ToJsonString()),
        }
        for n in resp.notifications
    ]
    next_href = f"/notifications?page_token={resp.next_page_token}" if resp.next_page_token else ""
    return ctx.render(
        "notifications/list.html",
        {"items": items, "unread": resp.unread, "next_href": next_href},
    )


async def page_mark_all(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _mark(ctx, [], True)
    raise ctx.redirect("/notifications")


async def page_open(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """Mark one notification read and go to its item."""
    nid = request.match_info["id"]
    await _mark(ctx, [nid], False)
    resp = await _list(ctx, False, 100, "")
    link = next((n.link for n in resp.notifications if n.id == nid), "/notifications")
    if not link.startswith("/") or link.startswith("//"):
        link = "/notifications"
    raise ctx.redirect(link)


ROUTES = [
    Route(
        "GET",
        "/api/v1/notifications",
        api_list,
        surface="portal",
        kind="api",
        query=NotificationsQuery,
        response=NotificationListOut,
        summary="My notifications, newest first, with the unread count",
    ),
    Route(
        "POST",
        "/api/v1/notifications/read",
        api_mark_read,
        surface="portal",
        kind="api",
        body=MarkReadIn,
        response=MarkReadOut,
        summary="Mark my notifications read (ids, or all)",
    ),
    Route(
        "GET",
        "/notifications",
        page_list,
        surface="portal",
        kind="page",
        query=NotificationsQuery,
        summary="My notifications",
    ),
    Route(
        "POST",
        "/notifications/read",
        page_mark_all,
        surface="portal",
        kind="page",
        summary="Mark all my notifications read",
    ),
    Route(
        "POST",
        "/notifications/{id}/open",
        page_open,
        surface="portal",
        kind="page",
        summary="Open a notification (marks it read)",
    ),
]
