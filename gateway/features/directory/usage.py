"""Portal usage: who has portal access, who used it and when last (page, JSON, CSV)."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import directory_pb2

from gateway.errors import ApiError
from gateway.features.directory.common import (
    API,
    PAGE_LIMIT,
    READ,
    D,
    P,
    management_route,
    page_route,
)
from gateway.features.directory.persons import PersonListOut, person_out, person_view
from gateway.present import (
    filter_query,
    page_links,
    page_request,
    query_params,
    raise_invalid,
    time_of,
)
from gateway.routing import Ctx, Route

UsageFilter = Literal["all", "never", "stale"]
USAGE_FILTERS = {
    "all": "Everyone with portal access",
    "never": "Has access, never signed in",
    "stale": "Has access, not signed in for N days",
}


class PortalUsageQuery(msgspec.Struct):
    filter: str = "all"  # all | never | stale
    stale_days: int = 90
    page_size: int = 50
    page_token: str = ""


def usage_request(ctx: Ctx, q: PortalUsageQuery) -> directory_pb2.PortalUsageRequest:
    fields: dict[str, str] = {}
    if q.filter not in USAGE_FILTERS:
        fields["filter"] = "use all, never or stale"
    if q.filter == "stale" and not 1 <= q.stale_days <= 3650:
        fields["stale_days"] = "give a number of days between 1 and 3650"
    req = D.PortalUsageRequest(
        caller=ctx.caller(),
        filter=q.filter,
        stale_days=q.stale_days if q.filter == "stale" else 0,
        page=page_request(q.page_size, q.page_token, fields, PAGE_LIMIT),
    )
    raise_invalid(fields)
    return req


async def api_portal_usage(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.directory.PortalUsage, usage_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        PersonListOut(
            items=[person_out(p) for p in resp.persons],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


def _usage_params(request: web.Request) -> dict[str, str]:
    params = query_params(request, ("filter", "stale_days", "page_token"))
    params["filter"] = params["filter"] or "all"
    return params


def _usage_query(params: dict[str, str], page_size: int = 50) -> PortalUsageQuery:
    try:
        days = int(params.get("stale_days") or 90)
    except ValueError:
        raise ApiError(
            422, "invalid", "stale_days: give a number of days", {"stale_days": "not a number"}
        ) from None
    return PortalUsageQuery(
        filter=params["filter"],
        stale_days=days,
        page_size=page_size,
        page_token=params.get("page_token", ""),
    )


async def page_portal_usage(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = _usage_params(request)
    persons: list[dict[str, Any]] = []
    total = 0
    error = ""
    first = nxt = ""
    try:
        resp = await ctx.call(
            ctx.backends.directory.PortalUsage,
            usage_request(ctx, _usage_query(params)),
            safe=True,
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        persons = [person_view(p) for p in resp.persons]
        total = resp.total
        first, nxt = page_links("/management/portal-usage", params, resp.next_page_token)
    export = "/management/portal-usage.csv?" + filter_query(params)
    return ctx.render(
        "directory/portal_usage.html",
        {
            "persons": persons,
            "total": total,
            "params": params,
            "filters": USAGE_FILTERS,
            "error": error,
            "first_link": first,
            "next_link": nxt,
            "export_link": export,
        },
    )


async def page_portal_usage_csv(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """Every matching person as CSV (streamed page by page)."""
    params = _usage_params(request)
    params["page_token"] = ""
    first = usage_request(ctx, _usage_query(params, page_size=500))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="portal-usage.csv"',
        }
    )
    await response.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["email", "name", "login_name", "active", "created_at", "last_portal_login_at"])
    req = first
    while True:
        resp = await ctx.call(ctx.backends.directory.PortalUsage, req, safe=True)
        for p in resp.persons:
            writer.writerow(
                [
                    _csv_cell(p.email),
                    _csv_cell(p.name),
                    _csv_cell(p.login_name),
                    "true" if p.active else "false",
                    time_of(p, "created_at") or "",
                    time_of(p, "last_portal_login_at") or "",
                ]
            )
        await response.write(buf.getvalue().encode())
        buf.seek(0)
        buf.truncate()
        if not resp.next_page_token:
            break
        req = D.PortalUsageRequest()
        req.CopyFrom(first)
        req.page.page_token = resp.next_page_token
    await response.write_eof()
    return response


def _csv_cell(value: str) -> str:
    """No spreadsheet formulas from user data (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


ROUTES: list[Route] = [
    management_route(
        "GET",
        f"{API}/portal-usage",
        api_portal_usage,
        READ,
        query=PortalUsageQuery,
        response=PersonListOut,
        summary="Who has portal access and when they last signed in (filter all | never | "
        "stale with stale_days)",
    ),
    page_route("GET", f"{P}/portal-usage", page_portal_usage, READ, "Portal usage"),
    page_route("GET", f"{P}/portal-usage.csv", page_portal_usage_csv, READ, "Portal usage as CSV"),
]
