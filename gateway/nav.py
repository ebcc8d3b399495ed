"""Navigation of the portal and the management console, following sections and permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.routing import Ctx

# (label, href, section or None, permissions needed)
PORTAL_NAV: list[tuple[str, str, str | None, tuple[str, ...]]] = [
    ("Tickets", "/tickets", "tickets", ("Ticket:read",)),
    ("Issues", "/issues", "issues", ("Issue:read",)),
    ("Control tests", "/control-tests", "control_tests", ("Control:read", "ControlTest:read")),
    ("Notifications", "/notifications", None, ()),
]

MANAGEMENT_NAV: list[tuple[str, str, tuple[str, ...]]] = [
    ("Persons", "/management/persons", ("Person:read",)),
    ("Portal usage", "/management/portal-usage", ("Person:read",)),
    ("Import", "/management/persons/import", ("Person:manage",)),
    ("Roles", "/management/roles", ("Role:manage",)),
    ("Groups", "/management/groups", ("Group:manage",)),
    ("Tickets", "/management/tickets", ("Ticket:manage",)),
    ("Controls", "/management/controls", ("Control:manage",)),
    ("Control tests", "/management/control-tests", ("Control:manage",)),
    ("Issues", "/management/issues", ("Issue:manage",)),
    ("Portal settings", "/management/portal-settings", ("Settings:manage",)),
    ("Single sign-on", "/management/sso", ("Settings:manage",)),
    ("SCIM provisioning", "/management/scim", ("Settings:manage",)),
    ("Webhooks", "/management/webhooks", ("Settings:manage",)),
    ("Audit", "/management/audit", ("Audit:read",)),
]


def portal_sections(ctx: Ctx) -> list[dict[str, str]]:
    """The portal sections this person sees: the section is on and the permissions are held."""
    return [
        {"label": label, "href": href, "section": section or ""}
        for label, href, section, perms in PORTAL_NAV
        if (section is None or ctx.section_on(section))
        and ctx.has(*perms)
        # A gateway run without the notifications service (FRONTDESK_NOTIFICATIONS_ADDR
        # unset) links nowhere it could not serve.
        and (href != "/notifications" or ctx.backends.notifications is not None)
    ]


def management_links(ctx: Ctx) -> list[dict[str, str]]:
    return [
        {"label": label, "href": href} for label, href, perms in MANAGEMENT_NAV if ctx.has(*perms)
    ]


def current_href(path: str, hrefs: list[str]) -> str:
    matches = [h for h in hrefs if path == h or path.startswith(h.rstrip("/") + "/")]
    return max(matches, key=len, default="")


def page_context(ctx: Ctx) -> dict[str, Any]:
    signed_in = ctx.person is not None
    portal_ok = bool(ctx.person and ctx.person.portal_access)
    return {
        "ctx": ctx,
        "workspace": ctx.workspace,
        "signed_in": signed_in,
        "csrf_token": ctx.csrf_token,
        "portal_nav": portal_sections(ctx) if portal_ok else [],
        "management_nav": management_links(ctx) if signed_in else [],
        "is_manager": ctx.is_manager,
        "portal_access": portal_ok,
        "current_path": ctx.request.path,
        # The one link of the navigation this page belongs to: the longest that the path
        # starts with ("/management/persons/import" is Import, not Persons as well).
        "current_href": current_href(
            ctx.request.path,
            [link["href"] for link in (portal_sections(ctx) if portal_ok else [])]
            + [link["href"] for link in (management_links(ctx) if signed_in else [])],
        ),
        "in_management": ctx.request.path.startswith("/management"),
        # set by the notifications feature's nav step for portal pages (None: not known)
        "unread_notifications": ctx.request.get("fd_unread_notifications"),
    }
