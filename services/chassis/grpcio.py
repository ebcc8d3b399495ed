"""gRPC plumbing: an aio server with health, reflection and metrics, and a client helper.

Clients spread calls over every replica behind a name: a `dns:///host:port` target (a headless
Kubernetes Service resolves to one address per pod) or a static `ipv4:` list (the local
multi-replica launcher), with the `round_robin` policy and client-side health checking in the
channel's service config. The same service config retries reads (methods that are safe to
repeat) while a replica is briefly UNAVAILABLE, within the call's deadline. Servers close each
connection after `MAX_CONNECTION_AGE_MS` (with a grace for in-flight calls), so clients
re-resolve and rebalance onto replicas that came up since.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.chassis import errors, metrics
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
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Start an aio server on `listen` ("host:port", port 0 for any); returns (server, port, health).

    `register` adds the servicers and returns their full service names, which are marked
    SERVING in the health service and listed by reflection. `interceptors` run inside the
    metrics one (the chassis adds health.UnavailableInterceptor and identity.py's principal
    check); `credentials` make it a mutual-TLS port (tls.py).
    """
    server = grpc.aio.server(
        interceptors=[_ServerInterceptor(service), *interceptors],
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            *SERVER_CONNECTION_OPTIONS,
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
    if credentials is not None:
        port = server.add_secure_port(listen, credentials)
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen}")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


# Domain errors and the status each becomes; the first class that matches wins, so list
# subclasses before their bases.
ErrorCodes = Sequence[tuple[type[Exception], grpc.StatusCode]]
Trailing = Callable[[Exception], Sequence[tuple[str, str]]]
DOMAIN_CODES: ErrorCodes = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.Throttled, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DomainError, grpc.StatusCode.FAILED_PRECONDITION),
]
"""The chassis error hierarchy (services.chassis.errors) as gRPC status codes."""


def status_for(exc: Exception, codes: ErrorCodes = DOMAIN_CODES) -> grpc.StatusCode:
    """The status of the first class in `codes` that `exc` is an instance of (INTERNAL if none)."""
    return next((c for cls, c in codes if isinstance(exc, cls)), grpc.StatusCode.INTERNAL)


@asynccontextmanager
async def mapped_errors(
    context: grpc.aio.ServicerContext,
    codes: ErrorCodes = DOMAIN_CODES,
    trailing: Trailing | None = None,
) -> AsyncIterator[None]:
    """Turn a domain error raised inside into its status and message (aborting the call).

    `trailing` may add trailing metadata for an error (e.g. retry-after for throttling).
    Anything not in `codes` propagates (and is an INTERNAL error for the client).
    """
    try:
        yield
    except tuple(cls for cls, _ in codes) as exc:
        code = status_for(exc, codes)
        if trailing is not None:
            metadata = trailing(exc)
            if metadata:
                context.set_trailing_metadata(tuple(metadata))
        await context.abort(code, str(exc))


def maps_errors(
    codes: ErrorCodes = DOMAIN_CODES, trailing: Trailing | None = None
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


# Servers end every connection after this age (GOAWAY, then in-flight calls get the grace), so
# a client's round_robin re-resolves its target and picks up replicas that started later.
MAX_CONNECTION_AGE_MS = 5 * 60 * 1000
MAX_CONNECTION_AGE_GRACE_MS = 30 * 1000
SERVER_CONNECTION_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
    ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
    # Accept the clients' 30 s keepalive pings instead of answering them with GOAWAY
    # too_many_pings (core reads GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS from
    # this key: the "recv" is only in the macro name).
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)

# Methods that only read (or are idempotent writes) may be retried on UNAVAILABLE. Reads are
# named Get*/List*/Find*/Resolve*/Check*; the others are listed by name.
_READ_PREFIXES = ("Get", "List", "Find", "Resolve", "Check")
_SAFE_WRITES = frozenset({"PortalUsage", "RecordPortalLogin", "IssuePrincipal"})
# Each retry waits a random time up to 0.1 s, 0.2 s, 0.4 s, 0.8 s: on average 0.75 s in all,
# enough to ride out a replica's restart, and always within the call's deadline.
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def lame_duck_seconds(grace: float) -> float:
    """How long a stopping server says NOT_SERVING before it stops taking calls: long enough
    for clients' health watches to move them to other replicas (1 s, less for short graces)."""
    return min(1.0, grace / 5)


def is_safe_method(method: str) -> bool:
    """True for a method name (e.g. "GetTicket") that is safe to repeat."""
    return method.startswith(_READ_PREFIXES) or method in _SAFE_WRITES


def _safe_method_names() -> list[dict[str, str]]:
    """Every safe method of every Frontdesk gRPC service, as service config names."""
    from frontdesk.v1 import (
        auth_pb2,
        compliance_pb2,
        directory_pb2,
        notifications_pb2,
        tickets_pb2,
    )

    names: list[dict[str, str]] = []
    for module in (directory_pb2, auth_pb2, tickets_pb2, compliance_pb2, notifications_pb2):
        for svc in module.DESCRIPTOR.services_by_name.values():
            for method in svc.methods:
                if is_safe_method(method.name):
                    names.append({"service": svc.full_name, "method": method.name})
    return names


@functools.cache
def service_config() -> str:
    """The client service config: round_robin, health-checked replicas, retries for reads."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": ""},
            "methodConfig": [{"name": _safe_method_names(), "retryPolicy": RETRY_POLICY}],
        }
    )


def target(address: str) -> str:
    """A gRPC target for `address`: "host:port" becomes "dns:///host:port", a comma-separated
    list of "ip:port" becomes the static "ipv4:" list, and a target with a scheme is kept."""
    address = address.strip()
    if address.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
        return address
    if "," in address:
        return "ipv4:" + ",".join(part.strip() for part in address.split(",") if part.strip())
    return f"dns:///{address}"


def channel(
    address: str,
    *,
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """A channel over every replica behind `address` (see `target`), load-balanced per call.
    `interceptors` sign its calls and `credentials` make it mutual TLS (identity.py, tls.py)."""
    if interceptors:
        from services.chassis.identity import with_stream_signers

        interceptors = with_stream_signers(interceptors)  # client streams (uploads) too
    options = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config()),
        # A replica that restarts is reconnected within a second, not after minutes.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
        # DNS answers change as pods come and go: allow re-resolution every 5 s.
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
    ]
    if credentials is not None:
        if "," in address:
            # A static list of replicas has no one host name: the servers' certificates are
            # checked against the first address's host (the launcher's all carry 127.0.0.1).
            first = address.split(",")[0].strip().removeprefix("ipv4:").rsplit(":", 1)[0]
            options.append(("grpc.ssl_target_name_override", first))
        return grpc.aio.secure_channel(
            target(address), credentials, options=options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target(address), options=options, interceptors=interceptors)


async def call(
    method: Callable[..., Awaitable[T]],
    request: Any,
    *,
    timeout: float = 5.0,
    safe: bool = False,
) -> T:
    """Call a stub method with a deadline and the current request id.

    `safe=True` states that the call may be repeated; the channel's service config retries
    such methods (see `is_safe_method`) while the backend is UNAVAILABLE, within the same
    overall deadline. A unit test checks that every call site marked safe is covered.
    """
    del safe  # the retry policy lives in the service config, keyed by method
    metadata: tuple[tuple[str, str], ...] = ()
    request_id = request_id_var.get()
    if request_id:
        metadata = (("x-request-id", request_id),)
    try:
        return await method(request, timeout=timeout, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and _unreachable(method):
            # The deadline ran out while retries waited for a backend that refuses
            # connections: that backend is down (503), it was not slow (504).
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "no replica of the backend accepts connections",
            ) from None
        raise


def _unreachable(method: Callable[..., Any]) -> bool:
    """True when the channel behind a stub method has no replica it can connect to."""
    # grpc.aio's multicallables keep their Channel privately; without it, assume reachable.
    chan = getattr(method, "_python_channel", None)
    if not isinstance(chan, grpc.aio.Channel):
        return False
    return bool(chan.get_state(try_to_connect=False) == grpc.ChannelConnectivity.TRANSIENT_FAILURE)


async def check_health(
    address: str, timeout: float = 1.0, credentials: grpc.ChannelCredentials | None = None
) -> bool:
    """True when the server at `address` answers SERVING on the standard health service."""
    async with channel(address, credentials=credentials) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
