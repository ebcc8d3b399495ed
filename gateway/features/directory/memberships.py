"""A person's roles and groups: grant and revoke a role, join and leave a group (JSON and the person page's forms)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from gateway.features.directory.common import (
    API,
    MANAGE,
    D,
    P,
    forget_person,
    management_route,
    page_route,
)
from gateway.features.directory.groups import set_member
from gateway.features.directory.persons import PersonDetailOut, person_detail, render_person
from gateway.forms import form_action
from gateway.routing import Ctx, Route


class RoleGrantIn(msgspec.Struct, forbid_unknown_fields=True):
    role_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


async def api_grant_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: RoleGrantIn = ctx.body
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.GrantRole,
        D.PersonRoleRequest(caller=ctx.caller(), person_id=ref, role_id=body.role_id),
    )
    forget_person(ctx, ref)
    return ctx.json(await person_detail(ctx, ref), status=201)


async def api_revoke_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.RevokeRole,
        D.PersonRoleRequest(
            caller=ctx.caller(), person_id=ref, role_id=request.match_info["role_id"]
        ),
    )
    forget_person(ctx, ref)
    return ctx.json(await person_detail(ctx, ref))


async def page_grant_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    role_id = raw.get("role_id", "").strip()
    if not role_id:
        return await render_person(ctx, ref, errors={"role_id": "choose a role"}, status=422)
    return await form_action(
        ctx.call(
            ctx.backends.directory.GrantRole,
            D.PersonRoleRequest(caller=ctx.caller(), person_id=ref, role_id=role_id),
        ),
        lambda exc: render_person(ctx, ref, errors={"role_id": exc.message}, status=exc.status),
        f"/management/persons/{ref}?done=granted#roles",
        expected=(403, 409, 422),
        then=lambda _: forget_person(ctx, ref),
    )


async def page_revoke_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await ctx.call(
        ctx.backends.directory.RevokeRole,
        D.PersonRoleRequest(
            caller=ctx.caller(), person_id=ref, role_id=request.match_info["role_id"]
        ),
    )
    forget_person(ctx, ref)
    raise ctx.redirect(f"/management/persons/{ref}?done=revoked#roles")


async def page_join_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    group_id = raw.get("group_id", "").strip()
    if not group_id:
        return await render_person(ctx, ref, errors={"group_id": "choose a group"}, status=422)
    return await form_action(
        set_member(ctx, group_id, ref, True),
        lambda exc: render_person(ctx, ref, errors={"group_id": exc.message}, status=exc.status),
        f"/management/persons/{ref}?done=joined#groups",
        expected=(403, 409, 422),
    )


async def page_leave_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await set_member(ctx, request.match_info["group_id"], ref, False)
    raise ctx.redirect(f"/management/persons/{ref}?done=left#groups")


ROUTES: list[Route] = [
    management_route(
        "POST",
        f"{API}/persons/{{id}}/roles",
        api_grant_role,
        MANAGE,
        body=RoleGrantIn,
        response=PersonDetailOut,
        status=201,
        summary="Grant a role directly",
    ),
    management_route(
        "DELETE",
        f"{API}/persons/{{id}}/roles/{{role_id}}",
        api_revoke_role,
        MANAGE,
        response=PersonDetailOut,
        summary="Revoke a directly granted role",
    ),
    page_route("POST", f"{P}/persons/{{id}}/roles", page_grant_role, MANAGE, "Grant a role"),
    page_route(
        "POST",
        f"{P}/persons/{{id}}/roles/{{role_id}}/revoke",
        page_revoke_role,
        MANAGE,
        "Revoke a role",
    ),
    page_route("POST", f"{P}/persons/{{id}}/groups", page_join_group, MANAGE, "Add to a group"),
    page_route(
        "POST",
        f"{P}/persons/{{id}}/groups/{{group_id}}/leave",
        page_leave_group,
        MANAGE,
        "Remove from a group",
    ),
]
