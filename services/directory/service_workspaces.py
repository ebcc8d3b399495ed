"""Use cases of workspaces (creation with built-in roles, groups and first admin), portal
settings and the audit trail."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import InvalidField, NotFound
from services.chassis.paging import Page
from services.directory import (
    events,
    store,
    store_groups,
    store_persons,
    store_roles,
)
from services.directory.domain import (
    AUDIT_ORDER,
    CATALOG,
    GROUP_ADMINISTRATORS,
    GROUP_PORTAL_USERS,
    PORTAL_PERMISSIONS,
    ROLE_PORTAL_USER,
    ROLE_WORKSPACE_ADMIN,
    SELF_REGISTRATION_MODES,
    AuditEntry,
    DomainRule,
    Group,
    Notifications,
    Person,
    PortalSettings,
    Role,
    Workspace,
    clean_domain,
    clean_email,
    clean_text,
    no_nul,
    require,
    validate_slug,
)
from services.directory.service_base import ServiceBase, keep, unique_as_conflict

log = logging.getLogger(__name__)

MAX_RULES = 100


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
    api_token_max_days: int | None = None
    attachment_max_file_mb: int | None = None
    attachment_max_item_mb: int | None = None
    attachment_max_files: int | None = None


def check_attachment_limits(s: PortalSettings) -> None:
    """Attachment limits within their ranges, and a file fits in its item."""
    for name, low, high in (
        ("attachment_max_file_mb", 1, 1024),
        ("attachment_max_item_mb", 1, 10240),
        ("attachment_max_files", 1, 1000),
    ):
        if not low <= getattr(s, name) <= high:
            raise InvalidField(name, f"must be between {low} and {high}")
    if s.attachment_max_item_mb < s.attachment_max_file_mb:
        raise InvalidField("attachment_max_item_mb", "must be at least the limit per file")


class WorkspaceUseCases(ServiceBase):
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
            with unique_as_conflict():
                await store.insert_workspace(conn, ws)
            await store.insert_settings(conn, settings)
            for role in (portal_role, admin_role):
                await store_roles.insert_role(conn, role)
            for group in (portal_group, admin_group):
                await store_groups.insert_group(conn, group)
            await store_persons.insert_person(conn, admin)
            await store_groups.add_member(conn, ws.id, admin_group.id, admin.id)
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
            created = await store_persons.get_person(conn, ws.id, admin.id)
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

    async def get_settings(self, caller: Caller) -> PortalSettings:
        """Readable by anyone of the workspace: the gateway needs the toggles for every request."""
        async with self._read() as conn:
            return await self._settings(conn, caller.workspace_id)

    async def update_settings(self, caller: Caller, change: SettingsChange) -> PortalSettings:
        """Writes an audit row and a portal_settings_changed event when anything changed."""
        require(caller, "Settings:manage")
        if (
            change.self_registration is not None
            and change.self_registration not in SELF_REGISTRATION_MODES
        ):
            raise InvalidField("self_registration", "use off, open or domains")
        domains: tuple[str, ...] | None = None
        if change.registration_domains is not None:
            domains = tuple(
                dict.fromkeys(
                    clean_domain(d, "registration_domains")
                    for d in change.registration_domains
                    if d.strip()
                )
            )
        if change.api_token_max_days is not None and not 1 <= change.api_token_max_days <= 3650:
            raise InvalidField("api_token_max_days", "must be between 1 and 3650 days")
        rules: tuple[DomainRule, ...] | None = None
        if change.portal_access_rules is not None:
            if len(change.portal_access_rules) > MAX_RULES:
                raise InvalidField("portal_access_rules", f"at most {MAX_RULES} rules")
            rules = tuple(
                DomainRule(clean_domain(d, "portal_access_rules", allow_star=True), access)
                for d, access in change.portal_access_rules
            )
        async with self._tx() as conn:
            before = await self._settings(conn, caller.workspace_id, for_update=True)
            after = replace(
                before,
                tickets_enabled=keep(change.tickets_enabled, before.tickets_enabled),
                issues_enabled=keep(change.issues_enabled, before.issues_enabled),
                control_tests_enabled=keep(
                    change.control_tests_enabled, before.control_tests_enabled
                ),
                self_registration=keep(change.self_registration, before.self_registration),
                registration_domains=keep(domains, before.registration_domains),
                portal_access_default=keep(
                    change.portal_access_default, before.portal_access_default
                ),
                portal_access_rules=keep(rules, before.portal_access_rules),
                require_two_factor=keep(change.require_two_factor, before.require_two_factor),
                api_token_max_days=keep(change.api_token_max_days, before.api_token_max_days),
                attachment_max_file_mb=keep(
                    change.attachment_max_file_mb, before.attachment_max_file_mb
                ),
                attachment_max_item_mb=keep(
                    change.attachment_max_item_mb, before.attachment_max_item_mb
                ),
                attachment_max_files=keep(change.attachment_max_files, before.attachment_max_files),
            )
            check_attachment_limits(after)
            if after.self_registration == "domains" and not after.registration_domains:
                raise InvalidField(
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

    # ---- audit ----

    async def list_audit(
        self, caller: Caller, page: Page, object_type: str, object_id: str
    ) -> tuple[list[AuditEntry], str]:
        require(caller, "Audit:read")
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
        token = AUDIT_ORDER.token([entries[-1].seq]) if more and entries else ""
        return entries, token
