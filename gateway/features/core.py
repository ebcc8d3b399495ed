"""Operations routes, the OpenAPI document, /api/v1/me and the two home pages."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from gateway.nav import management_links, portal_sections
from gateway.readiness import readiness
from gateway.routing import Ctx, Route


class Me(msgspec.Struct):
    person_id: str
    workspace: str
    permissions: list[str]
    portal_access: bool
    sections: list[str]
    management: bool
    csrf_token: str


async def healthz(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json({"status": "ok"})


async def readyz(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ready, body = await readiness(request.app)
    return ctx.json(body, status=200 if ready else 503)


async def openapi_json(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    from gateway import openapi
    from gateway.routes import ROUTES

    doc = request.app.get(_OPENAPI_KEY)
    if doc is None:
        doc = openapi.encode(openapi.build(ROUTES))
    return web.Response(body=doc, content_type="application/json")


_OPENAPI_KEY: web.AppKey[bytes] = web.AppKey("openapi")


async def me(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    assert ctx.person is not None and ctx.workspace is not None
    return ctx.json(
        Me(
            person_id=ctx.person_id,
            workspace=ctx.workspace.slug,
            permissions=sorted(ctx.permissions),
            portal_access=ctx.person.portal_access,
            sections=[s["section"] for s in portal_sections(ctx)],
            management=ctx.is_manager,
            csrf_token=ctx.csrf_token,
        )
    )


class CsrfToken(msgspec.Struct):
    csrf_token: str


async def csrf(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """The token to echo in X-CSRF-Token: the session's, or the anonymous double-submit one."""
    return ctx.json(CsrfToken(csrf_token=ctx.csrf_token))


async def portal_home(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """Greets by name and puts what waits for the person's answer first."""
    from gateway.features.tickets.portal import waiting_for_me
    from gateway.present import person_names

    if ctx.person is None or not ctx.person.portal_access:
        return ctx.render("core/home.html", {"name": "", "waiting": []})
    names, waiting = await asyncio.gather(person_names(ctx, [ctx.person_id]), waiting_for_me(ctx))
    return ctx.render("core/home.html", {"name": names.get(ctx.person_id, ""), "waiting": waiting})


async def management_home(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.render("core/management_home.html", {"links": management_links(ctx)})


ROUTES: list[Route] = [
    Route("GET", "/healthz", healthz, surface="public", needs_workspace=False, summary="Liveness"),
    Route(
        "GET",
        "/readyz",
        readyz,
        surface="public",
        needs_workspace=False,
        summary="Readiness: every backend answers its health check",
    ),
    Route("GET", "/api/v1/openapi.json", openapi_json, surface="public", summary="This document"),
    Route(
        "GET",
        "/auth/csrf",
        csrf,
        surface="public",
        response=CsrfToken,
        summary="CSRF token for the next state-changing request",
    ),
    Route("GET", "/api/v1/me", me, response=Me, summary="Who I am, my permissions and sections"),
    Route("GET", "/", portal_home, kind="page", summary="Portal home"),
    Route(
        "GET",
        "/management",
        management_home,
        surface="management",
        kind="page",
        summary="Management console home",
    ),
]
