"""The ticket queue (management): list and filter, create on behalf, edit, change status, comment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2, tickets_pb2

from gateway.errors import ApiError
from gateway.features.tickets.attachments import stager
from gateway.features.tickets.common import (
    MANAGE,
    NOTICES,
    PRIORITY_NAMES,
    STATUS_LABELS,
    TYPE_LABELS,
    StatusName,
    T,
    TicketCommentOut,
    TicketCommentResultOut,
    TicketFieldChangeOut,
    TicketListOut,
    TicketOnBehalfIn,
    TicketOut,
    TicketPatchIn,
    TicketStatusChangeOut,
    comment_out,
    copy_planned,
    create_request,
    field_change_out,
    idempotency_key_of,
    level_value,
    status_change_out,
    status_name,
    statuses_of,
    ticket_out,
    ticket_view,
    type_of,
)
from gateway.forms import form_action
from gateway.present import (
    assignee_text,
    change_text,
    checked,
    copy_given,
    enum_value,
    form_errors,
    me_or,
    notice,
    page_links,
    page_request,
    person_names,
    pretty_time,
    query_params,
    raise_invalid,
    remember_names,
    split_list,
    system_caller,
    time_of,
    who,
)
from gateway.routing import Ctx, Route
from gateway.uploads import (
    MAX_UPLOAD_REQUEST,
    AttachmentOut,
    attachment_out,
    attachment_view,
    files_by_comment,
    read_upload_form,
)

SORTS = {
    "created_desc": T.TICKET_SORT_CREATED_DESC,
    "created_asc": T.TICKET_SORT_CREATED_ASC,
    "updated_desc": T.TICKET_SORT_UPDATED_DESC,
    "updated_asc": T.TICKET_SORT_UPDATED_ASC,
    "priority": T.TICKET_SORT_PRIORITY,
    "priority_desc": T.TICKET_SORT_PRIORITY_DESC,
}
SORT_LABELS = {
    "created_desc": "Newest first",
    "created_asc": "Oldest first",
    "updated_desc": "Recently updated",
    "updated_asc": "Least recently updated",
    "priority": "Most urgent first",
    "priority_desc": "Least urgent first",
}


class TicketManageDetailOut(msgspec.Struct):
    ticket: TicketOut
    comments: list[TicketCommentOut]
    status_history: list[TicketStatusChangeOut]
    field_history: list[TicketFieldChangeOut]
    attachments: list[AttachmentOut] = msgspec.field(default_factory=list)


class TicketManageCommentIn(msgspec.Struct, forbid_unknown_fields=True):
    body: str = ""  # may be empty when files are attached
    internal: bool = False
    attachment_ids: list[str] = msgspec.field(default_factory=list)


class TicketStatusIn(msgspec.Struct, forbid_unknown_fields=True):
    status: StatusName
    note: str = ""


class TicketQueueQuery(msgspec.Struct):
    status: str = ""
    type: str = ""
    priority: str = ""  # comma-separated: critical,high,...
    assignee: str = ""  # a person id, "none" or "me"
    requester: str = ""
    q: str = ""
    sort: str = "created_desc"
    page_size: int = 25
    page_token: str = ""


def _queue_request(ctx: Ctx, q: TicketQueueQuery) -> tickets_pb2.ListTicketsRequest:
    fields: dict[str, str] = {}
    priorities = []
    for name in split_list(q.priority):
        if name not in PRIORITY_NAMES[1:]:
            fields["priority"] = f"unknown priority {name!r}; use {', '.join(PRIORITY_NAMES[1:])}"
        else:
            priorities.append(PRIORITY_NAMES.index(name))
    if q.sort not in SORTS:
        fields["sort"] = f"use one of {', '.join(SORTS)}"
    req = T.ListTicketsRequest(
        caller=ctx.caller(),
        statuses=statuses_of(q.status, fields),
        type=type_of(q.type, fields),
        priorities=priorities,  # type: ignore[arg-type]
        assignee_id=me_or(ctx, q.assignee),
        requester_id=q.requester.strip(),
        query=q.q,
        sort=SORTS.get(q.sort, T.TICKET_SORT_CREATED_DESC),
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    return req


async def api_queue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.tickets.ListTickets, _queue_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        TicketListOut(
            items=[ticket_out(t) for t in resp.tickets], next_page_token=resp.next_page_token
        )
    )


async def api_manage_create(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TicketOnBehalfIn = ctx.body
    req = create_request(ctx.caller(), body, idempotency_key_of(request), body.requester_id)
    ticket = await ctx.call(ctx.backends.tickets.CreateTicket, req, safe=bool(req.idempotency_key))
    return ctx.json(ticket_out(ticket), status=201)


def _manage_detail(detail: tickets_pb2.TicketDetail) -> TicketManageDetailOut:
    return TicketManageDetailOut(
        ticket=ticket_out(detail.ticket),
        comments=[comment_out(c) for c in detail.comments],
        status_history=[status_change_out(h) for h in detail.status_history],
        field_history=[field_change_out(h) for h in detail.field_history],
        attachments=[
            attachment_out(a, f"/management/api/v1/tickets/{detail.ticket.number}")
            for a in detail.attachments
        ],
    )


async def api_manage_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    detail = await ctx.call(
        ctx.backends.tickets.GetTicket,
        T.GetTicketRequest(caller=ctx.caller(), ticket_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(_manage_detail(detail))


def update_request(
    caller: common_pb2.Caller, ticket_id: str, body: TicketPatchIn
) -> tickets_pb2.UpdateTicketRequest:
    req = T.UpdateTicketRequest(
        caller=caller,
        ticket_id=ticket_id,
        impact=level_value(body.impact),
        urgency=level_value(body.urgency),
        risk=level_value(body.risk),
    )
    copy_given(body, req, ("title", "description", "reason", "assignee_id"))
    copy_planned(req, body)
    return req


async def api_manage_update(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TicketPatchIn = ctx.body
    ticket = await ctx.call(
        ctx.backends.tickets.UpdateTicket,
        update_request(ctx.caller(), request.match_info["id"], body),
    )
    return ctx.json(ticket_out(ticket))


async def api_manage_status(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TicketStatusIn = ctx.body
    ticket = await ctx.call(
        ctx.backends.tickets.ChangeStatus,
        T.ChangeStatusRequest(
            caller=ctx.caller(),
            ticket_id=request.match_info["id"],
            status=enum_value(T.TicketStatus, "TICKET_STATUS_", body.status),
            note=body.note,
        ),
    )
    return ctx.json(ticket_out(ticket))


async def api_manage_comment(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TicketManageCommentIn = ctx.body
    resp = await ctx.call(
        ctx.backends.tickets.AddComment,
        T.AddCommentRequest(
            caller=ctx.caller(),
            ticket_id=request.match_info["id"],
            body=body.body,
            internal=body.internal,
            attachment_ids=body.attachment_ids,
        ),
    )
    return ctx.json(
        TicketCommentResultOut(comment=comment_out(resp.comment), ticket=ticket_out(resp.ticket)),
        status=201,
    )


async def _agents(ctx: Ctx) -> list[tuple[str, str]]:
    """(id, name) of persons holding Ticket:manage, for the assignee menu; [] when unknown."""
    try:
        resp = await ctx.call(
            ctx.backends.directory.ListPersonsWithPermission,
            directory_pb2.ListPersonsWithPermissionRequest(
                caller=system_caller(ctx),
                permission="Ticket:manage",
                page=common_pb2.PageRequest(page_size=100),
            ),
            safe=True,
        )
    except Exception:
        return []
    remember_names(ctx, resp.persons)
    return sorted(((p.id, p.name or p.email) for p in resp.persons if p.active), key=lambda x: x[1])


async def page_queue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    keys = ("status", "type", "priority", "assignee", "requester", "q", "sort", "page_token")
    params = query_params(request, keys)
    params["sort"] = params["sort"] or "created_desc"
    query = TicketQueueQuery(
        status=params["status"],
        type=params["type"],
        priority=params["priority"],
        assignee=params["assignee"],
        requester=params["requester"],
        q=params["q"][:200],
        sort=params["sort"],
        page_token=params["page_token"],
    )
    tickets: list[dict[str, Any]] = []
    next_token = ""
    error = ""
    try:
        resp = await ctx.call(
            ctx.backends.tickets.ListTickets, _queue_request(ctx, query), safe=True
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        tickets = [ticket_view(t) for t in resp.tickets]
        next_token = resp.next_page_token
    first_link, next_link = page_links("/management/tickets", params, next_token)
    agents = await _agents(ctx)
    names = await person_names(
        ctx, {t["requester_id"] for t in tickets} | {t["assignee_id"] or "" for t in tickets}
    )
    return ctx.render(
        "tickets/queue.html",
        {
            "tickets": tickets,
            "params": params,
            "statuses": STATUS_LABELS,
            "types": TYPE_LABELS,
            "priorities": PRIORITY_NAMES[1:],
            "sorts": SORT_LABELS,
            "names": names,
            "agents": agents,
            "next_link": next_link,
            "first_link": first_link,
            "error": error,
            "pretty": pretty_time,
        },
    )


async def _render_manage_detail(
    ctx: Ctx,
    ref: str,
    *,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
    files: list[tuple[str, str]] | None = None,
) -> web.Response:
    detail = await ctx.call(
        ctx.backends.tickets.GetTicket,
        T.GetTicketRequest(caller=ctx.caller(), ticket_id=ref),
        safe=True,
    )
    t = ticket_view(detail.ticket)
    ids = {t["requester_id"], t["assignee_id"] or ""}
    ids |= {c.author_id for c in detail.comments}
    ids |= {h.actor_id for h in detail.status_history} | {h.actor_id for h in detail.field_history}
    agents = await _agents(ctx)
    names = await person_names(ctx, ids)
    base = f"/management/tickets/{detail.ticket.number}"
    open_ = detail.ticket.status != T.TICKET_STATUS_CLOSED
    attached = files_by_comment(
        [attachment_view(a, base, may_remove=open_) for a in detail.attachments]
    )
    comments = [
        {
            "body": c.body,
            "internal": c.internal,
            "author": who(names, c.author_id),
            "created_at": pretty_time(time_of(c, "created_at")),
            "files": attached.get(c.id, []),
        }
        for c in detail.comments
    ]
    history: list[dict[str, Any]] = []
    for h in detail.status_history:
        history.append(
            {
                "at": pretty_time(time_of(h, "changed_at")),
                "when": h.changed_at.ToNanoseconds(),
                "who": who(names, h.actor_id),
                "what": (
                    f"Status {STATUS_LABELS.get(status_name(h.from_status), '')} → "
                    f"{STATUS_LABELS.get(status_name(h.to_status), '')}"
                    if h.from_status
                    else "Created"
                )
                + (" (requester's comment)" if h.by_requester_comment else ""),
                "note": h.note,
            }
        )
    for f in detail.field_history:
        old, new = f.old_value, f.new_value
        if f.field == "assignee":
            old, new = assignee_text(names, old), assignee_text(names, new)
        history.append(
            {
                "at": pretty_time(time_of(f, "changed_at")),
                "when": f.changed_at.ToNanoseconds(),
                "who": who(names, f.actor_id),
                "what": change_text(f.field.replace("_", " ").capitalize(), old, new),
                "note": "",
            }
        )
    history.sort(key=lambda h: int(h["when"]))
    form = raw or {}
    return ctx.render(
        "tickets/manage_detail.html",
        {
            "t": t,
            "names": names,
            "comments": comments,
            "history": history,
            "agents": agents,
            "errors": errors or {},
            "form": form,
            "notice": notice,
            "levels": ("low", "medium", "high"),
            "pretty": pretty_time,
            "statuses": STATUS_LABELS,
            "files": attached.get("", []),
            "kept_files": files or [],
        },
        status=status,
    )


async def page_manage_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_manage_detail(
        ctx, request.match_info["id"], notice=notice(request, NOTICES)
    )


async def page_manage_update(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    errors: dict[str, str] = {}
    patch: dict[str, Any] = {}
    for name in ("title", "description", "reason"):
        if name in raw:
            patch[name] = raw[name]
    if "assignee_id" in raw:
        patch["assignee_id"] = raw["assignee_id"].strip()
    for name in ("impact", "urgency", "risk"):
        value = raw.get(name, "")
        if value:
            if value not in ("low", "medium", "high"):
                errors[name] = "choose low, medium or high"
            else:
                patch[name] = value
    for name in ("planned_start", "planned_end"):
        value = raw.get(name, "").strip()
        if value:
            try:
                patch[name] = datetime.fromisoformat(value)
            except ValueError:
                errors[name] = "enter a date and time"
    if not errors:
        body = TicketPatchIn(**patch)
        try:
            await ctx.call(
                ctx.backends.tickets.UpdateTicket, update_request(ctx.caller(), ref, body)
            )
        except ApiError as exc:
            if exc.status != 422:
                raise
            errors = form_errors(exc)
    if errors:
        return await _render_manage_detail(ctx, ref, errors=errors, raw=raw, status=422)
    raise ctx.redirect(f"/management/tickets/{ref}?done=updated")


async def page_manage_status(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    target = raw.get("status", "")
    if target not in STATUS_LABELS:
        return await _render_manage_detail(
            ctx, ref, errors={"status": "choose a status"}, raw=raw, status=422
        )
    return await form_action(
        ctx.call(
            ctx.backends.tickets.ChangeStatus,
            T.ChangeStatusRequest(
                caller=ctx.caller(),
                ticket_id=ref,
                status=enum_value(T.TicketStatus, "TICKET_STATUS_", target),
                note=raw.get("note", ""),
            ),
        ),
        lambda exc: _render_manage_detail(
            ctx,
            ref,
            errors={"status": exc.message.partition(": ")[2] or exc.message},
            raw=raw,
            status=exc.status,
        ),
        f"/management/tickets/{ref}?done=status",
    )


async def page_manage_comment(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    upload = await read_upload_form(ctx, stager(ctx, ctx.caller(), ref))
    raw = upload.fields
    if upload.error is not None:
        message = upload.error.fields.get("file") or upload.error.message
        return await _render_manage_detail(
            ctx,
            ref,
            errors={"body": message},
            raw=raw,
            status=upload.error.status,
            files=upload.files,
        )
    internal = checked(raw, "internal")
    return await form_action(
        ctx.call(
            ctx.backends.tickets.AddComment,
            T.AddCommentRequest(
                caller=ctx.caller(),
                ticket_id=ref,
                body=raw.get("body", ""),
                internal=internal,
                attachment_ids=upload.attachment_ids,
            ),
        ),
        lambda exc: _render_manage_detail(
            ctx,
            ref,
            errors={"body": exc.fields.get("body") or exc.message},
            raw=raw,
            status=exc.status,
            files=upload.files,
        ),
        f"/management/tickets/{ref}?done={'noted' if internal else 'commented'}",
        expected=(409, 413, 422),
    )


def _manage(method: str, path: str, handler: Any, **kw: Any) -> Route:
    return Route(method, path, handler, surface="management", permissions=MANAGE, **kw)


ROUTES: list[Route] = [
    # Management JSON.
    _manage(
        "GET",
        "/management/api/v1/tickets",
        api_queue,
        query=TicketQueueQuery,
        response=TicketListOut,
        summary="The ticket queue with filters, search, sorting and pagination",
    ),
    _manage(
        "POST",
        "/management/api/v1/tickets",
        api_manage_create,
        body=TicketOnBehalfIn,
        response=TicketOut,
        status=201,
        summary="Create a ticket, optionally on behalf of a requester",
    ),
    _manage(
        "GET",
        "/management/api/v1/tickets/{id}",
        api_manage_ticket,
        response=TicketManageDetailOut,
        summary="A ticket with all comments, internal notes and its full history",
    ),
    _manage(
        "PATCH",
        "/management/api/v1/tickets/{id}",
        api_manage_update,
        body=TicketPatchIn,
        response=TicketOut,
        summary='Edit fields and assign (assignee_id "" unassigns)',
    ),
    _manage(
        "POST",
        "/management/api/v1/tickets/{id}/status",
        api_manage_status,
        body=TicketStatusIn,
        response=TicketOut,
        summary="Change the status along the workflow (illegal transitions are 409)",
    ),
    _manage(
        "POST",
        "/management/api/v1/tickets/{id}/comments",
        api_manage_comment,
        body=TicketManageCommentIn,
        response=TicketCommentResultOut,
        status=201,
        summary="Add a public comment or an internal note",
    ),
    # Management pages.
    _manage("GET", "/management/tickets", page_queue, kind="page", summary="Ticket queue"),
    _manage("GET", "/management/tickets/{id}", page_manage_ticket, kind="page", summary="A ticket"),
    _manage(
        "POST", "/management/tickets/{id}", page_manage_update, kind="page", summary="Edit a ticket"
    ),
    _manage(
        "POST",
        "/management/tickets/{id}/status",
        page_manage_status,
        kind="page",
        summary="Change a ticket's status",
    ),
    _manage(
        "POST",
        "/management/tickets/{id}/comments",
        page_manage_comment,
        kind="page",
        summary="Comment or write an internal note (with files: multipart)",
        streams_body=True,
        max_body=MAX_UPLOAD_REQUEST,
    ),
]
