"""Gateway surface of the directory capability: management of persons, import, roles, groups,
portal settings, portal usage and the audit trail (pages and /management/api/v1 JSON).

The directory service checks every object against the Caller itself (workspace, permission);
an id of another workspace is NOT_FOUND there, so it is a 404 here. Portal access never depends
on a login name: creating or editing a person with portal access on and no login name works.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.features.profile import admin_reset_two_factor, admin_set_password
from gateway.present import (
    checked,
    fields_message,
    filter_query,
    flag,
    form_errors,
    notice,
    page_links,
    page_request,
    person_names,
    pretty_time,
    query_params,
    raise_invalid,
    system_caller,
    time_of,
)
from gateway.routing import Ctx, Route, read_form, validation_fields

D = directory_pb2
READ = ("Person:read",)
MANAGE = ("Person:manage",)
ROLES = ("Role:manage",)
GROUPS = ("Group:manage",)
SETTINGS = ("Settings:manage",)
AUDIT = ("Audit:read",)

SelfRegistration = Literal["off", "open", "domains"]
UsageFilter = Literal["all", "never", "stale"]
NOTIFICATIONS = {
    "ticket_updates": "Updates on my tickets",
    "issue_assigned": "An issue is assigned to me",
    "control_test_assigned": "A control test is assigned to me",
    "weekly_digest": "Weekly digest",
}
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
USAGE_FILTERS = {
    "all": "Everyone with portal access",
    "never": "Has access, never signed in",
    "stale": "Has access, not signed in for N days",
}
AUDIT_TYPES = ("person", "role", "group", "settings", "import", "workspace")
PAGE_LIMIT = 500  # the largest page_size of the directory's lists
JOB_BADGES = {"pending": "", "running": "warn", "done": "ok", "failed": "danger"}
NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
EMAIL = Annotated[str, msgspec.Meta(min_length=1, max_length=254)]


# -- JSON schemas ---------------------------------------------------------------------------


class PersonNotifications(msgspec.Struct):
    ticket_updates: bool = False
    issue_assigned: bool = False
    control_test_assigned: bool = False
    weekly_digest: bool = False


class PersonOut(msgspec.Struct):
    id: str
    email: str
    name: str
    login_name: str | None
    active: bool
    portal_access: bool
    notifications: PersonNotifications
    role_ids: list[str]
    group_ids: list[str]
    created_at: str | None
    updated_at: str | None
    last_portal_login_at: str | None


class PersonDetailOut(msgspec.Struct):
    person: PersonOut
    effective_permissions: list[str]


class PersonListOut(msgspec.Struct):
    items: list[PersonOut]
    next_page_token: str
    total: int


class PersonIn(msgspec.Struct, forbid_unknown_fields=True):
    email: EMAIL
    name: NAME
    login_name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    # Left out: the workspace default refined by its e-mail domain rules.
    portal_access: bool | None = None
    group_ids: list[str] = []
    role_ids: list[str] = []


class PersonPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    email: EMAIL | None = None
    name: NAME | None = None
    login_name: Annotated[str, msgspec.Meta(max_length=100)] | None = None  # "" clears
    active: bool | None = None
    portal_access: bool | None = None
    notifications: PersonNotifications | None = None


class RoleGrantIn(msgspec.Struct, forbid_unknown_fields=True):
    role_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PersonsQuery(msgspec.Struct):
    q: str = ""
    active: str = ""  # "true" | "false"
    portal_access: str = ""  # "true" | "false"
    group: str = ""  # a group id
    role: str = ""  # a role id (direct)
    permission: str = ""  # persons holding this permission (direct or via groups)
    page_size: int = 50
    page_token: str = ""


class PortalUsageQuery(msgspec.Struct):
    filter: str = "all"  # all | never | stale
    stale_days: int = 90
    page_size: int = 50
    page_token: str = ""


class RoleOut(msgspec.Struct):
    id: str
    name: str
    description: str
    permissions: list[str]
    builtin: bool
    assigned_count: int


class RoleListOut(msgspec.Struct):
    items: list[RoleOut]


class RoleIn(msgspec.Struct, forbid_unknown_fields=True):
    name: NAME
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    permissions: list[str] = []


class RolePatchIn(msgspec.Struct, forbid_unknown_fields=True):
    name: NAME | None = None
    description: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    permissions: list[str] | None = None


class DeleteRoleQuery(msgspec.Struct):
    force: bool = False


class PermissionCatalogOut(msgspec.Struct):
    items: list[str]


class GroupOut(msgspec.Struct):
    id: str
    name: str
    description: str
    role_ids: list[str]
    builtin: bool
    member_count: int


class GroupListOut(msgspec.Struct):
    items: list[GroupOut]


class GroupIn(msgspec.Struct, forbid_unknown_fields=True):
    name: NAME
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    role_ids: list[str] = []


class GroupPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    name: NAME | None = None
    description: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    role_ids: list[str] | None = None


class MemberIn(msgspec.Struct, forbid_unknown_fields=True):
    person_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


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


class PortalSettingsPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    tickets_enabled: bool | None = None
    issues_enabled: bool | None = None
    control_tests_enabled: bool | None = None
    self_registration: SelfRegistration | None = None
    registration_domains: list[str] | None = None
    portal_access_default: bool | None = None
    portal_access_rules: list[DomainRuleIO] | None = None  # ordered: the first match wins
    require_two_factor: bool | None = None


class ImportErrorOut(msgspec.Struct):
    line: int
    field: str
    message: str


class ImportJobOut(msgspec.Struct):
    id: str
    status: str  # pending | running | done | failed
    dry_run: bool
    total_rows: int
    rows_done: int
    created: int
    updated: int
    unchanged: int
    failed: int
    errors: list[ImportErrorOut]
    message: str
    created_at: str | None
    finished_at: str | None


class ImportQuery(msgspec.Struct):
    format: str = ""  # csv | json (else from the Content-Type or the file name)
    dry_run: bool = False


class AuditEntryOut(msgspec.Struct):
    id: str
    actor_id: str | None
    action: str
    object_type: str
    object_id: str
    before: Any
    after: Any
    at: str | None


class AuditListOut(msgspec.Struct):
    items: list[AuditEntryOut]
    next_page_token: str


class AuditQuery(msgspec.Struct):
    object_type: str = ""
    object_id: str = ""
    page_size: int = 50
    page_token: str = ""


class DeletedOut(msgspec.Struct):
    status: str = "deleted"


# -- conversions ----------------------------------------------------------------------------


def notifications_out(n: directory_pb2.NotificationPreferences) -> PersonNotifications:
    return PersonNotifications(
        ticket_updates=n.ticket_updates,
        issue_assigned=n.issue_assigned,
        control_test_assigned=n.control_test_assigned,
        weekly_digest=n.weekly_digest,
    )


def person_out(p: directory_pb2.Person) -> PersonOut:
    return PersonOut(
        id=p.id,
        email=p.email,
        name=p.name,
        login_name=p.login_name or None,
        active=p.active,
        portal_access=p.portal_access,
        notifications=notifications_out(p.notifications),
        role_ids=list(p.role_ids),
        group_ids=list(p.group_ids),
        created_at=time_of(p, "created_at"),
        updated_at=time_of(p, "updated_at"),
        last_portal_login_at=time_of(p, "last_portal_login_at"),
    )


def role_out(r: directory_pb2.Role) -> RoleOut:
    return RoleOut(
        id=r.id,
        name=r.name,
        description=r.description,
        permissions=list(r.permissions),
        builtin=r.builtin,
        assigned_count=r.assigned_count,
    )


def group_out(g: directory_pb2.Group) -> GroupOut:
    return GroupOut(
        id=g.id,
        name=g.name,
        description=g.description,
        role_ids=list(g.role_ids),
        builtin=g.builtin,
        member_count=g.member_count,
    )


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
    )


def job_out(j: directory_pb2.ImportJob) -> ImportJobOut:
    return ImportJobOut(
        id=j.id,
        status=j.status,
        dry_run=j.dry_run,
        total_rows=j.total_rows,
        rows_done=j.rows_done,
        created=j.created,
        updated=j.updated,
        unchanged=j.unchanged,
        failed=j.failed,
        errors=[ImportErrorOut(line=e.line, field=e.field, message=e.message) for e in j.errors],
        message=j.message,
        created_at=time_of(j, "created_at"),
        finished_at=time_of(j, "finished_at"),
    )


def _json_or_none(raw: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def audit_out(a: directory_pb2.AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=a.id,
        actor_id=a.actor_id or None,
        action=a.action,
        object_type=a.object_type,
        object_id=a.object_id,
        before=_json_or_none(a.before_json),
        after=_json_or_none(a.after_json),
        at=time_of(a, "at"),
    )


def _notifications_pb(n: PersonNotifications) -> directory_pb2.NotificationPreferences:
    return D.NotificationPreferences(
        ticket_updates=n.ticket_updates,
        issue_assigned=n.issue_assigned,
        control_test_assigned=n.control_test_assigned,
        weekly_digest=n.weekly_digest,
    )


# -- helpers shared by JSON and pages -------------------------------------------------------


def persons_request(ctx: Ctx, q: PersonsQuery) -> directory_pb2.ListPersonsRequest:
    fields: dict[str, str] = {}
    if len(q.q) > 200:
        fields["q"] = "at most 200 characters"
    req = D.ListPersonsRequest(
        caller=ctx.caller(),
        query=q.q.strip(),
        group_id=q.group.strip(),
        role_id=q.role.strip(),
        page=page_request(q.page_size, q.page_token, fields, PAGE_LIMIT),
    )
    active = flag(q.active, "active", fields)
    if active is not None:
        req.active = active
    portal = flag(q.portal_access, "portal_access", fields)
    if portal is not None:
        req.portal_access = portal
    raise_invalid(fields)
    return req


async def list_persons(ctx: Ctx, q: PersonsQuery) -> directory_pb2.ListPersonsResponse:
    """Persons by search and filters, or (permission=...) the holders of one permission."""
    if q.permission.strip():
        fields: dict[str, str] = {}
        page = page_request(q.page_size, q.page_token, fields, PAGE_LIMIT)
        raise_invalid(fields)
        return await ctx.call(
            ctx.backends.directory.ListPersonsWithPermission,
            D.ListPersonsWithPermissionRequest(
                caller=ctx.caller(), permission=q.permission.strip(), page=page
            ),
            safe=True,
        )
    return await ctx.call(ctx.backends.directory.ListPersons, persons_request(ctx, q), safe=True)


def usage_request(ctx: Ctx, q: PortalUsageQuery) -> directory_pb2.PortalUsageRequest:
    fields: dict[str, str] = {}
    if q.filter not in USAGE_FILTERS:
        fields["filter"] = "use all, never or stale"
    if q.filter == "stale" and not 1 <= q.stale_days <= 3650:
        fields["stale_days"] = "give a number of days between 1 and 3650"
    req = D.PortalUsageRequest(
        caller=ctx.caller(),
        filter=q.filter,
        stale_days=q.stale_days if q.filter == "stale" else 0,
        page=page_request(q.page_size, q.page_token, fields, PAGE_LIMIT),
    )
    raise_invalid(fields)
    return req


def person_patch(
    caller: common_pb2.Caller, ref: str, body: PersonPatchIn
) -> directory_pb2.UpdatePersonRequest:
    req = D.UpdatePersonRequest(caller=caller, person_id=ref)
    for name in ("email", "name", "login_name", "active", "portal_access"):
        value = getattr(body, name)
        if value is not None:
            setattr(req, name, value)
    if body.notifications is not None:
        req.notifications.CopyFrom(_notifications_pb(body.notifications))
        req.set_notifications = True
    return req


def settings_patch(
    caller: common_pb2.Caller, body: PortalSettingsPatchIn
) -> directory_pb2.UpdatePortalSettingsRequest:
    req = D.UpdatePortalSettingsRequest(caller=caller)
    for name in (
        "tickets_enabled",
        "issues_enabled",
        "control_tests_enabled",
        "self_registration",
        "portal_access_default",
        "require_two_factor",
    ):
        value = getattr(body, name)
        if value is not None:
            setattr(req, name, value)
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


def _forget_person(ctx: Ctx, person_id: str) -> None:
    """This replica sees the change at once; the others drop it on the directory's event."""
    ctx.state.caches.drop_person(ctx.workspace_id, person_id)


def _forget_settings(ctx: Ctx) -> None:
    ctx.state.caches.settings.drop(ctx.workspace_id)


async def _role(ctx: Ctx, role_id: str) -> directory_pb2.Role:
    """One role of this workspace (the service lists only the caller's workspace): else 404."""
    resp = await ctx.call(
        ctx.backends.directory.ListRoles, D.ListRolesRequest(caller=ctx.caller()), safe=True
    )
    found: list[directory_pb2.Role] = [r for r in resp.roles if r.id == role_id]
    if not found:
        raise ApiError(404, "not_found", "role not found")
    return found[0]


def _format_of(explicit: str, content_type: str, filename: str = "") -> str:
    fmt = explicit.strip().lower()
    if fmt:
        return fmt
    if filename.lower().endswith(".json"):
        return "json"
    if filename.lower().endswith(".csv"):
        return "csv"
    if "json" in content_type:
        return "json"
    if "csv" in content_type or content_type.startswith("text/"):
        return "csv"
    return ""


def _too_large(ctx: Ctx, size: int) -> ApiError:
    limit = ctx.state.settings.max_upload_bytes
    return ApiError(
        413,
        "too_large",
        f"the file is {size / 1024 / 1024:.1f} MB; the limit is {limit / 1024 / 1024:.0f} MB",
    )


async def start_import(
    ctx: Ctx, fmt: str, content: bytes, dry_run: bool
) -> directory_pb2.ImportJob:
    if len(content) > ctx.state.settings.max_upload_bytes:
        raise _too_large(ctx, len(content))
    if fmt not in ("csv", "json"):
        raise ApiError(422, "invalid", "format: use csv or json", {"format": "use csv or json"})
    if not content:
        raise ApiError(422, "invalid", "content: the file is empty", {"content": "empty file"})
    return await ctx.call(
        ctx.backends.directory.StartImport,
        D.StartImportRequest(caller=ctx.caller(), format=fmt, content=content, dry_run=dry_run),
    )


# -- JSON: persons --------------------------------------------------------------------------


async def api_persons(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await list_persons(ctx, ctx.query)
    return ctx.json(
        PersonListOut(
            items=[person_out(p) for p in resp.persons],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_create_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: PersonIn = ctx.body
    req = D.CreatePersonRequest(
        caller=ctx.caller(),
        email=body.email,
        name=body.name,
        login_name=body.login_name,
        group_ids=body.group_ids,
        role_ids=body.role_ids,
    )
    if body.portal_access is not None:
        req.portal_access = body.portal_access
    person = await ctx.call(ctx.backends.directory.CreatePerson, req)
    return ctx.json(person_out(person), status=201)


async def _person_detail(ctx: Ctx, ref: str) -> PersonDetailOut:
    person = await ctx.call(
        ctx.backends.directory.GetPerson,
        D.GetPersonRequest(caller=ctx.caller(), person_id=ref),
        safe=True,
    )
    effective = await ctx.call(
        ctx.backends.directory.GetEffectivePermissions,
        D.GetEffectivePermissionsRequest(caller=ctx.caller(), person_id=person.id),
        safe=True,
    )
    return PersonDetailOut(
        person=person_out(person), effective_permissions=list(effective.permissions)
    )


async def api_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(await _person_detail(ctx, request.match_info["id"]))


async def api_update_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    person = await ctx.call(
        ctx.backends.directory.UpdatePerson, person_patch(ctx.caller(), ref, ctx.body)
    )
    _forget_person(ctx, person.id)
    return ctx.json(person_out(person))


async def api_grant_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: RoleGrantIn = ctx.body
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.GrantRole,
        D.PersonRoleRequest(caller=ctx.caller(), person_id=ref, role_id=body.role_id),
    )
    _forget_person(ctx, ref)
    return ctx.json(await _person_detail(ctx, ref), status=201)


async def api_revoke_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.RevokeRole,
        D.PersonRoleRequest(
            caller=ctx.caller(), person_id=ref, role_id=request.match_info["role_id"]
        ),
    )
    _forget_person(ctx, ref)
    return ctx.json(await _person_detail(ctx, ref))


async def api_portal_usage(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.directory.PortalUsage, usage_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        PersonListOut(
            items=[person_out(p) for p in resp.persons],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


# -- JSON: import ---------------------------------------------------------------------------


async def api_start_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: ImportQuery = ctx.query
    limit = ctx.state.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise _too_large(ctx, request.content_length)
    dry_run = q.dry_run
    if request.content_type == "multipart/form-data":
        form = await read_form(request)
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise ApiError(
                422, "invalid", "file: attach the file as the field 'file'", {"file": "required"}
            )
        content = upload.file.read()
        fmt = _format_of(
            q.format or str(form.get("format", "")), upload.content_type, upload.filename
        )
        flag = form.get("dry_run")
        if isinstance(flag, str) and flag:
            dry_run = flag.lower() in ("1", "true", "on", "yes")
    else:
        content = await request.read()
        fmt = _format_of(q.format, request.content_type)
    job = await start_import(ctx, fmt, content, dry_run)
    return ctx.json(job_out(job), status=200 if job.dry_run else 202)


async def api_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    job = await ctx.call(
        ctx.backends.directory.GetImport,
        D.GetImportRequest(caller=ctx.caller(), import_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(job_out(job))


# -- JSON: roles and permissions ------------------------------------------------------------


async def api_roles(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.directory.ListRoles, D.ListRolesRequest(caller=ctx.caller()), safe=True
    )
    return ctx.json(RoleListOut(items=[role_out(r) for r in resp.roles]))


async def api_create_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: RoleIn = ctx.body
    role = await ctx.call(
        ctx.backends.directory.CreateRole,
        D.CreateRoleRequest(
            caller=ctx.caller(),
            name=body.name,
            description=body.description,
            permissions=body.permissions,
        ),
    )
    return ctx.json(role_out(role), status=201)


async def api_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(role_out(await _role(ctx, request.match_info["id"])))


def role_patch(
    caller: common_pb2.Caller, ref: str, body: RolePatchIn
) -> directory_pb2.UpdateRoleRequest:
    req = D.UpdateRoleRequest(caller=caller, role_id=ref)
    if body.name is not None:
        req.name = body.name
    if body.description is not None:
        req.description = body.description
    if body.permissions is not None:
        req.set_permissions = True
        req.permissions.extend(body.permissions)
    return req


async def api_update_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    role = await ctx.call(
        ctx.backends.directory.UpdateRole,
        role_patch(ctx.caller(), request.match_info["id"], ctx.body),
    )
    return ctx.json(role_out(role))


async def api_delete_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: DeleteRoleQuery = ctx.query
    await ctx.call(
        ctx.backends.directory.DeleteRole,
        D.DeleteRoleRequest(caller=ctx.caller(), role_id=request.match_info["id"], force=q.force),
    )
    return ctx.json(DeletedOut())


async def api_permissions(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    catalog = await ctx.call(
        ctx.backends.directory.ListPermissionCatalog,
        D.ListPermissionCatalogRequest(caller=ctx.caller()),
        safe=True,
    )
    return ctx.json(PermissionCatalogOut(items=list(catalog.permissions)))


# -- JSON: groups ---------------------------------------------------------------------------


async def api_groups(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.directory.ListGroups, D.ListGroupsRequest(caller=ctx.caller()), safe=True
    )
    return ctx.json(GroupListOut(items=[group_out(g) for g in resp.groups]))


async def api_create_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: GroupIn = ctx.body
    group = await ctx.call(
        ctx.backends.directory.CreateGroup,
        D.CreateGroupRequest(
            caller=ctx.caller(),
            name=body.name,
            description=body.description,
            role_ids=body.role_ids,
        ),
    )
    return ctx.json(group_out(group), status=201)


async def api_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    group = await ctx.call(
        ctx.backends.directory.GetGroup,
        D.GetGroupRequest(caller=ctx.caller(), group_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(group_out(group))


def group_patch(
    caller: common_pb2.Caller, ref: str, body: GroupPatchIn
) -> directory_pb2.UpdateGroupRequest:
    req = D.UpdateGroupRequest(caller=caller, group_id=ref)
    if body.name is not None:
        req.name = body.name
    if body.description is not None:
        req.description = body.description
    if body.role_ids is not None:
        req.set_role_ids = True
        req.role_ids.extend(body.role_ids)
    return req


async def api_update_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    group = await ctx.call(
        ctx.backends.directory.UpdateGroup,
        group_patch(ctx.caller(), request.match_info["id"], ctx.body),
    )
    return ctx.json(group_out(group))


async def api_delete_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await ctx.call(
        ctx.backends.directory.DeleteGroup,
        D.DeleteGroupRequest(caller=ctx.caller(), group_id=request.match_info["id"]),
    )
    return ctx.json(DeletedOut())


async def _set_member(ctx: Ctx, group_id: str, person_id: str, member: bool) -> None:
    method = (
        ctx.backends.directory.AddGroupMember
        if member
        else ctx.backends.directory.RemoveGroupMember
    )
    await ctx.call(
        method, D.GroupMemberRequest(caller=ctx.caller(), group_id=group_id, person_id=person_id)
    )
    _forget_person(ctx, person_id)


async def api_add_member(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: MemberIn = ctx.body
    ref = request.match_info["id"]
    await _set_member(ctx, ref, body.person_id, True)
    group = await ctx.call(
        ctx.backends.directory.GetGroup,
        D.GetGroupRequest(caller=ctx.caller(), group_id=ref),
        safe=True,
    )
    return ctx.json(group_out(group), status=201)


async def api_remove_member(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await _set_member(ctx, ref, request.match_info["person_id"], False)
    group = await ctx.call(
        ctx.backends.directory.GetGroup,
        D.GetGroupRequest(caller=ctx.caller(), group_id=ref),
        safe=True,
    )
    return ctx.json(group_out(group))


# -- JSON: portal settings and audit --------------------------------------------------------


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


def audit_request(ctx: Ctx, q: AuditQuery) -> directory_pb2.ListAuditRequest:
    fields: dict[str, str] = {}
    req = D.ListAuditRequest(
        caller=ctx.caller(),
        object_type=q.object_type.strip()[:50],
        object_id=q.object_id.strip()[:100],
        page=page_request(q.page_size, q.page_token, fields, PAGE_LIMIT),
    )
    raise_invalid(fields)
    return req


async def api_audit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.directory.ListAudit, audit_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        AuditListOut(
            items=[audit_out(a) for a in resp.entries], next_page_token=resp.next_page_token
        )
    )


# -- pages: helpers -------------------------------------------------------------------------


NOTICES = {
    "created": "Created.",
    "updated": "Saved.",
    "deactivated": "The person is deactivated: they can no longer sign in.",
    "reactivated": "The person is active again.",
    "granted": "Role granted.",
    "revoked": "Role revoked.",
    "joined": "Added to the group.",
    "left": "Removed from the group.",
    "password": "Password set; the person's sessions have ended.",
    "two_factor": "Two-factor authentication is reset; the person enrols again.",
    "deleted": "Deleted.",
    "member_added": "Member added.",
    "member_removed": "Member removed.",
}


async def _multi(ctx: Ctx, name: str) -> list[str]:
    """All values of a repeated form field (checkbox lists); ctx.form() keeps only one."""
    data = await read_form(ctx.request)
    return [v.strip() for v in data.getall(name, []) if isinstance(v, str) and v.strip()]


async def _roles(ctx: Ctx) -> list[directory_pb2.Role]:
    resp = await ctx.call(
        ctx.backends.directory.ListRoles, D.ListRolesRequest(caller=ctx.caller()), safe=True
    )
    return list(resp.roles)


async def _groups(ctx: Ctx) -> list[directory_pb2.Group]:
    resp = await ctx.call(
        ctx.backends.directory.ListGroups, D.ListGroupsRequest(caller=ctx.caller()), safe=True
    )
    return list(resp.groups)


async def _catalog(ctx: Ctx) -> list[str]:
    catalog = await ctx.call(
        ctx.backends.directory.ListPermissionCatalog,
        D.ListPermissionCatalogRequest(caller=ctx.caller()),
        safe=True,
    )
    return list(catalog.permissions)


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


def _rules_view(settings: directory_pb2.PortalSettings) -> list[dict[str, Any]]:
    return [
        {"domain": r.domain, "portal_access": r.portal_access} for r in settings.portal_access_rules
    ]


def _person_view(p: directory_pb2.Person) -> dict[str, Any]:
    out = msgspec.structs.asdict(person_out(p))
    out["notifications"] = msgspec.structs.asdict(out["notifications"])
    out["created"] = pretty_time(out["created_at"])
    out["last_login"] = pretty_time(out["last_portal_login_at"])
    return out


def _job_view(j: directory_pb2.ImportJob) -> dict[str, Any]:
    out = msgspec.structs.asdict(job_out(j))
    out["errors"] = [msgspec.structs.asdict(e) for e in out["errors"]]
    out["badge"] = JOB_BADGES.get(j.status, "")
    out["running"] = j.status in ("pending", "running")
    out["started_text"] = pretty_time(out["created_at"])
    out["finished_text"] = pretty_time(out["finished_at"])
    return out


# -- pages: persons -------------------------------------------------------------------------


PERSON_FILTERS = (
    "q",
    "active",
    "portal_access",
    "group",
    "role",
    "permission",
    "page_size",
    "page_token",
)


async def page_persons(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, PERSON_FILTERS)
    persons: list[dict[str, Any]] = []
    total = 0
    error = ""
    first = nxt = ""
    try:
        q = msgspec.convert({k: v for k, v in params.items() if v}, type=PersonsQuery, strict=False)
        resp = await list_persons(ctx, q)
    except msgspec.ValidationError as exc:
        error = fields_message(validation_fields(exc))
    except ApiError as exc:
        if exc.status not in (404, 422):
            raise
        error = exc.message
    else:
        persons = [_person_view(p) for p in resp.persons]
        total = resp.total
        first, nxt = page_links("/management/persons", params, resp.next_page_token)
    roles, groups, catalog = await asyncio.gather(_roles(ctx), _groups(ctx), _catalog(ctx))
    return ctx.render(
        "directory/persons.html",
        {
            "persons": persons,
            "total": total,
            "params": params,
            "roles": roles,
            "groups": groups,
            "group_names": {g.id: g.name for g in groups},
            "catalog": catalog,
            "error": error,
            "notice": notice(request, NOTICES),
            "first_link": first,
            "next_link": nxt,
            "can_manage": ctx.has(*MANAGE),
        },
    )


async def _render_new_person(
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen_groups: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    settings, groups = await asyncio.gather(_settings_for_form(ctx), _groups(ctx))
    form = raw or {}
    default, hint = access_default(settings, form.get("email", ""))
    if chosen_groups is None:
        # Everyone with portal access needs the portal's permissions: Portal Users by default.
        chosen_groups = [g.id for g in groups if g.builtin and g.name == "Portal Users"]
    return ctx.render(
        "directory/person_new.html",
        {
            "errors": errors or {},
            "form": form,
            "groups": groups,
            "chosen_groups": chosen_groups,
            "access_default": default,
            "access_hint": hint,
            "access_choice": form.get("portal_access", "default"),
            "rules": _rules_view(settings),
            "workspace_default": settings.portal_access_default,
        },
        status=status,
    )


async def _settings_for_form(ctx: Ctx) -> directory_pb2.PortalSettings:
    """The settings behind the portal-access hint: everyone who may create persons sees them."""
    if ctx.portal_settings is not None:
        return ctx.portal_settings
    return await ctx.call(
        ctx.backends.directory.GetPortalSettings,
        D.GetPortalSettingsRequest(caller=system_caller(ctx)),
        safe=True,
    )


async def page_new_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_new_person(ctx)


async def page_create_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    group_ids = await _multi(ctx, "group_ids")
    choice = raw.get("portal_access", "default")
    errors: dict[str, str] = {}
    if choice not in ("default", "on", "off"):
        errors["portal_access"] = "choose the default, on or off"
    if not raw.get("email", "").strip():
        errors["email"] = "required"
    if not raw.get("name", "").strip():
        errors["name"] = "required"
    if not errors:
        req = D.CreatePersonRequest(
            caller=ctx.caller(),
            email=raw.get("email", ""),
            name=raw.get("name", ""),
            login_name=raw.get("login_name", ""),
            group_ids=group_ids,
        )
        if choice != "default":
            req.portal_access = choice == "on"
        try:
            person = await ctx.call(ctx.backends.directory.CreatePerson, req)
        except ApiError as exc:
            if exc.status not in (404, 409, 422):
                raise
            errors = form_errors(exc)
        else:
            raise ctx.redirect(f"/management/persons/{person.id}?done=created")
    return await _render_new_person(ctx, errors, raw, group_ids, status=422)


async def _render_person(
    ctx: Ctx,
    ref: str,
    *,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    person = await ctx.call(
        ctx.backends.directory.GetPerson,
        D.GetPersonRequest(caller=ctx.caller(), person_id=ref),
        safe=True,
    )
    effective, roles, groups = await asyncio.gather(
        ctx.call(
            ctx.backends.directory.GetEffectivePermissions,
            D.GetEffectivePermissionsRequest(caller=ctx.caller(), person_id=person.id),
            safe=True,
        ),
        _roles(ctx),
        _groups(ctx),
    )
    role_by_id = {r.id: r for r in roles}
    group_by_id = {g.id: g for g in groups}
    direct = [role_by_id[r] for r in person.role_ids if r in role_by_id]
    member_of = [group_by_id[g] for g in person.group_ids if g in group_by_id]
    settings = await _settings_for_form(ctx)
    _, hint = access_default(settings, person.email)
    return ctx.render(
        "directory/person.html",
        {
            "p": _person_view(person),
            "errors": errors or {},
            "form": raw or {},
            "direct_roles": direct,
            "other_roles": [r for r in roles if r.id not in set(person.role_ids)],
            "member_of": member_of,
            "other_groups": [g for g in groups if g.id not in set(person.group_ids)],
            "group_roles": {
                g.id: [role_by_id[r].name for r in g.role_ids if r in role_by_id] for g in member_of
            },
            "effective": list(effective.permissions),
            "notification_labels": NOTIFICATIONS,
            "access_hint": hint,
            "is_me": person.id == ctx.person_id,
            "can_manage": ctx.has(*MANAGE),
            "notice": notice(ctx.request, NOTICES),
        },
        status=status,
    )


async def page_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_person(ctx, request.match_info["id"])


async def page_update_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    patch = PersonPatchIn(
        email=raw.get("email", ""),
        name=raw.get("name", ""),
        login_name=raw.get("login_name", ""),
        portal_access=checked(raw, "portal_access"),
        notifications=PersonNotifications(**{k: checked(raw, k) for k in NOTIFICATIONS}),
    )
    if "active" in raw or "active_shown" in raw:
        patch.active = checked(raw, "active")
    try:
        person = await ctx.call(
            ctx.backends.directory.UpdatePerson, person_patch(ctx.caller(), ref, patch)
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_person(ctx, ref, errors=form_errors(exc), raw=raw, status=exc.status)
    _forget_person(ctx, person.id)
    raise ctx.redirect(f"/management/persons/{person.id}?done=updated")


async def page_set_active(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    active = checked(raw, "active")
    try:
        person = await ctx.call(
            ctx.backends.directory.UpdatePerson,
            D.UpdatePersonRequest(caller=ctx.caller(), person_id=ref, active=active),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_person(ctx, ref, errors={"active": exc.message}, status=exc.status)
    _forget_person(ctx, person.id)
    raise ctx.redirect(
        f"/management/persons/{person.id}?done={'reactivated' if active else 'deactivated'}"
    )


async def page_grant_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    role_id = raw.get("role_id", "").strip()
    if not role_id:
        return await _render_person(ctx, ref, errors={"role_id": "choose a role"}, status=422)
    try:
        await ctx.call(
            ctx.backends.directory.GrantRole,
            D.PersonRoleRequest(caller=ctx.caller(), person_id=ref, role_id=role_id),
        )
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _render_person(ctx, ref, errors={"role_id": exc.message}, status=exc.status)
    _forget_person(ctx, ref)
    raise ctx.redirect(f"/management/persons/{ref}?done=granted#roles")


async def page_revoke_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.RevokeRole,
        D.PersonRoleRequest(
            caller=ctx.caller(), person_id=ref, role_id=request.match_info["role_id"]
        ),
    )
    _forget_person(ctx, ref)
    raise ctx.redirect(f"/management/persons/{ref}?done=revoked#roles")


async def page_join_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    group_id = raw.get("group_id", "").strip()
    if not group_id:
        return await _render_person(ctx, ref, errors={"group_id": "choose a group"}, status=422)
    try:
        await _set_member(ctx, group_id, ref, True)
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _render_person(ctx, ref, errors={"group_id": exc.message}, status=exc.status)
    raise ctx.redirect(f"/management/persons/{ref}?done=joined#groups")


async def page_leave_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await _set_member(ctx, request.match_info["group_id"], ref, False)
    raise ctx.redirect(f"/management/persons/{ref}?done=left#groups")


async def page_set_password(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """The form twin of POST /management/api/v1/persons/{id}/password (profile feature)."""
    ref = request.match_info["id"]
    raw = await ctx.form()
    password = raw.get("password", "")
    if password != raw.get("confirm_password", ""):
        return await _render_person(
            ctx, ref, errors={"confirm_password": "does not match the password"}, status=422
        )
    # The person must be one of this workspace's (404 otherwise) before auth is asked.
    await ctx.call(
        ctx.backends.directory.GetPerson,
        D.GetPersonRequest(caller=ctx.caller(), person_id=ref),
        safe=True,
    )
    try:
        await admin_set_password(ctx, ref, password)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        message = exc.fields.get("password") or exc.fields.get("new_password") or exc.message
        return await _render_person(ctx, ref, errors={"password": message}, status=exc.status)
    raise ctx.redirect(f"/management/persons/{ref}?done=password#access")


async def page_reset_two_factor(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.GetPerson,
        D.GetPersonRequest(caller=ctx.caller(), person_id=ref),
        safe=True,
    )
    await admin_reset_two_factor(ctx, ref)
    raise ctx.redirect(f"/management/persons/{ref}?done=two_factor#access")


# -- pages: portal usage --------------------------------------------------------------------


def _usage_params(request: web.Request) -> dict[str, str]:
    params = query_params(request, ("filter", "stale_days", "page_token"))
    params["filter"] = params["filter"] or "all"
    return params


def _usage_query(params: dict[str, str], page_size: int = 50) -> PortalUsageQuery:
    try:
        days = int(params.get("stale_days") or 90)
    except ValueError:
        raise ApiError(
            422, "invalid", "stale_days: give a number of days", {"stale_days": "not a number"}
        ) from None
    return PortalUsageQuery(
        filter=params["filter"],
        stale_days=days,
        page_size=page_size,
        page_token=params.get("page_token", ""),
    )


async def page_portal_usage(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = _usage_params(request)
    persons: list[dict[str, Any]] = []
    total = 0
    error = ""
    first = nxt = ""
    try:
        resp = await ctx.call(
            ctx.backends.directory.PortalUsage,
            usage_request(ctx, _usage_query(params)),
            safe=True,
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        persons = [_person_view(p) for p in resp.persons]
        total = resp.total
        first, nxt = page_links("/management/portal-usage", params, resp.next_page_token)
    export = "/management/portal-usage.csv?" + filter_query(params)
    return ctx.render(
        "directory/portal_usage.html",
        {
            "persons": persons,
            "total": total,
            "params": params,
            "filters": USAGE_FILTERS,
            "error": error,
            "first_link": first,
            "next_link": nxt,
            "export_link": export,
        },
    )


async def page_portal_usage_csv(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """Every matching person as CSV (streamed page by page)."""
    params = _usage_params(request)
    params["page_token"] = ""
    first = usage_request(ctx, _usage_query(params, page_size=500))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="portal-usage.csv"',
        }
    )
    await response.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["email", "name", "login_name", "active", "created_at", "last_portal_login_at"])
    req = first
    while True:
        resp = await ctx.call(ctx.backends.directory.PortalUsage, req, safe=True)
        for p in resp.persons:
            writer.writerow(
                [
                    _csv_cell(p.email),
                    _csv_cell(p.name),
                    _csv_cell(p.login_name),
                    "true" if p.active else "false",
                    time_of(p, "created_at") or "",
                    time_of(p, "last_portal_login_at") or "",
                ]
            )
        await response.write(buf.getvalue().encode())
        buf.seek(0)
        buf.truncate()
        if not resp.next_page_token:
            break
        req = D.PortalUsageRequest()
        req.CopyFrom(first)
        req.page.page_token = resp.next_page_token
    await response.write_eof()
    return response


def _csv_cell(value: str) -> str:
    """No spreadsheet formulas from user data (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# -- pages: import --------------------------------------------------------------------------


async def _render_import(
    ctx: Ctx,
    *,
    errors: dict[str, str] | None = None,
    report: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return ctx.render(
        "directory/import.html",
        {
            "errors": errors or {},
            "report": report,
            "form": form or {"dry_run": "1"},
            "limit_mb": ctx.state.settings.max_upload_bytes // (1024 * 1024),
        },
        status=status,
    )


async def page_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_import(ctx)


async def page_start_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    limit = ctx.state.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise _too_large(ctx, request.content_length)
    data = await read_form(request)
    raw = {k: v for k, v in data.items() if isinstance(v, str)}
    dry_run = checked(raw, "dry_run")
    form = {"dry_run": "1" if dry_run else "", "format": raw.get("format", "")}
    upload = data.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return await _render_import(ctx, errors={"file": "choose a file"}, form=form, status=422)
    content = upload.file.read()
    fmt = _format_of(raw.get("format", ""), upload.content_type, upload.filename)
    try:
        job = await start_import(ctx, fmt, content, dry_run)
    except ApiError as exc:
        if exc.status not in (409, 413, 422):
            raise
        errors = dict(exc.fields)
        if "content" in errors:
            errors["file"] = errors.pop("content")
        if not errors:
            errors = {"file": exc.message}
        return await _render_import(ctx, errors=errors, form=form, status=exc.status)
    if job.dry_run:
        return await _render_import(ctx, report=_job_view(job), form=form)
    raise ctx.redirect(f"/management/persons/import/{job.id}")


async def page_import_job(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    job = await ctx.call(
        ctx.backends.directory.GetImport,
        D.GetImportRequest(caller=ctx.caller(), import_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.render("directory/import_job.html", {"job": _job_view(job)})


# -- pages: roles ---------------------------------------------------------------------------


async def page_roles(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    roles, catalog = await asyncio.gather(_roles(ctx), _catalog(ctx))
    return ctx.render(
        "directory/roles.html",
        {
            "roles": roles,
            "catalog": catalog,
            "errors": errors or {},
            "form": raw or {},
            "chosen": chosen or [],
            "notice": notice(request, NOTICES),
        },
        status=status,
    )


async def page_create_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    permissions = await _multi(ctx, "permissions")
    try:
        role = await ctx.call(
            ctx.backends.directory.CreateRole,
            D.CreateRoleRequest(
                caller=ctx.caller(),
                name=raw.get("name", ""),
                description=raw.get("description", ""),
                permissions=permissions,
            ),
        )
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await page_roles(request, ctx, form_errors(exc), raw, permissions, exc.status)
    raise ctx.redirect(f"/management/roles/{role.id}?done=created")


async def _render_role(
    ctx: Ctx,
    ref: str,
    *,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    role, catalog = await asyncio.gather(_role(ctx, ref), _catalog(ctx))
    return ctx.render(
        "directory/role.html",
        {
            "r": role,
            "catalog": catalog,
            "chosen": list(role.permissions) if chosen is None else chosen,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
        },
        status=status,
    )


async def page_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_role(ctx, request.match_info["id"])


async def page_update_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    permissions = await _multi(ctx, "permissions")
    patch = RolePatchIn(
        name=raw.get("name", ""), description=raw.get("description", ""), permissions=permissions
    )
    try:
        await ctx.call(ctx.backends.directory.UpdateRole, role_patch(ctx.caller(), ref, patch))
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _render_role(
            ctx, ref, errors=form_errors(exc), raw=raw, chosen=permissions, status=exc.status
        )
    raise ctx.redirect(f"/management/roles/{ref}?done=updated")


async def page_delete_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    try:
        await ctx.call(
            ctx.backends.directory.DeleteRole,
            D.DeleteRoleRequest(caller=ctx.caller(), role_id=ref, force=checked(raw, "force")),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_role(ctx, ref, errors={"delete": exc.message}, status=exc.status)
    raise ctx.redirect("/management/roles?done=deleted")


# -- pages: groups --------------------------------------------------------------------------


async def page_groups(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    groups, roles = await asyncio.gather(_groups(ctx), _roles(ctx))
    return ctx.render(
        "directory/groups.html",
        {
            "groups": groups,
            "roles": roles,
            "role_names": {r.id: r.name for r in roles},
            "errors": errors or {},
            "form": raw or {},
            "chosen": chosen or [],
            "notice": notice(request, NOTICES),
        },
        status=status,
    )


async def page_create_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    role_ids = await _multi(ctx, "role_ids")
    try:
        group = await ctx.call(
            ctx.backends.directory.CreateGroup,
            D.CreateGroupRequest(
                caller=ctx.caller(),
                name=raw.get("name", ""),
                description=raw.get("description", ""),
                role_ids=role_ids,
            ),
        )
    except ApiError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        return await page_groups(request, ctx, form_errors(exc), raw, role_ids, exc.status)
    raise ctx.redirect(f"/management/groups/{group.id}?done=created")


async def _render_group(
    ctx: Ctx,
    ref: str,
    *,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    group = await ctx.call(
        ctx.backends.directory.GetGroup,
        D.GetGroupRequest(caller=ctx.caller(), group_id=ref),
        safe=True,
    )
    token = ctx.request.query.get("page_token", "")
    roles, members = await asyncio.gather(
        _roles(ctx),
        ctx.call(
            ctx.backends.directory.ListPersons,
            D.ListPersonsRequest(
                caller=ctx.caller(),
                group_id=group.id,
                page=common_pb2.PageRequest(page_size=50, page_token=token),
            ),
            safe=True,
        ),
    )
    first, nxt = page_links(
        f"/management/groups/{group.id}", {"page_token": token}, members.next_page_token
    )
    return ctx.render(
        "directory/group.html",
        {
            "g": group,
            "roles": roles,
            "chosen": list(group.role_ids) if chosen is None else chosen,
            "members": [_person_view(p) for p in members.persons],
            "member_total": members.total,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
            "first_link": first,
            "next_link": nxt,
        },
        status=status,
    )


async def page_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_group(ctx, request.match_info["id"])


async def page_update_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    role_ids = await _multi(ctx, "role_ids")
    patch = GroupPatchIn(
        name=raw.get("name", ""), description=raw.get("description", ""), role_ids=role_ids
    )
    try:
        await ctx.call(ctx.backends.directory.UpdateGroup, group_patch(ctx.caller(), ref, patch))
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _render_group(
            ctx, ref, errors=form_errors(exc), raw=raw, chosen=role_ids, status=exc.status
        )
    raise ctx.redirect(f"/management/groups/{ref}?done=updated")


async def page_delete_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    try:
        await ctx.call(
            ctx.backends.directory.DeleteGroup,
            D.DeleteGroupRequest(caller=ctx.caller(), group_id=ref),
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_group(ctx, ref, errors={"delete": exc.message}, status=exc.status)
    raise ctx.redirect("/management/groups?done=deleted")


async def page_add_member(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    who = raw.get("person", "").strip()
    if not who:
        return await _render_group(
            ctx, ref, errors={"person": "enter an e-mail address"}, raw=raw, status=422
        )
    try:
        if "@" in who:
            person = await ctx.call(
                ctx.backends.directory.FindPersonByEmail,
                D.FindPersonByEmailRequest(caller=ctx.caller(), email=who),
                safe=True,
            )
            who = person.id
        await _set_member(ctx, ref, who, True)
    except ApiError as exc:
        if exc.status == 404 and exc.message != "group not found":
            return await _render_group(
                ctx, ref, errors={"person": "no such person"}, raw=raw, status=422
            )
        if exc.status not in (403, 409, 422):
            raise
        return await _render_group(
            ctx, ref, errors={"person": exc.message}, raw=raw, status=exc.status
        )
    raise ctx.redirect(f"/management/groups/{ref}?done=member_added#members")


async def page_remove_member(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await _set_member(ctx, ref, request.match_info["person_id"], False)
    raise ctx.redirect(f"/management/groups/{ref}?done=member_removed#members")


# -- pages: portal settings -----------------------------------------------------------------

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
    }
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


# -- pages: audit ---------------------------------------------------------------------------


async def page_audit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, ("object_type", "object_id", "page_token"))
    entries: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        q = AuditQuery(**params)  # type: ignore[arg-type]
        resp = await ctx.call(ctx.backends.directory.ListAudit, audit_request(ctx, q), safe=True)
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        for a in resp.entries:
            out = msgspec.structs.asdict(audit_out(a))
            out["when"] = pretty_time(out["at"])
            out["before_text"] = _pretty_json(out["before"])
            out["after_text"] = _pretty_json(out["after"])
            entries.append(out)
        first, nxt = page_links("/management/audit", params, resp.next_page_token)
    names = await person_names(ctx, {e["actor_id"] or "" for e in entries})
    return ctx.render(
        "directory/audit.html",
        {
            "entries": entries,
            "names": names,
            "params": params,
            "types": AUDIT_TYPES,
            "error": error,
            "first_link": first,
            "next_link": nxt,
        },
    )


def _pretty_json(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


# -- the route table ------------------------------------------------------------------------


def _m(method: str, path: str, handler: Any, permissions: tuple[str, ...], **kw: Any) -> Route:
    return Route(method, path, handler, surface="management", permissions=permissions, **kw)


def _page_route(
    method: str, path: str, handler: Any, permissions: tuple[str, ...], summary: str
) -> Route:
    return _m(method, path, handler, permissions, kind="page", summary=summary)


API = "/management/api/v1"
P = "/management"

ROUTES: list[Route] = [
    # JSON: persons (import first: "/persons/import" is not a person id).
    _m(
        "POST",
        f"{API}/persons/import",
        api_start_import,
        MANAGE,
        query=ImportQuery,
        response=ImportJobOut,
        also_status=202,
        uploads=("text/csv", "application/json", "multipart/form-data"),
        max_body=50 * 1024 * 1024,
        summary="Import persons from CSV or JSON (multipart field 'file', or the raw body with "
        "?format=csv|json); ?dry_run=true reports what would change (200), otherwise a "
        "background job starts (202). Over 50 MB: 413",
    ),
    _m(
        "GET",
        f"{API}/persons/import/{{id}}",
        api_import,
        MANAGE,
        response=ImportJobOut,
        summary="An import job: progress (rows_done of total_rows), counts and per-row errors",
    ),
    _m(
        "GET",
        f"{API}/persons",
        api_persons,
        READ,
        query=PersonsQuery,
        response=PersonListOut,
        summary="Persons: search (q), filters (active, portal_access, group, role, permission), "
        "cursor pagination",
    ),
    _m(
        "POST",
        f"{API}/persons",
        api_create_person,
        MANAGE,
        body=PersonIn,
        response=PersonOut,
        status=201,
        summary="Create a person (portal_access left out: the workspace default and its domain "
        "rules; a login name is never required)",
    ),
    _m(
        "GET",
        f"{API}/persons/{{id}}",
        api_person,
        READ,
        response=PersonDetailOut,
        summary="A person with their effective permissions",
    ),
    _m(
        "PATCH",
        f"{API}/persons/{{id}}",
        api_update_person,
        MANAGE,
        body=PersonPatchIn,
        response=PersonOut,
        summary="Edit a person, deactivate/reactivate (active), portal access, notifications",
    ),
    _m(
        "POST",
        f"{API}/persons/{{id}}/roles",
        api_grant_role,
        MANAGE,
        body=RoleGrantIn,
        response=PersonDetailOut,
        status=201,
        summary="Grant a role directly",
    ),
    _m(
        "DELETE",
        f"{API}/persons/{{id}}/roles/{{role_id}}",
        api_revoke_role,
        MANAGE,
        response=PersonDetailOut,
        summary="Revoke a directly granted role",
    ),
    _m(
        "GET",
        f"{API}/portal-usage",
        api_portal_usage,
        READ,
        query=PortalUsageQuery,
        response=PersonListOut,
        summary="Who has portal access and when they last signed in (filter all | never | "
        "stale with stale_days)",
    ),
    # JSON: roles and permissions.
    _m(
        "GET",
        f"{API}/permissions",
        api_permissions,
        ROLES,
        response=PermissionCatalogOut,
        summary="The permission catalog",
    ),
    _m("GET", f"{API}/roles", api_roles, ROLES, response=RoleListOut, summary="Roles"),
    _m(
        "POST",
        f"{API}/roles",
        api_create_role,
        ROLES,
        body=RoleIn,
        response=RoleOut,
        status=201,
        summary="Create a role (permissions from the catalog; an unknown one is a 422 naming it)",
    ),
    _m("GET", f"{API}/roles/{{id}}", api_role, ROLES, response=RoleOut, summary="A role"),
    _m(
        "PATCH",
        f"{API}/roles/{{id}}",
        api_update_role,
        ROLES,
        body=RolePatchIn,
        response=RoleOut,
        summary="Edit a role (built-in roles too)",
    ),
    _m(
        "DELETE",
        f"{API}/roles/{{id}}",
        api_delete_role,
        ROLES,
        query=DeleteRoleQuery,
        response=DeletedOut,
        summary="Delete a role: 409 while assigned unless ?force=true; built-ins never",
    ),
    # JSON: groups.
    _m("GET", f"{API}/groups", api_groups, GROUPS, response=GroupListOut, summary="Groups"),
    _m(
        "POST",
        f"{API}/groups",
        api_create_group,
        GROUPS,
        body=GroupIn,
        response=GroupOut,
        status=201,
        summary="Create a group carrying roles",
    ),
    _m("GET", f"{API}/groups/{{id}}", api_group, GROUPS, response=GroupOut, summary="A group"),
    _m(
        "PATCH",
        f"{API}/groups/{{id}}",
        api_update_group,
        GROUPS,
        body=GroupPatchIn,
        response=GroupOut,
        summary="Edit a group (name, description, roles)",
    ),
    _m(
        "DELETE",
        f"{API}/groups/{{id}}",
        api_delete_group,
        GROUPS,
        response=DeletedOut,
        summary="Delete a group (built-ins cannot be deleted: 409)",
    ),
    _m(
        "POST",
        f"{API}/groups/{{id}}/members",
        api_add_member,
        GROUPS,
        body=MemberIn,
        response=GroupOut,
        status=201,
        summary="Add a member (members: GET /persons?group=<id>)",
    ),
    _m(
        "DELETE",
        f"{API}/groups/{{id}}/members/{{person_id}}",
        api_remove_member,
        GROUPS,
        response=GroupOut,
        summary="Remove a member",
    ),
    # JSON: portal settings and audit.
    _m(
        "GET",
        f"{API}/portal-settings",
        api_settings,
        SETTINGS,
        response=PortalSettingsOut,
        summary="Portal settings",
    ),
    _m(
        "PATCH",
        f"{API}/portal-settings",
        api_update_settings,
        SETTINGS,
        body=PortalSettingsPatchIn,
        response=PortalSettingsOut,
        summary="Change portal settings (sections, self-registration, portal-access default "
        "and ordered domain rules, required two-factor)",
    ),
    _m(
        "GET",
        f"{API}/audit",
        api_audit,
        AUDIT,
        query=AuditQuery,
        response=AuditListOut,
        summary="The audit trail, newest first (filter by object_type, object_id)",
    ),
    # Pages: persons (fixed paths before /persons/{id}).
    _page_route("GET", f"{P}/persons", page_persons, READ, "Persons"),
    _page_route("GET", f"{P}/persons/new", page_new_person, MANAGE, "New person"),
    _page_route("POST", f"{P}/persons/new", page_create_person, MANAGE, "Create a person"),
    _page_route("GET", f"{P}/persons/import", page_import, MANAGE, "Import persons"),
    _page_route(
        "POST", f"{P}/persons/import", page_start_import, MANAGE, "Import persons (upload)"
    ),
    _page_route("GET", f"{P}/persons/import/{{id}}", page_import_job, MANAGE, "An import job"),
    _page_route("GET", f"{P}/persons/{{id}}", page_person, READ, "A person"),
    _page_route("POST", f"{P}/persons/{{id}}", page_update_person, MANAGE, "Edit a person"),
    _page_route(
        "POST", f"{P}/persons/{{id}}/active", page_set_active, MANAGE, "Deactivate or reactivate"
    ),
    _page_route("POST", f"{P}/persons/{{id}}/roles", page_grant_role, MANAGE, "Grant a role"),
    _page_route(
        "POST",
        f"{P}/persons/{{id}}/roles/{{role_id}}/revoke",
        page_revoke_role,
        MANAGE,
        "Revoke a role",
    ),
    _page_route("POST", f"{P}/persons/{{id}}/groups", page_join_group, MANAGE, "Add to a group"),
    _page_route(
        "POST",
        f"{P}/persons/{{id}}/groups/{{group_id}}/leave",
        page_leave_group,
        MANAGE,
        "Remove from a group",
    ),
    _page_route(
        "POST", f"{P}/persons/{{id}}/password", page_set_password, MANAGE, "Set a password"
    ),
    _page_route(
        "POST",
        f"{P}/persons/{{id}}/two-factor/reset",
        page_reset_two_factor,
        MANAGE,
        "Reset two-factor",
    ),
    _page_route("GET", f"{P}/portal-usage", page_portal_usage, READ, "Portal usage"),
    _page_route("GET", f"{P}/portal-usage.csv", page_portal_usage_csv, READ, "Portal usage as CSV"),
    # Pages: roles and groups.
    _page_route("GET", f"{P}/roles", page_roles, ROLES, "Roles"),
    _page_route("POST", f"{P}/roles", page_create_role, ROLES, "Create a role"),
    _page_route("GET", f"{P}/roles/{{id}}", page_role, ROLES, "A role"),
    _page_route("POST", f"{P}/roles/{{id}}", page_update_role, ROLES, "Edit a role"),
    _page_route("POST", f"{P}/roles/{{id}}/delete", page_delete_role, ROLES, "Delete a role"),
    _page_route("GET", f"{P}/groups", page_groups, GROUPS, "Groups"),
    _page_route("POST", f"{P}/groups", page_create_group, GROUPS, "Create a group"),
    _page_route("GET", f"{P}/groups/{{id}}", page_group, GROUPS, "A group and its members"),
    _page_route("POST", f"{P}/groups/{{id}}", page_update_group, GROUPS, "Edit a group"),
    _page_route("POST", f"{P}/groups/{{id}}/delete", page_delete_group, GROUPS, "Delete a group"),
    _page_route("POST", f"{P}/groups/{{id}}/members", page_add_member, GROUPS, "Add a member"),
    _page_route(
        "POST",
        f"{P}/groups/{{id}}/members/{{person_id}}/remove",
        page_remove_member,
        GROUPS,
        "Remove a member",
    ),
    # Pages: portal settings and audit.
    _page_route("GET", f"{P}/portal-settings", page_settings, SETTINGS, "Portal settings"),
    _page_route(
        "POST", f"{P}/portal-settings", page_update_settings, SETTINGS, "Save portal settings"
    ),
    _page_route("GET", f"{P}/audit", page_audit, AUDIT, "Audit trail"),
]
