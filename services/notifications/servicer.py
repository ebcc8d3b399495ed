"""The gRPC face of the notifications service: proto <-> domain, domain errors -> status codes."""

from __future__ import annotations

import grpc
from frontdesk.v1 import notifications_pb2, notifications_pb2_grpc

from services.chassis.grpcio import maps_errors
from services.notifications import convert
from services.notifications.service import NotificationService

_mapped = maps_errors()


class NotificationServicer(notifications_pb2_grpc.NotificationServiceServicer):
    def __init__(self, service: NotificationService) -> None:
        self._service = service

    @_mapped
    async def ListNotifications(
        self,
        request: notifications_pb2.ListNotificationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> notifications_pb2.ListNotificationsResponse:
        items, token, unread = await self._service.list_notifications(
            convert.actor(), request.page.page_size, request.page.page_token, request.unread_only
        )
        return notifications_pb2.ListNotificationsResponse(
            notifications=[convert.notification_out(n) for n in items],
            next_page_token=token,
            unread=unread,
        )

    @_mapped
    async def MarkRead(
        self, request: notifications_pb2.MarkReadRequest, context: grpc.aio.ServicerContext
    ) -> notifications_pb2.MarkReadResponse:
        marked, unread = await self._service.mark_read(
            convert.actor(), list(request.ids), request.all
        )
        return notifications_pb2.MarkReadResponse(marked=marked, unread=unread)

    @_mapped
    async def ListDeliveries(
        self,
        request: notifications_pb2.ListDeliveriesRequest,
        context: grpc.aio.ServicerContext,
    ) -> notifications_pb2.ListDeliveriesResponse:
        items, token = await self._service.list_deliveries(
            convert.actor(), request.person_id, request.page.page_size, request.page.page_token
        )
        return notifications_pb2.ListDeliveriesResponse(
            deliveries=[convert.delivery_out(d) for d in items], next_page_token=token
        )

    @_mapped
    async def Unsubscribe(
        self, request: notifications_pb2.UnsubscribeRequest, context: grpc.aio.ServicerContext
    ) -> notifications_pb2.UnsubscribeResponse:
        convert.actor()  # any verified caller; the token is the authority
        found, preference = await self._service.unsubscribe(request.token, request.workspace_id)
        return notifications_pb2.UnsubscribeResponse(
            person_id=str(found.person_id), kind=found.kind.value, preference=preference
        )
