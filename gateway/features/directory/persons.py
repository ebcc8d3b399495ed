"""Persons: list, create, view, edit, (de)activate, roles and groups of a person, admin resets.

Just over 600 lines: the new-person form's checks (portal access, the administrators' group
confirmation) sit with the create handlers they guard; the form is the next to move out.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.features.directory.common import (
    API,
    EMAIL,
    MANAGE,
    NAME,
    NOTICES,
    PAGE_LIMIT,
    READ,
    D,
    P,
    all_groups,
    all_roles,
    forget_person,
    form_values,
    management_route,
    page_route,
)
from gateway.features.directory.roles import permission_catalog
from gateway.features.directory.settings import access_default, rules_view
from gateway.features.profile.admin import admin_reset_two_factor, admin_set_password
from gateway.forms import form_action
from gateway.present import (
    checked,
    copy_given,
    fields_message,
    flag,
    form_errors,
    notice,
    page_links,
    page_request,
    pretty_time,
    query_params,
    raise_invalid,
    system_caller,
    time_of,
)
from gateway.routing import Ctx, Route, validation_fields

NOTIFICATIONS = {
    "ticket_updates": "Updates on my tickets",
    "issue_assigned": "An issue is assigned to me",
    "control_test_assigned": "A control test is assigned to me",
    "weekly_digest": "Weekly digest",
}


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


class PersonsQuery(msgspec.Struct):
    q: str = ""
    active: str = ""  # "true" | "false"
    portal_access: str = ""  # "true" | "false"
    group: str = ""  # a group id
    role: str = ""  # a role id (direct)
    permission: str = ""  # persons holding this permission (direct or via groups)
    page_size: int = 50
    page_token: str = ""


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


def _notifications_pb(n: PersonNotifications) -> directory_pb2.NotificationPreferences:
    return D.NotificationPreferences(
        ticket_updates=n.ticket_updates,
        issue_assigned=n.issue_assigned,
        control_test_assigned=n.control_test_assigned,
        weekly_digest=n.weekly_digest,
    )


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


def person_patch(
    caller: common_pb2.Caller, ref: str, body: PersonPatchIn
) -> directory_pb2.UpdatePersonRequest:
    req = D.UpdatePersonRequest(caller=caller, person_id=ref)
    copy_given(body, req, ("email", "name", "login_name", "active", "portal_access"))
    if body.notifications is not None:
        req.notifications.CopyFrom(_notifications_pb(body.notifications))
        req.set_notifications = True
    return req


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


async def person_detail(ctx: Ctx, ref: str) -> PersonDetailOut:
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
    return ctx.json(await person_detail(ctx, request.match_info["id"]))


async def api_update_person(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    person = await ctx.call(
        ctx.backends.directory.UpdatePerson, person_patch(ctx.caller(), ref, ctx.body)
    )
    forget_person(ctx, person.id)
    return ctx.json(person_out(person))


def person_view(p: directory_pb2.Person) -> dict[str, Any]:
    out = msgspec.structs.asdict(person_out(p))
    out["notifications"] = msgspec.structs.asdict(out["notifications"])
    out["created"] = pretty_time(out["created_at"])
    out["last_login"] = pretty_time(out["last_portal_login_at"])
    return out


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
        persons = [person_view(p) for p in resp.persons]
        total = resp.total
        first, nxt = page_links("/management/persons", params, resp.next_page_token)
    roles, groups, catalog = await asyncio.gather(
        all_roles(ctx), all_groups(ctx), permission_catalog(ctx)
    )
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


def is_admin_group(g: directory_pb2.Group) -> bool:
    return bool(g.builtin and g.name == "Administrators")


async def _render_new_person(
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen_groups: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    settings, groups = await asyncio.gather(_settings_for_form(ctx), all_groups(ctx))
    form = raw or {}
    default, hint = access_default(settings, form.get("email", ""))
    if chosen_groups is None:
        # Everyone with portal access needs the portal's permissions: Portal Users by default.
        chosen_groups = [g.id for g in groups if g.builtin and g.name == "Portal Users"]
    # The administrators' group comes last, marked: it is not one group among others.
    groups = sorted(groups, key=is_admin_group)
    return ctx.render(
        "directory/person_new.html",
        {
            "errors": errors or {},
            "form": form,
            "groups": groups,
            "admin_group_ids": [g.id for g in groups if is_admin_group(g)],
            "chosen_groups": chosen_groups,
            "access_default": default,
            "access_hint": hint,
            "access_choice": form.get("portal_access", "default"),
            "rules": rules_view(settings),
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
    group_ids = await form_values(ctx, "group_ids")
    choice = raw.get("portal_access", "default")
    errors: dict[str, str] = {}
    if choice not in ("default", "on", "off"):
        errors["portal_access"] = "choose the default, on or off"
    if not raw.get("email", "").strip():
        errors["email"] = "required"
    if not raw.get("name", "").strip():
        errors["name"] = "required"
    admins = {g.id for g in await all_groups(ctx) if is_admin_group(g)}
    if admins & set(group_ids) and raw.get("confirm_admin") != "1":
        # Granting the console to a new person is asked twice, never done by a stray tick.
        errors["group_ids"] = (
            "Administrators may do everything in the management console: confirm below "
            "that this person is to be one, or untick the group"
        )
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


async def render_person(
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
        all_roles(ctx),
        all_groups(ctx),
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
            "p": person_view(person),
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
    return await render_person(ctx, request.match_info["id"])


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
    return await form_action(
        ctx.call(ctx.backends.directory.UpdatePerson, person_patch(ctx.caller(), ref, patch)),
        lambda exc: render_person(ctx, ref, errors=form_errors(exc), raw=raw, status=exc.status),
        lambda person: f"/management/persons/{person.id}?done=updated",
        then=lambda person: forget_person(ctx, person.id),
    )


async def page_set_active(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    active = checked(raw, "active")
    return await form_action(
        ctx.call(
            ctx.backends.directory.UpdatePerson,
            D.UpdatePersonRequest(caller=ctx.caller(), person_id=ref, active=active),
        ),
        lambda exc: render_person(ctx, ref, errors={"active": exc.message}, status=exc.status),
        lambda person: (
            f"/management/persons/{person.id}?done={'reactivated' if active else 'deactivated'}"
        ),
        then=lambda person: forget_person(ctx, person.id),
    )


async def page_set_password(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """The form twin of POST /management/api/v1/persons/{id}/password (profile feature)."""
    ref = request.match_info["id"]
    raw = await ctx.form()
    password = raw.get("password", "")
    if password != raw.get("confirm_password", ""):
        return await render_person(
            ctx, ref, errors={"confirm_password": "does not match the password"}, status=422
        )
    # The person must be one of this workspace's (404 otherwise) before auth is asked.
    await ctx.call(
        ctx.backends.directory.GetPerson,
        D.GetPersonRequest(caller=ctx.caller(), person_id=ref),
        safe=True,
    )
    return await form_action(
        admin_set_password(ctx, ref, password),
        lambda exc: render_person(
            ctx,
            ref,
            errors={
                "password": exc.fields.get("password")
                or exc.fields.get("new_password")
                or exc.message
            },
            status=exc.status,
        ),
        f"/management/persons/{ref}?done=password#access",
    )


async def page_reset_two_factor(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.GetPerson,
        D.GetPersonRequest(caller=ctx.caller(), person_id=ref),
        safe=True,
    )
    await admin_reset_two_factor(ctx, ref)
    raise ctx.redirect(f"/management/persons/{ref}?done=two_factor#access")


ROUTES: list[Route] = [
    management_route(
        "GET",
        f"{API}/persons",
        api_persons,
        READ,
        query=PersonsQuery,
        response=PersonListOut,
        summary="Persons: search (q), filters (active, portal_access, group, role, permission), "
        "cursor pagination",
    ),
    management_route(
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
    management_route(
        "GET",
        f"{API}/persons/{{id}}",
        api_person,
        READ,
        response=PersonDetailOut,
        summary="A person with their effective permissions",
    ),
    management_route(
        "PATCH",
        f"{API}/persons/{{id}}",
        api_update_person,
        MANAGE,
        body=PersonPatchIn,
        response=PersonOut,
        summary="Edit a person, deactivate/reactivate (active), portal access, notifications",
    ),
    # Pages: persons (fixed paths before /persons/{id}).
    page_route("GET", f"{P}/persons", page_persons, READ, "Persons"),
    page_route("GET", f"{P}/persons/new", page_new_person, MANAGE, "New person"),
    page_route("POST", f"{P}/persons/new", page_create_person, MANAGE, "Create a person"),
    page_route("GET", f"{P}/persons/{{id}}", page_person, READ, "A person"),
    page_route("POST", f"{P}/persons/{{id}}", page_update_person, MANAGE, "Edit a person"),
    page_route(
        "POST", f"{P}/persons/{{id}}/active", page_set_active, MANAGE, "Deactivate or reactivate"
    ),
    page_route("POST", f"{P}/persons/{{id}}/password", page_set_password, MANAGE, "Set a password"),
    page_route(
        "POST",
        f"{P}/persons/{{id}}/two-factor/reset",
        page_reset_two_factor,
        MANAGE,
        "Reset two-factor",
    ),
]
