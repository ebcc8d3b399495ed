"""Use cases of groups and memberships."""

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
    store_groups,
)
from services.directory.domain import GROUP_ADMINISTRATORS, Group, clean_name, clean_text, require
from services.directory.service_base import ServiceBase, keep, unique_as_conflict


class GroupUseCases(ServiceBase):
    # ---- groups ----

    def _may_see_groups(self, caller: Caller) -> None:
        if not any(caller.has(p) for p in ("Group:manage", "Role:manage", "Person:read")):
            require(caller, "Group:manage")

    async def _group(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        group_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Group:
        group = await store_groups.get_group(
            conn, caller.workspace_id, group_id, for_update=for_update
        )
        if group is None:
            raise NotFound("group not found")
        return group

    async def list_groups(self, caller: Caller) -> list[Group]:
        self._may_see_groups(caller)
        async with self._read() as conn:
            return await store_groups.list_groups(conn, caller.workspace_id)

    async def get_group(self, caller: Caller, group_id: uuid.UUID) -> Group:
        self._may_see_groups(caller)
        async with self._read() as conn:
            return await self._group(conn, caller, group_id)

    async def create_group(
        self, caller: Caller, name: str, description: str, role_ids: Sequence[uuid.UUID]
    ) -> Group:
        require(caller, "Group:manage")
        group = Group(
            uuid.uuid4(),
            caller.workspace_id,
            clean_name(name),
            clean_text(description, "description", 1000),
            tuple(dict.fromkeys(role_ids)),
        )
        async with self._tx() as conn:
            await self._settings(conn, caller.workspace_id)
            await self._check_links(conn, caller, [], list(group.role_ids))
            with unique_as_conflict():
                await store_groups.insert_group(conn, group)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "group.created",
                "group",
                str(group.id),
                None,
                group.as_json(),
            )
            await outbox.add(conn, events.group_changed("group_created", group, [], caller.actor))
            return await self._group(conn, caller, group.id)

    async def update_group(
        self,
        caller: Caller,
        group_id: uuid.UUID,
        name: str | None,
        description: str | None,
        role_ids: Sequence[uuid.UUID] | None,
    ) -> Group:
        """A change of roles names every member as affected."""
        require(caller, "Group:manage")
        new_name = None if name is None else clean_name(name)
        new_desc = None if description is None else clean_text(description, "description", 1000)
        async with self._tx() as conn:
            before = await self._group(conn, caller, group_id, for_update=True)
            new_roles = None
            if role_ids is not None:
                new_roles = tuple(sorted(dict.fromkeys(role_ids)))
                added = [r for r in new_roles if r not in before.role_ids]
                removed = [r for r in before.role_ids if r not in new_roles]
                await self._check_links(conn, caller, [], added + removed)
            after = replace(
                before,
                name=keep(new_name, before.name),
                description=keep(new_desc, before.description),
                role_ids=keep(new_roles, before.role_ids),
            )
            if after.as_json() == before.as_json():
                return before
            with unique_as_conflict():
                await store_groups.update_group(conn, after)
            roles_changed = set(after.role_ids) != set(before.role_ids)
            if roles_changed:
                await store_groups.set_group_roles(
                    conn, caller.workspace_id, group_id, after.role_ids
                )
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "group.updated",
                "group",
                str(group_id),
                before.as_json(),
                after.as_json(),
            )
            if roles_changed:
                members = await store_groups.group_member_ids(conn, caller.workspace_id, group_id)
                await outbox.add(
                    conn, events.group_changed("group_roles_changed", after, members, caller.actor)
                )
            return await self._group(conn, caller, group_id)

    async def delete_group(self, caller: Caller, group_id: uuid.UUID) -> None:
        require(caller, "Group:manage")
        async with self._tx() as conn:
            group = await self._group(conn, caller, group_id, for_update=True)
            if group.builtin:
                raise FailedPrecondition(f"the built-in group {group.name!r} cannot be deleted")
            members = await store_groups.group_member_ids(conn, caller.workspace_id, group_id)
            await store_groups.delete_group(conn, caller.workspace_id, group_id)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "group.deleted",
                "group",
                str(group_id),
                {**group.as_json(), "member_count": len(members)},
                None,
            )
            await outbox.add(
                conn, events.group_changed("group_deleted", group, members, caller.actor)
            )

    async def set_member(
        self, caller: Caller, group_id: uuid.UUID, person_id: uuid.UUID, member: bool
    ) -> None:
        if not (caller.has("Group:manage") or caller.has("Person:manage")):
            require(caller, "Group:manage")
        async with self._tx() as conn:
            group = await self._group(conn, caller, group_id)
            person = await self._person(conn, caller, person_id)
            await self._may_grant(
                conn, caller, await self._group_permissions(conn, group), f"group {group.name!r}"
            )
            if member:
                done = await store_groups.add_member(conn, caller.workspace_id, group_id, person_id)
            else:
                if group.builtin_key == GROUP_ADMINISTRATORS:
                    await self._keep_an_admin(conn, caller, person, leaving=group_id)
                done = await store_groups.remove_member(
                    conn, caller.workspace_id, group_id, person_id
                )
            if not done:
                return
            kind = "group_member_added" if member else "group_member_removed"
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "group.member_added" if member else "group.member_removed",
                "group",
                str(group_id),
                None,
                {"person_id": str(person_id), "member": member},
            )
            await outbox.add(
                conn,
                events.membership(kind, caller.workspace_id, group_id, person_id, caller.actor),
            )
