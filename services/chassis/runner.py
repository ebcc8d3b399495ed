"""The life of a backend service: database, migrations, NATS, outbox relay, gRPC, consumers.

Each service's app.py describes its wiring; this module starts it in the right order and
stops it gracefully (health NOT_SERVING, stop accepting calls, finish in-flight ones, stop
consumers and relay, drain NATS, close the pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from services.chassis import db, logs, metrics, natsconn
from services.chassis.grpcio import create_server
from services.chassis.outbox import OutboxRelay
from services.chassis.settings import ServiceSettings

log = logging.getLogger(__name__)


class Startable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class Resources:
    """What a service's wiring gets to build its servicer and consumers from."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    nc: NATS
    js: JetStreamContext


@dataclass
class Wiring:
    """What a service's wiring returns."""

    register: Callable[[grpc.aio.Server], Sequence[str]]
    background: list[Startable] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass
class RunningService:
    server: grpc.aio.Server
    port: int
    resources: Resources
    health: health.aio.HealthServicer
    background: list[Startable]
    on_stop: list[Callable[[], Awaitable[None]]]

    async def stop(self) -> None:
        grace = self.resources.settings.shutdown_grace
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for item in reversed(self.background):
            with contextlib.suppress(Exception):
                await item.stop()
        for hook in self.on_stop:
            with contextlib.suppress(Exception):
                await hook()
        with contextlib.suppress(Exception):
            await self.resources.nc.drain()
        await self.resources.pool.close()


async def start_service(
    settings: ServiceSettings,
    migrations: Path,
    wire: Callable[[Resources], Awaitable[Wiring]],
) -> RunningService:
    """Prepare the database, connect NATS, start the relay, the gRPC server and consumers."""
    await db.ensure_database(settings.database_url)
    pool = await db.create_pool(settings.database_url)
    try:
        await db.migrate(pool, settings.service, migrations)
        nc = await natsconn.connect(settings.nats_url, name=f"frontdesk-{settings.service}")
        js = nc.jetstream()
        await natsconn.ensure_streams(js)
    except BaseException:
        await pool.close()
        raise
    resources = Resources(settings=settings, pool=pool, nc=nc, js=js)
    wiring = await wire(resources)
    relay = OutboxRelay(pool, js)
    background: list[Startable] = [relay, *wiring.background]
    server, port, health_servicer = await create_server(
        settings.grpc_listen, settings.service, wiring.register
    )
    for item in background:
        await item.start()
    log.info("%s serving gRPC on port %d", settings.service, port)
    return RunningService(server, port, resources, health_servicer, background, wiring.on_stop)


def main(
    settings_factory: Callable[[], ServiceSettings],
    migrations: Path,
    wire: Callable[[Resources], Awaitable[Wiring]],
) -> None:
    """Entry point of `python -m services.<name>`: run until SIGTERM or SIGINT."""
    settings = settings_factory()
    logs.configure(settings.service, settings.log_level)
    metrics.serve(settings.metrics_port)

    async def run() -> None:
        running = await start_service(settings, migrations, wire)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("%s stopping", settings.service)
        await running.stop()

    asyncio.run(run())


__all__ = ["Resources", "RunningService", "Wiring", "health_pb2", "main", "start_service"]
