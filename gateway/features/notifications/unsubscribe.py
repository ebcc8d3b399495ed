"""One-click unsubscribe (RFC 8058) from a mail's List-Unsubscribe URL.

The signed token in the URL is the authority (it names the person and the kind of message):
no sign-in, and the POST carries no CSRF token, because mail providers send it without
cookies (`List-Unsubscribe=One-Click`). The GET only shows a button: link scanners that follow
URLs never unsubscribe anyone.
"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import ApiError
from gateway.features.notifications.common import N, stub
from gateway.routing import Ctx, Route

LABELS = {
    "ticket_updates": "updates on your tickets",
    "issue_assigned": "issues assigned to you",
    "control_test_assigned": "control tests assigned to you",
    "weekly_digest": "the weekly digest",
}


async def page_confirm(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.render(
        "notifications/unsubscribe.html", {"token": request.match_info["token"], "done": ""}
    )


async def page_unsubscribe(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    assert ctx.workspace is not None
    try:
        resp = await ctx.call(
            stub(ctx).Unsubscribe,
            N.UnsubscribeRequest(token=request.match_info["token"], workspace_id=ctx.workspace.id),
        )
    except ApiError as exc:
        if exc.status in (404, 422):
            raise ApiError(404, "not_found", "this unsubscribe link is not valid") from None
        raise
    label = LABELS.get(resp.preference, resp.preference)
    return ctx.render("notifications/unsubscribe.html", {"token": "", "done": label})


ROUTES = [
    Route(
        "GET",
        "/unsubscribe/{token}",
        page_confirm,
        surface="public",
        kind="page",
        summary="Confirm unsubscribing from one kind of e-mail",
    ),
    Route(
        "POST",
        "/unsubscribe/{token}",
        page_unsubscribe,
        surface="public",
        kind="page",
        csrf=False,
        summary="One-click unsubscribe (RFC 8058): turns that kind of e-mail off",
    ),
]
