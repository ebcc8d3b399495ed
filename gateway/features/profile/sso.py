"""The workspace's OIDC single sign-on configuration (management)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import auth_pb2

from gateway.errors import ApiError
from gateway.features.profile.common import MANAGEMENT
from gateway.present import see_other
from gateway.routing import Ctx, Route


class SsoIn(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
    issuer: Annotated[str, msgspec.Meta(max_length=500)]
    client_id: Annotated[str, msgspec.Meta(max_length=500)]
    client_secret: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    allowed_domains: list[str] = []
    create_unknown_persons: bool = False


class SsoOut(msgspec.Struct):
    configured: bool
    enabled: bool
    issuer: str
    client_id: str
    has_client_secret: bool
    allowed_domains: list[str]
    create_unknown_persons: bool


def _sso(c: auth_pb2.SsoConfig) -> SsoOut:
    return SsoOut(
        configured=c.configured,
        enabled=c.enabled,
        issuer=c.issuer,
        client_id=c.client_id,
        has_client_secret=c.has_client_secret,
        allowed_domains=list(c.allowed_domains),
        create_unknown_persons=c.create_unknown_persons,
    )


async def get_sso(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    c = await ctx.call(
        ctx.backends.auth.GetSsoConfig, auth_pb2.GetSsoConfigRequest(caller=ctx.caller()), safe=True
    )
    return ctx.json(_sso(c))


async def _put_sso(ctx: Ctx, body: SsoIn) -> auth_pb2.SsoConfig:
    config: auth_pb2.SsoConfig = await ctx.call(
        ctx.backends.auth.PutSsoConfig,
        auth_pb2.PutSsoConfigRequest(
            caller=ctx.caller(),
            enabled=body.enabled,
            issuer=body.issuer,
            client_id=body.client_id,
            client_secret=body.client_secret,
            allowed_domains=body.allowed_domains,
            create_unknown_persons=body.create_unknown_persons,
        ),
    )
    return config


async def put_sso(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(_sso(await _put_sso(ctx, ctx.body)))


async def _render_sso(ctx: Ctx, status: int = 200, **values: Any) -> web.Response:
    config = await ctx.call(
        ctx.backends.auth.GetSsoConfig, auth_pb2.GetSsoConfigRequest(caller=ctx.caller()), safe=True
    )
    context: dict[str, Any] = {"config": _sso(config), "error": "", "errors": {}, "notice": ""}
    context.update(values)
    return ctx.render("profile/sso.html", context, status=status)


async def sso_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_sso(ctx, notice=request.query.get("notice", ""))


async def sso_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    body = SsoIn(
        enabled=raw.get("enabled") == "on",
        issuer=raw.get("issuer", ""),
        client_id=raw.get("client_id", ""),
        client_secret=raw.get("client_secret", ""),
        allowed_domains=[d for d in raw.get("allowed_domains", "").replace(",", " ").split() if d],
        create_unknown_persons=raw.get("create_unknown_persons") == "on",
    )
    try:
        await _put_sso(ctx, body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _render_sso(ctx, status=422, error=exc.message, errors=exc.fields)
    return see_other("/management/sso?notice=saved")


ROUTES: list[Route] = [
    Route(
        "GET",
        "/management/api/v1/sso",
        get_sso,
        permissions=("Settings:manage",),
        response=SsoOut,
        summary="The workspace's OIDC single sign-on (the client secret is never returned)",
        **MANAGEMENT,
    ),
    Route(
        "PUT",
        "/management/api/v1/sso",
        put_sso,
        permissions=("Settings:manage",),
        body=SsoIn,
        response=SsoOut,
        summary="Configure OIDC single sign-on (empty secret keeps the stored one)",
        **MANAGEMENT,
    ),
    Route(
        "GET",
        "/management/sso",
        sso_page,
        kind="page",
        permissions=("Settings:manage",),
        summary="Single sign-on settings page",
        **MANAGEMENT,
    ),
    Route(
        "POST",
        "/management/sso",
        sso_submit,
        kind="page",
        permissions=("Settings:manage",),
        summary="Single sign-on settings form",
        **MANAGEMENT,
    ),
]
