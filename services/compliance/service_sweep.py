"""The sweep: mark control tests overdue and schedule each active control's next test."""

from __future__ import annotations

import uuid

from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import PermissionDenied
from services.compliance import events, store
from services.compliance.domain import CONTROL_MANAGE
from services.compliance.service_base import LostRace, ServiceBase


class SweepUseCases(ServiceBase):
    # -- the sweep ---------------------------------------------------------------------------

    async def sweep(self, caller: Caller) -> tuple[int, int]:
        if not caller.has(CONTROL_MANAGE):
            raise PermissionDenied("Control:manage required")
        return await self.sweep_workspace(caller.workspace_id)

    async def sweep_all(self) -> tuple[int, int]:
        """Overdue transitions and new periods' tests in every workspace (any replica)."""
        async with self._pool.acquire() as conn:
            workspaces = await store.sweep_workspaces(conn, self._today())
        overdue = scheduled = 0
        for ws in workspaces:
            o, s = await self.sweep_workspace(ws)
            overdue += o
            scheduled += s
        return overdue, scheduled

    async def sweep_workspace(self, ws: uuid.UUID) -> tuple[int, int]:
        """Persist overdue tests (control_test_overdue once per test) and create the tests of
        periods that have started (control_test_scheduled/assigned); outbox rows for each."""
        now = self._today()
        async with self._pool.acquire() as conn, conn.transaction():
            marked = await store.mark_overdue(conn, ws, now)
            for test_id, first in marked:
                if first:
                    test = await self._test(conn, ws, str(test_id))
                    await outbox.add(conn, events.test_overdue(test))
        scheduled = 0
        async with self._pool.acquire() as conn:
            for control, last_assignee in await store.controls_due_for_schedule(conn, ws, now):
                try:
                    async with conn.transaction():
                        if await self._schedule_if_due(conn, control, last_assignee, None):
                            scheduled += 1
                except LostRace:
                    continue
        return len(marked), scheduled
