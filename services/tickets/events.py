"""The tickets service's events (fd.tickets.<workspace_id>.<name>): ids and states only,
never a comment body, so an internal note cannot leak through NATS."""

from __future__ import annotations

import uuid

from frontdesk.v1 import events_pb2, tickets_events_pb2

from services.chassis.caller import Caller
from services.chassis.events import new_event
from services.tickets.convert import STATUSES_OUT, TYPES_OUT
from services.tickets.domain import Comment, Status, Ticket


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value else ""


def _event(ticket: Ticket, actor: Caller, name: str, payload: object) -> events_pb2.Event:
    return new_event(str(ticket.workspace_id), _id(actor.person_id), "tickets", name, payload)  # type: ignore[arg-type]


def created(ticket: Ticket, actor: Caller) -> events_pb2.Event:
    payload = tickets_events_pb2.TicketCreated(
        ticket_id=str(ticket.id),
        number=ticket.number,
        type=TYPES_OUT[ticket.type],
        requester_id=str(ticket.requester_id),
        priority=ticket.priority,  # type: ignore[arg-type]
        title=ticket.title,
    )
    return _event(ticket, actor, "ticket_created", payload)


def assigned(ticket: Ticket, actor: Caller, previous: uuid.UUID | None) -> events_pb2.Event:
    payload = tickets_events_pb2.TicketAssigned(
        ticket_id=str(ticket.id),
        number=ticket.number,
        assignee_id=_id(ticket.assignee_id),
        previous_assignee_id=_id(previous),
        requester_id=str(ticket.requester_id),
    )
    return _event(ticket, actor, "ticket_assigned", payload)


def status_changed(
    ticket: Ticket, actor: Caller, previous: Status, by_comment: bool
) -> events_pb2.Event:
    payload = tickets_events_pb2.TicketStatusChanged(
        ticket_id=str(ticket.id),
        number=ticket.number,
        from_status=STATUSES_OUT[previous],
        to_status=STATUSES_OUT[ticket.status],
        requester_id=str(ticket.requester_id),
        assignee_id=_id(ticket.assignee_id),
        by_requester_comment=by_comment,
    )
    return _event(ticket, actor, "ticket_status_changed", payload)


def commented(ticket: Ticket, actor: Caller, comment: Comment) -> events_pb2.Event:
    payload = tickets_events_pb2.TicketCommented(
        ticket_id=str(ticket.id),
        number=ticket.number,
        comment_id=str(comment.id),
        author_id=_id(comment.author_id),
        internal=comment.internal,
        requester_id=str(ticket.requester_id),
        assignee_id=_id(ticket.assignee_id),
    )
    return _event(ticket, actor, "ticket_commented", payload)


def updated(ticket: Ticket, actor: Caller, fields: list[str]) -> events_pb2.Event:
    payload = tickets_events_pb2.TicketUpdated(
        ticket_id=str(ticket.id),
        number=ticket.number,
        fields=fields,
        requester_id=str(ticket.requester_id),
    )
    return _event(ticket, actor, "ticket_updated", payload)
