"""My two-factor sign-in: TOTP enrolment, confirmation, recovery codes, turning it off."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import auth_pb2

from gateway.errors import ApiError
from gateway.features.profile.common import Ok, base_path
from gateway.present import forget_sessions, see_other
from gateway.routing import Ctx


class TwoFactorOut(msgspec.Struct):
    enabled: bool
    recovery_codes_left: int
    required_by_workspace: bool


class CodeIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class DisableIn(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(max_length=1024)]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class EnrollmentOut(msgspec.Struct):
    secret: str
    provisioning_uri: str
    qr_svg: str


class RecoveryCodesOut(msgspec.Struct):
    recovery_codes: list[str]


async def two_factor_status(ctx: Ctx) -> TwoFactorOut:
    s = await ctx.call(
        ctx.backends.auth.GetTwoFactorStatus,
        auth_pb2.GetTwoFactorStatusRequest(caller=ctx.caller()),
        safe=True,
    )
    return TwoFactorOut(s.enabled, s.recovery_codes_left, s.required_by_workspace)


async def _enroll(ctx: Ctx) -> EnrollmentOut:
    e = await ctx.call(
        ctx.backends.auth.BeginTotpEnrollment,
        auth_pb2.BeginTotpEnrollmentRequest(caller=ctx.caller()),
    )
    return EnrollmentOut(e.secret, e.provisioning_uri, e.qr_svg)


async def _confirm(ctx: Ctx, code: str) -> list[str]:
    codes = await ctx.call(
        ctx.backends.auth.ConfirmTotpEnrollment,
        auth_pb2.ConfirmTotpEnrollmentRequest(
            caller=ctx.caller(), code=code, keep_session_token=ctx.session_token or ""
        ),
    )
    # Auth ended the other sessions and lifted this one's enroll-only restriction.
    forget_sessions(ctx, ctx.person_id)
    return list(codes.codes)


async def _disable(ctx: Ctx, password: str, code: str) -> None:
    await ctx.call(
        ctx.backends.auth.DisableTotp,
        auth_pb2.DisableTotpRequest(
            caller=ctx.caller(),
            password=password,
            code=code,
            keep_session_token=ctx.session_token or "",
        ),
    )
    forget_sessions(ctx, ctx.person_id)  # auth ended the others; this one is reloaded


async def _regenerate(ctx: Ctx, code: str) -> list[str]:
    codes = await ctx.call(
        ctx.backends.auth.RegenerateRecoveryCodes,
        auth_pb2.RegenerateRecoveryCodesRequest(caller=ctx.caller(), code=code),
    )
    return list(codes.codes)


async def get_2fa(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(await two_factor_status(ctx))


async def post_2fa_enroll(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(await _enroll(ctx))


async def post_2fa_confirm(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(RecoveryCodesOut(await _confirm(ctx, ctx.body.code)))


async def post_2fa_disable(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: DisableIn = ctx.body
    await _disable(ctx, body.password, body.code)
    return ctx.json(Ok())


async def post_2fa_recovery(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(RecoveryCodesOut(await _regenerate(ctx, ctx.body.code)))


async def _render_2fa(ctx: Ctx, status: int = 200, **values: Any) -> web.Response:
    context = {
        "two_factor": await two_factor_status(ctx),
        "base": base_path(ctx),
        "enrollment": None,
        "codes": None,
        "error": "",
        "enroll_only": bool(ctx.session and ctx.session.two_factor_pending_enrollment),
    }
    context.update(values)
    return ctx.render("profile/two_factor.html", context, status=status)


async def two_factor_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_2fa(ctx)


async def two_factor_enroll_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_2fa(ctx, enrollment=await _enroll(ctx))


async def two_factor_confirm_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    try:
        codes = await _confirm(ctx, raw.get("code", ""))
    except ApiError as exc:
        if exc.status != 422:
            raise
        # Show the same secret again: the enrollment stays pending until a code matches.
        return await _render_2fa(
            ctx,
            status=422,
            error=exc.message,
            enrollment=EnrollmentOut(raw.get("secret", ""), raw.get("uri", ""), ""),
        )
    return await _render_2fa(ctx, codes=codes)


async def two_factor_disable_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    try:
        await _disable(ctx, raw.get("password", ""), raw.get("code", ""))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_2fa(ctx, status=exc.status, error=exc.message)
    return see_other(f"{base_path(ctx)}?notice=two_factor_off")


async def two_factor_recovery_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    try:
        codes = await _regenerate(ctx, raw.get("code", ""))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_2fa(ctx, status=exc.status, error=exc.message)
    return await _render_2fa(ctx, codes=codes)
