"""The gateway's readiness (/readyz): can this replica serve right now?

Ready when, for every backend, at least one of its long-lived channels answers SERVING (the
backend's own readiness: database, jobs). /healthz stays liveness only.

Its cache-invalidation subscription is reported ("events") but does not make it unready: while
NATS is away the replica forgets its caches and keeps entries at most
FRONTDESK_CACHE_TTL_WITHOUT_EVENTS seconds (gateway/cache.py `Caches.degrade`), so a revoked
session is refused within that time without any event, and the portal stays up. Taking every
gateway out of rotation would turn a broker outage into a full outage.
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
    ready = all(health.values())
    return ready, {
        "status": "ready" if ready else "not_ready",
        "events": "subscribed" if events else "unavailable",
        "caches": "short-lived (no events)" if state.caches.degraded else "normal",
        "backends": {name: "serving" if ok else "unavailable" for name, ok in health.items()},
    }
