"""Wiring of the tickets service: servicer, consumers and background jobs on the chassis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from frontdesk.v1 import tickets_pb2, tickets_pb2_grpc

from services.chassis.attachments import wire_files
from services.chassis.directory_client import DirectoryClient
from services.chassis.runner import Resources, RunningService, Wiring, start_service
from services.tickets.consumers import consumers
from services.tickets.service import TicketService
from services.tickets.servicer import TicketServicer
from services.tickets.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def wire(resources: Resources) -> Wiring:
    settings = resources.settings
    assert isinstance(settings, Settings)
    directory = DirectoryClient(
        settings.directory_addr,
        connect=lambda addr: resources.channel(addr, "directory"),
    )
    files = await wire_files(settings.files, resources.pool, "tickets", directory)
    service = TicketService(
        resources.pool, directory, files.objects, files.limits, scanner=files.scanner
    )
    servicer = TicketServicer(service)

    def register(server: grpc.aio.Server) -> Sequence[str]:
        tickets_pb2_grpc.add_TicketServiceServicer_to_server(servicer, server)
        return [tickets_pb2.DESCRIPTOR.services_by_name["TicketService"].full_name]

    return Wiring(
        register=register,
        background=[*consumers(resources.pool, resources.js), *files.background],
        on_stop=[directory.close, *files.on_stop],
    )


async def create_server(settings: Settings) -> RunningService:
    """Start the service (port 0 allowed); the caller stops it with `await running.stop()`."""
    return await start_service(settings, MIGRATIONS, wire)
