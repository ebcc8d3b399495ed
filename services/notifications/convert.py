"""protobuf <-> domain for the notifications service, in one place."""

from __future__ import annotations

from frontdesk.v1 import notifications_pb2

from services.chassis.caller import Caller, current_caller
from services.notifications.domain import Delivery, Notification


def actor() -> Caller:
    """The verified caller (principal interceptor); the request's Caller field is not believed."""
    return current_caller()


def notification_out(n: Notification) -> notifications_pb2.Notification:
    out = notifications_pb2.Notification(
        id=str(n.id),
        kind=n.kind,
        title=n.title,
        body=n.body,
        link=n.link,
        item_kind=n.item_kind,
        item_id=n.item_id,
        read=n.read,
    )
    out.created_at.FromDatetime(n.created_at)
    return out


def delivery_out(d: Delivery) -> notifications_pb2.Delivery:
    out = notifications_pb2.Delivery(
        id=str(d.id),
        person_id=str(d.person_id),
        kind=d.kind,
        email=d.email,
        subject=d.subject,
        status=d.status,
        attempts=d.attempts,
        last_error=d.last_error,
        message_id=d.message_id,
        event_id=str(d.event_id),
    )
    out.created_at.FromDatetime(d.created_at)
    if d.sent_at is not None:
        out.sent_at.FromDatetime(d.sent_at)
    return out
