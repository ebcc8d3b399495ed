"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` and wait until it has ended.

    Python 3.11's asyncio.wait_for can swallow a cancel that lands just as the awaited thing
    completes, leaving the task running on; so cancel again until it is really done.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
