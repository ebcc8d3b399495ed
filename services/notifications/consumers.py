"""Durable JetStream consumers of the notifications service, one per publishing stream.

Each event is handled through the chassis inbox: the in-app entries and e-mail intents it
leads to commit with its inbox row, so a redelivered event (or a second replica receiving it)
records nothing twice. A backend that does not answer (directory, tickets) is an outage: the
event is retried without counting against it.

Handling an event is mostly waiting for the directory and tickets, so the events of a fetched
batch are handled side by side (CONCURRENCY), except that the events about one item (a ticket,
an issue, a control test, a person's account) keep their order.
"""

from __future__ import annotations

import asyncpg
from frontdesk.v1 import events_pb2
from google.protobuf.message import Message
from nats.js import JetStreamContext

from services.chassis.inbox import Consumer
from services.notifications.service import NotificationService

# durable name -> (stream, subject)
SOURCES = {
    "notifications-tickets": ("FD_TICKETS", "fd.tickets.>"),
    "notifications-compliance": ("FD_COMPLIANCE", "fd.compliance.>"),
    "notifications-auth": ("FD_AUTH", "fd.auth.>"),
}


CONCURRENCY = 6  # of 10 pooled connections: each handler holds one while it asks
_KEYS = ("ticket_id", "issue_id", "control_test_id", "person_id")


def item_key(event: events_pb2.Event) -> str:
    """The item an event is about (the first ticket, issue, control test or person id in its
    payload), the unit of order; "" when it names none."""
    service = event.WhichOneof("payload")
    if service is None:
        return ""
    outer = getattr(event, service)
    name = outer.WhichOneof("kind") if "kind" in outer.DESCRIPTOR.oneofs_by_name else None
    return _find(getattr(outer, name)) if name else ""


def _find(message: Message, depth: int = 0) -> str:
    fields = message.DESCRIPTOR.fields_by_name
    for key in _KEYS:
        if key in fields and getattr(message, key):
            return f"{key}:{getattr(message, key)}"
    if depth < 2:
        for _, value in message.ListFields():
            if isinstance(value, Message):  # not a repeated field's list
                found = _find(value, depth + 1)
                if found:
                    return found
    return ""


def consumers(
    pool: asyncpg.Pool, js: JetStreamContext, service: NotificationService
) -> list[Consumer]:
    async def handle(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
        await service.on_event(conn, event)

    return [
        Consumer(
            pool,
            js,
            durable=durable,
            stream=stream,
            subject=subject,
            handler=handle,
            concurrency=CONCURRENCY,
            order_key=item_key,
        )
        for durable, (stream, subject) in SOURCES.items()
    ]
