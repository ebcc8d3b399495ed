"""The background import worker: every replica runs one; jobs are claimed with SKIP LOCKED."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.chassis.tasks import stop_task
from services.directory.service import DirectoryService

log = logging.getLogger(__name__)


class ImportWorker:
    """Runs waiting import jobs one at a time; woken at once by a local StartImport, else polls."""

    def __init__(self, service: DirectoryService, *, poll_interval: float = 1.0) -> None:
        self._service = service
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="directory-imports")

    async def stop(self) -> None:
        await stop_task(self._task)

    async def _run(self) -> None:
        while True:
            try:
                if await self._service.run_next_import():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("import worker: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
