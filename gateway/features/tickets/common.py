"""What the portal and the queue share: ticket enums and labels, the ticket's JSON shape and its conversions, the create request."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, tickets_pb2

from gateway.errors import ApiError
from gateway.present import (
    enum_name,
    enum_value,
    split_list,
    stamp,
    time_of,
)
from gateway.uploads import AttachmentOut

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
NOTICES = {
    "updated": "Saved.",
    "status": "Status changed.",
    "commented": "Comment added.",
    "noted": "Internal note added.",
    "removed": "File removed.",
}


def status_name(value: int) -> str:
    return enum_name(T.TicketStatus, "TICKET_STATUS_", value)


def type_name(value: int) -> str:
    return enum_name(T.TicketType, "TICKET_TYPE_", value)


def level_name(value: int) -> str:
    return enum_name(T.TicketLevel, "TICKET_LEVEL_", value)


def level_value(name: str | None) -> Any:
    return enum_value(T.TicketLevel, "TICKET_LEVEL_", name)


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
    attachments: list[AttachmentOut] = msgspec.field(default_factory=list)


class TicketListOut(msgspec.Struct):
    items: list[TicketOut]
    next_page_token: str


class TicketCommentResultOut(msgspec.Struct):
    comment: TicketCommentOut
    ticket: TicketOut


# What the tickets service requires of each type (services/tickets/domain.py), for the
# OpenAPI document: an incident names impact and urgency; a change request its reason, risk
# and planned window (impact and urgency together or not at all).
TYPE_REQUIREMENTS: dict[str, Any] = {
    "oneOf": [
        {
            "title": "Incident",
            "properties": {"type": {"const": "incident"}},
            "required": ["type", "impact", "urgency"],
        },
        {
            "title": "Change request",
            "properties": {"type": {"const": "change_request"}},
            "required": ["type", "reason", "risk", "planned_start", "planned_end"],
        },
    ]
}


class TicketIn(msgspec.Struct, forbid_unknown_fields=True):
    __json_schema_extra__: ClassVar[dict[str, Any]] = TYPE_REQUIREMENTS

    type: TypeName
    title: str
    description: str
    impact: Level | None = None
    urgency: Level | None = None
    reason: str = ""
    risk: Level | None = None
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    # Files staged with POST .../tickets/uploads, attached with the ticket.
    attachment_ids: list[str] = msgspec.field(default_factory=list)


class TicketOnBehalfIn(msgspec.Struct, forbid_unknown_fields=True):
    __json_schema_extra__: ClassVar[dict[str, Any]] = TYPE_REQUIREMENTS

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
    attachment_ids: list[str] = msgspec.field(default_factory=list)


class TicketCommentIn(msgspec.Struct, forbid_unknown_fields=True):
    body: str = ""  # may be empty when files are attached
    # Files staged with POST .../tickets/{id}/uploads, attached with the comment.
    attachment_ids: list[str] = msgspec.field(default_factory=list)


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


def statuses_of(raw: str, fields: dict[str, str]) -> list[Any]:
    out = []
    for name in split_list(raw):
        if name not in STATUS_LABELS:
            fields["status"] = f"unknown status {name!r}; use {', '.join(STATUS_LABELS)}"
            continue
        out.append(enum_value(T.TicketStatus, "TICKET_STATUS_", name))
    return out


def type_of(raw: str, fields: dict[str, str]) -> Any:
    name = raw.strip().lower()
    if not name:
        return 0
    if name not in TYPE_LABELS:
        fields["type"] = "must be incident or change_request"
        return 0
    return enum_value(T.TicketType, "TICKET_TYPE_", name)


def copy_planned(
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
        attachment_ids=body.attachment_ids,
    )
    if body.type == "change_request":
        req.reason = body.reason
        req.risk = level_value(body.risk)
        copy_planned(req, body)
    return req


def idempotency_key_of(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 200:
        raise ApiError(
            422,
            "invalid",
            "Idempotency-Key: at most 200 characters",
            {"idempotency_key": "too long"},
        )
    return key


def ticket_view(t: tickets_pb2.Ticket) -> dict[str, Any]:
    out = msgspec.structs.asdict(ticket_out(t))
    out["type_label"] = TYPE_LABELS.get(out["type"], out["type"])
    out["status_badge"] = STATUS_BADGES.get(out["status"], "")
    out["priority_badge"] = PRIORITY_BADGES.get(out["priority"], "")
    out["next_statuses"] = [(s, STATUS_LABELS[s]) for s in NEXT_STATUSES.get(out["status"], [])]
    return out
