"""Durable JetStream consumers of the notifications service, one per publishing stream.

Each event is handled through the chassis inbox: the in-app entries and e-mail intents it
leads to commit with its inbox row, so a redelivered event (or a second replica receiving it)
records nothing twice. A backend that does not answer (directory, tickets) is an outage: the
event is retried without counting against it.
"""

from __future__ import annotations

import asyncpg
from frontdesk.v1 import events_pb2
from nats.js import JetStreamContext

from services.chassis.inbox import Consumer
from services.notifications.service import NotificationService

# durable name -> (stream, subject)
SOURCES = {
    "notifications-tickets": ("FD_TICKETS", "fd.tickets.>"),
    "notifications-compliance": ("FD_COMPLIANCE", "fd.compliance.>"),
    "notifications-auth": ("FD_AUTH", "fd.auth.>"),
}


def consumers(
    pool: asyncpg.Pool, js: JetStreamContext, service: NotificationService
) -> list[Consumer]:
    async def handle(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
        await service.on_event(conn, event)

    return [
        Consumer(pool, js, durable=durable, stream=stream, subject=subject, handler=handle)
        for durable, (stream, subject) in SOURCES.items()
    ]
