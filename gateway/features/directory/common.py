"""What the directory's management pages and JSON share: permissions, field types, route builders, lookups for forms."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from frontdesk.v1 import directory_pb2

from gateway.routing import Ctx, Route, read_form

D = directory_pb2
READ = ("Person:read",)
MANAGE = ("Person:manage",)
ROLES = ("Role:manage",)
GROUPS = ("Group:manage",)
SETTINGS = ("Settings:manage",)
AUDIT = ("Audit:read",)
PAGE_LIMIT = 500  # the largest page_size of the directory's lists
NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
EMAIL = Annotated[str, msgspec.Meta(min_length=1, max_length=254)]


class DeletedOut(msgspec.Struct):
    status: str = "deleted"


def forget_person(ctx: Ctx, person_id: str) -> None:
    """This replica sees the change at once; the others drop it on the directory's event."""
    ctx.state.caches.drop_person(ctx.workspace_id, person_id)


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


async def form_values(ctx: Ctx, name: str) -> list[str]:
    """All values of a repeated form field (checkbox lists); ctx.form() keeps only one."""
    data = await read_form(ctx.request)
    return [v.strip() for v in data.getall(name, []) if isinstance(v, str) and v.strip()]


async def all_roles(ctx: Ctx) -> list[directory_pb2.Role]:
    resp = await ctx.call(
        ctx.backends.directory.ListRoles, D.ListRolesRequest(caller=ctx.caller()), safe=True
    )
    return list(resp.roles)


async def all_groups(ctx: Ctx) -> list[directory_pb2.Group]:
    resp = await ctx.call(
        ctx.backends.directory.ListGroups, D.ListGroupsRequest(caller=ctx.caller()), safe=True
    )
    return list(resp.groups)


def management_route(
    method: str, path: str, handler: Any, permissions: tuple[str, ...], **kw: Any
) -> Route:
    return Route(method, path, handler, surface="management", permissions=permissions, **kw)


def page_route(
    method: str, path: str, handler: Any, permissions: tuple[str, ...], summary: str
) -> Route:
    return management_route(method, path, handler, permissions, kind="page", summary=summary)


API = "/management/api/v1"
P = "/management"
