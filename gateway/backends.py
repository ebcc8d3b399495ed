"""gRPC channels and stubs of the backend services, one set per gateway process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from frontdesk.v1 import auth_pb2_grpc, compliance_pb2_grpc, directory_pb2_grpc, tickets_pb2_grpc

from gateway.settings import Settings
from services.chassis.grpcio import channel, check_health


@dataclass
class Backends:
    directory: directory_pb2_grpc.DirectoryServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    tickets: tickets_pb2_grpc.TicketServiceStub
    compliance: compliance_pb2_grpc.ComplianceServiceStub
    addresses: dict[str, str]
    channels: list[grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: Settings) -> Backends:
        addresses = {
            "directory": settings.directory_addr,
            "auth": settings.auth_addr,
            "tickets": settings.tickets_addr,
            "compliance": settings.compliance_addr,
        }
        chans = {name: channel(addr) for name, addr in addresses.items()}
        return cls(
            directory=directory_pb2_grpc.DirectoryServiceStub(chans["directory"]),
            auth=auth_pb2_grpc.AuthServiceStub(chans["auth"]),
            tickets=tickets_pb2_grpc.TicketServiceStub(chans["tickets"]),
            compliance=compliance_pb2_grpc.ComplianceServiceStub(chans["compliance"]),
            addresses=addresses,
            channels=list(chans.values()),
        )

    async def health(self) -> dict[str, bool]:
        names = list(self.addresses)
        results = await asyncio.gather(*(check_health(self.addresses[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()
