"""Wiring of the compliance service: servicer, the periodic sweep, on the chassis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from frontdesk.v1 import compliance_pb2, compliance_pb2_grpc

from services.chassis.attachments import wire_files
from services.chassis.directory_client import DirectoryClient
from services.chassis.runner import Resources, RunningService, Wiring, start_service
from services.compliance.consumers import consumers
from services.compliance.domain import today
from services.compliance.jobs import Sweeper
from services.compliance.service import ComplianceService
from services.compliance.servicer import ComplianceServicer
from services.compliance.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def wire(resources: Resources) -> Wiring:
    directory = DirectoryClient(
        resources.settings.directory_addr,
        connect=lambda addr: resources.channel(addr, "directory"),
    )
    settings = resources.settings
    assert isinstance(settings, Settings)
    files = await wire_files(settings.files, resources.pool, "compliance", directory)
    service = ComplianceService(
        resources.pool,
        directory,
        clock=today,
        objects=files.objects,
        limits=files.limits,
        scanner=files.scanner,
    )
    servicer = ComplianceServicer(service, today)
    interval = settings.sweep_interval

    def register(server: grpc.aio.Server) -> Sequence[str]:
        compliance_pb2_grpc.add_ComplianceServiceServicer_to_server(servicer, server)
        return [compliance_pb2.DESCRIPTOR.services_by_name["ComplianceService"].full_name]

    return Wiring(
        register=register,
        background=[
            *consumers(resources.pool, resources.js),
            Sweeper(service, interval),
            *files.background,
        ],
        on_stop=[directory.close, *files.on_stop],
    )


async def create_server(settings: Settings) -> RunningService:
    """Start the service (port 0 allowed); the caller stops it with `await running.stop()`."""
    return await start_service(settings, MIGRATIONS, wire)
