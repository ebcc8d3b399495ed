"""A running Frontdesk for integration tests: real services on port 0, each with its own databases."""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.chassis.runner import RunningService
from tests.signing import channel, keys

__all__ = ["SERVICES", "Stack", "channel"]

SERVICES = ("directory", "auth", "tickets", "compliance")
TEST_AUTH_SECRET_KEY = "dGVzdC1rZXktZm9yLWZyb250ZGVzay1hdXRoLXRlc3Q="


@dataclass
class Stack:
    """Starts services (and the gateway) against one PostgreSQL server and one NATS server.

    Every Stack has its own database prefix, so tests never see each other's rows.
    """

    pg_url: str
    nats_url: str
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}_")
    services: dict[str, RunningService] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    _closers: list[Any] = field(default_factory=list)
    _gateways: list[Any] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "FRONTDESK_DATABASE_URL": self.pg_url,
            "FRONTDESK_DB_PREFIX": self.prefix,
            "FRONTDESK_NATS_URL": self.nats_url,
            "FRONTDESK_GRPC_LISTEN": "127.0.0.1:0",
            "FRONTDESK_SHUTDOWN_GRACE": "0.5",
            # Auth refuses to start without its sealing key (a fixed key for tests).
            "FRONTDESK_AUTH_SECRET_KEY": TEST_AUTH_SECRET_KEY,
            **{f"FRONTDESK_{name.upper()}_ADDR": addr for name, addr in self.addresses.items()},
            # identities (tests/signing.py): trusted keys; each component's own key at start
            **keys().env(),
            **self.extra_env,
        }
        env.update(overrides)
        return env

    def env_of(self, name: str, **overrides: str) -> dict[str, str]:
        """`env()` for component `name`, with its identity key (a replica started by hand)."""
        overrides.setdefault("FRONTDESK_IDENTITY_KEY_FILE", keys().key_file(name))
        return self.env(**overrides)

    async def start(self, name: str, **overrides: str) -> RunningService:
        """Start service `name` (directory, auth, tickets, compliance) from its app module."""
        app = importlib.import_module(f"services.{name}.app")
        settings_mod = importlib.import_module(f"services.{name}.settings")
        overrides.setdefault("FRONTDESK_IDENTITY_KEY_FILE", keys().key_file(name))
        settings = settings_mod.Settings.from_env(self.env(**overrides))
        running: RunningService = await app.create_server(settings)
        self.services[name] = running
        self.addresses[name] = f"127.0.0.1:{running.port}"
        return running

    async def start_gateway(self, **overrides: str) -> str:
        """Start a gateway replica on port 0 in this process; returns its base URL."""
        from aiohttp import web

        from gateway.app import create_app
        from gateway.settings import Settings

        overrides.setdefault("FRONTDESK_IDENTITY_KEY_FILE", keys().key_file("gateway"))
        env = self.env(FRONTDESK_GATEWAY_HOST="127.0.0.1", FRONTDESK_GATEWAY_PORT="0", **overrides)
        for name in SERVICES:
            env.setdefault(f"FRONTDESK_{name.upper()}_ADDR", "127.0.0.1:1")
        app = create_app(Settings.from_env(env))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._gateways.append(runner)
        return f"http://127.0.0.1:{port}"

    def database_url(self, service: str) -> str:
        base = self.pg_url.rsplit("/", 1)[0]
        return f"{base}/{self.prefix}{service}"

    async def connect(self, service: str) -> asyncpg.Connection:
        """A direct connection to a service's database, for assertions on what it holds."""
        conn = await asyncpg.connect(self.database_url(service))
        self._closers.append(conn.close)
        return conn

    def on_close(self, closer: Any) -> None:
        self._closers.append(closer)

    async def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                pass
        for runner in self._gateways:
            await runner.cleanup()
        for running in reversed(list(self.services.values())):
            await running.stop()
        self.services.clear()
        admin = await asyncpg.connect(self.pg_url)
        try:
            names = await admin.fetch(
                "select datname from pg_database where datname like $1", self.prefix + "%"
            )
            for row in names:
                quoted = await admin.fetchval("select quote_ident($1)", row["datname"])
                await admin.execute(f"drop database if exists {quoted} with (force)")
        finally:
            await admin.close()
