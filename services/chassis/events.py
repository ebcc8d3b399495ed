"""Building Event envelopes and naming their subjects: fd.<service>.<workspace_id>.<event_name>."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from frontdesk.v1 import events_pb2
from google.protobuf.message import Message

# The JetStream stream that holds each publishing service's events.
STREAMS: dict[str, str] = {
    "directory": "FD_DIRECTORY",
    "auth": "FD_AUTH",
    "tickets": "FD_TICKETS",
    "compliance": "FD_COMPLIANCE",
}


def new_event(
    workspace_id: str, actor_id: str, service: str, name: str, payload: Message
) -> events_pb2.Event:
    """An envelope with a fresh event id carrying `payload` as <service>.<name>.

    `service` is the envelope's oneof field ("directory", "auth", "tickets", "compliance")
    and `name` the field of that service's event message (e.g. "person_created").
    """
    event = events_pb2.Event(
        event_id=str(uuid.uuid4()), workspace_id=workspace_id, actor_id=actor_id or ""
    )
    event.occurred_at.FromDatetime(datetime.now(UTC))
    getattr(getattr(event, service), name).CopyFrom(payload)
    return event


def kind(event: events_pb2.Event) -> tuple[str, str]:
    """(service, event_name) of an envelope."""
    service = event.WhichOneof("payload")
    if service is None:
        raise ValueError("event has no payload")
    name = getattr(event, service).WhichOneof("kind")
    if name is None:
        raise ValueError("event payload has no kind")
    return service, name


def payload_of(event: events_pb2.Event) -> Message:
    service, name = kind(event)
    inner: Message = getattr(getattr(event, service), name)
    return inner


def subject(event: events_pb2.Event) -> str:
    service, name = kind(event)
    return f"fd.{service}.{event.workspace_id or '_'}.{name}"
