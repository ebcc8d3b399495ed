"""gRPC plumbing: an aio server with health, reflection and metrics, and a client helper.

The client adds a deadline to every call, forwards the request id, and retries calls that are
safe to repeat (reads) when the backend is briefly unavailable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.chassis import metrics
from services.chassis.logs import request_id_var

log = logging.getLogger(__name__)

T = TypeVar("T")


class _ServerInterceptor(grpc.aio.ServerInterceptor):
    """Request ids from metadata into the log context, and per-method metrics."""

    def __init__(self, service: str) -> None:
        self._service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        request_id = dict(handler_call_details.invocation_metadata or ()).get("x-request-id")
        inner = handler.unary_unary
        service = self._service

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = request_id_var.set(request_id if isinstance(request_id, str) else None)
            started = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
            except Exception:
                code = _code_name(context)
                raise
            finally:
                if code == "OK":
                    code = _code_name(context)
                metrics.GRPC_REQUESTS.labels(service, method, code).inc()
                metrics.GRPC_LATENCY.labels(service, method).observe(time.perf_counter() - started)
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapper,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(context: grpc.aio.ServicerContext) -> str:
    try:
        code = context.code()
    except Exception:
        return "UNKNOWN"
    if code is None:
        return "OK"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


async def create_server(
    listen: str,
    service: str,
    register: Callable[[grpc.aio.Server], Sequence[str]],
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Start an aio server on `listen` ("host:port", port 0 for any); returns (server, port, health).

    `register` adds the servicers and returns their full service names, which are marked
    SERVING in the health service and listed by reflection.
    """
    server = grpc.aio.server(
        interceptors=[_ServerInterceptor(service)],
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen}")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


# Domain errors of a service and the status each becomes; the first class that matches wins,
# so list subclasses before their bases.
ErrorCodes = Sequence[tuple[type[Exception], grpc.StatusCode]]
Trailing = Callable[[Exception], Sequence[tuple[str, str]]]


@asynccontextmanager
async def mapped_errors(
    context: grpc.aio.ServicerContext, codes: ErrorCodes, trailing: Trailing | None = None
) -> AsyncIterator[None]:
    """Turn a domain error raised inside into its status and message (aborting the call).

    `trailing` may add trailing metadata for an error (e.g. retry-after for throttling).
    Anything not in `codes` propagates (and is an INTERNAL error for the client).
    """
    try:
        yield
    except tuple(cls for cls, _ in codes) as exc:
        code = next(c for cls, c in codes if isinstance(exc, cls))
        if trailing is not None:
            metadata = trailing(exc)
            if metadata:
                context.set_trailing_metadata(tuple(metadata))
        await context.abort(code, str(exc))


def maps_errors(
    codes: ErrorCodes, trailing: Trailing | None = None
) -> Callable[
    [Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]]],
    Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]],
]:
    """Decorator for servicer methods: `mapped_errors` around the whole method."""

    def decorate(
        method: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]],
    ) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]]:
        @functools.wraps(method)
        async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
            async with mapped_errors(context, codes, trailing):
                return await method(self, request, context)
            raise AssertionError("unreachable: abort raises")

        return wrapper

    return decorate


def channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.enable_retries", 1),
        ],
    )


_RETRYABLE = {grpc.StatusCode.UNAVAILABLE}


async def call(
    method: Callable[..., Awaitable[T]],
    request: Any,
    *,
    timeout: float = 5.0,
    safe: bool = False,
    attempts: int = 3,
) -> T:
    """Call a stub method with a deadline and the current request id.

    `safe=True` marks a call that may be repeated (a read, or an idempotent write): it is
    retried with backoff while the backend is UNAVAILABLE, within the same overall deadline.
    """
    deadline = time.monotonic() + timeout
    metadata: tuple[tuple[str, str], ...] = ()
    request_id = request_id_var.get()
    if request_id:
        metadata = (("x-request-id", request_id),)
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            return await method(request, timeout=max(remaining, 0.05), metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            retry = (
                safe
                and exc.code() in _RETRYABLE
                and attempt < attempts
                and deadline - time.monotonic() > 0.1
            )
            if not retry:
                raise
            await asyncio.sleep(min(0.05 * 2**attempt, max(deadline - time.monotonic() - 0.05, 0)))


async def check_health(address: str, timeout: float = 1.0) -> bool:
    """True when the server at `address` answers SERVING on the standard health service."""
    async with channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
