"""What the notification pages and APIs share: the backend stub, schemas and conversions."""

from __future__ import annotations

import contextlib

import grpc
import msgspec
from frontdesk.v1 import common_pb2, notifications_pb2, notifications_pb2_grpc

from gateway.errors import ApiError
from gateway.present import time_of
from gateway.routing import Ctx
from services.chassis.grpcio import call

N = notifications_pb2


class NotificationOut(msgspec.Struct):
    id: str
    kind: str
    title: str
    body: str
    link: str
    item_kind: str
    item_id: str
    read: bool
    created_at: str | None


class NotificationListOut(msgspec.Struct):
    items: list[NotificationOut]
    next_page_token: str
    unread: int


class DeliveryOut(msgspec.Struct):
    id: str
    kind: str
    email: str
    subject: str
    status: str  # pending, sent, failed
    attempts: int
    last_error: str
    message_id: str
    created_at: str | None
    sent_at: str | None


class DeliveryListOut(msgspec.Struct):
    items: list[DeliveryOut]
    next_page_token: str


def stub(ctx: Ctx) -> notifications_pb2_grpc.NotificationServiceStub:
    found = ctx.backends.notifications
    if found is None:
        # A deployment without the notifications service has no such pages (like a section
        # turned off): 404, not an outage of something that is there.
        raise ApiError(404, "not_found", "notifications are not set up in this deployment")
    return found


def notification_out(n: notifications_pb2.Notification) -> NotificationOut:
    return NotificationOut(
        id=n.id,
        kind=n.kind,
        title=n.title,
        body=n.body,
        link=n.link,
        item_kind=n.item_kind,
        item_id=n.item_id,
        read=n.read,
        created_at=time_of(n, "created_at"),
    )


def delivery_out(d: notifications_pb2.Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        kind=d.kind,
        email=d.email,
        subject=d.subject,
        status=d.status,
        attempts=d.attempts,
        last_error=d.last_error,
        message_id=d.message_id,
        created_at=time_of(d, "created_at"),
        sent_at=time_of(d, "sent_at"),
    )


async def unread_for_nav(ctx: Ctx) -> int | None:
    """The signed-in person's unread count, or None (no person, no service, no quick answer)."""
    found = ctx.backends.notifications
    if found is None or not ctx.person_id or ctx.workspace is None:
        return None
    req = N.ListNotificationsRequest(
        caller=ctx.caller(), page=common_pb2.PageRequest(page_size=1), unread_only=True
    )
    with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError):
        resp = await call(found.ListNotifications, req, timeout=1.0, safe=True)
        return int(resp.unread)
    return None
