"""Wiring of the directory service: servicer, consumers and background jobs on the chassis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from frontdesk.v1 import (
    access_pb2,
    access_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    scim_pb2,
    scim_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)

from services.chassis.runner import Resources, RunningService, Startable, Wiring, start_service
from services.directory.access import AccessService
from services.directory.access_servicer import AccessServicer
from services.directory.consumers import consumers
from services.directory.jobs import ImportWorker
from services.directory.scim import ScimService
from services.directory.scim_servicer import ScimServicer
from services.directory.service import DirectoryService
from services.directory.servicer import DirectoryServicer
from services.directory.settings import Settings
from services.directory.webhooks import WebhookSender, WebhookService
from services.directory.webhooks_servicer import WebhookServicer

MIGRATIONS = Path(__file__).parent / "migrations"


async def wire(resources: Resources) -> Wiring:
    worker: ImportWorker | None = None

    def import_queued() -> None:
        if worker is not None:
            worker.wake()

    service = DirectoryService(resources.pool, on_import_queued=import_queued)
    worker = ImportWorker(service)
    servicer = DirectoryServicer(service)
    scim_servicer = ScimServicer(ScimService(resources.pool))
    access_servicer = AccessServicer(AccessService(resources.pool, resources.js))
    settings = resources.settings
    assert isinstance(settings, Settings)
    webhook_servicer = WebhookServicer(
        WebhookService(
            resources.pool,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private,
        )
    )
    webhooks: list[Startable] = [
        WebhookSender(
            resources.pool,
            retry_base=settings.webhook_retry_base,
            ca_file=settings.webhook_ca_file,
            allow_private=settings.webhook_allow_private,
        ),
    ]

    def register(server: grpc.aio.Server) -> Sequence[str]:
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(servicer, server)
        scim_pb2_grpc.add_ScimServiceServicer_to_server(scim_servicer, server)
        access_pb2_grpc.add_AccessServiceServicer_to_server(access_servicer, server)
        webhooks_pb2_grpc.add_WebhookServiceServicer_to_server(webhook_servicer, server)
        return [
            directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name,
            scim_pb2.DESCRIPTOR.services_by_name["ScimService"].full_name,
            access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name,
            webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
        ]

    return Wiring(
        register=register,
        background=[*consumers(resources.pool, resources.js), worker, *webhooks],
    )


async def create_server(settings: Settings) -> RunningService:
    """Start the service (port 0 allowed); the caller stops it with `await running.stop()`."""
    return await start_service(settings, MIGRATIONS, wire)
