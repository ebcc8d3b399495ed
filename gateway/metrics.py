"""The gateway's Prometheus metrics on a listener of their own (FRONTDESK_GATEWAY_METRICS_PORT),
never on the public one: request counts and latencies are nobody's business on a workspace
host. Started and stopped with the application."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)
_RUNNER = web.AppKey("frontdesk_metrics_runner", web.AppRunner)


async def _metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def add_metrics_listener(app: web.Application, host: str, port: int) -> None:
    """Serve GET /metrics on host:port while `app` runs (port 0: no listener)."""
    if not port:
        return

    async def start(app: web.Application) -> None:
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", _metrics)
        runner = web.AppRunner(metrics_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        app[_RUNNER] = runner
        log.info("gateway metrics on %s:%d/metrics", host, port)

    async def stop(app: web.Application) -> None:
        runner = app.get(_RUNNER)
        if runner is not None:
            await runner.cleanup()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
