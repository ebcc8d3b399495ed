"""Gateway surface of the tickets capability: portal pages and JSON for one's own tickets, and
the management queue. The tickets service checks ownership itself; the portal always calls it
with a Caller stripped down to the portal permissions, so a portal response can never contain
another person's ticket or an internal note, whatever management roles the person also holds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2, tickets_pb2

from gateway.errors import ApiError
from gateway.present import (
    assignee_text,
    change_text,
    checked,
    enum_name,
    enum_value,
    fields_message,
    form_errors,
    me_or,
    notice,
    page_links,
    page_request,
    person_names,
    portal_caller,
    pretty_time,
    query_params,
    raise_invalid,
    remember_names,
    split_list,
    stamp,
    system_caller,
    time_of,
    who,
)
from gateway.routing import Ctx, Route

T = tickets_pb2
PORTAL_PERMISSIONS = ("Ticket:read", "Ticket:create")
MANAGE = ("Ticket:manage",)

Level = Literal["low", "medium", "high"]
TypeName = Literal["incident", "change_request"]
StatusName = Literal["new", "in_progress", "waiting_for_requester", "resolved", "closed"]

STATUS_LABELS = {
    "new": "New",
    "in_progress": "In progress",
    "waiting_for_requester": "Waiting for requester",
    "resolved": "Resolved",
    "closed": "Closed",
}
# The workflow as the service enforces it; pages only offer these moves.
NEXT_STATUSES = {
    "new": ["in_progress", "waiting_for_requester", "resolved"],
    "in_progress": ["waiting_for_requester", "resolved"],
    "waiting_for_requester": ["in_progress", "resolved"],
    "resolved": ["in_progress", "closed"],
    "closed": [],
}
STATUS_BADGES = {
    "new": "warn",
    "in_progress": "",
    "waiting_for_requester": "warn",
    "resolved": "ok",
    "closed": "ok",
}
TYPE_LABELS = {"incident": "Incident", "change_request": "Change request"}
PRIORITY_NAMES = ["", "critical", "high", "medium", "low", "planning"]
PRIORITY_BADGES = {
    "critical": "danger",
    "high": "danger",
    "medium": "warn",
    "low": "",
    "planning": "",
}
SORTS = {
    "created_desc": T.TICKET_SORT_CREATED_DESC,
    "created_asc": T.TICKET_SORT_CREATED_ASC,
    "updated_desc": T.TICKET_SORT_UPDATED_DESC,
    "updated_asc": T.TICKET_SORT_UPDATED_ASC,
    "priority": T.TICKET_SORT_PRIORITY,
    "priority_desc": T.TICKET_SORT_PRIORITY_DESC,
}
NOTICES = {
    "updated": "Saved.",
    "status": "Status changed.",
    "commented": "Comment added.",
    "noted": "Internal note added.",
}
SORT_LABELS = {
    "created_desc": "Newest first",
    "created_asc": "Oldest first",
    "updated_desc": "Recently updated",
    "updated_asc": "Least recently updated",
    "priority": "Most urgent first",
    "priority_desc": "Least urgent first",
}


# -- enums --------------------------------------------------------------------------------


def status_name(value: int) -> str:
    return enum_name(T.TicketStatus, "TICKET_STATUS_", value)


def type_name(value: int) -> str:
    return enum_name(T.TicketType, "TICKET_TYPE_", value)


def level_name(value: int) -> str:
    return enum_name(T.TicketLevel, "TICKET_LEVEL_", value)


def level_value(name: str | None) -> Any:
    return enum_value(T.TicketLevel, "TICKET_LEVEL_", name)


# -- JSON schemas --------------------------------------------------------------------------


class TicketOut(msgspec.Struct):
    id: str
    number: str
    type: str
    title: str
    description: str
    status: str
    status_label: str
    priority: str
    impact: str
    urgency: str
    requester_id: str
    assignee_id: str | None
    reason: str | None
    risk: str | None
    planned_start: str | None
    planned_end: str | None
    created_at: str | None
    updated_at: str | None
    resolved_at: str | None
    closed_at: str | None


class TicketCommentOut(msgspec.Struct):
    id: str
    author_id: str | None
    body: str
    internal: bool
    created_at: str | None


class TicketStatusChangeOut(msgspec.Struct):
    from_status: str | None
    to_status: str
    actor_id: str | None
    note: str
    by_requester_comment: bool
    changed_at: str | None


class TicketFieldChangeOut(msgspec.Struct):
    field: str
    old_value: str
    new_value: str
    actor_id: str | None
    changed_at: str | None


class TicketDetailOut(msgspec.Struct):
    ticket: TicketOut
    comments: list[TicketCommentOut]
    status_history: list[TicketStatusChangeOut]


class TicketManageDetailOut(msgspec.Struct):
    ticket: TicketOut
    comments: list[TicketCommentOut]
    status_history: list[TicketStatusChangeOut]
    field_history: list[TicketFieldChangeOut]


class TicketListOut(msgspec.Struct):
    items: list[TicketOut]
    next_page_token: str


class TicketCommentResultOut(msgspec.Struct):
    comment: TicketCommentOut
    ticket: TicketOut


class TicketIn(msgspec.Struct, forbid_unknown_fields=True):
    type: TypeName
    title: str
    description: str
    impact: Level | None = None
    urgency: Level | None = None
    reason: str = ""
    risk: Level | None = None
    planned_start: datetime | None = None
    planned_end: datetime | None = None


class TicketOnBehalfIn(msgspec.Struct, forbid_unknown_fields=True):
    type: TypeName
    title: str
    description: str
    requester_id: str = ""
    impact: Level | None = None
    urgency: Level | None = None
    reason: str = ""
    risk: Level | None = None
    planned_start: datetime | None = None
    planned_end: datetime | None = None


class TicketCommentIn(msgspec.Struct, forbid_unknown_fields=True):
    body: str


class TicketManageCommentIn(msgspec.Struct, forbid_unknown_fields=True):
    body: str
    internal: bool = False


class TicketPatchIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    title: str | None = None
    description: str | None = None
    impact: Level | None = None
    urgency: Level | None = None
    reason: str | None = None
    risk: Level | None = None
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    assignee_id: str | None = None  # "" unassigns


class TicketStatusIn(msgspec.Struct, forbid_unknown_fields=True):
    status: StatusName
    note: str = ""


class MyTicketsQuery(msgspec.Struct):
    status: str = ""  # comma-separated statuses
    type: str = ""
    q: str = ""
    page_size: int = 25
    page_token: str = ""


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


# -- conversions ---------------------------------------------------------------------------


def ticket_out(t: tickets_pb2.Ticket) -> TicketOut:
    status = status_name(t.status)
    change = t.type == T.TICKET_TYPE_CHANGE_REQUEST
    return TicketOut(
        id=t.id,
        number=t.number,
        type=type_name(t.type),
        title=t.title,
        description=t.description,
        status=status,
        status_label=STATUS_LABELS.get(status, status),
        priority=PRIORITY_NAMES[t.priority] if 0 < t.priority < 6 else "",
        impact=level_name(t.impact),
        urgency=level_name(t.urgency),
        requester_id=t.requester_id,
        assignee_id=t.assignee_id or None,
        reason=t.reason if change else None,
        risk=level_name(t.risk) or None if change else None,
        planned_start=time_of(t, "planned_start"),
        planned_end=time_of(t, "planned_end"),
        created_at=time_of(t, "created_at"),
        updated_at=time_of(t, "updated_at"),
        resolved_at=time_of(t, "resolved_at"),
        closed_at=time_of(t, "closed_at"),
    )


def comment_out(c: tickets_pb2.TicketComment) -> TicketCommentOut:
    return TicketCommentOut(
        id=c.id,
        author_id=c.author_id or None,
        body=c.body,
        internal=c.internal,
        created_at=time_of(c, "created_at"),
    )


def status_change_out(h: tickets_pb2.StatusChange) -> TicketStatusChangeOut:
    return TicketStatusChangeOut(
        from_status=status_name(h.from_status) or None,
        to_status=status_name(h.to_status),
        actor_id=h.actor_id or None,
        note=h.note,
        by_requester_comment=h.by_requester_comment,
        changed_at=time_of(h, "changed_at"),
    )


def field_change_out(h: tickets_pb2.FieldChange) -> TicketFieldChangeOut:
    return TicketFieldChangeOut(
        field=h.field,
        old_value=h.old_value,
        new_value=h.new_value,
        actor_id=h.actor_id or None,
        changed_at=time_of(h, "changed_at"),
    )


def _statuses(raw: str, fields: dict[str, str]) -> list[Any]:
    out = []
    for name in split_list(raw):
        if name not in STATUS_LABELS:
            fields["status"] = f"unknown status {name!r}; use {', '.join(STATUS_LABELS)}"
            continue
        out.append(enum_value(T.TicketStatus, "TICKET_STATUS_", name))
    return out


def _type(raw: str, fields: dict[str, str]) -> Any:
    name = raw.strip().lower()
    if not name:
        return 0
    if name not in TYPE_LABELS:
        fields["type"] = "must be incident or change_request"
        return 0
    return enum_value(T.TicketType, "TICKET_TYPE_", name)


def _copy_planned(
    req: tickets_pb2.CreateTicketRequest | tickets_pb2.UpdateTicketRequest,
    body: TicketIn | TicketOnBehalfIn | TicketPatchIn,
) -> None:
    for name in ("planned_start", "planned_end"):
        ts = stamp(getattr(body, name))
        if ts is not None:
            getattr(req, name).CopyFrom(ts)


def create_request(
    caller: common_pb2.Caller,
    body: TicketIn | TicketOnBehalfIn,
    idempotency_key: str,
    requester_id: str = "",
) -> tickets_pb2.CreateTicketRequest:
    req = T.CreateTicketRequest(
        caller=caller,
        type=enum_value(T.TicketType, "TICKET_TYPE_", body.type),
        title=body.title,
        description=body.description,
        impact=level_value(body.impact),
        urgency=level_value(body.urgency),
        idempotency_key=idempotency_key,
        requester_id=requester_id,
    )
    if body.type == "change_request":
        req.reason = body.reason
        req.risk = level_value(body.risk)
        _copy_planned(req, body)
    return req


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 200:
        raise ApiError(
            422,
            "invalid",
            "Idempotency-Key: at most 200 characters",
            {"idempotency_key": "too long"},
        )
    return key


# -- portal JSON ---------------------------------------------------------------------------


async def api_my_tickets(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: MyTicketsQuery = ctx.query
    fields: dict[str, str] = {}
    req = T.ListMyTicketsRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        statuses=_statuses(q.status, fields),
        type=_type(q.type, fields),
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
    req = create_request(portal_caller(ctx, PORTAL_PERMISSIONS), body, _idempotency_key(request))
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
        ),
    )
    return ctx.json(
        TicketCommentResultOut(comment=comment_out(resp.comment), ticket=ticket_out(resp.ticket)),
        status=201,
    )


# -- management JSON -----------------------------------------------------------------------


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
        statuses=_statuses(q.status, fields),
        type=_type(q.type, fields),
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
    req = create_request(ctx.caller(), body, _idempotency_key(request), body.requester_id)
    ticket = await ctx.call(ctx.backends.tickets.CreateTicket, req, safe=bool(req.idempotency_key))
    return ctx.json(ticket_out(ticket), status=201)


def _manage_detail(detail: tickets_pb2.TicketDetail) -> TicketManageDetailOut:
    return TicketManageDetailOut(
        ticket=ticket_out(detail.ticket),
        comments=[comment_out(c) for c in detail.comments],
        status_history=[status_change_out(h) for h in detail.status_history],
        field_history=[field_change_out(h) for h in detail.field_history],
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
    for name in ("title", "description", "reason", "assignee_id"):
        value = getattr(body, name)
        if value is not None:
            setattr(req, name, value)
    _copy_planned(req, body)
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
        ),
    )
    return ctx.json(
        TicketCommentResultOut(comment=comment_out(resp.comment), ticket=ticket_out(resp.ticket)),
        status=201,
    )


# -- names of persons (management pages; best effort) --------------------------------------


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


# -- portal pages --------------------------------------------------------------------------


def _view(t: tickets_pb2.Ticket) -> dict[str, Any]:
    out = msgspec.structs.asdict(ticket_out(t))
    out["type_label"] = TYPE_LABELS.get(out["type"], out["type"])
    out["status_badge"] = STATUS_BADGES.get(out["status"], "")
    out["priority_badge"] = PRIORITY_BADGES.get(out["priority"], "")
    out["next_statuses"] = [(s, STATUS_LABELS[s]) for s in NEXT_STATUSES.get(out["status"], [])]
    return out


async def page_my_tickets(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, ("status", "type", "q", "page_token"))
    fields: dict[str, str] = {}
    req = T.ListMyTicketsRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        statuses=_statuses(params["status"], fields),
        type=_type(params["type"], fields),
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
            tickets = [_view(t) for t in resp.tickets]
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
    body = TicketIn(
        type=form.type,  # type: ignore[arg-type]
        title=form.title,
        description=form.description,
        impact=levels["impact"],
        urgency=levels["urgency"],
        reason=form.reason,
        risk=levels["risk"],
        planned_start=times["planned_start"],
        planned_end=times["planned_end"],
    )
    return create_request(
        portal_caller(ctx, PORTAL_PERMISSIONS), body, form.idempotency_key[:200]
    ), {}


def _render_new(
    ctx: Ctx, raw: dict[str, str], errors: dict[str, str], status: int = 200
) -> web.Response:
    values = {f: raw.get(f, "") for f in TicketForm.__struct_fields__}
    values["type"] = values["type"] or "incident"
    values["idempotency_key"] = values["idempotency_key"] or str(uuid.uuid4())
    return ctx.render(
        "tickets/new.html",
        {"form": values, "errors": errors, "levels": ("low", "medium", "high")},
        status=status,
    )


async def page_new_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = {"type": request.query.get("type", "incident")}
    return _render_new(ctx, raw, {})


async def page_create_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    form = TicketForm(**{k: raw.get(k, "") for k in TicketForm.__struct_fields__})
    req, errors = _form_to_request(ctx, form)
    if req is None:
        return _render_new(ctx, raw, errors, status=422)
    try:
        ticket = await ctx.call(
            ctx.backends.tickets.CreateTicket, req, safe=bool(req.idempotency_key)
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        return _render_new(ctx, raw, form_errors(exc), status=422)
    raise ctx.redirect(f"/tickets/{ticket.number}?created=1")


async def _render_portal_detail(
    ctx: Ctx, ref: str, comment_error: str = "", comment_raw: str = "", status: int = 200
) -> web.Response:
    detail = await ctx.call(
        ctx.backends.tickets.GetTicket,
        T.GetTicketRequest(caller=portal_caller(ctx, PORTAL_PERMISSIONS), ticket_id=ref),
        safe=True,
    )
    me = ctx.person_id
    comments = [
        {
            "body": c.body,
            "created_at": pretty_time(time_of(c, "created_at")),
            "author": who({}, c.author_id, me, "Support"),
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
            "t": _view(detail.ticket),
            "comments": comments,
            "history": history,
            "comment_error": comment_error,
            "comment_raw": comment_raw,
            "created": ctx.request.query.get("created") == "1",
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_my_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_portal_detail(ctx, request.match_info["id"])


async def page_comment_my_ticket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    body = raw.get("body", "")
    try:
        await ctx.call(
            ctx.backends.tickets.AddComment,
            T.AddCommentRequest(
                caller=portal_caller(ctx, PORTAL_PERMISSIONS), ticket_id=ref, body=body
            ),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        message = exc.fields.get("body") or exc.message
        return await _render_portal_detail(ctx, ref, message, body, status=exc.status)
    raise ctx.redirect(f"/tickets/{ref}#comments")


# -- management pages ----------------------------------------------------------------------


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
        tickets = [_view(t) for t in resp.tickets]
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
) -> web.Response:
    detail = await ctx.call(
        ctx.backends.tickets.GetTicket,
        T.GetTicketRequest(caller=ctx.caller(), ticket_id=ref),
        safe=True,
    )
    t = _view(detail.ticket)
    ids = {t["requester_id"], t["assignee_id"] or ""}
    ids |= {c.author_id for c in detail.comments}
    ids |= {h.actor_id for h in detail.status_history} | {h.actor_id for h in detail.field_history}
    agents = await _agents(ctx)
    names = await person_names(ctx, ids)
    comments = [
        {
            "body": c.body,
            "internal": c.internal,
            "author": who(names, c.author_id),
            "created_at": pretty_time(time_of(c, "created_at")),
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
    try:
        await ctx.call(
            ctx.backends.tickets.ChangeStatus,
            T.ChangeStatusRequest(
                caller=ctx.caller(),
                ticket_id=ref,
                status=enum_value(T.TicketStatus, "TICKET_STATUS_", target),
                note=raw.get("note", ""),
            ),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        message = exc.message.partition(": ")[2] or exc.message
        return await _render_manage_detail(
            ctx, ref, errors={"status": message}, raw=raw, status=exc.status
        )
    raise ctx.redirect(f"/management/tickets/{ref}?done=status")


async def page_manage_comment(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    internal = checked(raw, "internal")
    try:
        await ctx.call(
            ctx.backends.tickets.AddComment,
            T.AddCommentRequest(
                caller=ctx.caller(), ticket_id=ref, body=raw.get("body", ""), internal=internal
            ),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        message = exc.fields.get("body") or exc.message
        return await _render_manage_detail(
            ctx, ref, errors={"body": message}, raw=raw, status=exc.status
        )
    raise ctx.redirect(f"/management/tickets/{ref}?done={'noted' if internal else 'commented'}")


def _portal(method: str, path: str, handler: Any, **kw: Any) -> Route:
    kw.setdefault("permissions", ("Ticket:read",))
    return Route(method, path, handler, surface="portal", section="tickets", **kw)


def _manage(method: str, path: str, handler: Any, **kw: Any) -> Route:
    return Route(method, path, handler, surface="management", permissions=MANAGE, **kw)


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
        summary="Submit a ticket (form)",
    ),
    _portal("GET", "/tickets/{id}", page_my_ticket, kind="page", summary="One of my tickets"),
    _portal(
        "POST",
        "/tickets/{id}/comments",
        page_comment_my_ticket,
        kind="page",
        summary="Comment on my ticket (form)",
    ),
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
        summary="Comment or write an internal note",
    ),
]
