"""My tickets in the portal: list, submit, view, comment (pages and /api/v1 JSON)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, tickets_pb2

from gateway.errors import ApiError
from gateway.features.tickets.attachments import stager
from gateway.features.tickets.common import (
    PORTAL_PERMISSIONS,
    STATUS_LABELS,
    TYPE_LABELS,
    Level,
    T,
    TicketCommentIn,
    TicketCommentResultOut,
    TicketDetailOut,
    TicketIn,
    TicketListOut,
    TicketOut,
    comment_out,
    create_request,
    idempotency_key_of,
    status_change_out,
    status_name,
    statuses_of,
    ticket_out,
    ticket_view,
    type_of,
)
from gateway.forms import form_action
from gateway.present import (
    fields_message,
    form_errors,
    page_links,
    page_request,
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
    attachment_out,
    attachment_view,
    files_by_comment,
    read_upload_form,
)

log = logging.getLogger(__name__)


class MyTicketsQuery(msgspec.Struct):
    status: str = ""  # comma-separated statuses
    type: str = ""
    q: str = ""
    page_size: int = 25
    page_token: str = ""


async def api_my_tickets(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: MyTicketsQuery = ctx.query
    fields: dict[str, str] = {}
    req = T.ListMyTicketsRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        statuses=statuses_of(q.status, fields),
        type=type_of(q.type, fields),
        query=q.q,
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    resp = await ctx.call(ctx.backends.tickets.ListMyTickets, req, safe=True)
    return ctx.json(
        TicketListOut(
            items=[ticket_out(t) for t in resp.tickets], next_page_token=resp.next_page_token
        )
    )


async def api_create_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TicketIn = ctx.body
    req = create_request(portal_caller(ctx, PORTAL_PERMISSIONS), body, idempotency_key_of(request))
    # Safe to retry only when the client gave a key: the service then returns the same ticket.
    ticket = await ctx.call(ctx.backends.tickets.CreateTicket, req, safe=bool(req.idempotency_key))
    return ctx.json(ticket_out(ticket), status=201)


async def api_my_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    detail = await ctx.call(
        ctx.backends.tickets.GetTicket,
        T.GetTicketRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS), ticket_id=request.match_info["id"]
        ),
        safe=True,
    )
    return ctx.json(
        TicketDetailOut(
            ticket=ticket_out(detail.ticket),
            comments=[comment_out(c) for c in detail.comments if not c.internal],
            status_history=[status_change_out(h) for h in detail.status_history],
            attachments=[
                attachment_out(a, f"/api/v1/tickets/{detail.ticket.number}")
                for a in detail.attachments
                if not a.internal
            ],
        )
    )


async def api_comment_my_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TicketCommentIn = ctx.body
    resp = await ctx.call(
        ctx.backends.tickets.AddComment,
        T.AddCommentRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS),
            ticket_id=request.match_info["id"],
            body=body.body,
            attachment_ids=body.attachment_ids,
        ),
    )
    return ctx.json(
        TicketCommentResultOut(comment=comment_out(resp.comment), ticket=ticket_out(resp.ticket)),
        status=201,
    )


async def waiting_for_me(ctx: Ctx, limit: int = 5) -> list[dict[str, Any]]:
    """The caller's tickets that wait for their answer, for the portal home (first things
    first); empty when tickets are not theirs to see or the service does not answer."""
    if not (ctx.section_on("tickets") and ctx.has(*PORTAL_PERMISSIONS[:1])):
        return []
    req = T.ListMyTicketsRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        statuses=[tickets_pb2.TICKET_STATUS_WAITING_FOR_REQUESTER],
        page=common_pb2.PageRequest(page_size=limit),
    )
    try:
        resp = await ctx.call(ctx.backends.tickets.ListMyTickets, req, safe=True)
    except ApiError as exc:
        log.info("portal home without waiting tickets: %s", exc.message)
        return []
    return [ticket_view(t) for t in resp.tickets]


async def page_my_tickets(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, ("status", "type", "q", "page_token"))
    fields: dict[str, str] = {}
    req = T.ListMyTicketsRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        statuses=statuses_of(params["status"], fields),
        type=type_of(params["type"], fields),
        query=params["q"][:200],
        page=common_pb2.PageRequest(page_size=25, page_token=params["page_token"]),
    )
    tickets: list[dict[str, Any]] = []
    next_token = ""
    error = ""
    if fields:
        error = fields_message(fields)
    else:
        try:
            resp = await ctx.call(ctx.backends.tickets.ListMyTickets, req, safe=True)
        except ApiError as exc:
            if exc.status != 422:
                raise
            error = "That page no longer exists; start again from the first page."
        else:
            tickets = [ticket_view(t) for t in resp.tickets]
            next_token = resp.next_page_token
    first_link, next_link = page_links("/tickets", params, next_token)
    return ctx.render(
        "tickets/list.html",
        {
            "tickets": tickets,
            "params": params,
            "statuses": STATUS_LABELS,
            "types": TYPE_LABELS,
            "next_link": next_link,
            "first_link": first_link,
            "error": error,
            "pretty": pretty_time,
            "can_create": ctx.has("Ticket:create"),
        },
    )


class TicketForm(msgspec.Struct):
    """The new-ticket form as typed; everything is checked by the service (all fields at once)."""

    type: str = "incident"
    title: str = ""
    description: str = ""
    impact: str = ""
    urgency: str = ""
    reason: str = ""
    risk: str = ""
    planned_start: str = ""
    planned_end: str = ""
    idempotency_key: str = ""


def _form_to_request(
    ctx: Ctx, form: TicketForm
) -> tuple[tickets_pb2.CreateTicketRequest | None, dict[str, str]]:
    fields: dict[str, str] = {}
    if form.type not in TYPE_LABELS:
        fields["type"] = "choose incident or change request"
    levels: dict[str, Level | None] = {}
    for name in ("impact", "urgency", "risk"):
        raw = getattr(form, name)
        if raw and raw not in ("low", "medium", "high"):
            fields[name] = "choose low, medium or high"
        levels[name] = raw if raw in ("low", "medium", "high") else None
    times: dict[str, datetime | None] = {}
    for name in ("planned_start", "planned_end"):
        raw = getattr(form, name).strip()
        times[name] = None
        if raw and form.type == "change_request":
            try:
                times[name] = datetime.fromisoformat(raw)
            except ValueError:
                fields[name] = "enter a date and time"
    if fields:
        return None, fields
    change = form.type == "change_request"  # the hidden change fields count only for one
    body = TicketIn(
        type=form.type,  # type: ignore[arg-type]
        title=form.title,
        description=form.description,
        impact=levels["impact"],
        urgency=levels["urgency"],
        reason=form.reason if change else "",
        risk=levels["risk"] if change else None,
        planned_start=times["planned_start"],
        planned_end=times["planned_end"],
    )
    return create_request(
        portal_caller(ctx, PORTAL_PERMISSIONS), body, form.idempotency_key[:200]
    ), {}


def _render_new(
    ctx: Ctx,
    raw: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    files: list[tuple[str, str]] | None = None,
) -> web.Response:
    values = {f: raw.get(f, "") for f in TicketForm.__struct_fields__}
    values["type"] = values["type"] or "incident"
    values["idempotency_key"] = values["idempotency_key"] or str(uuid.uuid4())
    return ctx.render(
        "tickets/new.html",
        {
            "form": values,
            "errors": errors,
            "levels": ("low", "medium", "high"),
            "kept_files": files or [],
        },
        status=status,
    )


async def page_new_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = {"type": request.query.get("type", "incident")}
    return _render_new(ctx, raw, {})


async def page_create_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    caller = portal_caller(ctx, PORTAL_PERMISSIONS)
    upload = await read_upload_form(ctx, stager(ctx, caller, ""))
    raw = upload.fields
    if upload.error is not None:
        errors = {"files": upload.error.fields.get("file") or upload.error.message}
        return _render_new(ctx, raw, errors, status=upload.error.status, files=upload.files)
    form = TicketForm(**{k: raw.get(k, "") for k in TicketForm.__struct_fields__})
    req, errors = _form_to_request(ctx, form)
    if req is None:
        return _render_new(ctx, raw, errors, status=422, files=upload.files)
    req.attachment_ids.extend(upload.attachment_ids)
    return await form_action(
        ctx.call(ctx.backends.tickets.CreateTicket, req, safe=bool(req.idempotency_key)),
        lambda exc: _render_new(ctx, raw, form_errors(exc), status=422, files=upload.files),
        lambda ticket: f"/tickets/{ticket.number}?created=1",
        expected=(413, 422),
    )


async def _render_portal_detail(
    ctx: Ctx,
    ref: str,
    comment_error: str = "",
    comment_raw: str = "",
    status: int = 200,
    files: list[tuple[str, str]] | None = None,
) -> web.Response:
    detail = await ctx.call(
        ctx.backends.tickets.GetTicket,
        T.GetTicketRequest(caller=portal_caller(ctx, PORTAL_PERMISSIONS), ticket_id=ref),
        safe=True,
    )
    me = ctx.person_id
    base = f"/tickets/{detail.ticket.number}"
    open_ = detail.ticket.status != T.TICKET_STATUS_CLOSED
    attached = files_by_comment(
        [
            attachment_view(a, base, me if open_ else "")
            for a in detail.attachments
            if not a.internal
        ]
    )
    comments = [
        {
            "body": c.body,
            "created_at": pretty_time(time_of(c, "created_at")),
            "author": who({}, c.author_id, me, "Support"),
            "files": attached.get(c.id, []),
        }
        for c in detail.comments
        if not c.internal
    ]
    history = [
        {
            "from": STATUS_LABELS.get(status_name(h.from_status), ""),
            "to": STATUS_LABELS.get(status_name(h.to_status), ""),
            "note": h.note,
            "by_comment": h.by_requester_comment,
            "at": pretty_time(time_of(h, "changed_at")),
        }
        for h in detail.status_history
    ]
    return ctx.render(
        "tickets/detail.html",
        {
            "t": ticket_view(detail.ticket),
            "comments": comments,
            "history": history,
            "comment_error": comment_error,
            "comment_raw": comment_raw,
            "files": attached.get("", []),
            "kept_files": files or [],
            "removed": ctx.request.query.get("done") == "removed",
            "commented": ctx.request.query.get("done") == "commented",
            "created": ctx.request.query.get("created") == "1",
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_my_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_portal_detail(ctx, request.match_info["id"])


async def page_comment_my_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    caller = portal_caller(ctx, PORTAL_PERMISSIONS)
    upload = await read_upload_form(ctx, stager(ctx, caller, ref))
    body = upload.fields.get("body", "")
    if upload.error is not None:
        message = upload.error.fields.get("file") or upload.error.message
        return await _render_portal_detail(
            ctx, ref, message, body, status=upload.error.status, files=upload.files
        )
    return await form_action(
        ctx.call(
            ctx.backends.tickets.AddComment,
            T.AddCommentRequest(
                caller=caller, ticket_id=ref, body=body, attachment_ids=upload.attachment_ids
            ),
        ),
        lambda exc: _render_portal_detail(
            ctx,
            ref,
            exc.fields.get("body") or exc.fields.get("attachment_ids") or exc.message,
            body,
            status=exc.status,
            files=upload.files,
        ),
        f"/tickets/{ref}?done=commented#comments",
        expected=(409, 413, 422),
    )


def _portal(method: str, path: str, handler: Any, **kw: Any) -> Route:
    kw.setdefault("permissions", ("Ticket:read",))
    return Route(method, path, handler, surface="portal", section="tickets", **kw)


ROUTES: list[Route] = [
    # Portal JSON.
    _portal(
        "GET",
        "/api/v1/tickets",
        api_my_tickets,
        query=MyTicketsQuery,
        response=TicketListOut,
        summary="My tickets, newest first (filter by status, type; search with q)",
    ),
    _portal(
        "POST",
        "/api/v1/tickets",
        api_create_ticket,
        permissions=PORTAL_PERMISSIONS,
        body=TicketIn,
        response=TicketOut,
        status=201,
        summary="Submit an incident or a change request (Idempotency-Key header honoured)",
    ),
    _portal(
        "GET",
        "/api/v1/tickets/{id}",
        api_my_ticket,
        response=TicketDetailOut,
        summary="One of my tickets with its comments and status history",
    ),
    _portal(
        "POST",
        "/api/v1/tickets/{id}/comments",
        api_comment_my_ticket,
        body=TicketCommentIn,
        response=TicketCommentResultOut,
        status=201,
        summary="Comment on my ticket (reopens it when it was resolved)",
    ),
    # Portal pages.
    _portal("GET", "/tickets", page_my_tickets, kind="page", summary="My tickets"),
    _portal(
        "GET",
        "/tickets/new",
        page_new_ticket,
        kind="page",
        permissions=PORTAL_PERMISSIONS,
        summary="Submit a ticket",
    ),
    _portal(
        "POST",
        "/tickets/new",
        page_create_ticket,
        kind="page",
        permissions=PORTAL_PERMISSIONS,
        summary="Submit a ticket (form, with files: multipart)",
        streams_body=True,
        max_body=MAX_UPLOAD_REQUEST,
    ),
    _portal("GET", "/tickets/{id}", page_my_ticket, kind="page", summary="One of my tickets"),
    _portal(
        "POST",
        "/tickets/{id}/comments",
        page_comment_my_ticket,
        kind="page",
        summary="Comment on my ticket (form, with files: multipart)",
        streams_body=True,
        max_body=MAX_UPLOAD_REQUEST,
    ),
]
