"""Roles and the permission catalogue."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.features.directory.common import (
    API,
    NAME,
    NOTICES,
    ROLES,
    D,
    DeletedOut,
    P,
    all_roles,
    form_values,
    management_route,
    page_route,
)
from gateway.forms import form_action
from gateway.present import (
    checked,
    form_errors,
    notice,
)
from gateway.routing import Ctx, Route


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


def role_out(r: directory_pb2.Role) -> RoleOut:
    return RoleOut(
        id=r.id,
        name=r.name,
        description=r.description,
        permissions=list(r.permissions),
        builtin=r.builtin,
        assigned_count=r.assigned_count,
    )


async def _role(ctx: Ctx, role_id: str) -> directory_pb2.Role:
    """One role of this workspace (the service lists only the caller's workspace): else 404."""
    resp = await ctx.call(
        ctx.backends.directory.ListRoles, D.ListRolesRequest(caller=ctx.caller()), safe=True
    )
    found: list[directory_pb2.Role] = [r for r in resp.roles if r.id == role_id]
    if not found:
        raise ApiError(404, "not_found", "role not found")
    return found[0]


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


async def permission_catalog(ctx: Ctx) -> list[str]:
    catalog = await ctx.call(
        ctx.backends.directory.ListPermissionCatalog,
        D.ListPermissionCatalogRequest(caller=ctx.caller()),
        safe=True,
    )
    return list(catalog.permissions)


async def page_roles(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    roles, catalog = await asyncio.gather(all_roles(ctx), permission_catalog(ctx))
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
    permissions = await form_values(ctx, "permissions")
    return await form_action(
        ctx.call(
            ctx.backends.directory.CreateRole,
            D.CreateRoleRequest(
                caller=ctx.caller(),
                name=raw.get("name", ""),
                description=raw.get("description", ""),
                permissions=permissions,
            ),
        ),
        lambda exc: page_roles(request, ctx, form_errors(exc), raw, permissions, exc.status),
        lambda role: f"/management/roles/{role.id}?done=created",
        expected=(403, 409, 422),
    )


async def _render_role(
    ctx: Ctx,
    ref: str,
    *,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    role, catalog = await asyncio.gather(_role(ctx, ref), permission_catalog(ctx))
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
    permissions = await form_values(ctx, "permissions")
    patch = RolePatchIn(
        name=raw.get("name", ""), description=raw.get("description", ""), permissions=permissions
    )
    return await form_action(
        ctx.call(ctx.backends.directory.UpdateRole, role_patch(ctx.caller(), ref, patch)),
        lambda exc: _render_role(
            ctx, ref, errors=form_errors(exc), raw=raw, chosen=permissions, status=exc.status
        ),
        f"/management/roles/{ref}?done=updated",
        expected=(403, 409, 422),
    )


async def page_delete_role(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    return await form_action(
        ctx.call(
            ctx.backends.directory.DeleteRole,
            D.DeleteRoleRequest(caller=ctx.caller(), role_id=ref, force=checked(raw, "force")),
        ),
        lambda exc: _render_role(ctx, ref, errors={"delete": exc.message}, status=exc.status),
        "/management/roles?done=deleted",
    )


ROUTES: list[Route] = [
    # JSON: roles and the permission catalogue.
    management_route(
        "GET",
        f"{API}/permissions",
        api_permissions,
        ROLES,
        response=PermissionCatalogOut,
        summary="The permission catalog",
    ),
    management_route(
        "GET", f"{API}/roles", api_roles, ROLES, response=RoleListOut, summary="Roles"
    ),
    management_route(
        "POST",
        f"{API}/roles",
        api_create_role,
        ROLES,
        body=RoleIn,
        response=RoleOut,
        status=201,
        summary="Create a role (permissions from the catalog; an unknown one is a 422 naming it)",
    ),
    management_route(
        "GET", f"{API}/roles/{{id}}", api_role, ROLES, response=RoleOut, summary="A role"
    ),
    management_route(
        "PATCH",
        f"{API}/roles/{{id}}",
        api_update_role,
        ROLES,
        body=RolePatchIn,
        response=RoleOut,
        summary="Edit a role (built-in roles too)",
    ),
    management_route(
        "DELETE",
        f"{API}/roles/{{id}}",
        api_delete_role,
        ROLES,
        query=DeleteRoleQuery,
        response=DeletedOut,
        summary="Delete a role: 409 while assigned unless ?force=true; built-ins never",
    ),
    # Pages.
    page_route("GET", f"{P}/roles", page_roles, ROLES, "Roles"),
    page_route("POST", f"{P}/roles", page_create_role, ROLES, "Create a role"),
    page_route("GET", f"{P}/roles/{{id}}", page_role, ROLES, "A role"),
    page_route("POST", f"{P}/roles/{{id}}", page_update_role, ROLES, "Edit a role"),
    page_route("POST", f"{P}/roles/{{id}}/delete", page_delete_role, ROLES, "Delete a role"),
]
