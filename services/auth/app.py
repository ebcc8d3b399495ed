"""Wiring of the auth service: servicer, consumers and background jobs on the chassis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import grpc
from frontdesk.v1 import auth_pb2, auth_pb2_grpc

from services.auth import store
from services.auth.consumers import access_consumer
from services.auth.crypto import Passwords, SecretBox
from services.auth.directory import Directory
from services.auth.mail import Mailer
from services.auth.service import AuthService
from services.auth.servicer import AuthServicer
from services.auth.settings import Settings
from services.auth.sso import OidcClient
from services.chassis.runner import Resources, RunningService, Wiring, start_service

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class Sweeper:
    """Deletes expired sessions, pending sign-ins, SSO states and old failure counters."""

    def __init__(self, pool: asyncpg.Pool, interval: float = 300.0) -> None:
        self._pool = pool
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="auth-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with self._pool.acquire() as conn:
                    removed = await store.delete_expired(conn)
                if removed:
                    log.info("swept %d expired auth rows", removed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("auth sweeper: %s", exc)


async def wire(resources: Resources) -> Wiring:
    settings = resources.settings
    assert isinstance(settings, Settings)
    box = SecretBox(settings.secret_key)
    if not box.encrypting:
        log.warning(
            "FRONTDESK_AUTH_SECRET_KEY is not set: TOTP and SSO client secrets are stored unsealed"
        )
    directory = Directory(settings.directory_addr)
    oidc = OidcClient(allow_insecure_http=settings.sso_allow_insecure_http)
    passwords = await asyncio.to_thread(Passwords)
    service = AuthService(
        resources.pool,
        settings,
        directory,
        passwords,
        box,
        Mailer(settings.smtp_host, settings.smtp_port, settings.smtp_from),
        oidc,
    )
    servicer = AuthServicer(service)

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
