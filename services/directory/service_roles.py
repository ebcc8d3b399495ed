"""Use cases of roles: list, create, update, delete, grant and revoke."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

import asyncpg

from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, NotFound
from services.directory import (
    events,
    store,
    store_roles,
)
from services.directory.domain import Role, check_permissions, clean_name, clean_text, require
from services.directory.service_base import ServiceBase, keep, unique_as_conflict


class RoleUseCases(ServiceBase):
    # ---- roles ----

    def _may_see_roles(self, caller: Caller) -> None:
        if not any(caller.has(p) for p in ("Role:manage", "Group:manage", "Person:read")):
            require(caller, "Role:manage")

    async def list_roles(self, caller: Caller) -> list[Role]:
        self._may_see_roles(caller)
        async with self._read() as conn:
            return await store_roles.list_roles(conn, caller.workspace_id)

    async def _role(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        role_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Role:
        role = await store_roles.get_role(conn, caller.workspace_id, role_id, for_update=for_update)
        if role is None:
            raise NotFound("role not found")
        return role

    async def create_role(
        self, caller: Caller, name: str, description: str, permissions: Sequence[str]
    ) -> Role:
        require(caller, "Role:manage")
        role = Role(
            uuid.uuid4(),
            caller.workspace_id,
            clean_name(name),
            clean_text(description, "description", 1000),
            check_permissions(permissions),
        )
        async with self._tx() as conn:
            await self._settings(conn, caller.workspace_id)
            await self._may_grant(conn, caller, role.permissions, "the role")
            with unique_as_conflict():
                await store_roles.insert_role(conn, role)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "role.created",
                "role",
                str(role.id),
                None,
                role.as_json(),
            )
            await outbox.add(conn, events.role_changed("role_created", role, [], caller.actor))
            return await self._role(conn, caller, role.id)

    async def update_role(
        self,
        caller: Caller,
        role_id: uuid.UUID,
        name: str | None,
        description: str | None,
        permissions: Sequence[str] | None,
    ) -> Role:
        """A change of permissions names everyone holding the role, directly or through groups."""
        require(caller, "Role:manage")
        new_name = None if name is None else clean_name(name)
        new_desc = None if description is None else clean_text(description, "description", 1000)
        new_perms = None if permissions is None else check_permissions(permissions)
        async with self._tx() as conn:
            before = await self._role(conn, caller, role_id, for_update=True)
            after = replace(
                before,
                name=keep(new_name, before.name),
                description=keep(new_desc, before.description),
                permissions=keep(new_perms, before.permissions),
            )
            if after.as_json() == before.as_json():
                return before
            if after.permissions != before.permissions:
                changed = set(after.permissions) ^ set(before.permissions)
                await self._may_grant(conn, caller, sorted(changed), "the change")
            with unique_as_conflict():
                await store_roles.update_role(conn, after)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "role.updated",
                "role",
                str(role_id),
                before.as_json(),
                after.as_json(),
            )
            if after.permissions != before.permissions:
                affected = await store_roles.role_holders(conn, caller.workspace_id, [role_id])
                await outbox.add(
                    conn,
                    events.role_changed("role_permissions_changed", after, affected, caller.actor),
                )
            return await self._role(conn, caller, role_id)

    async def delete_role(self, caller: Caller, role_id: uuid.UUID, force: bool) -> None:
        require(caller, "Role:manage")
        async with self._tx() as conn:
            role = await self._role(conn, caller, role_id, for_update=True)
            if role.builtin:
                raise FailedPrecondition(f"the built-in role {role.name!r} cannot be deleted")
            persons, groups = await store_roles.role_usage(conn, caller.workspace_id, role_id)
            if (persons or groups) and not force:
                raise FailedPrecondition(
                    f"the role is assigned to {persons} person(s) and {groups} group(s);"
                    " remove it from them first or delete with force"
                )
            affected = await store_roles.role_holders(conn, caller.workspace_id, [role_id])
            await store_roles.delete_role(conn, caller.workspace_id, role_id)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "role.deleted",
                "role",
                str(role_id),
                role.as_json(),
                None,
            )
            await outbox.add(
                conn, events.role_changed("role_deleted", role, affected, caller.actor)
            )

    async def grant_role(
        self, caller: Caller, person_id: uuid.UUID, role_id: uuid.UUID, grant: bool
    ) -> None:
        if not (caller.has("Person:manage") or caller.has("Role:manage")):
            require(caller, "Person:manage")
        async with self._tx() as conn:
            person = await self._person(conn, caller, person_id)
            role = await self._role(conn, caller, role_id)
            await self._may_grant(conn, caller, role.permissions, f"role {role.name!r}")
            if grant:
                done = await store_roles.grant_role(conn, caller.workspace_id, person_id, role_id)
            else:
                done = await store_roles.revoke_role(conn, caller.workspace_id, person_id, role_id)
            if not done:
                return
            action = "role.granted" if grant else "role.revoked"
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                action,
                "person",
                str(person_id),
                {"role_ids": [str(r) for r in person.role_ids]},
                {"role_id": str(role_id), "role": role.name, "granted": grant},
            )
            await outbox.add(
                conn,
                events.role_assignment(
                    "role_granted" if grant else "role_revoked",
                    caller.workspace_id,
                    person_id,
                    role_id,
                    caller.actor,
                ),
            )
