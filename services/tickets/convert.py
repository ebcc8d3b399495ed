"""Protobuf <-> domain for the tickets service: enums, timestamps and messages."""

from __future__ import annotations

from datetime import UTC, datetime

from frontdesk.v1 import tickets_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.chassis.attachment_store import Attachment
from services.chassis.caller import Caller, current_caller
from services.chassis.filetypes import INLINE_IMAGES
from services.tickets.domain import (
    Comment,
    HistoryEntry,
    Level,
    Sort,
    Status,
    Ticket,
    TicketDetail,
    TicketType,
)

TYPES: dict[int, TicketType] = {
    tickets_pb2.TICKET_TYPE_INCIDENT: TicketType.INCIDENT,
    tickets_pb2.TICKET_TYPE_CHANGE_REQUEST: TicketType.CHANGE_REQUEST,
}
TYPES_OUT: dict[TicketType, tickets_pb2.TicketType.ValueType] = {
    v: tickets_pb2.TicketType.ValueType(k) for k, v in TYPES.items()
}

STATUSES: dict[int, Status] = {
    tickets_pb2.TICKET_STATUS_NEW: Status.NEW,
    tickets_pb2.TICKET_STATUS_IN_PROGRESS: Status.IN_PROGRESS,
    tickets_pb2.TICKET_STATUS_WAITING_FOR_REQUESTER: Status.WAITING_FOR_REQUESTER,
    tickets_pb2.TICKET_STATUS_RESOLVED: Status.RESOLVED,
    tickets_pb2.TICKET_STATUS_CLOSED: Status.CLOSED,
}
STATUSES_OUT: dict[Status, tickets_pb2.TicketStatus.ValueType] = {
    v: tickets_pb2.TicketStatus.ValueType(k) for k, v in STATUSES.items()
}

LEVELS: dict[int, Level] = {
    tickets_pb2.TICKET_LEVEL_LOW: Level.LOW,
    tickets_pb2.TICKET_LEVEL_MEDIUM: Level.MEDIUM,
    tickets_pb2.TICKET_LEVEL_HIGH: Level.HIGH,
}
LEVELS_OUT: dict[Level, tickets_pb2.TicketLevel.ValueType] = {
    v: tickets_pb2.TicketLevel.ValueType(k) for k, v in LEVELS.items()
}

SORTS: dict[int, Sort] = {
    tickets_pb2.TICKET_SORT_UNSPECIFIED: Sort.CREATED_DESC,
    tickets_pb2.TICKET_SORT_CREATED_DESC: Sort.CREATED_DESC,
    tickets_pb2.TICKET_SORT_CREATED_ASC: Sort.CREATED_ASC,
    tickets_pb2.TICKET_SORT_UPDATED_DESC: Sort.UPDATED_DESC,
    tickets_pb2.TICKET_SORT_UPDATED_ASC: Sort.UPDATED_ASC,
    tickets_pb2.TICKET_SORT_PRIORITY: Sort.PRIORITY,
    tickets_pb2.TICKET_SORT_PRIORITY_DESC: Sort.PRIORITY_DESC,
}


def actor() -> Caller:
    """The verified caller of the request (principal interceptor); the request's own Caller
    field is not believed."""
    return current_caller()


def level(problems: list[str], name: str, value: int) -> Level | None:
    """None for UNSPECIFIED; an unknown number is a problem."""
    if value == 0:
        return None
    found = LEVELS.get(value)
    if found is None:
        problems.append(f"{name}: must be low, medium or high")
    return found


def ticket_type(problems: list[str], name: str, value: int) -> TicketType | None:
    if value == 0:
        return None
    found = TYPES.get(value)
    if found is None:
        problems.append(f"{name}: must be incident or change_request")
    return found


def status(problems: list[str], name: str, value: int) -> Status | None:
    found = STATUSES.get(value)
    if found is None:
        problems.append(
            f"{name}: must be one of new, in_progress, waiting_for_requester, resolved, closed"
        )
    return found


def sort(problems: list[str], value: int) -> Sort:
    found = SORTS.get(value)
    if found is None:
        problems.append("sort: unknown sort order")
        return Sort.CREATED_DESC
    return found


def time_in(
    problems: list[str],
    name: str,
    msg: tickets_pb2.CreateTicketRequest | tickets_pb2.UpdateTicketRequest,
) -> datetime | None:
    if not msg.HasField(name):  # type: ignore[arg-type]
        return None
    ts: Timestamp = getattr(msg, name)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        problems.append(f"{name}: not a valid time")
        return None


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def ticket_out(t: Ticket) -> tickets_pb2.Ticket:
    msg = tickets_pb2.Ticket(
        id=str(t.id),
        workspace_id=str(t.workspace_id),
        number=t.number,
        type=TYPES_OUT[t.type],
        title=t.title,
        description=t.description,
        status=STATUSES_OUT[t.status],
        requester_id=str(t.requester_id),
        assignee_id=str(t.assignee_id) if t.assignee_id else "",
        impact=LEVELS_OUT[t.impact],
        urgency=LEVELS_OUT[t.urgency],
        priority=t.priority,  # type: ignore[arg-type]
        reason=t.reason,
        risk=LEVELS_OUT[t.risk] if t.risk else tickets_pb2.TICKET_LEVEL_UNSPECIFIED,
        comment_count=t.comment_count,
    )
    for name in (
        "planned_start",
        "planned_end",
        "created_at",
        "updated_at",
        "resolved_at",
        "closed_at",
    ):
        ts = _ts(getattr(t, name))
        if ts is not None:
            getattr(msg, name).CopyFrom(ts)
    return msg


def comment_out(c: Comment) -> tickets_pb2.TicketComment:
    msg = tickets_pb2.TicketComment(
        id=str(c.id),
        ticket_id=str(c.ticket_id),
        author_id=str(c.author_id) if c.author_id else "",
        body=c.body,
        internal=c.internal,
    )
    msg.created_at.FromDatetime(c.created_at)
    return msg


def _status_value(value: str) -> int:
    return STATUSES_OUT[Status(value)] if value else tickets_pb2.TICKET_STATUS_UNSPECIFIED


def status_change_out(h: HistoryEntry) -> tickets_pb2.StatusChange:
    msg = tickets_pb2.StatusChange(
        from_status=_status_value(h.old_value),  # type: ignore[arg-type]
        to_status=_status_value(h.new_value),  # type: ignore[arg-type]
        actor_id=str(h.actor_id) if h.actor_id else "",
        note=h.note,
        by_requester_comment=h.by_requester_comment,
    )
    msg.changed_at.FromDatetime(h.created_at)
    return msg


def field_change_out(h: HistoryEntry) -> tickets_pb2.FieldChange:
    msg = tickets_pb2.FieldChange(
        field=h.field,
        old_value=h.old_value,
        new_value=h.new_value,
        actor_id=str(h.actor_id) if h.actor_id else "",
    )
    msg.changed_at.FromDatetime(h.created_at)
    return msg


def detail_out(d: TicketDetail) -> tickets_pb2.TicketDetail:
    return tickets_pb2.TicketDetail(
        ticket=ticket_out(d.ticket),
        comments=[comment_out(c) for c in d.comments],
        status_history=[status_change_out(h) for h in d.status_history],
        field_history=[field_change_out(h) for h in d.field_history],
        attachments=[attachment_out(a) for a in d.attachments],
    )


def attachment_out(a: Attachment) -> tickets_pb2.Attachment:
    return tickets_pb2.Attachment(
        id=str(a.id),
        ticket_id=str(a.item_id) if a.item_id else "",
        comment_id=str(a.comment_id) if a.comment_id else "",
        uploader_id=str(a.uploader_id) if a.uploader_id else "",
        name=a.name,
        content_type=a.content_type,
        size=a.size,
        sha256=a.sha256,
        created_at=_ts(a.created_at),
        internal=a.internal,
        inline_image=a.content_type in INLINE_IMAGES,
    )
