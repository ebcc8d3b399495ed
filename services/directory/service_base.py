"""What every directory use case needs: the pool, transactions, and the checks and lookups
shared between concepts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
from frontdesk.v1 import events_pb2

from services.chassis.caller import Caller
from services.chassis.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from services.directory import (
    events,
    store,
    store_groups,
    store_persons,
    store_roles,
)
from services.directory.domain import Group, Person, PortalSettings

_UNIQUE_FIELDS = {
    "persons_email": ("email", "a person with this e-mail exists already"),
    "persons_login_name": ("login_name", "this login name is used by another person"),
    "roles_name": ("name", "a role with this name exists already"),
    "groups_name": ("name", "a group with this name exists already"),
    "workspaces_slug_key": ("slug", "a workspace with this slug exists already"),
}


@contextlib.contextmanager
def unique_as_conflict() -> Any:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        field_name, message = _UNIQUE_FIELDS.get(exc.constraint_name or "", ("", "exists already"))
        raise AlreadyExists(f"{field_name}: {message}" if field_name else message) from None


def person_events(
    before: Person, after: Person, changed: Sequence[str], actor: str
) -> list[events_pb2.Event]:
    """deactivated/reactivated, portal_access_changed, and person_updated for the other fields."""
    out: list[events_pb2.Event] = []
    if "active" in changed:
        kind = "person_reactivated" if after.active else "person_deactivated"
        out.append(events.person_changed(kind, after, actor, changed))
    if "portal_access" in changed:
        out.append(events.person_changed("portal_access_changed", after, actor, changed))
    if set(changed) - {"active", "portal_access"}:
        out.append(events.person_changed("person_updated", after, actor, changed))
    return out


def keep(new: Any, old: Any) -> Any:
    return old if new is None else new


class ServiceBase:
    """The pool and the helpers the concept mixins share; DirectoryService combines the mixins."""

    def __init__(
        self, pool: asyncpg.Pool, *, on_import_queued: Callable[[], None] | None = None
    ) -> None:
        self._pool = pool
        self._on_import_queued = on_import_queued

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn:
            yield conn

    async def _may_grant(
        self, conn: asyncpg.Connection, caller: Caller, permissions: Sequence[str], what: str
    ) -> None:
        """No one hands out permissions they do not hold themselves (no privilege escalation).
        A service provisioning persons (auth's SSO sign-up) places them in the groups the
        workspace's rules name; it holds no role permissions of its own."""
        if caller.is_service and caller.has("Person:provision"):
            return
        beyond = sorted(set(permissions) - caller.permissions)
        if beyond:
            raise PermissionDenied(
                f"{what} carries permissions you do not hold: {', '.join(beyond)}"
            )

    # ---- portal settings ----

    async def _settings(
        self, conn: asyncpg.Connection, workspace_id: uuid.UUID, *, for_update: bool = False
    ) -> PortalSettings:
        settings = await store.get_settings(conn, workspace_id, for_update=for_update)
        if settings is None:
            raise NotFound("workspace not found")
        return settings

    # ---- persons ----

    async def _person(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        person_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Person:
        person = await store_persons.get_person(
            conn, caller.workspace_id, person_id, for_update=for_update
        )
        if person is None:
            raise NotFound("person not found")
        return person

    async def _check_links(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        group_ids: list[uuid.UUID],
        role_ids: list[uuid.UUID],
    ) -> None:
        if group_ids:
            found = await store_groups.existing_group_ids(conn, caller.workspace_id, group_ids)
            if missing := [g for g in group_ids if g not in found]:
                raise NotFound(f"group {missing[0]} not found")
            for group_id in group_ids:
                group = await store_groups.get_group(conn, caller.workspace_id, group_id)
                assert group is not None
                await self._may_grant(
                    conn,
                    caller,
                    await self._group_permissions(conn, group),
                    f"group {group.name!r}",
                )
        if role_ids:
            found = await store_roles.existing_role_ids(conn, caller.workspace_id, role_ids)
            if missing := [r for r in role_ids if r not in found]:
                raise NotFound(f"role {missing[0]} not found")
            for role_id in role_ids:
                role = await store_roles.get_role(conn, caller.workspace_id, role_id)
                assert role is not None
                await self._may_grant(conn, caller, role.permissions, f"role {role.name!r}")

    async def _group_permissions(self, conn: asyncpg.Connection, group: Group) -> list[str]:
        perms: set[str] = set()
        for role_id in group.role_ids:
            role = await store_roles.get_role(conn, group.workspace_id, role_id)
            if role is not None:
                perms.update(role.permissions)
        return sorted(perms)

    async def _keep_an_admin(
        self, conn: asyncpg.Connection, caller: Caller, person: Person, leaving: uuid.UUID | None
    ) -> None:
        """Refuse to deactivate, or remove from Administrators, the last active administrator."""
        group_id, others = await store_groups.other_active_admins(
            conn, caller.workspace_id, person.id
        )
        if group_id is None or group_id not in person.group_ids or not person.active:
            return
        if leaving is not None and leaving != group_id:
            return
        if others == 0:
            raise FailedPrecondition(
                "this is the workspace's last active administrator; make someone else an"
                " administrator first"
            )
