"""Directory access-change events that end sessions at once (durable consumer "auth-access").

A deactivated person loses every session, pending sign-in and API token; a person whose
portal access was turned off loses their portal sessions. Each effect commits with its
session_revoked outbox row and the inbox record, so a redelivered event changes nothing.
"""

from __future__ import annotations

import asyncpg
from frontdesk.v1 import directory_events_pb2, events_pb2
from nats.js import JetStreamContext

from services.auth.service import AuthService
from services.chassis.events import kind
from services.chassis.inbox import Consumer

DURABLE = "auth-access"
_PERSON_EVENTS = {
    "person_updated",
    "person_deactivated",
    "portal_access_changed",
}


def access_consumer(pool: asyncpg.Pool, js: JetStreamContext, service: AuthService) -> Consumer:
    async def handle(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
        service_name, name = kind(event)
        if service_name != "directory" or name not in _PERSON_EVENTS:
            return
        payload: directory_events_pb2.PersonChanged = getattr(event.directory, name)
        if not payload.person_id or not event.workspace_id:
            return
        await service.on_person_changed(
            conn,
            event.workspace_id,
            event.actor_id,
            payload.person_id,
            active=payload.active and name != "person_deactivated",
            portal_access=payload.portal_access,
        )

    return Consumer(
        pool, js, durable=DURABLE, stream="FD_DIRECTORY", subject="fd.directory.>", handler=handle
    )
