"""An admin's resets of another person's password and two-factor (used by the directory pages too)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from frontdesk.v1 import auth_pb2

from gateway.features.profile.common import MANAGEMENT, Ok
from gateway.present import forget_sessions
from gateway.routing import Ctx, Route


class SetPasswordIn(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(max_length=1024)]


async def admin_reset_two_factor(ctx: Ctx, person_id: str) -> None:
    """An admin turns a person's two-factor off; auth ends that person's sessions."""
    await ctx.call(
        ctx.backends.auth.AdminResetTwoFactor,
        auth_pb2.AdminResetTwoFactorRequest(caller=ctx.caller(), person_id=person_id),
    )
    forget_sessions(ctx, person_id)


async def admin_set_password(ctx: Ctx, person_id: str, password: str) -> None:
    """An admin sets a person's password; auth ends that person's sessions."""
    await ctx.call(
        ctx.backends.auth.SetPassword,
        auth_pb2.SetPasswordRequest(caller=ctx.caller(), person_id=person_id, password=password),
    )
    forget_sessions(ctx, person_id)


async def reset_person_2fa(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await admin_reset_two_factor(ctx, request.match_info["person_id"])
    return ctx.json(Ok())


async def set_person_password(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await admin_set_password(ctx, request.match_info["person_id"], ctx.body.password)
    return ctx.json(Ok())


ROUTES: list[Route] = [
    Route(
        "POST",
        "/management/api/v1/persons/{person_id}/two-factor/reset",
        reset_person_2fa,
        permissions=("Person:manage",),
        response=Ok,
        summary="Turn a person's two-factor off (their sessions end)",
        **MANAGEMENT,
    ),
    Route(
        "POST",
        "/management/api/v1/persons/{person_id}/password",
        set_person_password,
        permissions=("Person:manage",),
        body=SetPasswordIn,
        response=Ok,
        summary="Set a person's password (their sessions end)",
        **MANAGEMENT,
    ),
]
