"""The audit trail of the directory's changes."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import directory_pb2

from gateway.errors import ApiError
from gateway.features.directory.common import (
    API,
    AUDIT,
    PAGE_LIMIT,
    D,
    P,
    management_route,
    page_route,
)
from gateway.present import (
    page_links,
    page_request,
    person_names,
    pretty_time,
    query_params,
    raise_invalid,
    time_of,
)
from gateway.routing import Ctx, Route

AUDIT_TYPES = ("person", "role", "group", "settings", "import", "workspace")


class AuditEntryOut(msgspec.Struct):
    id: str
    actor_id: str | None
    action: str
    object_type: str
    object_id: str
    before: Any
    after: Any
    at: str | None


class AuditListOut(msgspec.Struct):
    items: list[AuditEntryOut]
    next_page_token: str


class AuditQuery(msgspec.Struct):
    object_type: str = ""
    object_id: str = ""
    page_size: int = 50
    page_token: str = ""


def _json_or_none(raw: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def audit_out(a: directory_pb2.AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=a.id,
        actor_id=a.actor_id or None,
        action=a.action,
        object_type=a.object_type,
        object_id=a.object_id,
        before=_json_or_none(a.before_json),
        after=_json_or_none(a.after_json),
        at=time_of(a, "at"),
    )


def audit_request(ctx: Ctx, q: AuditQuery) -> directory_pb2.ListAuditRequest:
    fields: dict[str, str] = {}
    req = D.ListAuditRequest(
        caller=ctx.caller(),
        object_type=q.object_type.strip()[:50],
        object_id=q.object_id.strip()[:100],
        page=page_request(q.page_size, q.page_token, fields, PAGE_LIMIT),
    )
    raise_invalid(fields)
    return req


async def api_audit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.directory.ListAudit, audit_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        AuditListOut(
            items=[audit_out(a) for a in resp.entries], next_page_token=resp.next_page_token
        )
    )


async def page_audit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, ("object_type", "object_id", "page_token"))
    entries: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        q = AuditQuery(**params)  # type: ignore[arg-type]
        resp = await ctx.call(ctx.backends.directory.ListAudit, audit_request(ctx, q), safe=True)
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        for a in resp.entries:
            out = msgspec.structs.asdict(audit_out(a))
            out["when"] = pretty_time(out["at"])
            out["before_text"] = _pretty_json(out["before"])
            out["after_text"] = _pretty_json(out["after"])
            entries.append(out)
        first, nxt = page_links("/management/audit", params, resp.next_page_token)
    names = await person_names(ctx, {e["actor_id"] or "" for e in entries})
    return ctx.render(
        "directory/audit.html",
        {
            "entries": entries,
            "names": names,
            "params": params,
            "types": AUDIT_TYPES,
            "error": error,
            "first_link": first,
            "next_link": nxt,
        },
    )


def _pretty_json(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


ROUTES: list[Route] = [
    management_route(
        "GET",
        f"{API}/audit",
        api_audit,
        AUDIT,
        query=AuditQuery,
        response=AuditListOut,
        summary="The audit trail, newest first (filter by object_type, object_id)",
    ),
    page_route("GET", f"{P}/audit", page_audit, AUDIT, "Audit trail"),
]
