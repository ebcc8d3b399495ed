"""The workspace's webhooks: JSON API and console page (Settings:manage).

Endpoints receive the directory's access-change events as signed HTTPS POSTs (Standard
Webhooks); the page shows each endpoint's signing secret and the recent delivery log.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import webhooks_pb2

from gateway.errors import ApiError
from gateway.present import see_other, time_of
from gateway.routing import Ctx, Route


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""
    event_types: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=100)]], msgspec.Meta(max_length=50)
    ] = []


class WebhookOut(msgspec.Struct):
    id: str
    url: str
    description: str
    secret: str
    event_types: list[str]
    created_at: str | None


class WebhookList(msgspec.Struct):
    items: list[WebhookOut]


class DeliveryOut(msgspec.Struct):
    id: int
    webhook_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str
    created_at: str | None
    delivered_at: str | None
    next_attempt_at: str | None


class DeliveryList(msgspec.Struct):
    items: list[DeliveryOut]


class DeliveriesQuery(msgspec.Struct):
    webhook_id: str = ""
    limit: Annotated[int, msgspec.Meta(ge=0, le=500)] = 50


class Ok(msgspec.Struct):
    status: str = "ok"


def _webhook(w: webhooks_pb2.Webhook) -> WebhookOut:
    return WebhookOut(
        w.id,
        w.url,
        w.description,
        w.secret,
        list(w.event_types),
        time_of(w, "created_at", whole_seconds=True),
    )


def _delivery(d: webhooks_pb2.WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        webhook_id=d.webhook_id,
        event_id=d.event_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        last_status=d.last_status or None,
        last_error=d.last_error,
        created_at=time_of(d, "created_at", whole_seconds=True),
        delivered_at=time_of(d, "delivered_at", whole_seconds=True),
        next_attempt_at=time_of(d, "next_attempt_at", whole_seconds=True),
    )


async def _list(ctx: Ctx) -> list[WebhookOut]:
    listed = await ctx.call(
        ctx.backends.webhooks.ListWebhooks,
        webhooks_pb2.ListWebhooksRequest(caller=ctx.caller()),
        safe=True,
    )
    return [_webhook(w) for w in listed.webhooks]


async def _deliveries(ctx: Ctx, webhook_id: str, limit: int) -> list[DeliveryOut]:
    listed = await ctx.call(
        ctx.backends.webhooks.ListWebhookDeliveries,
        webhooks_pb2.ListWebhookDeliveriesRequest(
            caller=ctx.caller(), webhook_id=webhook_id, limit=limit
        ),
        safe=True,
    )
    return [_delivery(d) for d in listed.deliveries]


async def _create(ctx: Ctx, body: WebhookIn) -> WebhookOut:
    created = await ctx.call(
        ctx.backends.webhooks.CreateWebhook,
        webhooks_pb2.CreateWebhookRequest(
            caller=ctx.caller(),
            url=body.url,
            description=body.description,
            event_types=body.event_types,
        ),
    )
    return _webhook(created)


async def list_webhooks(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(WebhookList(await _list(ctx)))


async def create_webhook(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(await _create(ctx, ctx.body), status=201)


async def delete_webhook(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await ctx.call(
        ctx.backends.webhooks.DeleteWebhook,
        webhooks_pb2.DeleteWebhookRequest(
            caller=ctx.caller(), webhook_id=request.match_info["webhook_id"]
        ),
    )
    return ctx.json(Ok())


async def list_deliveries(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: DeliveriesQuery = ctx.query
    return ctx.json(DeliveryList(await _deliveries(ctx, q.webhook_id, q.limit)))


async def _render(ctx: Ctx, status: int = 200, **values: Any) -> web.Response:
    context: dict[str, Any] = {
        "webhooks": await _list(ctx),
        "deliveries": await _deliveries(ctx, "", 50),
        "error": "",
    }
    context.update(values)
    return ctx.render("webhooks/webhooks.html", context, status=status)


async def webhooks_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render(ctx)


async def webhooks_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    body = WebhookIn(
        url=raw.get("url", "")[:2000],
        description=raw.get("description", "")[:200],
        event_types=[t for t in raw.get("event_types", "").replace(",", " ").split() if t][:50],
    )
    try:
        await _create(ctx, body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _render(ctx, status=422, error=exc.message)
    return see_other("/management/webhooks")


async def webhook_delete_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await ctx.call(
        ctx.backends.webhooks.DeleteWebhook,
        webhooks_pb2.DeleteWebhookRequest(
            caller=ctx.caller(), webhook_id=request.match_info["webhook_id"]
        ),
    )
    return see_other("/management/webhooks")


_S: dict[str, Any] = {"surface": "management", "permissions": ("Settings:manage",)}
ROUTES: list[Route] = [
    Route(
        "GET",
        "/management/api/v1/webhooks",
        list_webhooks,
        response=WebhookList,
        summary="The workspace's webhooks",
        **_S,
    ),
    Route(
        "POST",
        "/management/api/v1/webhooks",
        create_webhook,
        body=WebhookIn,
        response=WebhookOut,
        status=201,
        summary="Add a webhook (HTTPS; signed per Standard Webhooks)",
        **_S,
    ),
    Route(
        "DELETE",
        "/management/api/v1/webhooks/{webhook_id}",
        delete_webhook,
        response=Ok,
        summary="Remove a webhook (its pending deliveries fail; the log stays)",
        **_S,
    ),
    Route(
        "GET",
        "/management/api/v1/webhook-deliveries",
        list_deliveries,
        query=DeliveriesQuery,
        response=DeliveryList,
        summary="The webhook delivery log, newest first",
        **_S,
    ),
    Route("GET", "/management/webhooks", webhooks_page, kind="page", summary="Webhooks", **_S),
    Route(
        "POST", "/management/webhooks", webhooks_submit, kind="page", summary="Add a webhook", **_S
    ),
    Route(
        "POST",
        "/management/webhooks/{webhook_id}/delete",
        webhook_delete_submit,
        kind="page",
        summary="Remove a webhook",
        **_S,
    ),
]
