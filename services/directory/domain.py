"""The directory's rules: permissions catalog, validation, portal-access defaults, paging tokens.

No I/O and no protobuf here; the service and the servicer translate.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.chassis import sql
from services.chassis.caller import Caller
from services.chassis.errors import InvalidField, NotFound, PermissionDenied
from services.chassis.paging import Keyset

PORTAL_PERMISSIONS: tuple[str, ...] = (
    "Ticket:read",
    "Ticket:create",
    "Issue:read",
    "Control:read",
    "ControlTest:read",
    "ControlTest:update",
)
MANAGEMENT_PERMISSIONS: tuple[str, ...] = (
    "Ticket:manage",
    "Issue:manage",
    "Control:manage",
    "Person:read",
    "Person:manage",
    "Role:manage",
    "Group:manage",
    "Settings:manage",
    "Audit:read",
)
CATALOG: tuple[str, ...] = PORTAL_PERMISSIONS + MANAGEMENT_PERMISSIONS

ROLE_PORTAL_USER = "portal_user"
ROLE_WORKSPACE_ADMIN = "workspace_admin"
GROUP_PORTAL_USERS = "portal_users"
GROUP_ADMINISTRATORS = "administrators"

SELF_REGISTRATION_MODES = ("off", "open", "domains")

# Above this many affected persons an event says "everyone" instead of listing them, so a
# message stays well under NATS's default 1 MB payload limit.
MAX_AFFECTED_LISTED = 5000


# ---- who is calling ----


def require(caller: Caller, *permissions: str) -> None:
    """Raise PermissionDenied unless the caller holds every one of `permissions`."""
    missing = caller.missing(*permissions)
    if missing:
        raise PermissionDenied(f"missing permission {', '.join(missing)}")


def parse_id(value: str, what: str) -> uuid.UUID:
    """An id from a request; a malformed one is as unknown as a missing one (NOT_FOUND)."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"{what} not found") from None


# ---- records ----


@dataclass(frozen=True)
class Workspace:
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class DomainRule:
    domain: str
    portal_access: bool


@dataclass(frozen=True)
class PortalSettings:
    workspace_id: uuid.UUID
    tickets_enabled: bool = True
    issues_enabled: bool = True
    control_tests_enabled: bool = True
    self_registration: str = "off"
    registration_domains: tuple[str, ...] = ()
    portal_access_default: bool = True
    portal_access_rules: tuple[DomainRule, ...] = ()
    require_two_factor: bool = False
    updated_at: datetime | None = None
    api_token_max_days: int = 90
    attachment_max_file_mb: int = 25
    attachment_max_item_mb: int = 100
    attachment_max_files: int = 20

    def portal_access_for(self, email: str) -> bool:
        """The default portal access of a new person: the first matching rule, else the default."""
        for rule in self.portal_access_rules:
            if domain_matches(rule.domain, email):
                return rule.portal_access
        return self.portal_access_default

    def may_self_register(self, email: str) -> bool:
        if self.self_registration == "open":
            return True
        if self.self_registration == "domains":
            return any(domain_matches(d, email) for d in self.registration_domains)
        return False

    def as_json(self) -> dict[str, Any]:
        return {
            "tickets_enabled": self.tickets_enabled,
            "issues_enabled": self.issues_enabled,
            "control_tests_enabled": self.control_tests_enabled,
            "self_registration": self.self_registration,
            "registration_domains": list(self.registration_domains),
            "portal_access_default": self.portal_access_default,
            "portal_access_rules": [
                {"domain": r.domain, "portal_access": r.portal_access}
                for r in self.portal_access_rules
            ],
            "require_two_factor": self.require_two_factor,
            "api_token_max_days": self.api_token_max_days,
            "attachment_max_file_mb": self.attachment_max_file_mb,
            "attachment_max_item_mb": self.attachment_max_item_mb,
            "attachment_max_files": self.attachment_max_files,
        }


@dataclass(frozen=True)
class Notifications:
    ticket_updates: bool = True
    issue_assigned: bool = True
    control_test_assigned: bool = True
    weekly_digest: bool = False


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    workspace_id: uuid.UUID
    email: str
    name: str
    login_name: str
    active: bool
    portal_access: bool
    notifications: Notifications
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_portal_login_at: datetime | None = None
    role_ids: tuple[uuid.UUID, ...] = ()
    group_ids: tuple[uuid.UUID, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """What the audit trail records of a person."""
        return {
            "email": self.email,
            "name": self.name,
            "login_name": self.login_name,
            "active": self.active,
            "portal_access": self.portal_access,
            "notifications": {
                "ticket_updates": self.notifications.ticket_updates,
                "issue_assigned": self.notifications.issue_assigned,
                "control_test_assigned": self.notifications.control_test_assigned,
                "weekly_digest": self.notifications.weekly_digest,
            },
        }


@dataclass(frozen=True)
class Role:
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str
    permissions: tuple[str, ...]
    builtin_key: str | None = None
    assigned_count: int = 0

    @property
    def builtin(self) -> bool:
        return self.builtin_key is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "permissions": list(self.permissions),
        }


@dataclass(frozen=True)
class Group:
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str
    role_ids: tuple[uuid.UUID, ...] = ()
    builtin_key: str | None = None
    member_count: int = 0

    @property
    def builtin(self) -> bool:
        return self.builtin_key is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "role_ids": [str(r) for r in self.role_ids],
        }


@dataclass(frozen=True)
class EffectivePermissions:
    person_id: uuid.UUID
    permissions: tuple[str, ...]
    active: bool
    portal_access: bool


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    id: uuid.UUID
    actor_id: str
    action: str
    object_type: str
    object_id: str
    before: str
    after: str
    at: datetime


@dataclass
class ImportJob:
    id: uuid.UUID
    workspace_id: uuid.UUID
    status: str
    dry_run: bool
    total_rows: int = 0
    rows_done: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    created_at: datetime | None = None
    finished_at: datetime | None = None


# ---- validation ----

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_LOGIN = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
_PERMISSION_SHAPE = re.compile(r"^[A-Za-z]+:[a-z]+$")
RESERVED_SLUGS = frozenset({"www", "api", "admin", "management", "static", "auth"})


def validate_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise InvalidField(
            "slug",
            "use 1 to 63 lowercase letters, digits and hyphens, not starting or ending with -",
        )
    if slug in RESERVED_SLUGS:
        raise InvalidField("slug", f"{slug!r} is reserved")
    return slug


def clean_email(email: str, field_name: str = "email") -> str:
    email = email.strip()
    if not email:
        raise InvalidField(field_name, "required")
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidField(field_name, f"{email!r} is not an e-mail address")
    return email


def no_nul(value: str, field_name: str) -> str:
    """PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail storing it."""
    if "\x00" in value:
        raise InvalidField(field_name, "must not contain NUL characters")
    return value


def clean_name(name: str, *, required: bool = True) -> str:
    name = no_nul(name.strip(), "name")
    if required and not name:
        raise InvalidField("name", "required")
    if len(name) > 200:
        raise InvalidField("name", "at most 200 characters")
    return name


def clean_login_name(login_name: str) -> str:
    """Optional: empty is allowed whatever portal_access says."""
    login_name = login_name.strip()
    if login_name and not _LOGIN.match(login_name):
        raise InvalidField(
            "login_name", "use at most 100 letters, digits and . _ @ + - (or leave it empty)"
        )
    return login_name


def clean_text(value: str, field_name: str, limit: int) -> str:
    value = no_nul(value.strip(), field_name)
    if len(value) > limit:
        raise InvalidField(field_name, f"at most {limit} characters")
    return value


def clean_domain(value: str, field_name: str, *, allow_star: bool = False) -> str:
    domain = value.strip().lower().lstrip("@")
    if allow_star and domain == "*":
        return domain
    if not _DOMAIN.match(domain):
        raise InvalidField(field_name, f"{value!r} is not a domain name")
    return domain


def domain_of(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def domain_matches(domain: str, email: str) -> bool:
    """'acme.com' matches a@acme.com and a@sub.acme.com; '*' matches everything."""
    if domain == "*":
        return True
    host = domain_of(email)
    return host == domain or host.endswith("." + domain)


def check_permissions(permissions: Sequence[str]) -> tuple[str, ...]:
    """Permissions in catalog order, de-duplicated; unknown ones are named in the error."""
    unknown = sorted({p for p in permissions if p not in CATALOG})
    if unknown:
        raise InvalidField("permissions", f"unknown permission(s): {', '.join(unknown)}")
    wanted = set(permissions)
    return tuple(p for p in CATALOG if p in wanted)


def check_permission(permission: str) -> str:
    if permission not in CATALOG:
        raise InvalidField("permission", f"unknown permission: {permission!r}")
    return permission


def cap_affected(ids: Sequence[uuid.UUID]) -> tuple[list[str], bool]:
    """(listed ids, affects_everyone) for an event."""
    if len(ids) > MAX_AFFECTED_LISTED:
        return [], True
    return [str(i) for i in ids], False


# ---- paging ----

DEFAULT_PAGE = 50
MAX_PAGE = 500


PERSONS_ORDER = Keyset("persons", (str,), DEFAULT_PAGE, MAX_PAGE)
"""Persons (and portal usage) page in e-mail order: the key is lower(email)."""
AUDIT_ORDER = Keyset("audit", (int,), DEFAULT_PAGE, MAX_PAGE)
"""The audit trail pages newest first: the key is its seq."""


def like_pattern(query: str) -> str:
    """A LIKE pattern matching `query` anywhere, with LIKE's special characters escaped."""
    no_nul(query, "query")
    return sql.like_pattern(query.lower())
