"""Groups and their members."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.features.directory.common import (
    API,
    GROUPS,
    NAME,
    NOTICES,
    D,
    DeletedOut,
    P,
    all_groups,
    all_roles,
    forget_person,
    form_values,
    management_route,
    page_route,
)
from gateway.features.directory.persons import person_view
from gateway.forms import form_action
from gateway.present import (
    form_errors,
    notice,
    page_links,
)
from gateway.routing import Ctx, Route


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


def group_out(g: directory_pb2.Group) -> GroupOut:
    return GroupOut(
        id=g.id,
        name=g.name,
        description=g.description,
        role_ids=list(g.role_ids),
        builtin=g.builtin,
        member_count=g.member_count,
    )


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


async def set_member(ctx: Ctx, group_id: str, person_id: str, member: bool) -> None:
    method = (
        ctx.backends.directory.AddGroupMember
        if member
        else ctx.backends.directory.RemoveGroupMember
    )
    await ctx.call(
        method, D.GroupMemberRequest(caller=ctx.caller(), group_id=group_id, person_id=person_id)
    )
    forget_person(ctx, person_id)


async def api_add_member(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: MemberIn = ctx.body
    ref = request.match_info["id"]
    await set_member(ctx, ref, body.person_id, True)
    group = await ctx.call(
        ctx.backends.directory.GetGroup,
        D.GetGroupRequest(caller=ctx.caller(), group_id=ref),
        safe=True,
    )
    return ctx.json(group_out(group), status=201)


async def api_remove_member(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    await set_member(ctx, ref, request.match_info["person_id"], False)
    group = await ctx.call(
        ctx.backends.directory.GetGroup,
        D.GetGroupRequest(caller=ctx.caller(), group_id=ref),
        safe=True,
    )
    return ctx.json(group_out(group))


async def page_groups(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    groups, roles = await asyncio.gather(all_groups(ctx), all_roles(ctx))
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
    role_ids = await form_values(ctx, "role_ids")
    return await form_action(
        ctx.call(
            ctx.backends.directory.CreateGroup,
            D.CreateGroupRequest(
                caller=ctx.caller(),
                name=raw.get("name", ""),
                description=raw.get("description", ""),
                role_ids=role_ids,
            ),
        ),
        lambda exc: page_groups(request, ctx, form_errors(exc), raw, role_ids, exc.status),
        lambda group: f"/management/groups/{group.id}?done=created",
        expected=(403, 404, 409, 422),
    )


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
        all_roles(ctx),
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
            "members": [person_view(p) for p in members.persons],
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
    role_ids = await form_values(ctx, "role_ids")
    patch = GroupPatchIn(
        name=raw.get("name", ""), description=raw.get("description", ""), role_ids=role_ids
    )
    return await form_action(
        ctx.call(ctx.backends.directory.UpdateGroup, group_patch(ctx.caller(), ref, patch)),
        lambda exc: _render_group(
            ctx, ref, errors=form_errors(exc), raw=raw, chosen=role_ids, status=exc.status
        ),
        f"/management/groups/{ref}?done=updated",
        expected=(403, 409, 422),
    )


async def page_delete_group(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    return await form_action(
        ctx.call(
            ctx.backends.directory.DeleteGroup,
            D.DeleteGroupRequest(caller=ctx.caller(), group_id=ref),
        ),
        lambda exc: _render_group(ctx, ref, errors={"delete": exc.message}, status=exc.status),
        "/management/groups?done=deleted",
    )


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
        await set_member(ctx, ref, who, True)
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
    await set_member(ctx, ref, request.match_info["person_id"], False)
    raise ctx.redirect(f"/management/groups/{ref}?done=member_removed#members")


ROUTES: list[Route] = [
    # JSON: groups.
    management_route(
        "GET", f"{API}/groups", api_groups, GROUPS, response=GroupListOut, summary="Groups"
    ),
    management_route(
        "POST",
        f"{API}/groups",
        api_create_group,
        GROUPS,
        body=GroupIn,
        response=GroupOut,
        status=201,
        summary="Create a group carrying roles",
    ),
    management_route(
        "GET", f"{API}/groups/{{id}}", api_group, GROUPS, response=GroupOut, summary="A group"
    ),
    management_route(
        "PATCH",
        f"{API}/groups/{{id}}",
        api_update_group,
        GROUPS,
        body=GroupPatchIn,
        response=GroupOut,
        summary="Edit a group (name, description, roles)",
    ),
    management_route(
        "DELETE",
        f"{API}/groups/{{id}}",
        api_delete_group,
        GROUPS,
        response=DeletedOut,
        summary="Delete a group (built-ins cannot be deleted: 409)",
    ),
    management_route(
        "POST",
        f"{API}/groups/{{id}}/members",
        api_add_member,
        GROUPS,
        body=MemberIn,
        response=GroupOut,
        status=201,
        summary="Add a member (members: GET /persons?group=<id>)",
    ),
    management_route(
        "DELETE",
        f"{API}/groups/{{id}}/members/{{person_id}}",
        api_remove_member,
        GROUPS,
        response=GroupOut,
        summary="Remove a member",
    ),
    page_route("GET", f"{P}/groups", page_groups, GROUPS, "Groups"),
    page_route("POST", f"{P}/groups", page_create_group, GROUPS, "Create a group"),
    page_route("GET", f"{P}/groups/{{id}}", page_group, GROUPS, "A group and its members"),
    page_route("POST", f"{P}/groups/{{id}}", page_update_group, GROUPS, "Edit a group"),
    page_route("POST", f"{P}/groups/{{id}}/delete", page_delete_group, GROUPS, "Delete a group"),
    page_route("POST", f"{P}/groups/{{id}}/members", page_add_member, GROUPS, "Add a member"),
    page_route(
        "POST",
        f"{P}/groups/{{id}}/members/{{person_id}}/remove",
        page_remove_member,
        GROUPS,
        "Remove a member",
    ),
]
