"""Wiring of the directory service: servicer, consumers and background jobs on the chassis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from frontdesk.v1 import directory_pb2, directory_pb2_grpc

from services.chassis.runner import Resources, RunningService, Wiring, start_service
from services.directory.service import DirectoryService
from services.directory.servicer import DirectoryServicer
from services.directory.settings import Settings
from services.directory.worker import ImportWorker

MIGRATIONS = Path(__file__).parent / "migrations"


async def wire(resources: Resources) -> Wiring:
    worker: ImportWorker | None = None

    def import_queued() -> None:
        if worker is not None:
            worker.wake()

    service = DirectoryService(resources.pool, on_import_queued=import_queued)
    worker = ImportWorker(service)
    servicer = DirectoryServicer(service)

    def register(server: grpc.aio.Server) -> Sequence[str]:
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(servicer, server)
        return [directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name]

    return Wiring(register=register, background=[worker])


async def create_server(settings: Settings) -> RunningService:
    """Start the service (port 0 allowed); the caller stops it with `await running.stop()`."""
    return await start_service(settings, MIGRATIONS, wire)
