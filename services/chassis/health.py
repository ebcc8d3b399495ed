"""Health that tells the truth, and UNAVAILABLE for calls that meet an outage.

gRPC health of a service (grpc.health.v1):
- service "liveness": SERVING while the process works (its event loop answers);
- service "" and the service's own names: readiness, SERVING only while its database answers
  and every supervised job runs. Kubernetes points its readiness probe at "" and its liveness
  probe at "liveness"; gRPC clients' health checks route calls by it.

NATS is probed too, and its outage is logged once and exported (frontdesk_dependency_up), but
it does not make a replica unready: calls still work (events wait in the outbox, consumers
resume where they stopped), while an unready replica gets no calls at all. Counting NATS in
readiness would turn a broker outage into an outage of every service.

`HealthMonitor.run` is a supervised job probing every `interval`; each change of readiness
is logged once. `UnavailableInterceptor` turns a call that met an outage of our
infrastructure into UNAVAILABLE (one log line per outage, not a traceback per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from nats.aio.client import Client as NATS

from services.chassis import metrics
from services.chassis.jobs import Supervisor
from services.chassis.outage import Outages, component_of

log = logging.getLogger(__name__)

LIVENESS = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Probes the database and NATS and reads the supervisor; sets readiness accordingly."""

    name = "health"

    def __init__(
        self,
        service: str,
        servicer: health.aio.HealthServicer,
        names: Sequence[str],
        pool: asyncpg.Pool,
        nc: NATS,
        supervisor: Supervisor,
        outages: Outages,
        *,
        interval: float = 0.5,
        # A server that is away refuses at once; the timeout only catches one that hangs, and
        # must not call a busy machine's slow answer an outage.
        probe_timeout: float = 3.0,
    ) -> None:
        self._service = service
        self._servicer = servicer
        self._names = [*names, ""]
        self._pool = pool
        self._nc = nc
        self._supervisor = supervisor
        self._outages = outages
        self._interval = interval
        self._timeout = probe_timeout
        self.ready: bool | None = None
        self.problems: list[str] = []
        self._became_ready = asyncio.Event()
        self._slow: dict[str, int] = {}  # consecutive probe timeouts per component

    async def wait_ready(self, timeout: float) -> bool:
        """Wait (at start) until the first probe passed; False when it did not in time."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._became_ready.wait(), timeout)
        return self._became_ready.is_set()

    async def start(self) -> None:
        """Liveness at once; readiness stays NOT_SERVING until the first probe passes."""
        await self._servicer.set(LIVENESS, SERVING)
        for name in self._names:
            await self._servicer.set(name, NOT_SERVING)

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def check(self) -> bool:
        problems: list[str] = []
        was_down = self._outages.is_down("database") or self._outages.is_down("nats")
        if await self._database_answers():
            self._outages.recovered("database")
        else:
            problems.append("database")
        nats_up = await self._nats_answers()
        if nats_up:
            self._outages.recovered("nats")
        metrics.DEPENDENCY_UP.labels(self._service, "nats").set(1 if nats_up else 0)
        metrics.DEPENDENCY_UP.labels(self._service, "database").set(0 if problems else 1)
        if was_down and not problems and nats_up:
            self._supervisor.retry_now()  # jobs waiting out a backoff start over now
            await asyncio.sleep(0)
        down = [n for n in self._supervisor.down() if n != self.name]
        if down:
            problems.append("jobs: " + ", ".join(down))
        ready = not problems
        if ready != self.ready:
            if ready:
                log.info("%s is ready", self._service)
            else:
                log.warning("%s is not ready: %s", self._service, "; ".join(problems))
            for name in self._names:
                await self._servicer.set(name, SERVING if ready else NOT_SERVING)
            metrics.READY.labels(self._service).set(1 if ready else 0)
            if ready:
                self._became_ready.set()
        self.ready, self.problems = ready, problems if nats_up else [*problems, "nats"]
        return ready

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                async with self._pool.acquire() as conn:
                    await conn.fetchval("select 1")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed("database", exc)
        self._slow.pop("database", None)
        return True

    async def _nats_answers(self) -> bool:
        if not self._nc.is_connected:
            return self._failed("nats", ConnectionError("not connected"))
        try:
            await self._nc.flush(timeout=max(1, round(self._timeout)))  # PING, waits for the PONG
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed("nats", exc)
        self._slow.pop("nats", None)
        return True

    def _failed(self, component: str, exc: Exception) -> bool:
        """A refusal is an outage at once; a slow answer only the second time in a row (a
        busy machine is not an outage). Returns whether the component still counts as up."""
        if isinstance(exc, TimeoutError):
            self._slow[component] = self._slow.get(component, 0) + 1
            if self._slow[component] < 2:
                return True
        self._outages.failed(component, exc)
        return False


async def channel_serving(ch: grpc.aio.Channel, timeout: float = 1.0) -> bool:
    """True when the server behind an existing channel answers SERVING for readiness ("")."""
    try:
        resp = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout
        )
    except grpc.aio.AioRpcError:
        return False
    return bool(resp.status == SERVING)


class UnavailableInterceptor(grpc.aio.ServerInterceptor):
    """A unary call that fails on our infrastructure answers UNAVAILABLE, logged once."""

    def __init__(self, outages: Outages) -> None:
        self._outages = outages

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        outages = self._outages

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                result = await inner(request, context)
            except Exception as exc:
                component = component_of(exc)
                if component is None:
                    raise
                outages.failed(component, exc)
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{component} unavailable")
            if outages.is_down("backend"):
                outages.recovered("backend")
            return result

        return grpc.unary_unary_rpc_method_handler(
            wrapper,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
