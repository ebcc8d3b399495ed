"""Tickets: types, workflow, ITIL priority, validation and who may see what. No I/O, no protobuf."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, InvalidArgument, PermissionDenied

MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_NOTE = 2_000
MAX_KEY = 200
MAX_QUERY = 200
DEFAULT_PAGE = 25
MAX_PAGE = 100


class TicketType(StrEnum):
    INCIDENT = "incident"
    CHANGE_REQUEST = "change_request"

    @property
    def prefix(self) -> str:
        return "INC" if self is TicketType.INCIDENT else "CHG"


class Status(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_REQUESTER = "waiting_for_requester"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Level(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Sort(StrEnum):
    CREATED_DESC = "created_desc"
    CREATED_ASC = "created_asc"
    UPDATED_DESC = "updated_desc"
    UPDATED_ASC = "updated_asc"
    PRIORITY = "priority"
    PRIORITY_DESC = "priority_desc"


# Priority 1 (critical) .. 5 (planning) from impact x urgency, the usual ITIL matrix.
_MATRIX: dict[tuple[Level, Level], int] = {
    (Level.HIGH, Level.HIGH): 1,
    (Level.HIGH, Level.MEDIUM): 2,
    (Level.HIGH, Level.LOW): 3,
    (Level.MEDIUM, Level.HIGH): 2,
    (Level.MEDIUM, Level.MEDIUM): 3,
    (Level.MEDIUM, Level.LOW): 4,
    (Level.LOW, Level.HIGH): 3,
    (Level.LOW, Level.MEDIUM): 4,
    (Level.LOW, Level.LOW): 5,
}


def priority_of(impact: Level, urgency: Level) -> int:
    return _MATRIX[(impact, urgency)]


# Which status may follow which. Closed is final; a resolved ticket may be reopened.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.IN_PROGRESS, Status.WAITING_FOR_REQUESTER, Status.RESOLVED}),
    Status.IN_PROGRESS: frozenset({Status.WAITING_FOR_REQUESTER, Status.RESOLVED}),
    Status.WAITING_FOR_REQUESTER: frozenset({Status.IN_PROGRESS, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.IN_PROGRESS, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}

# A requester's public comment on a ticket in one of these moves it back to In progress.
REOPENED_BY_REQUESTER = frozenset({Status.RESOLVED, Status.WAITING_FOR_REQUESTER})

_LABELS = {
    Status.NEW: "New",
    Status.IN_PROGRESS: "In progress",
    Status.WAITING_FOR_REQUESTER: "Waiting for requester",
    Status.RESOLVED: "Resolved",
    Status.CLOSED: "Closed",
}


def status_label(status: Status) -> str:
    return _LABELS[status]


def check_transition(current: Status, target: Status) -> None:
    if target == current:
        raise FailedPrecondition(f"status: the ticket is already {status_label(current)}")
    if target not in TRANSITIONS[current]:
        raise FailedPrecondition(
            f"status: cannot go from {status_label(current)} to {status_label(target)}"
        )


# What a caller may do with tickets (the Caller is the chassis' one, verified).


def manages(caller: Caller) -> bool:
    return caller.has("Ticket:manage")


def reads_own(caller: Caller) -> bool:
    return caller.person_id is not None and caller.has_any("Ticket:read", "Ticket:manage")


def creates(caller: Caller) -> bool:
    return manages(caller) or caller.has("Ticket:create")


def reads_public(caller: Caller) -> bool:
    """A service reading any ticket of the workspace with its public comments only (the
    notifications service quoting an agent's comment in the requester's mail)."""
    return caller.is_service and caller.has("Ticket:read-public")


def can_see(caller: Caller, ticket: Ticket) -> bool:
    return (
        manages(caller)
        or reads_public(caller)
        or (reads_own(caller) and ticket.requester_id == caller.person_id)
    )


def is_requester(caller: Caller, ticket: Ticket) -> bool:
    return caller.person_id is not None and ticket.requester_id == caller.person_id


@dataclass
class Ticket:
    id: uuid.UUID
    workspace_id: uuid.UUID
    type: TicketType
    seq: int
    title: str
    description: str
    status: Status
    requester_id: uuid.UUID
    assignee_id: uuid.UUID | None
    impact: Level
    urgency: Level
    priority: int
    reason: str
    risk: Level | None
    planned_start: datetime | None
    planned_end: datetime | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    idempotency_key: str | None = None
    comment_count: int = 0

    @property
    def number(self) -> str:
        return f"{self.type.prefix}-{self.seq}"


@dataclass(frozen=True)
class Comment:
    id: uuid.UUID
    ticket_id: uuid.UUID
    author_id: uuid.UUID | None
    body: str
    internal: bool
    created_at: datetime


@dataclass(frozen=True)
class HistoryEntry:
    """One change: kind "status" (old/new are statuses) or "field" (old/new are text)."""

    kind: str
    field: str
    old_value: str
    new_value: str
    actor_id: uuid.UUID | None
    note: str
    by_requester_comment: bool
    created_at: datetime


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    comments: list[Comment]
    status_history: list[HistoryEntry]
    field_history: list[HistoryEntry]
    attachments: list[Any] = field(default_factory=list)  # attachment_store.Attachment


@dataclass(frozen=True)
class NewTicket:
    """What a create asks for, before validation."""

    type: TicketType | None
    title: str
    description: str
    impact: Level | None
    urgency: Level | None
    reason: str
    risk: Level | None
    planned_start: datetime | None
    planned_end: datetime | None
    idempotency_key: str
    requester_id: str


@dataclass(frozen=True)
class Edit:
    """Fields an update sets; None = unchanged. assignee_id "" unassigns."""

    title: str | None = None
    description: str | None = None
    impact: Level | None = None
    urgency: Level | None = None
    reason: str | None = None
    risk: Level | None = None
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    assignee_id: str | None = None


@dataclass(frozen=True)
class Filters:
    """What a listing asks for; requester_id is forced to the caller for "my tickets"."""

    statuses: tuple[Status, ...] = ()
    type: TicketType | None = None
    priorities: tuple[int, ...] = ()
    assignee_id: uuid.UUID | None = None
    unassigned: bool = False
    requester_id: uuid.UUID | None = None
    query: str = ""
    number: tuple[TicketType, int] | None = None
    sort: Sort = Sort.CREATED_DESC
    page_size: int = DEFAULT_PAGE
    after: tuple[object, ...] | None = field(default=None)


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


_NUMBER = re.compile(r"^\s*(INC|CHG)-(\d{1,9})\s*$", re.IGNORECASE)


def parse_number(value: str) -> tuple[TicketType, int] | None:
    """("INC-12") -> (INCIDENT, 12); None when `value` is not a ticket number."""
    match = _NUMBER.match(value)
    if not match:
        return None
    kind = TicketType.INCIDENT if match.group(1).upper() == "INC" else TicketType.CHANGE_REQUEST
    return kind, int(match.group(2))


def _text(problems: list[str], name: str, value: str, limit: int) -> str:
    stripped = value.strip()
    if not stripped:
        problems.append(f"{name}: required")
    elif len(stripped) > limit:
        problems.append(f"{name}: at most {limit} characters")
    elif "\x00" in stripped:
        problems.append(f"{name}: must not contain NUL characters")
    return stripped


@dataclass(frozen=True)
class ValidNewTicket:
    type: TicketType
    title: str
    description: str
    impact: Level
    urgency: Level
    priority: int
    reason: str
    risk: Level | None
    planned_start: datetime | None
    planned_end: datetime | None
    idempotency_key: str | None
    requester_id: uuid.UUID


def validate_new(actor: Caller, new: NewTicket) -> ValidNewTicket:
    """Check a create; raises InvalidTicket naming every bad field, NotAllowed for rights."""
    problems: list[str] = []
    if new.type is None:
        problems.append("type: must be incident or change_request")
    title = _text(problems, "title", new.title, MAX_TITLE)
    description = _text(problems, "description", new.description, MAX_TEXT)
    impact, urgency = new.impact, new.urgency
    reason, risk = "", None
    start, end = None, None
    if new.type is TicketType.INCIDENT:
        if impact is None:
            problems.append("impact: required (low, medium or high)")
        if urgency is None:
            problems.append("urgency: required (low, medium or high)")
    elif new.type is TicketType.CHANGE_REQUEST:
        if (impact is None) != (urgency is None):
            problems.append("impact: give impact and urgency together, or neither")
        reason = _text(problems, "reason", new.reason, MAX_TEXT)
        risk = new.risk
        if risk is None:
            problems.append("risk: required (low, medium or high)")
        start, end = new.planned_start, new.planned_end
        if start is None:
            problems.append("planned_start: required")
        if end is None:
            problems.append("planned_end: required")
        if start is not None and end is not None and end <= start:
            problems.append("planned_end: must be after planned_start")
    key = new.idempotency_key.strip()
    if len(key) > MAX_KEY:
        problems.append(f"idempotency_key: at most {MAX_KEY} characters")
    requester: uuid.UUID | None = actor.person_id
    if new.requester_id:
        other = parse_uuid(new.requester_id)
        if other is None:
            problems.append("requester_id: must be a person id")
        elif other != actor.person_id and not manages(actor):
            raise PermissionDenied("Ticket:manage is needed to create a ticket for someone else")
        else:
            requester = other
    elif requester is None:
        problems.append("requester_id: required for a system call")
    if problems:
        raise InvalidArgument(problems)
    assert new.type is not None and requester is not None
    impact = impact or Level.MEDIUM
    urgency = urgency or Level.MEDIUM
    return ValidNewTicket(
        type=new.type,
        title=title,
        description=description,
        impact=impact,
        urgency=urgency,
        priority=priority_of(impact, urgency),
        reason=reason,
        risk=risk,
        planned_start=start,
        planned_end=end,
        idempotency_key=key or None,
        requester_id=requester,
    )


def apply_edit(ticket: Ticket, edit: Edit) -> tuple[list[tuple[str, str, str]], uuid.UUID | None]:
    """Apply `edit` to `ticket` in place.

    Returns the field changes as (field, old, new) and the previous assignee (when the
    assignee changed, else the current one). Raises InvalidTicket naming every bad field.
    """
    problems: list[str] = []
    changes: list[tuple[str, str, str]] = []
    previous_assignee = ticket.assignee_id

    def change(name: str, old: object, new: object) -> None:
        if old != new:
            changes.append((name, "" if old is None else str(old), "" if new is None else str(new)))

    title = _text(problems, "title", edit.title, MAX_TITLE) if edit.title is not None else None
    description = (
        _text(problems, "description", edit.description, MAX_TEXT)
        if edit.description is not None
        else None
    )
    is_change = ticket.type is TicketType.CHANGE_REQUEST
    reason = None
    if edit.reason is not None:
        if not is_change:
            problems.append("reason: only change requests have a reason")
        else:
            reason = _text(problems, "reason", edit.reason, MAX_TEXT)
    if edit.risk is not None and not is_change:
        problems.append("risk: only change requests have a risk")
    if (edit.planned_start is not None or edit.planned_end is not None) and not is_change:
        problems.append("planned_start: only change requests have a planned period")
    start = edit.planned_start or ticket.planned_start
    end = edit.planned_end or ticket.planned_end
    if is_change and start is not None and end is not None and end <= start:
        problems.append("planned_end: must be after planned_start")
    assignee: uuid.UUID | None = ticket.assignee_id
    if edit.assignee_id is not None:
        if edit.assignee_id == "":
            assignee = None
        else:
            assignee = parse_uuid(edit.assignee_id)
            if assignee is None:
                problems.append("assignee_id: must be a person id")
    if problems:
        raise InvalidArgument(problems)
    if title is not None:
        change("title", ticket.title, title)
        ticket.title = title
    if description is not None:
        change("description", ticket.description, description)
        ticket.description = description
    if reason is not None:
        change("reason", ticket.reason, reason)
        ticket.reason = reason
    if edit.risk is not None:
        change("risk", ticket.risk, edit.risk)
        ticket.risk = edit.risk
    if is_change:
        change("planned_start", _iso(ticket.planned_start), _iso(start))
        change("planned_end", _iso(ticket.planned_end), _iso(end))
        ticket.planned_start, ticket.planned_end = start, end
    impact = edit.impact or ticket.impact
    urgency = edit.urgency or ticket.urgency
    change("impact", ticket.impact, impact)
    change("urgency", ticket.urgency, urgency)
    ticket.impact, ticket.urgency = impact, urgency
    priority = priority_of(impact, urgency)
    change("priority", ticket.priority, priority)
    ticket.priority = priority
    change("assignee", ticket.assignee_id, assignee)
    ticket.assignee_id = assignee
    return changes, previous_assignee


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def clean_query(problems: list[str], query: str) -> str:
    text = query.strip()
    if len(text) > MAX_QUERY:
        problems.append(f"query: at most {MAX_QUERY} characters")
    if "\x00" in text:
        problems.append("query: must not contain NUL characters")
    return text


def page_size(problems: list[str], size: int) -> int:
    if size == 0:
        return DEFAULT_PAGE
    if size < 0 or size > MAX_PAGE:
        problems.append(f"page_size: must be between 1 and {MAX_PAGE}")
        return DEFAULT_PAGE
    return size
