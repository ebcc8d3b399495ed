"""The directory's use cases: each change is one transaction with its audit row and outbox event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from frontdesk.v1 import events_pb2

from services.chassis import outbox
from services.directory import events, importfile, store
from services.directory.domain import (
    CATALOG,
    GROUP_ADMINISTRATORS,
    GROUP_PORTAL_USERS,
    MAX_PAGE,
    PORTAL_PERMISSIONS,
    ROLE_PORTAL_USER,
    ROLE_WORKSPACE_ADMIN,
    SELF_REGISTRATION_MODES,
    AuditEntry,
    Caller,
    Conflict,
    Denied,
    DomainRule,
    EffectivePermissions,
    Group,
    ImportJob,
    Invalid,
    NotFound,
    Notifications,
    Page,
    Person,
    PortalSettings,
    Precondition,
    Role,
    Workspace,
    check_permission,
    check_permissions,
    clean_domain,
    clean_email,
    clean_login_name,
    clean_name,
    clean_text,
    like_pattern,
    no_nul,
    token_for,
    validate_slug,
)

log = logging.getLogger(__name__)

_UNIQUE_FIELDS = {
    "persons_email": ("email", "a person with this e-mail exists already"),
    "persons_login_name": ("login_name", "this login name is used by another person"),
    "roles_name": ("name", "a role with this name exists already"),
    "groups_name": ("name", "a group with this name exists already"),
    "workspaces_slug_key": ("slug", "a workspace with this slug exists already"),
}
IMPORT_CHUNK = 1000
MAX_STORED_ERRORS = 1000
MAX_RULES = 100


@contextlib.contextmanager
def _unique_as_conflict() -> Any:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        field_name, message = _UNIQUE_FIELDS.get(exc.constraint_name or "", ("", "exists already"))
        raise Conflict(f"{field_name}: {message}" if field_name else message) from None


@dataclass
class SettingsChange:
    """Fields of an UpdatePortalSettings call; None keeps the current value."""

    tickets_enabled: bool | None = None
    issues_enabled: bool | None = None
    control_tests_enabled: bool | None = None
    self_registration: str | None = None
    registration_domains: list[str] | None = None
    portal_access_default: bool | None = None
    portal_access_rules: list[tuple[str, bool]] | None = None
    require_two_factor: bool | None = None


@dataclass
class PersonChange:
    """Fields of an UpdatePerson call; None keeps the current value."""

    email: str | None = None
    name: str | None = None
    login_name: str | None = None
    active: bool | None = None
    portal_access: bool | None = None
    notifications: Notifications | None = None


@dataclass
class _ChunkPlan:
    creates: list[Person] = field(default_factory=list)
    updates: list[tuple[Person, Person, list[str]]] = field(default_factory=list)
    new_members: list[tuple[uuid.UUID, uuid.UUID, bool]] = field(default_factory=list)
    unchanged: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class DirectoryService:
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
        """No one hands out permissions they do not hold themselves (no privilege escalation)."""
        if caller.is_system:
            return
        beyond = sorted(set(permissions) - caller.permissions)
        if beyond:
            raise Denied(f"{what} carries permissions you do not hold: {', '.join(beyond)}")

    # ---- workspaces ----

    async def create_workspace(
        self, slug: str, name: str, admin_email: str, admin_name: str
    ) -> tuple[Workspace, Person]:
        """Writes the workspace, its built-in roles and groups, settings and first admin, with events."""
        slug = validate_slug(slug.strip())
        name = clean_text(name, "name", 200) or slug
        email = clean_email(admin_email, "admin_email")
        admin_name = clean_text(admin_name, "admin_name", 200) or email.split("@", 1)[0]
        ws = Workspace(uuid.uuid4(), slug, name, datetime.now(UTC))
        settings = PortalSettings(workspace_id=ws.id)
        portal_role = Role(
            uuid.uuid4(),
            ws.id,
            "Portal User",
            "What every portal user may do",
            PORTAL_PERMISSIONS,
            ROLE_PORTAL_USER,
        )
        admin_role = Role(
            uuid.uuid4(),
            ws.id,
            "Workspace Admin",
            "Everything in the workspace",
            CATALOG,
            ROLE_WORKSPACE_ADMIN,
        )
        portal_group = Group(
            uuid.uuid4(),
            ws.id,
            "Portal Users",
            "Everyone using the portal",
            (portal_role.id,),
            GROUP_PORTAL_USERS,
        )
        admin_group = Group(
            uuid.uuid4(),
            ws.id,
            "Administrators",
            "Workspace administrators",
            (admin_role.id,),
            GROUP_ADMINISTRATORS,
        )
        admin = Person(
            uuid.uuid4(),
            ws.id,
            email,
            admin_name,
            "",
            True,
            settings.portal_access_for(email),
            Notifications(),
            group_ids=(admin_group.id,),
        )
        async with self._tx() as conn:
            with _unique_as_conflict():
                await store.insert_workspace(conn, ws)
            await store.insert_settings(conn, settings)
            for role in (portal_role, admin_role):
                await store.insert_role(conn, role)
            for group in (portal_group, admin_group):
                await store.insert_group(conn, group)
            await store.insert_person(conn, admin)
            await store.add_member(conn, ws.id, admin_group.id, admin.id)
            await store.insert_audit(
                conn,
                ws.id,
                "",
                "workspace.created",
                "workspace",
                str(ws.id),
                None,
                {"slug": slug, "name": name, "admin": email},
            )
            await outbox.add(conn, events.workspace_created(ws.id, slug, name, admin.id))
            await outbox.add(conn, events.role_changed("role_created", portal_role, [], ""))
            await outbox.add(conn, events.role_changed("role_created", admin_role, [], ""))
            await outbox.add(conn, events.group_changed("group_created", portal_group, [], ""))
            await outbox.add(
                conn, events.group_changed("group_created", admin_group, [admin.id], "")
            )
            await outbox.add(conn, events.person_changed("person_created", admin, ""))
            created = await store.get_person(conn, ws.id, admin.id)
        assert created is not None
        log.info("created workspace %s (%s)", ws.id, slug)
        return ws, created

    async def get_workspace(self, workspace_id: uuid.UUID | None, slug: str | None) -> Workspace:
        async with self._read() as conn:
            if workspace_id is not None:
                ws = await store.get_workspace(conn, workspace_id)
            else:
                ws = await store.get_workspace_by_slug(conn, (slug or "").strip().lower())
        if ws is None:
            raise NotFound("workspace not found")
        return ws

    # ---- portal settings ----

    async def _settings(
        self, conn: asyncpg.Connection, workspace_id: uuid.UUID, *, for_update: bool = False
    ) -> PortalSettings:
        settings = await store.get_settings(conn, workspace_id, for_update=for_update)
        if settings is None:
            raise NotFound("workspace not found")
        return settings

    async def get_settings(self, caller: Caller) -> PortalSettings:
        """Readable by anyone of the workspace: the gateway needs the toggles for every request."""
        async with self._read() as conn:
            return await self._settings(conn, caller.workspace_id)

    async def update_settings(self, caller: Caller, change: SettingsChange) -> PortalSettings:
        """Writes an audit row and a portal_settings_changed event when anything changed."""
        caller.require("Settings:manage")
        if (
            change.self_registration is not None
            and change.self_registration not in SELF_REGISTRATION_MODES
        ):
            raise Invalid("self_registration", "use off, open or domains")
        domains: tuple[str, ...] | None = None
        if change.registration_domains is not None:
            domains = tuple(
                dict.fromkeys(
                    clean_domain(d, "registration_domains")
                    for d in change.registration_domains
                    if d.strip()
                )
            )
        rules: tuple[DomainRule, ...] | None = None
        if change.portal_access_rules is not None:
            if len(change.portal_access_rules) > MAX_RULES:
                raise Invalid("portal_access_rules", f"at most {MAX_RULES} rules")
            rules = tuple(
                DomainRule(clean_domain(d, "portal_access_rules", allow_star=True), access)
                for d, access in change.portal_access_rules
            )
        async with self._tx() as conn:
            before = await self._settings(conn, caller.workspace_id, for_update=True)
            after = replace(
                before,
                tickets_enabled=_keep(change.tickets_enabled, before.tickets_enabled),
                issues_enabled=_keep(change.issues_enabled, before.issues_enabled),
                control_tests_enabled=_keep(
                    change.control_tests_enabled, before.control_tests_enabled
                ),
                self_registration=_keep(change.self_registration, before.self_registration),
                registration_domains=_keep(domains, before.registration_domains),
                portal_access_default=_keep(
                    change.portal_access_default, before.portal_access_default
                ),
                portal_access_rules=_keep(rules, before.portal_access_rules),
                require_two_factor=_keep(change.require_two_factor, before.require_two_factor),
            )
            if after.self_registration == "domains" and not after.registration_domains:
                raise Invalid(
                    "registration_domains",
                    "name at least one domain when self-registration is limited to domains",
                )
            old, new = before.as_json(), after.as_json()
            changed = [k for k in new if new[k] != old[k]]
            if not changed:
                return before
            after = replace(after, updated_at=await store.update_settings(conn, after))
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "portal_settings.updated",
                "portal_settings",
                str(caller.workspace_id),
                old,
                new,
            )
            everyone = bool(
                {"tickets_enabled", "issues_enabled", "control_tests_enabled", "require_two_factor"}
                & set(changed)
            )
            await outbox.add(
                conn, events.settings_changed(caller.workspace_id, changed, everyone, caller.actor)
            )
        return after

    # ---- persons ----

    async def _person(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        person_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Person:
        person = await store.get_person(conn, caller.workspace_id, person_id, for_update=for_update)
        if person is None:
            raise NotFound("person not found")
        return person

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
        caller.require("Person:manage")
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
            with _unique_as_conflict():
                await store.insert_person(conn, person)
            outgoing = [events.person_changed("person_created", person, caller.actor)]
            for group_id in dict.fromkeys(group_ids):
                await store.add_member(conn, caller.workspace_id, group_id, person.id)
                outgoing.append(
                    events.membership(
                        "group_member_added", caller.workspace_id, group_id, person.id, caller.actor
                    )
                )
            for role_id in dict.fromkeys(role_ids):
                await store.grant_role(conn, caller.workspace_id, person.id, role_id)
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

    async def _check_links(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        group_ids: list[uuid.UUID],
        role_ids: list[uuid.UUID],
    ) -> None:
        if group_ids:
            found = await store.existing_group_ids(conn, caller.workspace_id, group_ids)
            if missing := [g for g in group_ids if g not in found]:
                raise NotFound(f"group {missing[0]} not found")
            for group_id in group_ids:
                group = await store.get_group(conn, caller.workspace_id, group_id)
                assert group is not None
                await self._may_grant(
                    conn,
                    caller,
                    await self._group_permissions(conn, group),
                    f"group {group.name!r}",
                )
        if role_ids:
            found = await store.existing_role_ids(conn, caller.workspace_id, role_ids)
            if missing := [r for r in role_ids if r not in found]:
                raise NotFound(f"role {missing[0]} not found")
            for role_id in role_ids:
                role = await store.get_role(conn, caller.workspace_id, role_id)
                assert role is not None
                await self._may_grant(conn, caller, role.permissions, f"role {role.name!r}")

    async def _group_permissions(self, conn: asyncpg.Connection, group: Group) -> list[str]:
        perms: set[str] = set()
        for role_id in group.role_ids:
            role = await store.get_role(conn, group.workspace_id, role_id)
            if role is not None:
                perms.update(role.permissions)
        return sorted(perms)

    async def update_person(
        self, caller: Caller, person_id: uuid.UUID, change: PersonChange
    ) -> Person:
        """Person:manage edits everything; a person may edit their own name, login name and
        notifications. Writes audit rows and the matching access-change events."""
        admin_fields = (change.email, change.active, change.portal_access)
        if not caller.has("Person:manage"):
            if not caller.is_self(person_id) or any(v is not None for v in admin_fields):
                caller.require("Person:manage")
        if change.active is False and caller.is_self(person_id):
            raise Precondition("active: you cannot deactivate yourself")
        email = None if change.email is None else clean_email(change.email)
        name = None if change.name is None else clean_name(change.name)
        login = None if change.login_name is None else clean_login_name(change.login_name)
        async with self._tx() as conn:
            before = await self._person(conn, caller, person_id, for_update=True)
            if change.active is False and before.active:
                await self._keep_an_admin(conn, caller, before, leaving=None)
            after = replace(
                before,
                email=_keep(email, before.email),
                name=_keep(name, before.name),
                login_name=_keep(login, before.login_name),
                active=_keep(change.active, before.active),
                portal_access=_keep(change.portal_access, before.portal_access),
                notifications=_keep(change.notifications, before.notifications),
            )
            old, new = before.as_json(), after.as_json()
            changed = [k for k in new if new[k] != old[k]]
            if not changed:
                return before
            with _unique_as_conflict():
                await store.update_person(conn, after)
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
            await outbox.add_many(conn, _person_events(before, after, changed, caller.actor))
        return after

    async def _keep_an_admin(
        self, conn: asyncpg.Connection, caller: Caller, person: Person, leaving: uuid.UUID | None
    ) -> None:
        """Refuse to deactivate, or remove from Administrators, the last active administrator."""
        group_id, others = await store.other_active_admins(conn, caller.workspace_id, person.id)
        if group_id is None or group_id not in person.group_ids or not person.active:
            return
        if leaving is not None and leaving != group_id:
            return
        if others == 0:
            raise Precondition(
                "this is the workspace's last active administrator; make someone else an"
                " administrator first"
            )

    async def get_person(self, caller: Caller, person_id: uuid.UUID) -> Person:
        if not caller.is_self(person_id):
            caller.require("Person:read")
        async with self._read() as conn:
            return await self._person(conn, caller, person_id)

    async def find_person_by_email(self, caller: Caller, email: str) -> Person:
        caller.require("Person:read")
        async with self._read() as conn:
            person = await store.find_person_by_email(conn, caller.workspace_id, email.strip())
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
        caller.require("Person:read")
        if ids is not None and len(ids) > MAX_PAGE:
            raise Invalid("ids", f"at most {MAX_PAGE} at a time")
        query = query.strip()
        if len(query) > 200:
            raise Invalid("query", "at most 200 characters")
        async with self._read() as conn:
            persons, total, more = await store.list_persons(
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
        caller.require("Person:read")
        usage = usage or "all"
        if usage not in ("all", "never", "stale"):
            raise Invalid("filter", "use all, never or stale")
        stale_before = None
        if usage == "stale":
            if stale_days <= 0 or stale_days > 3650:
                raise Invalid("stale_days", "give a number of days between 1 and 3650")
            stale_before = datetime.now(UTC) - timedelta(days=stale_days)
        async with self._read() as conn:
            persons, total, more = await store.list_persons(
                conn, caller.workspace_id, page, usage=usage, stale_before=stale_before
            )
        return persons, _next(persons, more), total

    async def record_portal_login(self, caller: Caller, person_id: uuid.UUID) -> None:
        """Called by auth after a portal sign-in; writes a portal_login_recorded event."""
        if not caller.is_system and not caller.is_self(person_id):
            raise Denied("only the system or the person may record a portal sign-in")
        async with self._tx() as conn:
            if not await store.record_portal_login(conn, caller.workspace_id, person_id):
                raise NotFound("person not found")
            await outbox.add(conn, events.portal_login(caller.workspace_id, person_id))

    async def register_person(self, workspace_id: uuid.UUID, email: str, name: str) -> Person:
        """Self-registration: mode off/open/domains; portal-access defaults; joins Portal Users."""
        email = clean_email(email)
        name = clean_name(name)
        async with self._tx() as conn:
            settings = await self._settings(conn, workspace_id)
            if settings.self_registration == "off":
                raise Precondition("self-registration is off in this workspace")
            if not settings.may_self_register(email):
                raise Denied("email: this e-mail domain may not register in this workspace")
            person = Person(
                uuid.uuid4(),
                workspace_id,
                email,
                name,
                "",
                True,
                settings.portal_access_for(email),
                Notifications(),
            )
            with _unique_as_conflict():
                await store.insert_person(conn, person)
            group = await store.get_builtin_group(conn, workspace_id, GROUP_PORTAL_USERS)
            outgoing = [events.person_changed("person_created", person, "")]
            if group is not None:
                await store.add_member(conn, workspace_id, group.id, person.id)
                outgoing.append(
                    events.membership("group_member_added", workspace_id, group.id, person.id, "")
                )
            created = await store.get_person(conn, workspace_id, person.id)
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
            caller.require("Person:read")
        async with self._read() as conn:
            result = await store.effective_permissions(conn, caller.workspace_id, person_id)
        if result is None:
            raise NotFound("person not found")
        return result

    async def persons_with_permission(
        self, caller: Caller, permission: str, page: Page
    ) -> tuple[list[Person], str, int]:
        caller.require("Person:read")
        check_permission(permission)
        async with self._read() as conn:
            persons, total, more = await store.list_persons(
                conn, caller.workspace_id, page, permission=permission
            )
        return persons, _next(persons, more), total

    # ---- roles ----

    def _may_see_roles(self, caller: Caller) -> None:
        if not any(caller.has(p) for p in ("Role:manage", "Group:manage", "Person:read")):
            caller.require("Role:manage")

    async def list_roles(self, caller: Caller) -> list[Role]:
        self._may_see_roles(caller)
        async with self._read() as conn:
            return await store.list_roles(conn, caller.workspace_id)

    async def _role(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        role_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Role:
        role = await store.get_role(conn, caller.workspace_id, role_id, for_update=for_update)
        if role is None:
            raise NotFound("role not found")
        return role

    async def create_role(
        self, caller: Caller, name: str, description: str, permissions: Sequence[str]
    ) -> Role:
        caller.require("Role:manage")
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
            with _unique_as_conflict():
                await store.insert_role(conn, role)
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
        caller.require("Role:manage")
        new_name = None if name is None else clean_name(name)
        new_desc = None if description is None else clean_text(description, "description", 1000)
        new_perms = None if permissions is None else check_permissions(permissions)
        async with self._tx() as conn:
            before = await self._role(conn, caller, role_id, for_update=True)
            after = replace(
                before,
                name=_keep(new_name, before.name),
                description=_keep(new_desc, before.description),
                permissions=_keep(new_perms, before.permissions),
            )
            if after.as_json() == before.as_json():
                return before
            if after.permissions != before.permissions:
                changed = set(after.permissions) ^ set(before.permissions)
                await self._may_grant(conn, caller, sorted(changed), "the change")
            with _unique_as_conflict():
                await store.update_role(conn, after)
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
                affected = await store.role_holders(conn, caller.workspace_id, [role_id])
                await outbox.add(
                    conn,
                    events.role_changed("role_permissions_changed", after, affected, caller.actor),
                )
            return await self._role(conn, caller, role_id)

    async def delete_role(self, caller: Caller, role_id: uuid.UUID, force: bool) -> None:
        caller.require("Role:manage")
        async with self._tx() as conn:
            role = await self._role(conn, caller, role_id, for_update=True)
            if role.builtin:
                raise Precondition(f"the built-in role {role.name!r} cannot be deleted")
            persons, groups = await store.role_usage(conn, caller.workspace_id, role_id)
            if (persons or groups) and not force:
                raise Precondition(
                    f"the role is assigned to {persons} person(s) and {groups} group(s);"
                    " remove it from them first or delete with force"
                )
            affected = await store.role_holders(conn, caller.workspace_id, [role_id])
            await store.delete_role(conn, caller.workspace_id, role_id)
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
            caller.require("Person:manage")
        async with self._tx() as conn:
            person = await self._person(conn, caller, person_id)
            role = await self._role(conn, caller, role_id)
            await self._may_grant(conn, caller, role.permissions, f"role {role.name!r}")
            if grant:
                done = await store.grant_role(conn, caller.workspace_id, person_id, role_id)
            else:
                done = await store.revoke_role(conn, caller.workspace_id, person_id, role_id)
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

    # ---- groups ----

    def _may_see_groups(self, caller: Caller) -> None:
        if not any(caller.has(p) for p in ("Group:manage", "Role:manage", "Person:read")):
            caller.require("Group:manage")

    async def _group(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        group_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Group:
        group = await store.get_group(conn, caller.workspace_id, group_id, for_update=for_update)
        if group is None:
            raise NotFound("group not found")
        return group

    async def list_groups(self, caller: Caller) -> list[Group]:
        self._may_see_groups(caller)
        async with self._read() as conn:
            return await store.list_groups(conn, caller.workspace_id)

    async def get_group(self, caller: Caller, group_id: uuid.UUID) -> Group:
        self._may_see_groups(caller)
        async with self._read() as conn:
            return await self._group(conn, caller, group_id)

    async def create_group(
        self, caller: Caller, name: str, description: str, role_ids: Sequence[uuid.UUID]
    ) -> Group:
        caller.require("Group:manage")
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
            with _unique_as_conflict():
                await store.insert_group(conn, group)
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
        caller.require("Group:manage")
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
                name=_keep(new_name, before.name),
                description=_keep(new_desc, before.description),
                role_ids=_keep(new_roles, before.role_ids),
            )
            if after.as_json() == before.as_json():
                return before
            with _unique_as_conflict():
                await store.update_group(conn, after)
            roles_changed = set(after.role_ids) != set(before.role_ids)
            if roles_changed:
                await store.set_group_roles(conn, caller.workspace_id, group_id, after.role_ids)
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
                members = await store.group_member_ids(conn, caller.workspace_id, group_id)
                await outbox.add(
                    conn, events.group_changed("group_roles_changed", after, members, caller.actor)
                )
            return await self._group(conn, caller, group_id)

    async def delete_group(self, caller: Caller, group_id: uuid.UUID) -> None:
        caller.require("Group:manage")
        async with self._tx() as conn:
            group = await self._group(conn, caller, group_id, for_update=True)
            if group.builtin:
                raise Precondition(f"the built-in group {group.name!r} cannot be deleted")
            members = await store.group_member_ids(conn, caller.workspace_id, group_id)
            await store.delete_group(conn, caller.workspace_id, group_id)
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
            caller.require("Group:manage")
        async with self._tx() as conn:
            group = await self._group(conn, caller, group_id)
            person = await self._person(conn, caller, person_id)
            await self._may_grant(
                conn, caller, await self._group_permissions(conn, group), f"group {group.name!r}"
            )
            if member:
                done = await store.add_member(conn, caller.workspace_id, group_id, person_id)
            else:
                if group.builtin_key == GROUP_ADMINISTRATORS:
                    await self._keep_an_admin(conn, caller, person, leaving=group_id)
                done = await store.remove_member(conn, caller.workspace_id, group_id, person_id)
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

    # ---- audit ----

    async def list_audit(
        self, caller: Caller, page: Page, object_type: str, object_id: str
    ) -> tuple[list[AuditEntry], str]:
        caller.require("Audit:read")
        no_nul(object_type, "object_type")
        no_nul(object_id, "object_id")
        async with self._read() as conn:
            entries, more = await store.list_audit(
                conn,
                caller.workspace_id,
                page,
                object_type.strip() or None,
                object_id.strip() or None,
            )
        token = token_for([entries[-1].seq]) if more and entries else ""
        return entries, token

    # ---- bulk import ----

    async def start_import(
        self, caller: Caller, fmt: str, content: bytes, dry_run: bool
    ) -> ImportJob:
        """A dry run answers at once with what would change; a real run is stored as a pending job
        that a worker of any replica picks up. A bad file fails here and nothing is written."""
        caller.require("Person:manage")
        rows = await asyncio.to_thread(importfile.parse, content, fmt)
        async with self._read() as conn:
            await self._settings(conn, caller.workspace_id)
            names = {g.lower() for r in rows for g in (r.groups or [])}
            if names and not caller.is_system:
                for group in await store.list_groups(conn, caller.workspace_id):
                    if group.name.lower() in names:
                        await self._may_grant(
                            conn,
                            caller,
                            await self._group_permissions(conn, group),
                            f"group {group.name!r}",
                        )
        job = ImportJob(uuid.uuid4(), caller.workspace_id, "pending", dry_run, total_rows=len(rows))
        if dry_run:
            async with self._read() as conn, conn.transaction(readonly=True):
                settings = await self._settings(conn, caller.workspace_id)
                groups = await store.groups_by_name(conn, caller.workspace_id)
                admins = await _admins_group(conn, caller.workspace_id)
                for start in range(0, len(rows), IMPORT_CHUNK):
                    plan = await _plan_chunk(
                        conn, settings, groups, rows[start : start + IMPORT_CHUNK], admins
                    )
                    _count(job, plan)
            job.rows_done = len(rows)
            job.status = "done"
            job.finished_at = datetime.now(UTC)
            job.message = _summary(job, dry_run=True)
            job.errors = job.errors[:MAX_STORED_ERRORS]
            async with self._tx() as conn:
                return await store.insert_import_job(conn, job, caller.actor, fmt, None)
        async with self._tx() as conn:
            stored = await store.insert_import_job(conn, job, caller.actor, fmt, content)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "import.started",
                "import",
                str(job.id),
                None,
                {"format": fmt, "rows": len(rows), "bytes": len(content)},
            )
        if self._on_import_queued is not None:
            self._on_import_queued()
        return stored

    async def get_import(self, caller: Caller, job_id: uuid.UUID) -> ImportJob:
        caller.require("Person:manage")
        async with self._read() as conn:
            job = await store.get_import_job(conn, caller.workspace_id, job_id)
        if job is None:
            raise NotFound("import not found")
        return job

    async def run_next_import(self, stale_seconds: float = 60.0) -> bool:
        """Claim one waiting job (FOR UPDATE SKIP LOCKED) and run it; False when there was none."""
        async with self._pool.acquire() as conn:
            claimed = await store.claim_import_job(conn, stale_seconds)
        if claimed is None:
            return False
        job, actor, fmt, content = claimed
        try:
            await self._run_import(job, actor, fmt, content)
        except Exception as exc:
            log.exception("import %s failed", job.id)
            async with self._pool.acquire() as conn:
                await store.finish_import_job(
                    conn,
                    job.workspace_id,
                    job.id,
                    "failed",
                    f"the import stopped: {type(exc).__name__}",
                )
        return True

    async def _run_import(self, job: ImportJob, actor: str, fmt: str, content: bytes) -> None:
        rows = await asyncio.to_thread(importfile.parse, content, fmt)
        ws = job.workspace_id
        async with self._pool.acquire() as conn:
            settings = await self._settings(conn, ws)
            groups = await store.groups_by_name(conn, ws)
            admins = await _admins_group(conn, ws)
        stored_errors = len(job.errors)
        done = job.rows_done
        while done < len(rows):
            chunk = rows[done : done + IMPORT_CHUNK]
            for attempt in range(3):
                try:
                    async with self._tx() as conn:
                        plan = await _plan_chunk(conn, settings, groups, chunk, admins)
                        await _apply_chunk(conn, ws, job.id, actor, plan)
                        room = max(MAX_STORED_ERRORS - stored_errors, 0)
                        await store.import_progress(
                            conn,
                            ws,
                            job.id,
                            rows_done=done + len(chunk),
                            created=len(plan.creates),
                            updated=len(plan.updates),
                            unchanged=plan.unchanged,
                            failed=plan.failed,
                            errors=plan.errors[:room],
                        )
                    stored_errors += min(len(plan.errors), room)
                    _count(job, plan)
                    break
                except asyncpg.UniqueViolationError:
                    # A concurrent change took an e-mail or login name: plan the chunk again.
                    if attempt == 2:
                        raise
            done += len(chunk)
        async with self._pool.acquire() as conn:
            job.rows_done = done
            current = await store.get_import_job(conn, ws, job.id)
            summary = _summary(current or job, dry_run=False)
            await store.finish_import_job(conn, ws, job.id, "done", summary)
            await store.insert_audit(
                conn,
                ws,
                actor,
                "import.finished",
                "import",
                str(job.id),
                None,
                {"message": summary},
            )
        log.info("import %s done: %s", job.id, summary)


async def _admins_group(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> uuid.UUID | None:
    group = await store.get_builtin_group(conn, workspace_id, GROUP_ADMINISTRATORS)
    return None if group is None else group.id


async def _plan_chunk(
    conn: asyncpg.Connection,
    settings: PortalSettings,
    groups: dict[str, uuid.UUID],
    rows: Sequence[importfile.ImportRow],
    admins: uuid.UUID | None,
) -> _ChunkPlan:
    """What the rows would change, against the database as it is now (no writes).

    An import never deactivates an administrator (it could lock everyone out of the console)."""
    plan = _ChunkPlan()
    emails = [r.email.lower() for r in rows if r.ok]
    logins = [r.login_name.lower() for r in rows if r.ok and r.login_name]
    persons, owners, members = await store.import_lookup(
        conn, settings.workspace_id, emails, logins
    )
    for row in rows:
        group_ids: list[uuid.UUID] = []
        if row.ok and row.groups:
            unknown = [g for g in row.groups if g.lower() not in groups]
            if unknown:
                row_errors = [("groups", f"unknown group {unknown[0]!r}")]
            else:
                row_errors = []
                group_ids = list(dict.fromkeys(groups[g.lower()] for g in row.groups))
        else:
            row_errors = []
        existing = persons.get(row.email.lower()) if row.ok else None
        if row.ok and row.login_name:
            owner = owners.get(row.login_name.lower())
            if owner is not None and (existing is None or owner != existing.id):
                row_errors.append(("login_name", f"{row.login_name!r} is used by another person"))
        if row.ok and existing is None and not row.name:
            row_errors.append(("name", "required for a new person"))
        if (
            existing is not None
            and row.active is False
            and existing.active
            and admins in members.get(existing.id, set())
        ):
            row_errors.append(
                ("active", "administrators are not deactivated by an import; use the person's page")
            )
        errors = row.errors + row_errors
        if errors:
            plan.failed += 1
            plan.errors.extend({"line": row.line, "field": f, "message": m} for f, m in errors)
            continue
        if existing is None:
            access = (
                settings.portal_access_for(row.email)
                if row.portal_access is None
                else row.portal_access
            )
            person = Person(
                uuid.uuid4(),
                settings.workspace_id,
                row.email,
                row.name or "",
                row.login_name or "",
                True if row.active is None else row.active,
                access,
                Notifications(),
            )
            plan.creates.append(person)
            plan.new_members.extend((g, person.id, True) for g in group_ids)
            continue
        after = replace(
            existing,
            name=_keep(row.name, existing.name),
            login_name=_keep(row.login_name, existing.login_name),
            active=_keep(row.active, existing.active),
            portal_access=_keep(row.portal_access, existing.portal_access),
        )
        old, new = existing.as_json(), after.as_json()
        changed = [k for k in new if new[k] != old[k]]
        joins = [g for g in group_ids if g not in members.get(existing.id, set())]
        if changed:
            plan.updates.append((existing, after, changed))
        plan.new_members.extend((g, existing.id, False) for g in joins)
        if not changed and not joins:
            plan.unchanged += 1
        elif not changed:
            plan.updates.append((existing, existing, []))
    return plan


async def _apply_chunk(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    import_id: uuid.UUID,
    actor: str,
    plan: _ChunkPlan,
) -> None:
    """One chunk's persons, memberships, audit rows and events, in the caller's transaction.

    Creations and name changes go out as one persons_imported event per chunk; changes of access
    of existing persons (active, portal access, new group memberships) as one event each."""
    await store.insert_persons_bulk(conn, workspace_id, plan.creates)
    changed = [(b, a, c) for b, a, c in plan.updates if c]
    await store.update_persons_bulk(conn, workspace_id, [a for _, a, _ in changed])
    await store.add_members_bulk(conn, workspace_id, [(g, p) for g, p, _ in plan.new_members])
    outgoing: list[events_pb2.Event] = []
    audit: list[tuple[str, str, str, dict[str, Any] | None, dict[str, Any] | None]] = []
    for person in plan.creates:
        audit.append(("person.imported", "person", str(person.id), None, person.as_json()))
    renamed: list[uuid.UUID] = []
    for before, after, fields in changed:
        if {"active", "portal_access"} & set(fields):
            outgoing.extend(_person_events(before, after, fields, actor))
        else:
            renamed.append(after.id)
        audit.append(
            ("person.imported", "person", str(after.id), before.as_json(), after.as_json())
        )
    if plan.creates or renamed:
        outgoing.append(
            events.persons_imported(
                workspace_id, import_id, [p.id for p in plan.creates], renamed, actor
            )
        )
    for group_id, person_id, is_new in plan.new_members:
        if not is_new:
            outgoing.append(
                events.membership("group_member_added", workspace_id, group_id, person_id, actor)
            )
            audit.append(
                (
                    "group.member_added",
                    "group",
                    str(group_id),
                    None,
                    {"person_id": str(person_id), "member": True, "via": "import"},
                )
            )
    await store.insert_audit_many(conn, workspace_id, actor, audit)
    await outbox.add_many(conn, outgoing)


def _count(job: ImportJob, plan: _ChunkPlan) -> None:
    job.created += len(plan.creates)
    job.updated += len(plan.updates)
    job.unchanged += plan.unchanged
    job.failed += plan.failed
    job.errors.extend(plan.errors)


def _summary(job: ImportJob, *, dry_run: bool) -> str:
    verb = "would be" if dry_run else "were"
    capped = (
        f"; the first {MAX_STORED_ERRORS} errors are listed"
        if len(job.errors) >= MAX_STORED_ERRORS
        else ""
    )
    return _summary_counts(job, verb) + capped


def _summary_counts(job: ImportJob, verb: str) -> str:
    return (
        f"{job.total_rows} rows: {job.created} {verb} created, {job.updated} {verb} updated, "
        f"{job.unchanged} unchanged, {job.failed} failed"
    )


def _person_events(
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


def _person_audit(person: Person) -> dict[str, Any]:
    return {
        **person.as_json(),
        "role_ids": [str(r) for r in person.role_ids],
        "group_ids": [str(g) for g in person.group_ids],
    }


def _next(persons: Sequence[Person], more: bool) -> str:
    return token_for([persons[-1].email.lower()]) if more and persons else ""


def _keep(new: Any, old: Any) -> Any:
    return old if new is None else new
