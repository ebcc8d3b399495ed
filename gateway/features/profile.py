"""Gateway surface of "my profile" (name, username, notifications, password, two-factor,
sessions) and of the auth settings admins manage (SSO, API tokens, a person's two-factor and
password). The profile exists twice: in the portal (/profile) and in the management console
(/management/profile) for persons without portal access; both call the same handlers."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import auth_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.present import forget_sessions, see_other, time_of
from gateway.routing import Ctx, Route


def _base(ctx: Ctx) -> str:
    return "/management/profile" if ctx.request.path.startswith("/management") else "/profile"


# -- schemas ------------------------------------------------------------------------------


class Notifications(msgspec.Struct):
    ticket_updates: bool = False
    issue_assigned: bool = False
    control_test_assigned: bool = False
    weekly_digest: bool = False


class TwoFactorOut(msgspec.Struct):
    enabled: bool
    recovery_codes_left: int
    required_by_workspace: bool


class ProfileOut(msgspec.Struct):
    person_id: str
    email: str
    name: str
    login_name: str
    portal_access: bool
    notifications: Notifications
    two_factor: TwoFactorOut


class ProfilePatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    login_name: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    notifications: Notifications | None = None


class PasswordIn(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(max_length=1024)]
    new_password: Annotated[str, msgspec.Meta(max_length=1024)]


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


class SessionOut(msgspec.Struct):
    id: str
    surface: str
    client_ip: str
    user_agent: str
    created_at: str | None
    last_seen_at: str | None
    current: bool


class SessionList(msgspec.Struct):
    items: list[SessionOut]
    next_page_token: str = ""


class Ok(msgspec.Struct):
    status: str = "ok"


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


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    expires_in_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 90


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


class SetPasswordIn(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(max_length=1024)]


# -- calls --------------------------------------------------------------------------------


async def _profile(ctx: Ctx) -> ProfileOut:
    person = await ctx.call(
        ctx.backends.directory.GetPerson,
        directory_pb2.GetPersonRequest(caller=ctx.caller(), person_id=ctx.person_id),
        safe=True,
    )
    status = await _two_factor(ctx)
    n = person.notifications
    return ProfileOut(
        person_id=person.id,
        email=person.email,
        name=person.name,
        login_name=person.login_name,
        portal_access=person.portal_access,
        notifications=Notifications(
            n.ticket_updates, n.issue_assigned, n.control_test_assigned, n.weekly_digest
        ),
        two_factor=status,
    )


async def _two_factor(ctx: Ctx) -> TwoFactorOut:
    s = await ctx.call(
        ctx.backends.auth.GetTwoFactorStatus,
        auth_pb2.GetTwoFactorStatusRequest(caller=ctx.caller()),
        safe=True,
    )
    return TwoFactorOut(s.enabled, s.recovery_codes_left, s.required_by_workspace)


async def _update(ctx: Ctx, patch: ProfilePatch) -> None:
    req = directory_pb2.UpdatePersonRequest(caller=ctx.caller(), person_id=ctx.person_id)
    if patch.name is not None:
        req.name = patch.name
    if patch.login_name is not None:
        req.login_name = patch.login_name
    if patch.notifications is not None:
        n = patch.notifications
        req.set_notifications = True
        req.notifications.CopyFrom(
            directory_pb2.NotificationPreferences(
                ticket_updates=n.ticket_updates,
                issue_assigned=n.issue_assigned,
                control_test_assigned=n.control_test_assigned,
                weekly_digest=n.weekly_digest,
            )
        )
    await ctx.call(ctx.backends.directory.UpdatePerson, req)


async def _change_password(ctx: Ctx, current: str, new: str) -> None:
    await ctx.call(
        ctx.backends.auth.ChangePassword,
        auth_pb2.ChangePasswordRequest(
            caller=ctx.caller(),
            current_password=current,
            new_password=new,
            keep_session_token=ctx.session_token or "",
        ),
    )
    forget_sessions(ctx, ctx.person_id)  # auth ended the others; this one is reloaded


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


async def _sessions(ctx: Ctx) -> list[SessionOut]:
    listed = await ctx.call(
        ctx.backends.auth.ListSessions,
        auth_pb2.ListSessionsRequest(caller=ctx.caller(), current_token=ctx.session_token or ""),
        safe=True,
    )
    return [
        SessionOut(
            id=s.session_id,
            surface=s.surface,
            client_ip=s.client_ip,
            user_agent=s.user_agent,
            created_at=time_of(s, "created_at", whole_seconds=True),
            last_seen_at=time_of(s, "last_seen_at", whole_seconds=True),
            current=s.current,
        )
        for s in listed.sessions
    ]


async def _revoke_session(ctx: Ctx, session_id: str) -> None:
    await ctx.call(
        ctx.backends.auth.RevokeSession,
        auth_pb2.RevokeSessionRequest(caller=ctx.caller(), session_id=session_id),
    )
    ctx.state.caches.sessions.drop((ctx.workspace_id, session_id))


async def _everywhere(ctx: Ctx) -> None:
    await ctx.call(
        ctx.backends.auth.LogoutEverywhere, auth_pb2.LogoutEverywhereRequest(caller=ctx.caller())
    )
    forget_sessions(ctx, ctx.person_id)
    ctx.clear_session_cookie()


def _token(t: auth_pb2.ApiTokenSummary) -> TokenOut:
    return TokenOut(
        id=t.id,
        name=t.name,
        prefix=t.prefix,
        created_at=time_of(t, "created_at", whole_seconds=True),
        last_used_at=time_of(t, "last_used_at", whole_seconds=True),
        expires_at=time_of(t, "expires_at", whole_seconds=True),
    )


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


# -- JSON handlers ------------------------------------------------------------------------


async def get_profile(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(await _profile(ctx))


async def patch_profile(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _update(ctx, ctx.body)
    return ctx.json(await _profile(ctx))


async def post_password(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: PasswordIn = ctx.body
    await _change_password(ctx, body.current_password, body.new_password)
    return ctx.json(Ok())


async def get_2fa(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(await _two_factor(ctx))


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


async def get_sessions(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(SessionList(items=await _sessions(ctx)))


async def delete_session(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _revoke_session(ctx, request.match_info["session_id"])
    return ctx.json(Ok())


async def post_everywhere(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _everywhere(ctx)
    return ctx.json(Ok())


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


async def list_tokens(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    listed = await ctx.call(
        ctx.backends.auth.ListApiTokens,
        auth_pb2.ListApiTokensRequest(caller=ctx.caller()),
        safe=True,
    )
    return ctx.json(TokenList(items=[_token(t) for t in listed.tokens]))


async def _create_token(ctx: Ctx, name: str, days: int) -> TokenCreated:
    created = await ctx.call(
        ctx.backends.auth.CreateApiToken,
        auth_pb2.CreateApiTokenRequest(caller=ctx.caller(), name=name, expires_in_days=days),
    )
    return TokenCreated(token=_token(created.token), secret=created.secret)


async def create_token(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: TokenIn = ctx.body
    return ctx.json(await _create_token(ctx, body.name, body.expires_in_days), status=201)


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


# -- pages --------------------------------------------------------------------------------


async def _render_profile(
    ctx: Ctx,
    *,
    notice: str = "",
    error: str = "",
    errors: dict[str, str] | None = None,
    section: str = "",
    status: int = 200,
) -> web.Response:
    return ctx.render(
        "profile/profile.html",
        {
            "profile": await _profile(ctx),
            "sessions": await _sessions(ctx),
            "base": _base(ctx),
            "notice": notice,
            "error": error,
            "errors": errors or {},
            "section": section,
        },
        status=status,
    )


async def profile_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_profile(ctx, notice=request.query.get("notice", ""))


async def _form_action(ctx: Ctx, section: str, action: Any, notice: str) -> web.StreamResponse:
    try:
        await action()
    except ApiError as exc:
        if exc.status in (401, 403, 404, 429, 503, 504):
            raise
        return await _render_profile(
            ctx, error=exc.message, errors=exc.fields, section=section, status=exc.status
        )
    return see_other(f"{_base(ctx)}?notice={notice}")


async def profile_details_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    patch = ProfilePatch(
        name=raw.get("name", "").strip() or None, login_name=raw.get("login_name", "")
    )
    return await _form_action(ctx, "details", lambda: _update(ctx, patch), "saved")


async def profile_notifications_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    prefs = Notifications(**{f: raw.get(f) == "on" for f in Notifications.__struct_fields__})
    return await _form_action(
        ctx, "notifications", lambda: _update(ctx, ProfilePatch(notifications=prefs)), "saved"
    )


async def profile_password_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    if raw.get("new_password", "") != raw.get("confirm_password", ""):
        return await _render_profile(
            ctx,
            errors={"confirm_password": "does not match the new password"},
            error="The passwords do not match.",
            section="password",
            status=422,
        )
    return await _form_action(
        ctx,
        "password",
        lambda: _change_password(ctx, raw.get("current_password", ""), raw.get("new_password", "")),
        "password_changed",
    )


async def profile_revoke_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    sid = request.match_info["session_id"]
    return await _form_action(ctx, "sessions", lambda: _revoke_session(ctx, sid), "session_ended")


async def profile_everywhere_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _everywhere(ctx)
    return see_other("/login?notice=signed_out")


async def _render_2fa(ctx: Ctx, status: int = 200, **values: Any) -> web.Response:
    context = {
        "two_factor": await _two_factor(ctx),
        "base": _base(ctx),
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
    return see_other(f"{_base(ctx)}?notice=two_factor_off")


async def two_factor_recovery_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    try:
        codes = await _regenerate(ctx, raw.get("code", ""))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _render_2fa(ctx, status=exc.status, error=exc.message)
    return await _render_2fa(ctx, codes=codes)


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
    }
    context.update(values)
    return ctx.render("profile/api_tokens.html", context, status=status)


async def tokens_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_tokens(ctx)


async def tokens_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    try:
        days = int(raw.get("expires_in_days", "90") or "90")
        created = await _create_token(ctx, raw.get("name", ""), days)
    except ValueError:
        return await _render_tokens(ctx, status=422, error="expires_in_days: must be a number")
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _render_tokens(ctx, status=422, error=exc.message)
    return await _render_tokens(ctx, status=201, created=created)


async def token_revoke_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _revoke_token(ctx, request.match_info["token_id"])
    return see_other("/management/api-tokens")


def _profile_routes(surface: str, page: str, api: str) -> list[Route]:
    s: dict[str, Any] = {"surface": surface}
    e: dict[str, Any] = {"surface": surface, "allow_enrollment": True}
    return [
        Route("GET", api, get_profile, response=ProfileOut, summary="My profile", **s),
        Route(
            "PATCH",
            api,
            patch_profile,
            body=ProfilePatch,
            response=ProfileOut,
            summary="Change my name, username or notification preferences",
            **s,
        ),
        Route(
            "POST",
            f"{api}/password",
            post_password,
            body=PasswordIn,
            response=Ok,
            summary="Change my password (other sessions end)",
            **s,
        ),
        Route(
            "GET", f"{api}/2fa", get_2fa, response=TwoFactorOut, summary="My two-factor status", **e
        ),
        Route(
            "POST",
            f"{api}/2fa/enroll",
            post_2fa_enroll,
            response=EnrollmentOut,
            summary="Start TOTP enrollment: secret and QR code",
            **e,
        ),
        Route(
            "POST",
            f"{api}/2fa/confirm",
            post_2fa_confirm,
            body=CodeIn,
            response=RecoveryCodesOut,
            summary="Confirm enrollment with a first code; recovery codes shown once",
            **e,
        ),
        Route(
            "POST",
            f"{api}/2fa/disable",
            post_2fa_disable,
            body=DisableIn,
            response=Ok,
            summary="Turn two-factor off (password and code)",
            **s,
        ),
        Route(
            "POST",
            f"{api}/2fa/recovery-codes",
            post_2fa_recovery,
            body=CodeIn,
            response=RecoveryCodesOut,
            summary="New recovery codes (old ones stop working)",
            **s,
        ),
        Route(
            "GET", f"{api}/sessions", get_sessions, response=SessionList, summary="My sessions", **s
        ),
        Route(
            "DELETE",
            f"{api}/sessions/{{session_id}}",
            delete_session,
            response=Ok,
            summary="End one of my sessions",
            **s,
        ),
        Route(
            "POST",
            f"{api}/sessions/sign-out-everywhere",
            post_everywhere,
            response=Ok,
            summary="End all my sessions",
            **s,
        ),
        Route("GET", page, profile_page, kind="page", summary="Profile page", **s),
        Route(
            "POST",
            f"{page}/details",
            profile_details_submit,
            kind="page",
            summary="Profile form",
            **s,
        ),
        Route(
            "POST",
            f"{page}/notifications",
            profile_notifications_submit,
            kind="page",
            summary="Notification preferences form",
            **s,
        ),
        Route(
            "POST",
            f"{page}/password",
            profile_password_submit,
            kind="page",
            summary="Password form",
            **s,
        ),
        Route(
            "POST",
            f"{page}/sessions/{{session_id}}/revoke",
            profile_revoke_submit,
            kind="page",
            summary="End a session",
            **s,
        ),
        Route(
            "POST",
            f"{page}/sessions/sign-out-everywhere",
            profile_everywhere_submit,
            kind="page",
            summary="Sign out everywhere",
            **s,
        ),
        Route("GET", f"{page}/2fa", two_factor_page, kind="page", summary="Two-factor page", **e),
        Route(
            "POST",
            f"{page}/2fa/enroll",
            two_factor_enroll_submit,
            kind="page",
            summary="Start 2FA",
            **e,
        ),
        Route(
            "POST",
            f"{page}/2fa/confirm",
            two_factor_confirm_submit,
            kind="page",
            summary="Confirm 2FA",
            **e,
        ),
        Route(
            "POST",
            f"{page}/2fa/disable",
            two_factor_disable_submit,
            kind="page",
            summary="Turn 2FA off",
            **s,
        ),
        Route(
            "POST",
            f"{page}/2fa/recovery-codes",
            two_factor_recovery_submit,
            kind="page",
            summary="New recovery codes",
            **s,
        ),
    ]


_M: dict[str, Any] = {"surface": "management"}
ROUTES: list[Route] = [
    *_profile_routes("portal", "/profile", "/api/v1/profile"),
    *_profile_routes("management", "/management/profile", "/management/api/v1/profile"),
    Route(
        "GET",
        "/management/api/v1/sso",
        get_sso,
        permissions=("Settings:manage",),
        response=SsoOut,
        summary="The workspace's OIDC single sign-on (the client secret is never returned)",
        **_M,
    ),
    Route(
        "PUT",
        "/management/api/v1/sso",
        put_sso,
        permissions=("Settings:manage",),
        body=SsoIn,
        response=SsoOut,
        summary="Configure OIDC single sign-on (empty secret keeps the stored one)",
        **_M,
    ),
    Route(
        "GET",
        "/management/sso",
        sso_page,
        kind="page",
        permissions=("Settings:manage",),
        summary="Single sign-on settings page",
        **_M,
    ),
    Route(
        "POST",
        "/management/sso",
        sso_submit,
        kind="page",
        permissions=("Settings:manage",),
        summary="Single sign-on settings form",
        **_M,
    ),
    Route(
        "GET",
        "/management/api/v1/api-tokens",
        list_tokens,
        response=TokenList,
        summary="My personal API tokens",
        **_M,
    ),
    Route(
        "POST",
        "/management/api/v1/api-tokens",
        create_token,
        body=TokenIn,
        response=TokenCreated,
        status=201,
        summary="Create a personal API token (the secret is shown once)",
        **_M,
    ),
    Route(
        "DELETE",
        "/management/api/v1/api-tokens/{token_id}",
        revoke_token,
        response=Ok,
        summary="Revoke a personal API token",
        **_M,
    ),
    Route(
        "GET", "/management/api-tokens", tokens_page, kind="page", summary="API tokens page", **_M
    ),
    Route(
        "POST",
        "/management/api-tokens",
        tokens_submit,
        kind="page",
        summary="Create an API token",
        **_M,
    ),
    Route(
        "POST",
        "/management/api-tokens/{token_id}/revoke",
        token_revoke_submit,
        kind="page",
        summary="Revoke an API token",
        **_M,
    ),
    Route(
        "POST",
        "/management/api/v1/persons/{person_id}/two-factor/reset",
        reset_person_2fa,
        permissions=("Person:manage",),
        response=Ok,
        summary="Turn a person's two-factor off (their sessions end)",
        **_M,
    ),
    Route(
        "POST",
        "/management/api/v1/persons/{person_id}/password",
        set_person_password,
        permissions=("Person:manage",),
        body=SetPasswordIn,
        response=Ok,
        summary="Set a person's password (their sessions end)",
        **_M,
    ),
]
