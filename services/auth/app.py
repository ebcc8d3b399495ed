"""Wiring of the auth service: servicer, consumers and background jobs on the chassis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import grpc
from frontdesk.v1 import auth_pb2, auth_pb2_grpc

from services.auth.consumers import access_consumer
from services.auth.crypto import Passwords, SecretBox
from services.auth.directory import Directory
from services.auth.jobs import Sweeper
from services.auth.mail import Mailer
from services.auth.principals import PrincipalIssuer
from services.auth.service import AuthService
from services.auth.servicer import AuthServicer
from services.auth.settings import Settings
from services.auth.sso import OidcClient
from services.chassis.runner import Resources, RunningService, Wiring, start_service

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


async def wire(resources: Resources) -> Wiring:
    settings = resources.settings
    assert isinstance(settings, Settings)
    box = SecretBox(settings.secret_key)
    if not box.encrypting:
        log.warning(
            "FRONTDESK_AUTH_SECRET_KEY is not set and FRONTDESK_AUTH_ALLOW_UNSEALED_SECRETS is on: "
            "TOTP and SSO client secrets are stored unsealed (local development only)"
        )
    identity = resources.identity
    assert identity is not None
    directory = Directory(
        settings.directory_addr, connect=lambda addr: identity.channel(addr, "directory")
    )
    oidc = OidcClient(
        allow_insecure_http=settings.sso_allow_insecure_http,
        allow_private_networks=settings.sso_allow_private_networks,
    )
    passwords = await asyncio.to_thread(Passwords)
    service = AuthService(
        resources.pool,
        settings,
        directory,
        passwords,
        box,
        Mailer(settings.smtp),
        oidc,
    )
    principals = PrincipalIssuer(service, directory, identity.signer, identity.published)
    servicer = AuthServicer(service, principals)

    def register(server: grpc.aio.Server) -> Sequence[str]:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
        return [auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name]

    return Wiring(
        register=register,
        background=[
            access_consumer(resources.pool, resources.js, service),
            Sweeper(resources.pool),
        ],
        on_stop=[directory.close, oidc.close],
    )


async def create_server(settings: Settings) -> RunningService:
    """Start the service (port 0 allowed); the caller stops it with `await running.stop()`."""
    return await start_service(settings, MIGRATIONS, wire)
