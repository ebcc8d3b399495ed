"""Gateway surface of sign-in: password and second-factor steps (pages and JSON), sign-out,
self-registration with e-mail confirmation, and OIDC single sign-on.

The auth service decides everything; this module moves cookies. The session cookie is
HttpOnly, SameSite=Lax and __Host-/Secure over HTTPS; a sign-in waiting for its second factor
holds a short-lived pending cookie; an SSO round trip is bound to the browser by a state cookie.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

import msgspec
from aiohttp import web
from frontdesk.v1 import auth_pb2

from gateway.cache import token_hash
from gateway.errors import ApiError
from gateway.present import see_other
from gateway.routing import Ctx, Route, is_secure

Surface = Literal["portal", "management"]
PENDING_SECONDS = 300
SSO_STATE_SECONDS = 600


# -- helpers ------------------------------------------------------------------------------


def _cookie_name(ctx: Ctx, name: str) -> str:
    return f"__Host-{name}" if is_secure(ctx.request, ctx.state.settings) else name


def _set_short_cookie(ctx: Ctx, name: str, value: str, max_age: int) -> None:
    ctx.set_cookie(
        _cookie_name(ctx, name),
        value,
        httponly=True,
        secure=is_secure(ctx.request, ctx.state.settings),
        samesite="Lax",
        path="/",
        max_age=max_age,
    )


def _read_cookie(ctx: Ctx, name: str) -> str:
    return ctx.request.cookies.get(_cookie_name(ctx, name), "")


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go to after sign-in; anything else (other hosts, schemes) -> default."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):  # CR/LF would split the header
        return default
    return value


def surface_for(next_path: str) -> Surface:
    return "management" if next_path.startswith("/management") else "portal"


def user_agent(ctx: Ctx) -> str:
    return ctx.request.headers.get("User-Agent", "")[:512]


def base_url(ctx: Ctx) -> str:
    scheme = "https" if is_secure(ctx.request, ctx.state.settings) else "http"
    return f"{scheme}://{ctx.request.host}"


def _start_session(ctx: Ctx, result: auth_pb2.LoginResponse) -> None:
    ctx.set_session_cookie(result.session_token)
    _set_short_cookie(ctx, "fd_pending", "", 0)


async def _password_step(
    ctx: Ctx, email: str, password: str, surface: str
) -> auth_pb2.LoginResponse:
    result: auth_pb2.LoginResponse = await ctx.call(
        ctx.backends.auth.Login,
        auth_pb2.LoginRequest(
            workspace_id=ctx.workspace_id,
            email=email,
            password=password,
            surface=surface,
            client_ip=ctx.client_ip,
            user_agent=user_agent(ctx),
        ),
    )
    if result.status == "second_factor":
        _set_short_cookie(ctx, "fd_pending", result.pending_token, PENDING_SECONDS)
    else:
        _start_session(ctx, result)
    return result


async def _code_step(ctx: Ctx, code: str) -> auth_pb2.LoginResponse:
    pending = _read_cookie(ctx, "fd_pending")
    if not pending:
        raise ApiError(401, "unauthenticated", "the sign-in has expired; sign in again")
    result: auth_pb2.LoginResponse = await ctx.call(
        ctx.backends.auth.VerifySecondFactor,
        auth_pb2.VerifySecondFactorRequest(
            workspace_id=ctx.workspace_id,
            pending_token=pending,
            code=code,
            client_ip=ctx.client_ip,
            user_agent=user_agent(ctx),
        ),
    )
    _start_session(ctx, result)
    return result


async def mail_configured(ctx: Ctx) -> bool:
    """Whether auth can send confirmation mail (domain-limited registration needs it)."""
    status = await ctx.call(
        ctx.backends.auth.GetMailStatus,
        auth_pb2.GetMailStatusRequest(workspace_id=ctx.workspace_id),
        safe=True,
    )
    return bool(status.configured)


async def _sso_enabled(ctx: Ctx) -> bool:
    try:
        config = await ctx.call(
            ctx.backends.auth.GetSsoConfig,
            auth_pb2.GetSsoConfigRequest(workspace_id=ctx.workspace_id),
            safe=True,
        )
    except ApiError:
        return False
    return bool(config.configured and config.enabled)


# -- JSON ---------------------------------------------------------------------------------


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    surface: Surface = "portal"


class LoginOut(msgspec.Struct):
    status: str
    person_id: str = ""


class CodeIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class RegisterOut(msgspec.Struct):
    status: str  # "registered" (sign in now) or "confirm_email"


class Ok(msgspec.Struct):
    status: str = "ok"


async def api_login(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: LoginIn = ctx.body
    result = await _password_step(ctx, body.email, body.password, body.surface)
    out = LoginOut(status=result.status, person_id="" if result.pending_token else result.person_id)
    return ctx.json(out)


async def api_totp(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: CodeIn = ctx.body
    result = await _code_step(ctx, body.code)
    return ctx.json(LoginOut(status=result.status, person_id=result.person_id))


async def _logout(ctx: Ctx) -> None:
    if ctx.session_token:
        await ctx.call(
            ctx.backends.auth.Logout,
            auth_pb2.LogoutRequest(workspace_id=ctx.workspace_id, token=ctx.session_token),
        )
        ctx.state.caches.sessions.drop((ctx.workspace_id, token_hash(ctx.session_token)))
    ctx.clear_session_cookie()


async def api_logout(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _logout(ctx)
    return ctx.json(Ok())


async def _register(ctx: Ctx, email: str, name: str, password: str) -> str:
    result = await ctx.call(
        ctx.backends.auth.Register,
        auth_pb2.RegisterRequest(
            workspace_id=ctx.workspace_id,
            email=email,
            name=name,
            password=password,
            confirm_url_base=base_url(ctx) + "/register/confirm",
            client_ip=ctx.client_ip,
        ),
    )
    return "confirm_email" if result.confirmation_required else "registered"


async def api_register(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: RegisterIn = ctx.body
    status = await _register(ctx, body.email, body.name, body.password)
    return ctx.json(RegisterOut(status=status), status=201)


# -- pages --------------------------------------------------------------------------------


class LoginForm(msgspec.Struct):
    email: str = ""
    password: str = ""
    next: str = "/"


class CodeForm(msgspec.Struct):
    code: str = ""
    next: str = "/"


class RegisterForm(msgspec.Struct):
    email: str = ""
    name: str = ""
    password: str = ""


def _after_sign_in(result: auth_pb2.LoginResponse, next_path: str) -> web.Response:
    if result.status == "second_factor":
        return see_other("/login/totp?next=" + quote(next_path, safe="/"))
    if result.status == "enroll_two_factor":
        return see_other("/profile/2fa")
    return see_other(next_path)


async def _render_login(
    ctx: Ctx,
    next_path: str,
    *,
    email: str = "",
    error: str | None = None,
    registration: bool = False,
    notice: str = "",
    status: int = 200,
) -> web.Response:
    return ctx.render(
        "auth/login.html",
        {
            "next": next_path,
            "email": email,
            "error": error,
            "sso": await _sso_enabled(ctx),
            "registration": registration,
            "surface": surface_for(next_path),
            "notice": notice,
        },
        status=status,
    )


async def login_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    next_path = safe_next(request.query.get("next"))
    if ctx.person is not None:
        raise ctx.redirect(next_path)
    return await _render_login(
        ctx,
        next_path,
        registration=_registration_open(ctx),
        notice=request.query.get("notice", ""),
    )


async def login_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    next_path = safe_next(raw.get("next"))
    try:
        result = await _password_step(
            ctx, raw.get("email", ""), raw.get("password", ""), surface_for(next_path)
        )
    except ApiError as exc:
        response = await _render_login(
            ctx, next_path, email=raw.get("email", ""), error=exc.message, status=exc.status
        )
        for key, value in exc.headers.items():
            response.headers[key] = value
        return response
    return _after_sign_in(result, next_path)


async def totp_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    next_path = safe_next(request.query.get("next"))
    if not _read_cookie(ctx, "fd_pending"):
        raise ctx.redirect("/login?next=" + quote(next_path, safe="/"))
    return ctx.render("auth/totp.html", {"next": next_path, "error": None})


async def totp_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    next_path = safe_next(raw.get("next"))
    try:
        result = await _code_step(ctx, raw.get("code", ""))
    except ApiError as exc:
        if exc.status == 401 and "again" in exc.message:
            _set_short_cookie(ctx, "fd_pending", "", 0)
        return ctx.render(
            "auth/totp.html", {"next": next_path, "error": exc.message}, status=exc.status
        )
    return see_other(next_path if result.status == "ok" else "/login")


async def logout_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    if ctx.person is None:
        raise ctx.redirect("/login")
    return ctx.render("auth/logout.html")


async def logout_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _logout(ctx)
    return see_other("/login?notice=signed_out")


def _registration_open(ctx: Ctx) -> bool:
    return ctx.portal_settings is not None and ctx.portal_settings.self_registration in (
        "open",
        "domains",
    )


async def register_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    if not _registration_open(ctx):
        raise ApiError(404, "not_found", "self-registration is not available here")
    return ctx.render("auth/register.html", {"raw": {}, "error": None, "errors": {}, "done": ""})


async def register_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    if not _registration_open(ctx):
        raise ApiError(404, "not_found", "self-registration is not available here")
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    try:
        status = await _register(
            ctx, raw.get("email", ""), raw.get("name", ""), raw.get("password", "")
        )
    except ApiError as exc:
        shown = {k: v for k, v in raw.items() if k != "password"}
        return ctx.render(
            "auth/register.html",
            {"raw": shown, "error": exc.message, "errors": exc.fields or {}, "done": ""},
            status=exc.status,
        )
    if status == "registered":
        raise ctx.redirect("/login?notice=registered")
    return ctx.render(
        "auth/register.html", {"raw": {}, "error": None, "errors": {}, "done": status}
    )


async def confirm_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    token = request.query.get("token", "")
    try:
        await ctx.call(
            ctx.backends.auth.ConfirmEmail,
            auth_pb2.ConfirmEmailRequest(workspace_id=ctx.workspace_id, token=token),
        )
    except ApiError as exc:
        return ctx.render("auth/confirmed.html", {"error": exc.message}, status=exc.status)
    return ctx.render("auth/confirmed.html", {"error": None})


# -- SSO ----------------------------------------------------------------------------------


async def sso_start(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    next_path = safe_next(request.query.get("next"))
    started = await ctx.call(
        ctx.backends.auth.StartSso,
        auth_pb2.StartSsoRequest(
            workspace_id=ctx.workspace_id,
            redirect_uri=base_url(ctx) + "/auth/sso/callback",
            surface=surface_for(next_path),
            next=next_path,
        ),
    )
    _set_short_cookie(ctx, "fd_sso", started.state, SSO_STATE_SECONDS)
    return see_other(started.authorization_url)


async def sso_callback(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q = request.query
    state = q.get("state", "")
    bound = _read_cookie(ctx, "fd_sso")
    _set_short_cookie(ctx, "fd_sso", "", 0)
    if not state or not bound or state != bound:
        # The state must come back to the browser that started the sign-in (login CSRF).
        raise ApiError(401, "unauthenticated", "this sign-in was not started here; start again")
    result = await ctx.call(
        ctx.backends.auth.FinishSso,
        auth_pb2.FinishSsoRequest(
            workspace_id=ctx.workspace_id,
            state=state,
            code=q.get("code", ""),
            iss=q.get("iss", ""),
            redirect_uri=base_url(ctx) + "/auth/sso/callback",
            client_ip=ctx.client_ip,
            user_agent=user_agent(ctx),
            error=q.get("error", ""),
        ),
    )
    _start_session(ctx, result)
    return see_other(safe_next(result.next))


def _routes() -> list[Route]:
    pub: dict[str, Any] = {"surface": "public"}
    return [
        Route(
            "POST",
            "/auth/login",
            api_login,
            body=LoginIn,
            response=LoginOut,
            summary="Sign in with e-mail and password (then /auth/totp when asked); "
            "403 portal_access_off when the person's portal access is off",
            **pub,
        ),
        Route(
            "POST",
            "/auth/totp",
            api_totp,
            body=CodeIn,
            response=LoginOut,
            summary="Second sign-in step: a TOTP or recovery code",
            **pub,
        ),
        Route("POST", "/auth/logout", api_logout, response=Ok, summary="Sign out", **pub),
        Route(
            "POST",
            "/auth/register",
            api_register,
            body=RegisterIn,
            response=RegisterOut,
            status=201,
            summary="Self-registration (when the workspace allows it); "
            "403 registration_closed when it is off",
            **pub,
        ),
        Route(
            "GET",
            "/auth/sso/start",
            sso_start,
            kind="page",
            summary="Start single sign-on (redirects to the identity provider)",
            **pub,
        ),
        Route(
            "GET",
            "/auth/sso/callback",
            sso_callback,
            kind="page",
            summary="Return from the identity provider",
            **pub,
        ),
        Route("GET", "/login", login_page, kind="page", summary="Sign-in page", **pub),
        Route("POST", "/login", login_submit, kind="page", summary="Sign-in form", **pub),
        Route("GET", "/login/totp", totp_page, kind="page", summary="Second-factor page", **pub),
        Route("POST", "/login/totp", totp_submit, kind="page", summary="Second-factor form", **pub),
        Route("GET", "/logout", logout_page, kind="page", summary="Sign-out page", **pub),
        Route("POST", "/logout", logout_submit, kind="page", summary="Sign out", **pub),
        Route("GET", "/register", register_page, kind="page", summary="Registration page", **pub),
        Route(
            "POST", "/register", register_submit, kind="page", summary="Registration form", **pub
        ),
        Route(
            "GET",
            "/register/confirm",
            confirm_page,
            kind="page",
            summary="Confirm an e-mail address",
            **pub,
        ),
    ]


ROUTES: list[Route] = _routes()
