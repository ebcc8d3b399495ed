"""Use cases of controls: create, update, get, list."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import replace

from services.chassis.caller import Caller
from services.chassis.errors import InvalidArgument, PermissionDenied
from services.chassis.paging import Page
from services.compliance import store
from services.compliance.domain import (
    CONTROL_MANAGE,
    CONTROL_READ,
    FREQUENCIES,
    MAX_TITLE,
    PREFIX_CONTROL,
    Control,
    check_text,
    parse_uuid,
)
from services.compliance.service_base import LostRace, ServiceBase, check_choice


class ControlUseCases(ServiceBase):
    # -- controls ----------------------------------------------------------------------------

    async def create_control(
        self,
        caller: Caller,
        *,
        title: str,
        description: str,
        test_procedure: str,
        framework_ref: str,
        frequency: str | None,
        owner_id: str,
        active: bool | None,
    ) -> Control:
        """Writes the control, and for a recurring one its first test, with outbox rows."""
        if not caller.has(CONTROL_MANAGE):
            raise PermissionDenied("Control:manage required")
        problems: list[str] = []
        title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        description = check_text(description, "description", problems, required=False)
        test_procedure = check_text(test_procedure, "test_procedure", problems, required=False)
        framework_ref = check_text(
            framework_ref, "framework_ref", problems, required=False, limit=MAX_TITLE
        )
        if frequency is None:
            problems.append("frequency: required")
        check_choice(frequency, "frequency", FREQUENCIES, problems)
        owner = parse_uuid(owner_id, "owner_id", problems, required=True)
        if problems or owner is None or frequency is None:
            raise InvalidArgument(problems)
        await self._check_persons(caller.workspace_id, {"owner_id": owner})
        async with self._pool.acquire() as conn, conn.transaction():
            control = Control(
                id=uuid.uuid4(),
                workspace_id=caller.workspace_id,
                seq=await store.next_seq(conn, caller.workspace_id, PREFIX_CONTROL),
                title=title,
                description=description,
                test_procedure=test_procedure,
                framework_ref=framework_ref,
                frequency=frequency,
                owner_id=owner,
                active=True if active is None else active,
            )
            control = await store.insert_control(conn, control)
            await self._schedule_if_due(conn, control, None, caller.person_id)
        return control

    async def update_control(
        self,
        caller: Caller,
        control_ref: str,
        *,
        title: str | None = None,
        description: str | None = None,
        test_procedure: str | None = None,
        framework_ref: str | None = None,
        frequency: str | None = None,
        owner_id: str | None = None,
        active: bool | None = None,
    ) -> Control:
        if not caller.has(CONTROL_MANAGE):
            raise PermissionDenied("Control:manage required")
        problems: list[str] = []
        if title is not None:
            title = check_text(title, "title", problems, required=True, limit=MAX_TITLE)
        if description is not None:
            description = check_text(description, "description", problems, required=False)
        if test_procedure is not None:
            test_procedure = check_text(test_procedure, "test_procedure", problems, required=False)
        if framework_ref is not None:
            framework_ref = check_text(
                framework_ref, "framework_ref", problems, required=False, limit=MAX_TITLE
            )
        check_choice(frequency, "frequency", FREQUENCIES, problems)
        owner = None
        if owner_id is not None:
            owner = parse_uuid(owner_id, "owner_id", problems, required=True)
        if problems:
            raise InvalidArgument(problems)
        if owner is not None:
            async with self._pool.acquire() as conn:
                current = await self._control(conn, caller.workspace_id, control_ref)
            if current.owner_id != owner:
                await self._check_persons(caller.workspace_id, {"owner_id": owner})
        async with self._pool.acquire() as conn, conn.transaction():
            control = await self._control(conn, caller.workspace_id, control_ref, for_update=True)
            changed = replace(
                control,
                title=control.title if title is None else title,
                description=control.description if description is None else description,
                test_procedure=(
                    control.test_procedure if test_procedure is None else test_procedure
                ),
                framework_ref=control.framework_ref if framework_ref is None else framework_ref,
                frequency=frequency or control.frequency,
                owner_id=owner or control.owner_id,
                active=control.active if active is None else active,
            )
            control = await store.update_control(conn, changed)
            if not await store.has_open_test(conn, control.workspace_id, control.id):
                latest = await store.latest_scheduled_test(conn, control.workspace_id, control.id)
                if latest is None or latest.period_end < self._today():
                    with contextlib.suppress(LostRace):
                        await self._schedule_if_due(
                            conn, control, latest.assignee_id if latest else None, caller.person_id
                        )
        return control

    async def get_control(self, caller: Caller, control_ref: str) -> Control:
        if not caller.has_any(CONTROL_MANAGE, CONTROL_READ):
            raise PermissionDenied("Control:read required")
        async with self._pool.acquire() as conn:
            return await self._control(conn, caller.workspace_id, control_ref)

    async def list_controls(
        self,
        caller: Caller,
        page: Page,
        *,
        query: str = "",
        active: bool | None = None,
        frequency: str | None = None,
        owner_id: str = "",
    ) -> tuple[list[Control], int]:
        if not caller.has_any(CONTROL_MANAGE, CONTROL_READ):
            raise PermissionDenied("Control:read required")
        problems: list[str] = []
        owner = parse_uuid(owner_id, "owner_id", problems, required=False)
        check_choice(frequency, "frequency", FREQUENCIES, problems)
        if problems:
            raise InvalidArgument(problems)
        async with self._pool.acquire() as conn:
            return await store.list_controls(
                conn,
                caller.workspace_id,
                page,
                query=query.strip()[:200],
                active=active,
                frequency=frequency,
                owner_id=owner,
            )
