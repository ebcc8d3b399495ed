"""Periodic work of the tickets service: the attachment sweeper.

`sweep_attachments` is a plain coroutine that runs until cancelled, so the chassis job
supervisor can run (and restart) it; `sweep_once` does one pass and is what tests call.
"""

from __future__ import annotations

import asyncpg

from services.chassis import attachments
from services.chassis.attachments import STAGED_TTL_SECONDS
from services.chassis.objectstore import ObjectStore


async def sweep_once(
    pool: asyncpg.Pool, objects: ObjectStore, ttl_seconds: float = STAGED_TTL_SECONDS
) -> int:
    return await attachments.sweep_once(pool, objects, "tickets", ttl_seconds)


async def sweep_attachments(
    pool: asyncpg.Pool, objects: ObjectStore, interval: float = 300.0
) -> None:
    await attachments.sweep_forever(pool, objects, "tickets", interval)
