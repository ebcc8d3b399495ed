"""SCIM tokens in the management console (Settings:manage): a page and the JSON API.

A token is shown once when created, can be revoked, and works only on /scim/v2/ of its own
workspace (the management API never accepts it, and /scim/v2/ never accepts API tokens).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import scim_pb2

from gateway.errors import ApiError
from gateway.present import see_other, time_of
from gateway.routing import Ctx, Route, is_secure


class ScimTokenIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ScimTokenOut(msgspec.Struct):
    id: str
    name: str
    prefix: str
    created_by: str
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class ScimTokenCreated(msgspec.Struct):
    token: ScimTokenOut
    secret: str  # shown once
    endpoint: str


class ScimTokenList(msgspec.Struct):
    items: list[ScimTokenOut]
    endpoint: str


class Ok(msgspec.Struct):
    status: str = "ok"


def _token(t: scim_pb2.ScimToken) -> ScimTokenOut:
    return ScimTokenOut(
        id=t.id,
        name=t.name,
        prefix=t.prefix,
        created_by=t.created_by,
        created_at=time_of(t, "created_at", whole_seconds=True),
        last_used_at=time_of(t, "last_used_at", whole_seconds=True),
        revoked_at=time_of(t, "revoked_at", whole_seconds=True),
    )


def endpoint(ctx: Ctx) -> str:
    scheme = "https" if is_secure(ctx.request, ctx.state.settings) else ctx.request.scheme
    return f"{scheme}://{ctx.request.host}/scim/v2"


async def _list(ctx: Ctx) -> list[ScimTokenOut]:
    listed = await ctx.call(
        ctx.backends.scim.ListScimTokens,
        scim_pb2.ListScimTokensRequest(caller=ctx.caller()),
        safe=True,
    )
    return [_token(t) for t in listed.tokens]


async def _create(ctx: Ctx, name: str) -> ScimTokenCreated:
    created = await ctx.call(
        ctx.backends.scim.CreateScimToken,
        scim_pb2.CreateScimTokenRequest(caller=ctx.caller(), name=name),
    )
    return ScimTokenCreated(_token(created.token), created.secret, endpoint(ctx))


async def _revoke(ctx: Ctx, token_id: str) -> None:
    await ctx.call(
        ctx.backends.scim.RevokeScimToken,
        scim_pb2.RevokeScimTokenRequest(caller=ctx.caller(), token_id=token_id),
    )


async def list_tokens(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(ScimTokenList(await _list(ctx), endpoint(ctx)))


async def create_token(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ScimTokenIn = ctx.body
    return ctx.json(await _create(ctx, body.name), status=201)


async def revoke_token(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _revoke(ctx, request.match_info["token_id"])
    return ctx.json(Ok())


async def _render(ctx: Ctx, status: int = 200, **values: Any) -> web.Response:
    context: dict[str, Any] = {
        "tokens": await _list(ctx),
        "created": None,
        "error": "",
        "endpoint": endpoint(ctx),
    }
    context.update(values)
    return ctx.render("scim/tokens.html", context, status=status)


async def tokens_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render(ctx)


async def tokens_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    name = raw.get("name", "").strip()
    if not name or len(name) > 100:
        return await _render(ctx, status=422, error="name: give 1 to 100 characters")
    try:
        created = await _create(ctx, name)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _render(ctx, status=422, error=exc.message)
    return await _render(ctx, status=201, created=created)


async def token_revoke_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _revoke(ctx, request.match_info["token_id"])
    return see_other("/management/scim")


_S: dict[str, Any] = {"surface": "management", "permissions": ("Settings:manage",)}
ROUTES: list[Route] = [
    Route(
        "GET",
        "/management/api/v1/scim-tokens",
        list_tokens,
        response=ScimTokenList,
        summary="The workspace's SCIM provisioning tokens",
        **_S,
    ),
    Route(
        "POST",
        "/management/api/v1/scim-tokens",
        create_token,
        body=ScimTokenIn,
        response=ScimTokenCreated,
        status=201,
        summary="Create a SCIM token (the secret is shown once)",
        **_S,
    ),
    Route(
        "DELETE",
        "/management/api/v1/scim-tokens/{token_id}",
        revoke_token,
        response=Ok,
        summary="Revoke a SCIM token (its next call is refused)",
        **_S,
    ),
    Route("GET", "/management/scim", tokens_page, kind="page", summary="SCIM provisioning", **_S),
    Route(
        "POST",
        "/management/scim",
        tokens_submit,
        kind="page",
        summary="Create a SCIM token",
        **_S,
    ),
    Route(
        "POST",
        "/management/scim/{token_id}/revoke",
        token_revoke_submit,
        kind="page",
        summary="Revoke a SCIM token",
        **_S,
    ),
]
