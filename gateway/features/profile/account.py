"""My profile: name, username, notification preferences, password and sessions (portal and management)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from frontdesk.v1 import auth_pb2, directory_pb2

from gateway.errors import ApiError
from gateway.features.profile.common import Ok, base_path
from gateway.features.profile.two_factor import (
    CodeIn,
    DisableIn,
    EnrollmentOut,
    RecoveryCodesOut,
    TwoFactorOut,
    get_2fa,
    post_2fa_confirm,
    post_2fa_disable,
    post_2fa_enroll,
    post_2fa_recovery,
    two_factor_confirm_submit,
    two_factor_disable_submit,
    two_factor_enroll_submit,
    two_factor_page,
    two_factor_recovery_submit,
    two_factor_status,
)
from gateway.present import forget_sessions, see_other, time_of
from gateway.routing import Ctx, Route


class Notifications(msgspec.Struct):
    ticket_updates: bool = False
    issue_assigned: bool = False
    control_test_assigned: bool = False
    weekly_digest: bool = False


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


async def _profile(ctx: Ctx) -> ProfileOut:
    person = await ctx.call(
        ctx.backends.directory.GetPerson,
        directory_pb2.GetPersonRequest(caller=ctx.caller(), person_id=ctx.person_id),
        safe=True,
    )
    status = await two_factor_status(ctx)
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


async def get_profile(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(await _profile(ctx))


async def patch_profile(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _update(ctx, ctx.body)
    return ctx.json(await _profile(ctx))


async def post_password(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: PasswordIn = ctx.body
    await _change_password(ctx, body.current_password, body.new_password)
    return ctx.json(Ok())


async def get_sessions(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(SessionList(items=await _sessions(ctx)))


async def delete_session(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _revoke_session(ctx, request.match_info["session_id"])
    return ctx.json(Ok())


async def post_everywhere(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _everywhere(ctx)
    return ctx.json(Ok())


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
            "base": base_path(ctx),
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
    return see_other(f"{base_path(ctx)}?notice={notice}")


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


ROUTES: list[Route] = [
    *_profile_routes("portal", "/profile", "/api/v1/profile"),
    *_profile_routes("management", "/management/profile", "/management/api/v1/profile"),
]
