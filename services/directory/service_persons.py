"""Use cases of persons: create, update, look up, list, portal usage and logins, self-registration,
effective permissions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, InvalidField, NotFound, PermissionDenied
from services.chassis.paging import Page
from services.directory import (
    events,
    store,
    store_groups,
    store_persons,
    store_roles,
)
from services.directory.domain import (
    GROUP_PORTAL_USERS,
    MAX_PAGE,
    PERSONS_ORDER,
    EffectivePermissions,
    Notifications,
    Person,
    check_permission,
    clean_email,
    clean_login_name,
    clean_name,
    like_pattern,
    require,
)
from services.directory.service_base import ServiceBase, keep, person_events, unique_as_conflict


@dataclass
class PersonChange:
    """Fields of an UpdatePerson call; None keeps the current value."""

    email: str | None = None
    name: str | None = None
    login_name: str | None = None
    active: bool | None = None
    portal_access: bool | None = None
    notifications: Notifications | None = None


def _person_audit(person: Person) -> dict[str, Any]:
    return {
        **person.as_json(),
        "role_ids": [str(r) for r in person.role_ids],
        "group_ids": [str(g) for g in person.group_ids],
    }


def _next(persons: Sequence[Person], more: bool) -> str:
    return PERSONS_ORDER.token([persons[-1].email.lower()]) if more and persons else ""


class PersonUseCases(ServiceBase):
    async def create_person(
        self,
        caller: Caller,
        *,
        email: str,
        name: str,
        login_name: str = "",
        portal_access: bool | None = None,
        group_ids: Sequence[uuid.UUID] = (),
        role_ids: Sequence[uuid.UUID] = (),
    ) -> Person:
        """portal_access unset: the workspace default refined by its domain rules. A login name is
        never required, whatever portal_access says. Writes audit rows and events."""
        if not (caller.is_service and caller.has("Person:provision")):
            require(caller, "Person:manage")
        email = clean_email(email)
        name = clean_name(name)
        login_name = clean_login_name(login_name)
        async with self._tx() as conn:
            settings = await self._settings(conn, caller.workspace_id)
            access = settings.portal_access_for(email) if portal_access is None else portal_access
            person = Person(
                uuid.uuid4(),
                caller.workspace_id,
                email,
                name,
                login_name,
                True,
                access,
                Notifications(),
            )
            await self._check_links(conn, caller, list(group_ids), list(role_ids))
            with unique_as_conflict():
                await store_persons.insert_person(conn, person)
            outgoing = [events.person_changed("person_created", person, caller.actor)]
            for group_id in dict.fromkeys(group_ids):
                await store_groups.add_member(conn, caller.workspace_id, group_id, person.id)
                outgoing.append(
                    events.membership(
                        "group_member_added", caller.workspace_id, group_id, person.id, caller.actor
                    )
                )
            for role_id in dict.fromkeys(role_ids):
                await store_roles.grant_role(conn, caller.workspace_id, person.id, role_id)
                outgoing.append(
                    events.role_assignment(
                        "role_granted", caller.workspace_id, person.id, role_id, caller.actor
                    )
                )
            created = await self._person(conn, caller, person.id)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "person.created",
                "person",
                str(person.id),
                None,
                _person_audit(created),
            )
            await outbox.add_many(conn, outgoing)
        return created

    async def update_person(
        self, caller: Caller, person_id: uuid.UUID, change: PersonChange
    ) -> Person:
        """Person:manage edits everything; a person may edit their own name, login name and
        notifications. Writes audit rows and the matching access-change events."""
        admin_fields = (change.email, change.active, change.portal_access)
        own_fields = (change.name, change.login_name)
        # The notifications service turns off one preference (one-click unsubscribe), nothing else.
        unsubscribing = (
            caller.is_service
            and caller.has("Person:notifications")
            and change.notifications is not None
            and all(v is None for v in (*admin_fields, *own_fields))
        )
        if not caller.has("Person:manage") and not unsubscribing:
            if not caller.is_self(person_id) or any(v is not None for v in admin_fields):
                require(caller, "Person:manage")
        if change.active is False and caller.is_self(person_id):
            raise FailedPrecondition("active: you cannot deactivate yourself")
        email = None if change.email is None else clean_email(change.email)
        name = None if change.name is None else clean_name(change.name)
        login = None if change.login_name is None else clean_login_name(change.login_name)
        async with self._tx() as conn:
            before = await self._person(conn, caller, person_id, for_update=True)
            if change.active is False and before.active:
                await self._keep_an_admin(conn, caller, before, leaving=None)
            after = replace(
                before,
                email=keep(email, before.email),
                name=keep(name, before.name),
                login_name=keep(login, before.login_name),
                active=keep(change.active, before.active),
                portal_access=keep(change.portal_access, before.portal_access),
                notifications=keep(change.notifications, before.notifications),
            )
            old, new = before.as_json(), after.as_json()
            changed = [k for k in new if new[k] != old[k]]
            if not changed:
                return before
            with unique_as_conflict():
                await store_persons.update_person(conn, after)
            after = await self._person(conn, caller, person_id)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "person.updated",
                "person",
                str(person_id),
                _person_audit(before),
                _person_audit(after),
            )
            await outbox.add_many(conn, person_events(before, after, changed, caller.actor))
        return after

    async def get_person(self, caller: Caller, person_id: uuid.UUID) -> Person:
        if not caller.is_self(person_id):
            require(caller, "Person:read")
        async with self._read() as conn:
            return await self._person(conn, caller, person_id)

    async def find_person_by_email(
        self, caller: Caller, email: str, *, or_login_name: bool = False
    ) -> Person:
        require(caller, "Person:read")
        async with self._read() as conn:
            person = await store_persons.find_person_by_email(
                conn, caller.workspace_id, email.strip(), or_login_name=or_login_name
            )
        if person is None:
            raise NotFound("person not found")
        return person

    async def list_persons(
        self,
        caller: Caller,
        page: Page,
        *,
        query: str = "",
        active: bool | None = None,
        portal_access: bool | None = None,
        group_id: uuid.UUID | None = None,
        role_id: uuid.UUID | None = None,
        ids: list[uuid.UUID] | None = None,
    ) -> tuple[list[Person], str, int]:
        require(caller, "Person:read")
        if ids is not None and len(ids) > MAX_PAGE:
            raise InvalidField("ids", f"at most {MAX_PAGE} at a time")
        query = query.strip()
        if len(query) > 200:
            raise InvalidField("query", "at most 200 characters")
        async with self._read() as conn:
            persons, total, more = await store_persons.list_persons(
                conn,
                caller.workspace_id,
                page,
                pattern=like_pattern(query) if query else None,
                active=active,
                portal_access=portal_access,
                group_id=group_id,
                role_id=role_id,
                ids=ids,
            )
        return persons, _next(persons, more), total

    async def portal_usage(
        self, caller: Caller, page: Page, usage: str, stale_days: int
    ) -> tuple[list[Person], str, int]:
        """Holders of portal access: all, never signed in, or not signed in for stale_days."""
        require(caller, "Person:read")
        usage = usage or "all"
        if usage not in ("all", "never", "stale"):
            raise InvalidField("filter", "use all, never or stale")
        stale_before = None
        if usage == "stale":
            if stale_days <= 0 or stale_days > 3650:
                raise InvalidField("stale_days", "give a number of days between 1 and 3650")
            stale_before = datetime.now(UTC) - timedelta(days=stale_days)
        async with self._read() as conn:
            persons, total, more = await store_persons.list_persons(
                conn, caller.workspace_id, page, usage=usage, stale_before=stale_before
            )
        return persons, _next(persons, more), total

    async def record_portal_login(self, caller: Caller, person_id: uuid.UUID) -> None:
        """Called by auth after a portal sign-in; writes a portal_login_recorded event."""
        if not caller.has("PortalLogin:record") and not caller.is_self(person_id):
            raise PermissionDenied("only auth or the person may record a portal sign-in")
        async with self._tx() as conn:
            if not await store_persons.record_portal_login(conn, caller.workspace_id, person_id):
                raise NotFound("person not found")
            await outbox.add(conn, events.portal_login(caller.workspace_id, person_id))

    async def register_person(
        self,
        workspace_id: uuid.UUID,
        email: str,
        name: str,
        person_id: uuid.UUID | None = None,
    ) -> Person:
        """Self-registration: mode off/open/domains; portal-access defaults; joins Portal Users.
        `person_id` is the id auth already stored the credentials under (else a new one)."""
        email = clean_email(email)
        name = clean_name(name)
        async with self._tx() as conn:
            settings = await self._settings(conn, workspace_id)
            if settings.self_registration == "off":
                raise PermissionDenied("self-registration is off in this workspace")
            if not settings.may_self_register(email):
                raise PermissionDenied(
                    "email: this e-mail domain may not register in this workspace"
                )
            person = Person(
                person_id or uuid.uuid4(),
                workspace_id,
                email,
                name,
                "",
                True,
                settings.portal_access_for(email),
                Notifications(),
            )
            with unique_as_conflict():
                await store_persons.insert_person(conn, person)
            group = await store_groups.get_builtin_group(conn, workspace_id, GROUP_PORTAL_USERS)
            outgoing = [events.person_changed("person_created", person, "")]
            if group is not None:
                await store_groups.add_member(conn, workspace_id, group.id, person.id)
                outgoing.append(
                    events.membership("group_member_added", workspace_id, group.id, person.id, "")
                )
            created = await store_persons.get_person(conn, workspace_id, person.id)
            assert created is not None
            await store.insert_audit(
                conn,
                workspace_id,
                "",
                "person.registered",
                "person",
                str(person.id),
                None,
                _person_audit(created),
            )
            await outbox.add_many(conn, outgoing)
        return created

    # ---- effective permissions ----

    async def effective_permissions(
        self, caller: Caller, person_id: uuid.UUID
    ) -> EffectivePermissions:
        if not caller.is_self(person_id):
            require(caller, "Person:read")
        async with self._read() as conn:
            result = await store_persons.effective_permissions(conn, caller.workspace_id, person_id)
        if result is None:
            raise NotFound("person not found")
        return result

    async def persons_with_permission(
        self, caller: Caller, permission: str, page: Page
    ) -> tuple[list[Person], str, int]:
        require(caller, "Person:read")
        check_permission(permission)
        async with self._read() as conn:
            persons, total, more = await store_persons.list_persons(
                conn, caller.workspace_id, page, permission=permission
            )
        return persons, _next(persons, more), total
