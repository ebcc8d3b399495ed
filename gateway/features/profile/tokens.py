"""My personal API tokens for the management API (management)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import auth_pb2

from gateway.errors import ApiError
from gateway.features.profile.common import MANAGEMENT, Ok
from gateway.present import see_other, time_of
from gateway.routing import Ctx, Route


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    # 1 .. the workspace's api_token_max_days; missing: that maximum.
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    # A current two-factor code, when enrolled and not just signed in with it.
    code: Annotated[str, msgspec.Meta(max_length=64)] = ""


class TokenOut(msgspec.Struct):
    id: str
    name: str
    prefix: str
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None


class TokenCreated(msgspec.Struct):
    token: TokenOut
    secret: str  # shown once


class TokenList(msgspec.Struct):
    items: list[TokenOut]
    next_page_token: str = ""


def _token(t: auth_pb2.ApiTokenSummary) -> TokenOut:
    return TokenOut(
        id=t.id,
        name=t.name,
        prefix=t.prefix,
        created_at=time_of(t, "created_at", whole_seconds=True),
        last_used_at=time_of(t, "last_used_at", whole_seconds=True),
        expires_at=time_of(t, "expires_at", whole_seconds=True),
    )


async def list_tokens(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    listed = await ctx.call(
        ctx.backends.auth.ListApiTokens,
        auth_pb2.ListApiTokensRequest(caller=ctx.caller()),
        safe=True,
    )
    return ctx.json(TokenList(items=[_token(t) for t in listed.tokens]))


def _token_max_days(ctx: Ctx) -> int:
    return (ctx.portal_settings.api_token_max_days if ctx.portal_settings else 0) or 90


async def _create_token(ctx: Ctx, name: str, days: int | None, code: str = "") -> TokenCreated:
    """Auth refuses unless the request comes from a signed-in session (not an API token)."""
    created = await ctx.call(
        ctx.backends.auth.CreateApiToken,
        auth_pb2.CreateApiTokenRequest(
            caller=ctx.caller(),
            name=name,
            expires_in_days=_token_max_days(ctx) if days is None else days,
            session_token="" if ctx.via_api_token else ctx.session_token or "",
            code=code,
        ),
    )
    return TokenCreated(token=_token(created.token), secret=created.secret)


async def create_token(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TokenIn = ctx.body
    return ctx.json(
        await _create_token(ctx, body.name, body.expires_in_days, body.code), status=201
    )


async def _revoke_token(ctx: Ctx, token_id: str) -> None:
    await ctx.call(
        ctx.backends.auth.RevokeApiToken,
        auth_pb2.RevokeApiTokenRequest(caller=ctx.caller(), token_id=token_id),
    )
    # Drop cached API-token sessions of this person; the next call re-resolves.
    ctx.state.caches.drop_sessions_of(ctx.workspace_id, ctx.person_id)


async def revoke_token(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _revoke_token(ctx, request.match_info["token_id"])
    return ctx.json(Ok())


async def _render_tokens(ctx: Ctx, status: int = 200, **values: Any) -> web.Response:
    listed = await ctx.call(
        ctx.backends.auth.ListApiTokens,
        auth_pb2.ListApiTokensRequest(caller=ctx.caller()),
        safe=True,
    )
    context: dict[str, Any] = {
        "tokens": [_token(t) for t in listed.tokens],
        "created": None,
        "error": "",
        "max_days": _token_max_days(ctx),
    }
    context.update(values)
    return ctx.render("profile/api_tokens.html", context, status=status)


async def tokens_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_tokens(ctx)


async def tokens_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    try:
        days_raw = raw.get("expires_in_days", "")
        days = int(days_raw) if days_raw else None
        created = await _create_token(ctx, raw.get("name", ""), days, raw.get("code", ""))
    except ValueError:
        return await _render_tokens(ctx, status=422, error="expires_in_days: must be a number")
    except ApiError as exc:
        if exc.status not in (403, 422):
            raise
        return await _render_tokens(ctx, status=exc.status, error=exc.message)
    return await _render_tokens(ctx, status=201, created=created)


async def token_revoke_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _revoke_token(ctx, request.match_info["token_id"])
    return see_other("/management/api-tokens")


ROUTES: list[Route] = [
    Route(
        "GET",
        "/management/api/v1/api-tokens",
        list_tokens,
        response=TokenList,
        summary="My personal API tokens",
        **MANAGEMENT,
    ),
    Route(
        "POST",
        "/management/api/v1/api-tokens",
        create_token,
        body=TokenIn,
        response=TokenCreated,
        status=201,
        summary="Create a personal API token (the secret is shown once)",
        **MANAGEMENT,
    ),
    Route(
        "DELETE",
        "/management/api/v1/api-tokens/{token_id}",
        revoke_token,
        response=Ok,
        summary="Revoke a personal API token",
        **MANAGEMENT,
    ),
    Route(
        "GET",
        "/management/api-tokens",
        tokens_page,
        kind="page",
        summary="API tokens page",
        **MANAGEMENT,
    ),
    Route(
        "POST",
        "/management/api-tokens",
        tokens_submit,
        kind="page",
        summary="Create an API token",
        **MANAGEMENT,
    ),
    Route(
        "POST",
        "/management/api-tokens/{token_id}/revoke",
        token_revoke_submit,
        kind="page",
        summary="Revoke an API token",
        **MANAGEMENT,
    ),
]
