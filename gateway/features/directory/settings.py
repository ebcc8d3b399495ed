"""Portal settings: section toggles, self-registration, portal-access defaults and e-mail domain rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.features.auth import mail_configured
from gateway.features.directory.common import (
    API,
    NOTICES,
    SETTINGS,
    D,
    P,
    management_route,
    page_route,
)
from gateway.present import (
    checked,
    copy_given,
    form_errors,
    notice,
    pretty_time,
    time_of,
)
from gateway.routing import Ctx, Route

SelfRegistration = Literal["off", "open", "domains"]
SECTIONS = {
    "tickets_enabled": "Tickets",
    "issues_enabled": "Issues",
    "control_tests_enabled": "Control tests",
}
REGISTRATION_MODES = {
    "off": "Off: only admins create persons",
    "open": "Open: anyone may register",
    "domains": "Only e-mail addresses of the listed domains",
}


class DomainRuleIO(msgspec.Struct, forbid_unknown_fields=True):
    domain: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    portal_access: bool


class PortalSettingsOut(msgspec.Struct):
    tickets_enabled: bool
    issues_enabled: bool
    control_tests_enabled: bool
    self_registration: str
    registration_domains: list[str]
    portal_access_default: bool
    portal_access_rules: list[DomainRuleIO]
    require_two_factor: bool
    updated_at: str | None
    api_token_max_days: int = 90
    # Attachments: the largest file, all files of one item together, files per item.
    attachment_max_file_mb: int = 25
    attachment_max_item_mb: int = 100
    attachment_max_files: int = 20


class PortalSettingsPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    tickets_enabled: bool | None = None
    issues_enabled: bool | None = None
    control_tests_enabled: bool | None = None
    self_registration: SelfRegistration | None = None
    registration_domains: list[str] | None = None
    portal_access_default: bool | None = None
    portal_access_rules: list[DomainRuleIO] | None = None  # ordered: the first match wins
    require_two_factor: bool | None = None
    api_token_max_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    attachment_max_file_mb: Annotated[int, msgspec.Meta(ge=1, le=1024)] | None = None
    attachment_max_item_mb: Annotated[int, msgspec.Meta(ge=1, le=10240)] | None = None
    attachment_max_files: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


def settings_out(s: directory_pb2.PortalSettings) -> PortalSettingsOut:
    return PortalSettingsOut(
        tickets_enabled=s.tickets_enabled,
        issues_enabled=s.issues_enabled,
        control_tests_enabled=s.control_tests_enabled,
        self_registration=s.self_registration,
        registration_domains=list(s.registration_domains),
        portal_access_default=s.portal_access_default,
        portal_access_rules=[
            DomainRuleIO(domain=r.domain, portal_access=r.portal_access)
            for r in s.portal_access_rules
        ],
        require_two_factor=s.require_two_factor,
        updated_at=time_of(s, "updated_at"),
        api_token_max_days=s.api_token_max_days or 90,
        attachment_max_file_mb=s.attachment_max_file_mb,
        attachment_max_item_mb=s.attachment_max_item_mb,
        attachment_max_files=s.attachment_max_files,
    )


def settings_patch(
    caller: common_pb2.Caller, body: PortalSettingsPatchIn
) -> directory_pb2.UpdatePortalSettingsRequest:
    req = D.UpdatePortalSettingsRequest(caller=caller)
    copy_given(
        body,
        req,
        (
            "tickets_enabled",
            "issues_enabled",
            "control_tests_enabled",
            "self_registration",
            "portal_access_default",
            "require_two_factor",
            "api_token_max_days",
            "attachment_max_file_mb",
            "attachment_max_item_mb",
            "attachment_max_files",
        ),
    )
    if body.registration_domains is not None:
        req.set_registration_domains = True
        req.registration_domains.extend(body.registration_domains)
    if body.portal_access_rules is not None:
        req.set_portal_access_rules = True
        req.portal_access_rules.extend(
            D.DomainRule(domain=r.domain, portal_access=r.portal_access)
            for r in body.portal_access_rules
        )
    return req


LIMIT_FIELDS = (
    ("attachment_max_file_mb", 1024),
    ("attachment_max_item_mb", 10240),
    ("attachment_max_files", 1000),
)


def _forget_settings(ctx: Ctx) -> None:
    ctx.state.caches.settings.drop(ctx.workspace_id)


async def _settings(ctx: Ctx) -> directory_pb2.PortalSettings:
    return await ctx.call(
        ctx.backends.directory.GetPortalSettings,
        D.GetPortalSettingsRequest(caller=ctx.caller()),
        safe=True,
    )


async def api_settings(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(settings_out(await _settings(ctx)))


async def api_update_settings(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    updated = await ctx.call(
        ctx.backends.directory.UpdatePortalSettings, settings_patch(ctx.caller(), ctx.body)
    )
    _forget_settings(ctx)
    return ctx.json(settings_out(updated))


def _domain_matches(domain: str, email: str) -> bool:
    """The service's rule: 'acme.com' matches a@acme.com and a@sub.acme.com; '*' matches all."""
    if domain == "*":
        return True
    host = email.rpartition("@")[2].strip().lower()
    return host == domain or host.endswith("." + domain)


def access_default(settings: directory_pb2.PortalSettings, email: str) -> tuple[bool, str]:
    """(default portal access for this e-mail, the hint shown next to the choice)."""
    value = settings.portal_access_default
    host = email.rpartition("@")[2].strip().lower() if "@" in email else ""
    if host:
        for rule in settings.portal_access_rules:
            if _domain_matches(rule.domain, email):
                value = rule.portal_access
                break
        return value, f"default for @{host}: {'on' if value else 'off'}"
    return value, f"workspace default: {'on' if value else 'off'}"


def rules_view(settings: directory_pb2.PortalSettings) -> list[dict[str, Any]]:
    return [
        {"domain": r.domain, "portal_access": r.portal_access} for r in settings.portal_access_rules
    ]


EMPTY_RULE_ROWS = 3


async def _render_settings(
    ctx: Ctx,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    current = settings_out(await _settings(ctx))
    values = form or {
        **msgspec.structs.asdict(current),
        "registration_domains": "\n".join(current.registration_domains),
        "portal_access_rules": [msgspec.structs.asdict(r) for r in current.portal_access_rules],
    }
    rules = list(values["portal_access_rules"])
    rules += [{"domain": "", "portal_access": True}] * EMPTY_RULE_ROWS
    return ctx.render(
        "directory/portal_settings.html",
        {
            "s": values,
            "rules": rules,
            "sections": SECTIONS,
            "modes": REGISTRATION_MODES,
            "errors": errors or {},
            "updated_at": pretty_time(current.updated_at),
            "mail_configured": await mail_configured(ctx),
            "notice": notice(ctx.request, NOTICES),
        },
        status=status,
    )


async def page_settings(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_settings(ctx)


def _rules_from_form(raw: dict[str, str], errors: dict[str, str]) -> list[dict[str, Any]]:
    """Rows rule-N-domain / rule-N-access / rule-N-order; empty domains are dropped."""
    rows: list[tuple[float, int, dict[str, Any]]] = []
    n = 0
    while f"rule-{n}-domain" in raw:
        domain = raw.get(f"rule-{n}-domain", "").strip().lower().lstrip("@")
        order_raw = raw.get(f"rule-{n}-order", "").strip()
        try:
            order = float(order_raw) if order_raw else float(n + 1)
        except ValueError:
            errors["portal_access_rules"] = f"rule {n + 1}: the order must be a number"
            order = float(n + 1)
        if domain:
            rows.append(
                (order, n, {"domain": domain, "portal_access": raw.get(f"rule-{n}-access") == "on"})
            )
        n += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


async def page_update_settings(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    errors: dict[str, str] = {}
    rules = _rules_from_form(raw, errors)
    domains = [
        d.strip().lower().lstrip("@")
        for d in raw.get("registration_domains", "").replace(",", "\n").splitlines()
        if d.strip()
    ]
    mode = raw.get("self_registration", "off")
    if mode not in REGISTRATION_MODES:
        errors["self_registration"] = "choose off, open or domains"
    form: dict[str, Any] = {
        **{name: checked(raw, name) for name in SECTIONS},
        "self_registration": mode,
        "registration_domains": raw.get("registration_domains", ""),
        "portal_access_default": raw.get("portal_access_default") == "on",
        "portal_access_rules": rules,
        "require_two_factor": checked(raw, "require_two_factor"),
        "api_token_max_days": raw.get("api_token_max_days", ""),
    }
    max_days: int | None = None
    if form["api_token_max_days"]:
        try:
            max_days = int(form["api_token_max_days"])
        except ValueError:
            errors["api_token_max_days"] = "must be a number of days"
        else:
            if not 1 <= max_days <= 3650:
                errors["api_token_max_days"] = "must be between 1 and 3650 days"
    limits: dict[str, int | None] = {}
    for name, high in LIMIT_FIELDS:
        # Like the token cap: a field left out or empty keeps the workspace's current value.
        value = raw.get(name, "").strip()
        form[name] = value
        limits[name] = int(value) if value.isdigit() else None
        if value and (not value.isdigit() or not 1 <= int(value) <= high):
            errors[name] = f"a whole number from 1 to {high}"
    if not errors:
        patch = PortalSettingsPatchIn(
            tickets_enabled=form["tickets_enabled"],
            issues_enabled=form["issues_enabled"],
            control_tests_enabled=form["control_tests_enabled"],
            self_registration=mode,  # type: ignore[arg-type]
            registration_domains=domains,
            portal_access_default=form["portal_access_default"],
            portal_access_rules=[DomainRuleIO(**r) for r in rules],
            require_two_factor=form["require_two_factor"],
            api_token_max_days=max_days,
            attachment_max_file_mb=limits["attachment_max_file_mb"],
            attachment_max_item_mb=limits["attachment_max_item_mb"],
            attachment_max_files=limits["attachment_max_files"],
        )
        try:
            await ctx.call(
                ctx.backends.directory.UpdatePortalSettings, settings_patch(ctx.caller(), patch)
            )
        except ApiError as exc:
            if exc.status not in (409, 422):
                raise
            errors = form_errors(exc)
        else:
            _forget_settings(ctx)
            raise ctx.redirect("/management/portal-settings?done=updated")
    return await _render_settings(ctx, errors=errors, form=form, status=422)


ROUTES: list[Route] = [
    # JSON.
    management_route(
        "GET",
        f"{API}/portal-settings",
        api_settings,
        SETTINGS,
        response=PortalSettingsOut,
        summary="Portal settings",
    ),
    management_route(
        "PATCH",
        f"{API}/portal-settings",
        api_update_settings,
        SETTINGS,
        body=PortalSettingsPatchIn,
        response=PortalSettingsOut,
        summary="Change portal settings (sections, self-registration, portal-access default "
        "and ordered domain rules, required two-factor, longest API-token lifetime)",
    ),
    # Pages.
    page_route("GET", f"{P}/portal-settings", page_settings, SETTINGS, "Portal settings"),
    page_route(
        "POST", f"{P}/portal-settings", page_update_settings, SETTINGS, "Save portal settings"
    ),
]
