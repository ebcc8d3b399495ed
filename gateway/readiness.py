"""The gateway's readiness (/readyz): can this replica serve right now?

Ready when its NATS connection is up with its cache-invalidation subscriptions (otherwise its
caches could serve revoked sessions) and, for every backend, at least one of its long-lived
channels answers SERVING (the backend's own readiness: database, NATS, jobs). /healthz stays
liveness only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.cache import Invalidator
from gateway.routing import STATE_KEY

INVALIDATOR_KEY: web.AppKey[Invalidator] = web.AppKey("invalidator")


async def readiness(app: web.Application) -> tuple[bool, dict[str, Any]]:
    state = app[STATE_KEY]
    health = await state.backends.health()
    invalidator = app.get(INVALIDATOR_KEY)
    events = invalidator is not None and invalidator.subscribed
    ready = events and all(health.values())
    return ready, {
        "status": "ready" if ready else "not_ready",
        "events": "subscribed" if events else "unavailable",
        "backends": {name: "serving" if ok else "unavailable" for name, ok in health.items()},
    }
