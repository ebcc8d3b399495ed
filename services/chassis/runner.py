"""The life of a backend service: database, migrations, NATS, outbox relay, gRPC, consumers.

Each service's app.py describes its wiring; this module starts it in the right order and
stops it gracefully (health NOT_SERVING, stop accepting calls, finish in-flight ones, stop
the supervised jobs, drain NATS, close the pool). Every long-running task (the relay, the
consumers, the service's jobs, housekeeping, the health monitor) runs under one Supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import asyncpg
import grpc
from frontdesk.v1 import operations_pb2_grpc
from grpc_health.v1 import health
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from services.chassis import db, deadletters, logs, metrics, migrate, natsconn, tls
from services.chassis.deadletters import DeadLetters, OperationsServicer
from services.chassis.grpcio import create_server, lame_duck_seconds
from services.chassis.health import HealthMonitor, UnavailableInterceptor
from services.chassis.housekeeping import Housekeeping, Retention
from services.chassis.identity import Identity
from services.chassis.inbox import Consumer
from services.chassis.jobs import Supervisor
from services.chassis.outage import Outages
from services.chassis.outbox import OutboxRelay
from services.chassis.settings import ServiceSettings

log = logging.getLogger(__name__)


class Startable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@runtime_checkable
class Job(Protocol):
    """A long-running task for the supervisor: `run` works until cancelled."""

    @property
    def name(self) -> str: ...
    async def run(self) -> None: ...


@dataclass
class Resources:
    """What a service's wiring gets to build its servicer and consumers from."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    nc: NATS
    js: JetStreamContext
    outages: Outages = field(default_factory=lambda: Outages(""))
    # Its signing key, trusted keys and TLS (identity.py): channels to other services come from
    # `identity.channel(address, audience)`.
    identity: Identity | None = None

    def channel(self, address: str, audience: str) -> grpc.aio.Channel:
        """A channel to another service carrying this service's own signed principal."""
        assert self.identity is not None
        return self.identity.channel(address, audience)


@dataclass
class Wiring:
    """What a service's wiring returns."""

    register: Callable[[grpc.aio.Server], Sequence[str]]
    # Jobs (name + run) are supervised; anything else only has start/stop called.
    background: list[Job | Startable] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass
class RunningService:
    server: grpc.aio.Server
    port: int
    resources: Resources
    health: health.aio.HealthServicer
    background: list[Startable]
    on_stop: list[Callable[[], Awaitable[None]]]
    supervisor: Supervisor
    monitor: HealthMonitor

    async def stop(self) -> None:
        grace = self.resources.settings.shutdown_grace
        await self.health.enter_graceful_shutdown()
        # Lame duck: clients watch our health and stop picking us; only then stop serving.
        await asyncio.sleep(lame_duck_seconds(grace))
        await self.server.stop(grace)
        await self.supervisor.stop()
        for item in reversed(self.background):
            with contextlib.suppress(Exception):
                await item.stop()
        for hook in self.on_stop:
            with contextlib.suppress(Exception):
                await hook()
        if self.resources.identity is not None:
            with contextlib.suppress(Exception):
                await self.resources.identity.close()
        with contextlib.suppress(Exception):
            await self.resources.nc.drain()
        await self.resources.pool.close()


async def start_service(
    settings: ServiceSettings,
    migrations: Path,
    wire: Callable[[Resources], Awaitable[Wiring]],
) -> RunningService:
    """Prepare the database, connect NATS, start the relay, the gRPC server and consumers."""
    identity = Identity.from_settings(settings.service, settings.identity)
    await db.ensure_database(settings.database_url)
    pool = await db.create_pool(settings.database_url)
    outages = Outages(settings.service)
    try:
        await db.migrate(pool, settings.service, migrations)
        nc = await natsconn.connect(settings.nats_url, name=f"frontdesk-{settings.service}")
        js = nc.jetstream()
        await natsconn.ensure_streams(js, settings.stream_replicas)
    except BaseException:
        await pool.close()
        raise
    resources = Resources(
        settings=settings, pool=pool, nc=nc, js=js, outages=outages, identity=identity
    )
    wiring = await wire(resources)
    supervisor = Supervisor(settings.service)
    supervisor.add(OutboxRelay.name, OutboxRelay(pool, js, dsn=settings.database_url).run)
    consumers: dict[str, Consumer] = {}
    others: list[Startable] = []
    for item in wiring.background:
        if isinstance(item, Consumer):
            consumers[item.durable] = item
            item.outages = outages
            await item.ensure()  # the durable exists before the service says it is up
        if isinstance(item, Job):
            supervisor.add(item.name, item.run)
        else:
            others.append(item)
    retention = Retention(
        outbox_sent=settings.outbox_retention,
        inbox=settings.inbox_retention,
        dead_letters=settings.dead_letter_retention,
    )
    housekeeping = Housekeeping(
        settings.service,
        pool,
        js,
        list(consumers.values()),
        retention,
        interval=settings.housekeeping_interval,
    )
    supervisor.add(housekeeping.name, housekeeping.run)
    operations = OperationsServicer(DeadLetters(pool, consumers))

    names: list[str] = []

    def register(server: grpc.aio.Server) -> Sequence[str]:
        names.extend(wiring.register(server))
        operations_pb2_grpc.add_OperationsServiceServicer_to_server(operations, server)
        names.append(deadletters.SERVICE_NAME)
        return names

    server, port, health_servicer = await create_server(
        settings.grpc_listen,
        settings.service,
        register,
        interceptors=[UnavailableInterceptor(outages), *identity.server_interceptors()],
        credentials=identity.server_credentials(),
    )
    probe = await tls.start_plain_health(settings.identity.tls.health_listen, health_servicer)
    if probe is not None:
        wiring.on_stop.append(lambda: probe.stop(0))
    monitor = HealthMonitor(settings.service, health_servicer, names, pool, nc, supervisor, outages)
    await monitor.start()
    supervisor.add(monitor.name, monitor.run)
    await supervisor.start()
    for item in others:
        await item.start()
    await monitor.wait_ready(timeout=10.0)
    log.info("%s serving gRPC on port %d", settings.service, port)
    return RunningService(
        server,
        port,
        resources,
        health_servicer,
        others,
        wiring.on_stop,
        supervisor,
        monitor,
    )


def main(
    settings_factory: Callable[[], ServiceSettings],
    migrations: Path,
    wire: Callable[[Resources], Awaitable[Wiring]],
) -> None:
    """Entry point of `python -m services.<name>`: run until SIGTERM or SIGINT."""
    settings = settings_factory()
    logs.configure(settings.service, settings.log_level)
    if migrate.FLAG in sys.argv[1:]:
        asyncio.run(migrate.migrate_only(settings, migrations))
        return
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
