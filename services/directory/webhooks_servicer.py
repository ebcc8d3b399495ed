"""The gRPC face of webhooks (console management and the delivery log). Thin."""

from __future__ import annotations

from datetime import datetime

import grpc
from frontdesk.v1 import common_pb2, webhooks_pb2, webhooks_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.chassis.caller import current_caller
from services.chassis.grpcio import maps_errors
from services.directory.domain import parse_id
from services.directory.webhooks import WebhookService
from services.directory.webhooks_store import Delivery, Endpoint

_mapped = maps_errors()


def _ts(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def endpoint_pb(e: Endpoint) -> webhooks_pb2.Webhook:
    msg = webhooks_pb2.Webhook(
        id=str(e.id),
        url=e.url,
        description=e.description,
        secret=e.secret,
        event_types=list(e.event_types),
    )
    _ts(msg.created_at, e.created_at)
    return msg


def delivery_pb(d: Delivery) -> webhooks_pb2.WebhookDelivery:
    msg = webhooks_pb2.WebhookDelivery(
        id=d.id,
        webhook_id=str(d.endpoint_id),
        event_id=str(d.event_id),
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        last_status=d.last_status or 0,
        last_error=d.last_error,
    )
    _ts(msg.created_at, d.created_at)
    _ts(msg.delivered_at, d.delivered_at)
    if d.status == "pending":
        _ts(msg.next_attempt_at, d.next_attempt_at)
    return msg


class WebhookServicer(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, service: WebhookService) -> None:
        self._service = service

    @_mapped
    async def CreateWebhook(
        self, request: webhooks_pb2.CreateWebhookRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.Webhook:
        created = await self._service.create(
            current_caller(),
            request.url,
            request.description,
            list(request.event_types),
        )
        return endpoint_pb(created)

    @_mapped
    async def ListWebhooks(
        self, request: webhooks_pb2.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListWebhooksResponse:
        listed = await self._service.endpoints(current_caller())
        return webhooks_pb2.ListWebhooksResponse(webhooks=[endpoint_pb(e) for e in listed])

    @_mapped
    async def DeleteWebhook(
        self, request: webhooks_pb2.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        await self._service.delete(
            current_caller(),
            parse_id(request.webhook_id, "webhook"),
        )
        return common_pb2.Empty()

    @_mapped
    async def ListWebhookDeliveries(
        self, request: webhooks_pb2.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListWebhookDeliveriesResponse:
        endpoint = parse_id(request.webhook_id, "webhook") if request.webhook_id else None
        listed = await self._service.deliveries(current_caller(), endpoint, request.limit)
        return webhooks_pb2.ListWebhookDeliveriesResponse(
            deliveries=[delivery_pb(d) for d in listed]
        )
