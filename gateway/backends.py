"""gRPC channels and stubs of the backend services, one set per gateway process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc
from frontdesk.v1 import (
    access_pb2_grpc,
    auth_pb2_grpc,
    compliance_pb2_grpc,
    directory_pb2_grpc,
    notifications_pb2_grpc,
    scim_pb2_grpc,
    tickets_pb2_grpc,
    webhooks_pb2_grpc,
)

from gateway.cache import Caches
from gateway.principals import GatewayPrincipals
from gateway.settings import Settings
from services.chassis import tls
from services.chassis.grpcio import check_health
from services.chassis.health import channel_serving
from services.chassis.identity import Identity


@dataclass
class Backends:
    directory: directory_pb2_grpc.DirectoryServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    tickets: tickets_pb2_grpc.TicketServiceStub
    compliance: compliance_pb2_grpc.ComplianceServiceStub
    addresses: dict[str, str]
    channels: list[grpc.aio.Channel]
    # SCIM provisioning, served by the directory on its channel.
    scim: scim_pb2_grpc.ScimServiceStub
    # The access snapshot, served by the directory on its channel.
    access: access_pb2_grpc.AccessServiceStub
    # Webhooks, served by the directory on its channel.
    webhooks: webhooks_pb2_grpc.WebhookServiceStub
    # The long-lived channels of each backend, which /readyz checks (never a new channel).
    by_name: dict[str, list[grpc.aio.Channel]] = field(default_factory=dict)
    identity: Identity | None = None
    # None when FRONTDESK_NOTIFICATIONS_ADDR is not set (the notification routes answer 503).
    notifications: notifications_pb2_grpc.NotificationServiceStub | None = None

    @classmethod
    def connect(cls, settings: Settings, caches: Caches | None = None) -> Backends:
        """Channels signed by the gateway's identity: each call carries the person's principal
        (minted by auth for the request's session) or the gateway's own (principals.py)."""
        addresses = {
            "directory": settings.directory_addr,
            "auth": settings.auth_addr,
            "tickets": settings.tickets_addr,
            "compliance": settings.compliance_addr,
        }
        if settings.notifications_addr:
            addresses["notifications"] = settings.notifications_addr
        identity = Identity.from_settings("gateway", settings.identity)
        cache = (caches or Caches(settings.cache_ttl)).principals
        source = GatewayPrincipals(identity, cache, settings.backend_timeout)
        chans = {name: identity.channel(addr, name, source) for name, addr in addresses.items()}
        source.connect_auth(auth_pb2_grpc.AuthServiceStub(chans["auth"]))
        return cls(
            directory=directory_pb2_grpc.DirectoryServiceStub(chans["directory"]),
            auth=auth_pb2_grpc.AuthServiceStub(chans["auth"]),
            tickets=tickets_pb2_grpc.TicketServiceStub(chans["tickets"]),
            compliance=compliance_pb2_grpc.ComplianceServiceStub(chans["compliance"]),
            addresses=addresses,
            channels=list(chans.values()),
            scim=scim_pb2_grpc.ScimServiceStub(chans["directory"]),
            access=access_pb2_grpc.AccessServiceStub(chans["directory"]),
            webhooks=webhooks_pb2_grpc.WebhookServiceStub(chans["directory"]),
            by_name={name: [ch] for name, ch in chans.items()},
            identity=identity,
            notifications=(
                notifications_pb2_grpc.NotificationServiceStub(chans["notifications"])
                if "notifications" in chans
                else None
            ),
        )

    async def health(self, timeout: float = 1.0) -> dict[str, bool]:
        """Per backend: does at least one of its channels answer SERVING (its readiness)?"""
        names = list(self.addresses)
        results = await asyncio.gather(*(self._healthy(n, timeout) for n in names))
        return dict(zip(names, results, strict=True))

    async def _healthy(self, name: str, timeout: float) -> bool:
        chans = self.by_name.get(name)
        if not chans:
            creds = tls.channel_credentials(self.identity.tls) if self.identity else None
            return await check_health(self.addresses[name], timeout, credentials=creds)
        answers = await asyncio.gather(*(channel_serving(ch, timeout) for ch in chans))
        return any(answers)

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()
