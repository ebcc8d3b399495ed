"""The compliance service's periodic work, run by the chassis supervisor."""

from __future__ import annotations

import asyncio
import logging

from services.compliance.service import ComplianceService

log = logging.getLogger(__name__)


class Sweeper:
    """Runs the sweep (overdue tests, tests of periods that started) on a timer in every
    replica; concurrent sweeps are safe."""

    name = "compliance-sweeper"

    def __init__(self, service: ComplianceService, interval: float) -> None:
        self._service = service
        self._interval = interval

    async def run(self) -> None:
        while True:
            overdue, scheduled = await self._service.sweep_all()
            if overdue or scheduled:
                log.info("sweep: %d tests overdue, %d scheduled", overdue, scheduled)
            await asyncio.sleep(self._interval)
