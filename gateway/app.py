"""The gateway's aiohttp application: middlewares, the route table, caches and their events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import grpc
import jinja2
from aiohttp import web
from frontdesk.v1 import directory_pb2
from nats.aio.client import Client as NATS
from prometheus_client import Counter, Histogram

from gateway.backends import Backends
from gateway.cache import Caches, Invalidator
from gateway.errors import ApiError, from_grpc
from gateway.features.scim import api as scim_api
from gateway.metrics import add_metrics_listener
from gateway.present import pretty_time
from gateway.readiness import INVALIDATOR_KEY
from gateway.routing import (
    ROUTE_KEY,
    STATE_KEY,
    WORKSPACE_KEY,
    GatewayState,
    build_handler,
    error_response,
)
from gateway.settings import Settings
from gateway.uploads import object_http
from services.chassis import natsconn
from services.chassis.grpcio import call
from services.chassis.logs import request_id_var

log = logging.getLogger("gateway")
access_log = logging.getLogger("gateway.access")

HERE = Path(__file__).parent
REQUESTS = Counter("frontdesk_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("frontdesk_http_request_seconds", "HTTP request latency", ["method", "route"])

Middleware = Callable[
    [web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    Awaitable[web.StreamResponse],
]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def workspace_slug(host: str, base_domain: str) -> str | None:
    """'acme.localhost:8080' -> 'acme' when the base domain is 'localhost'."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    name = name.lower().rstrip(".")
    suffix = "." + base_domain
    if not name.endswith(suffix):
        return None
    slug = name[: -len(suffix)]
    if not slug or "." in slug:
        return None
    return slug


@web.middleware
async def observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    if len(request_id) > 64 or not request_id.replace("-", "").isalnum():
        request_id = uuid.uuid4().hex
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = request.get(ROUTE_KEY)
        template = (
            route.path
            if route is not None
            else (
                request.match_info.route.resource.canonical
                if request.match_info.route.resource
                else "unmatched"
            )
        )
        REQUESTS.labels(request.method, template, str(status)).inc()
        LATENCY.labels(request.method, template).observe(elapsed)
        workspace = request.get(WORKSPACE_KEY)
        access_log.info(
            "%s %s %d",
            request.method,
            template,
            status,
            extra={
                "status": status,
                "path": request.path,
                "method": request.method,
                "workspace": workspace.slug if workspace is not None else None,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        request_id_var.reset(token)


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure(request, exc)
        raise
    _secure(request, response)
    return response


async def _secure_before_sending(request: web.Request, response: web.StreamResponse) -> None:
    _secure(request, response)


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    settings: Settings = request.app[STATE_KEY].settings
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        # Pages and JSON are per person: never kept by a shared cache, nor shown again from
        # the browser's history after sign-out.
        h.setdefault("Cache-Control", "no-store")
    if settings.hsts and (request.secure or settings.secure_cookies):
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
        _check_location(response)
        return response
    except ApiError as exc:
        if exc.status >= 500:
            log.warning("%s %s -> %d %s", request.method, request.path, exc.status, exc.message)
        else:
            log.info("%s %s refused: %d %s", request.method, request.path, exc.status, exc.code)
        return error_response(request, exc)
    except grpc.aio.AioRpcError as exc:
        return error_response(request, from_grpc(exc))
    except TimeoutError:
        return error_response(request, ApiError(504, "timeout", "a backend service timed out"))
    except web.HTTPRequestEntityTooLarge:
        return error_response(request, ApiError(413, "too_large", "the request body is too large"))
    except web.HTTPNotFound:
        return error_response(request, ApiError(404, "not_found", "not found"))
    except web.HTTPMethodNotAllowed as exc:
        allow = ", ".join(sorted(exc.allowed_methods))
        return error_response(
            request,
            ApiError(405, "method_not_allowed", "method not allowed", headers={"Allow": allow}),
        )
    except web.HTTPException as exc:
        # Redirects (login_redirect, ctx.redirect) are answers, not failures.
        try:
            _check_location(exc)
        except ApiError as bad:
            return error_response(request, bad)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            request, ApiError(500, "internal", "something went wrong on our side")
        )


def _check_location(response: web.StreamResponse) -> None:
    """A redirect to a target with control characters (a crafted ?next=) is refused here:
    aiohttp would drop the connection when writing the header, answering nothing."""
    location = response.headers.get("Location", "")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in location):
        raise ApiError(400, "bad_request", "the redirect target is not a valid address")


@web.middleware
async def resolve_workspace(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Host -> workspace (cached); ops routes and static files answer on any host."""
    state = request.app[STATE_KEY]
    slug = workspace_slug(request.host, state.settings.base_domain)
    if slug is not None:
        caches = state.caches
        workspace = caches.workspaces.get(slug)
        if workspace is None and caches.unknown_hosts.get(slug) is None:
            try:
                found: directory_pb2.Workspace = await call(
                    state.backends.directory.GetWorkspace,
                    directory_pb2.GetWorkspaceRequest(slug=slug),
                    timeout=state.settings.backend_timeout,
                    safe=True,
                )
                caches.workspaces.put(slug, found)
                workspace = found
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    raise
                caches.unknown_hosts.put(slug, True)
        if workspace is not None:
            request[WORKSPACE_KEY] = workspace
    return await handler(request)


def create_app(settings: Settings, backends: Backends | None = None) -> web.Application:
    from gateway.routes import ROUTES

    app = web.Application(
        middlewares=[observe, security_headers, errors, resolve_workspace],
        client_max_size=max(settings.max_body_bytes, settings.max_upload_bytes) + 64 * 1024,
    )
    caches = Caches(settings.cache_ttl)
    state = GatewayState(
        settings=settings,
        backends=backends or Backends.connect(settings, caches),
        caches=caches,
    )
    app[STATE_KEY] = state
    # Streamed responses (CSV exports) send their headers inside the handler, before the
    # middleware sees them: this signal runs for every response just before its headers go.
    app.on_response_prepare.append(_secure_before_sending)
    if settings.metrics_enabled:
        add_metrics_listener(app, settings.metrics_host, settings.metrics_port)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    env.filters["when"] = pretty_time  # RFC 3339 text as people read it
    for route in ROUTES:
        app.router.add_route(route.method, route.path, build_handler(route))
    app.router.add_static("/static/", HERE / "static", append_version=True)
    scim_api.install(app)

    async def on_startup(app: web.Application) -> None:
        async def reconnected() -> None:
            # Events may have been missed during the gap.
            state.caches.degrade(None)

        async def disconnected() -> None:
            state.caches.degrade(settings.cache_ttl_without_events)

        nc = await natsconn.connect(
            settings.nats_url,
            "frontdesk-gateway",
            on_reconnect=reconnected,
            on_disconnect=disconnected,
        )
        invalidator = Invalidator(nc, state.caches)
        await invalidator.start()
        app[NATS_KEY] = nc
        app[INVALIDATOR_KEY] = invalidator

    async def on_cleanup(app: web.Application) -> None:
        nc = app.get(NATS_KEY)
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        await state.backends.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.cleanup_ctx.append(object_http)
    return app


NATS_KEY: web.AppKey[NATS] = web.AppKey("nats")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT (python -m gateway)."""
    import signal

    app = create_app(settings)
    # On SIGTERM the runner drains: it stops accepting, lets in-flight requests finish for up
    # to the grace period, then exits.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_grace)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("gateway listening on %s:%d", settings.host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("gateway draining (up to %.0fs)", settings.shutdown_grace)
    await runner.cleanup()
