"""GET /management/api/v1/access-snapshot: the workspace's current access state, paged, with
the JetStream sequence to follow the directory's events from (Person:read).

Scripts and services take every page (each names the same stream_sequence S), then consume
FD_DIRECTORY from S + 1: see protos/frontdesk/v1/access.proto for why nothing is lost.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from frontdesk.v1 import access_pb2, common_pb2

from gateway.routing import Ctx, Route


class SnapshotQuery(msgspec.Struct):
    page_size: Annotated[int, msgspec.Meta(ge=0, le=500)] = 100
    page_token: str = ""


class AccessPersonOut(msgspec.Struct):
    person_id: str
    email: str
    name: str
    active: bool
    portal_access: bool
    permissions: list[str]
    group_ids: list[str]
    role_ids: list[str]


class AccessRoleOut(msgspec.Struct):
    role_id: str
    name: str
    permissions: list[str]


class AccessGroupOut(msgspec.Struct):
    group_id: str
    name: str
    role_ids: list[str]


class AccessSnapshotOut(msgspec.Struct):
    stream: str
    stream_sequence: int  # follow the stream from stream_sequence + 1
    persons: list[AccessPersonOut]
    roles: list[AccessRoleOut]
    groups: list[AccessGroupOut]
    next_page_token: str
    total: int


def snapshot_out(snap: access_pb2.AccessSnapshot) -> AccessSnapshotOut:
    return AccessSnapshotOut(
        stream=snap.stream,
        stream_sequence=snap.stream_sequence,
        persons=[
            AccessPersonOut(
                p.person_id,
                p.email,
                p.name,
                p.active,
                p.portal_access,
                list(p.permissions),
                list(p.group_ids),
                list(p.role_ids),
            )
            for p in snap.persons
        ],
        roles=[AccessRoleOut(r.role_id, r.name, list(r.permissions)) for r in snap.roles],
        groups=[AccessGroupOut(g.group_id, g.name, list(g.role_ids)) for g in snap.groups],
        next_page_token=snap.next_page_token,
        total=snap.total,
    )


async def access_snapshot(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: SnapshotQuery = ctx.query
    snap = await ctx.call(
        ctx.backends.access.GetAccessSnapshot,
        access_pb2.AccessSnapshotRequest(
            caller=ctx.caller(),
            page=common_pb2.PageRequest(page_size=q.page_size, page_token=q.page_token),
        ),
        safe=True,
    )
    return ctx.json(snapshot_out(snap))


ROUTES: list[Route] = [
    Route(
        "GET",
        "/management/api/v1/access-snapshot",
        access_snapshot,
        surface="management",
        permissions=("Person:read",),
        query=SnapshotQuery,
        response=AccessSnapshotOut,
        summary="The workspace's access state (paged) and the JetStream sequence to follow from",
    ),
]
