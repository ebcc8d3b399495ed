"""The auth service's periodic work, run by the chassis supervisor."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.auth import store_sessions

log = logging.getLogger(__name__)


class Sweeper:
    """Deletes expired sessions, pending sign-ins, SSO states and old failure counters."""

    name = "auth-sweeper"

    def __init__(self, pool: asyncpg.Pool, interval: float = 300.0) -> None:
        self._pool = pool
        self._interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sweep()

    async def sweep(self) -> int:
        async with self._pool.acquire() as conn:
            removed = await store_sessions.delete_expired(conn)
        if removed:
            log.info("swept %d expired auth rows", removed)
        return removed
