"""The directory service's background work, run by the chassis supervisor: the import worker.

Every replica runs one; jobs are claimed with SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib

from services.directory.service import DirectoryService


class ImportWorker:
    """Runs waiting import jobs one at a time; woken at once by a local StartImport, else polls."""

    name = "directory-imports"

    def __init__(self, service: DirectoryService, *, poll_interval: float = 1.0) -> None:
        self._service = service
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            if await self._service.run_next_import():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
