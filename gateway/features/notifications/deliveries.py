"""The delivery log of one person for administrators: every e-mail recorded for them
(pending, sent, failed), JSON and a console page."""

from __future__ import annotations

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2

from gateway.features.notifications.common import (
    DeliveryListOut,
    N,
    delivery_out,
    stub,
)
from gateway.present import pretty_time
from gateway.routing import Ctx, Route


class DeliveriesQuery(msgspec.Struct):
    page_size: int = 50
    page_token: str = ""


async def _deliveries(ctx: Ctx, person_id: str, q: DeliveriesQuery) -> N.ListDeliveriesResponse:
    return await ctx.call(
        stub(ctx).ListDeliveries,
        N.ListDeliveriesRequest(
            caller=ctx.caller(),
            person_id=person_id,
            page=common_pb2.PageRequest(page_size=q.page_size, page_token=q.page_token),
        ),
        safe=True,
    )


async def api_deliveries(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await _deliveries(ctx, request.match_info["id"], ctx.query)
    return ctx.json(
        DeliveryListOut(
            items=[delivery_out(d) for d in resp.deliveries], next_page_token=resp.next_page_token
        )
    )


async def page_deliveries(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    person_id = request.match_info["id"]
    resp = await _deliveries(ctx, person_id, ctx.query)
    items = [
        {
            **msgspec.structs.asdict(delivery_out(d)),
            "when": pretty_time(d.created_at.ToJsonString()),
            "badge": {"sent": "ok", "pending": "warn", "failed": "danger"}.get(d.status, ""),
        }
        for d in resp.deliveries
    ]
    return ctx.render(
        "notifications/deliveries.html",
        {"items": items, "person_id": person_id, "next_token": resp.next_page_token},
    )


ROUTES = [
    Route(
        "GET",
        "/management/api/v1/persons/{id}/deliveries",
        api_deliveries,
        surface="management",
        kind="api",
        permissions=("Person:manage",),
        query=DeliveriesQuery,
        response=DeliveryListOut,
        summary="The e-mails recorded for one person (pending, sent, failed)",
    ),
    Route(
        "GET",
        "/management/persons/{id}/deliveries",
        page_deliveries,
        surface="management",
        kind="page",
        permissions=("Person:manage",),
        query=DeliveriesQuery,
        summary="A person's e-mail delivery log",
    ),
]
