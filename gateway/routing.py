"""The route table's building blocks and the one place where every request is checked.

Each route is declared once (features/<area>/<concept>.py, joined in routes.py) with its surface,
the permissions and portal section it needs and its body schema. `build_handler` runs STEPS
before its handler: the host names a known workspace; the caller is signed in (session cookie,
or an API token for the management API) and, for the portal, has portal access; a portal
section that is off answers 404; the permissions are held; state-changing requests carry the
CSRF token; the JSON body matches the schema (422 otherwise).

Over 600 lines on purpose: the Route record and the request pipeline's named steps are read together; the upload/CSRF streaming steps are the next to move out.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp_jinja2
import grpc
import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from frontdesk.v1 import auth_pb2, common_pb2, directory_pb2
from multidict import MultiDictProxy

from gateway.backends import Backends
from gateway.cache import Caches, token_hash
from gateway.errors import ApiError, from_grpc, not_found
from gateway.principals import Credential, credential_var
from gateway.settings import Settings
from services.chassis.grpcio import call

Surface = Literal["public", "portal", "management"]
Kind = Literal["api", "page"]
Handler = Callable[[web.Request, "Ctx"], Awaitable[web.StreamResponse]]
T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MANAGEMENT_PERMISSIONS = frozenset(
    {
        "Ticket:manage",
        "Issue:manage",
        "Control:manage",
        "Person:read",
        "Person:manage",
        "Role:manage",
        "Group:manage",
        "Settings:manage",
        "Audit:read",
    }
)
SECTION_FIELDS = {
    "tickets": "tickets_enabled",
    "issues": "issues_enabled",
    "control_tests": "control_tests_enabled",
}
SECTION_LABELS = {"tickets": "Tickets", "issues": "Issues", "control_tests": "Control tests"}
CSRF_COOKIE = "fd_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Route:
    """One HTTP route and everything needed to guard and document it."""

    method: str
    path: str
    handler: Handler
    surface: Surface = "portal"
    kind: Kind = "api"
    permissions: tuple[str, ...] = ()
    section: str | None = None
    body: type[msgspec.Struct] | None = None
    query: type[msgspec.Struct] | None = None
    response: Any = None
    summary: str = ""
    max_body: int | None = None
    # Sessions that still have to enrol in 2FA (workspace requires it) may use this route.
    allow_enrollment: bool = False
    # Ops routes (/healthz, /readyz) answer on any host.
    needs_workspace: bool = True
    status: int = 200
    # Another success status the handler answers with the same body (202: a job started).
    also_status: int | None = None
    # A body the handler reads itself rather than as JSON by `body`: the media types it takes
    # (documented as a string, or a form whose field "file" is the upload).
    uploads: tuple[str, ...] = ()
    # The handler reads the body as a stream (gateway/uploads.py: files go on to a service as
    # they arrive, never buffered or spooled here). Without the CSRF header, a form's token is
    # then checked when the stream reaches it: it must be the form's first field.
    streams_body: bool = False
    # OpenAPI: the multipart body's schema (default: the person import's), and whether the
    # answer is a file (binary) rather than JSON.
    upload_schema: dict[str, Any] | None = None
    downloads: bool = False
    # False only for a POST whose URL carries its own authority and that mail clients send
    # without cookies (RFC 8058 one-click unsubscribe): no CSRF token is asked for.
    csrf: bool = True


@dataclass
class GatewayState:
    settings: Settings
    backends: Backends
    caches: Caches


STATE_KEY = web.AppKey("frontdesk_state", GatewayState)
ROUTE_KEY = web.RequestKey("frontdesk_route", Route)
CTX_KEY: web.RequestKey[Ctx] = web.RequestKey("frontdesk_ctx")
WORKSPACE_KEY = web.RequestKey("frontdesk_workspace", directory_pb2.Workspace)


def session_cookie_name(secure: bool) -> str:
    # __Host- requires Secure; over plain HTTP (local runs) the cookie has no prefix.
    return "__Host-fd_session" if secure else "fd_session"


def is_secure(request: web.Request, settings: Settings) -> bool:
    return settings.secure_cookies or request.secure


def csrf_for_session(session_token: str) -> str:
    """The CSRF token of a session: derived from the (HttpOnly) token, so no state is kept."""
    return hmac.new(session_token.encode(), b"frontdesk-csrf", "sha256").hexdigest()[:40]


@dataclass
class Ctx:
    """What a handler knows about the request after the checks passed."""

    request: web.Request
    route: Route
    state: GatewayState
    workspace: directory_pb2.Workspace | None = None
    portal_settings: directory_pb2.PortalSettings | None = None
    session: auth_pb2.SessionInfo | None = None
    session_token: str | None = None
    via_api_token: bool = False
    person: directory_pb2.EffectivePermissions | None = None
    permissions: frozenset[str] = frozenset()
    body: Any = None
    query: Any = None
    anonymous_csrf: str = ""
    # A streamed form's CSRF token is still to be checked (Route.streams_body).
    csrf_deferred: bool = False
    _set_cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    # -- identity -----------------------------------------------------------------------
    @property
    def workspace_id(self) -> str:
        assert self.workspace is not None
        return self.workspace.id

    @property
    def person_id(self) -> str:
        return self.person.person_id if self.person else ""

    def caller(self) -> common_pb2.Caller:
        return common_pb2.Caller(
            workspace_id=self.workspace.id if self.workspace else "",
            person_id=self.person_id,
            permissions=sorted(self.permissions),
        )

    def has(self, *permissions: str) -> bool:
        return all(p in self.permissions for p in permissions)

    def section_on(self, section: str) -> bool:
        if self.portal_settings is None:
            return False
        return bool(getattr(self.portal_settings, SECTION_FIELDS[section]))

    @property
    def is_manager(self) -> bool:
        return bool(self.permissions & MANAGEMENT_PERMISSIONS)

    @property
    def client_ip(self) -> str:
        """The caller's address; X-Forwarded-For is believed only from a trusted proxy."""
        return client_ip(self.request, self.state.settings.trusted_proxies)

    @property
    def csrf_token(self) -> str:
        if self.session_token:
            return csrf_for_session(self.session_token)
        return self.anonymous_csrf

    # -- backends -----------------------------------------------------------------------
    @property
    def backends(self) -> Backends:
        return self.state.backends

    async def call(
        self, method: Callable[..., Awaitable[T]], request: Any, *, safe: bool = False
    ) -> T:
        """Call a backend with the gateway's deadline; gRPC errors become ApiErrors."""
        try:
            return await call(
                method, request, timeout=self.state.settings.backend_timeout, safe=safe
            )
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc) from None

    # -- responses ----------------------------------------------------------------------
    def json(self, data: Any, status: int = 200) -> web.Response:
        return web.Response(
            body=msgspec.json.encode(data), status=status, content_type="application/json"
        )

    def render(
        self, template: str, context: dict[str, Any] | None = None, status: int = 200
    ) -> web.Response:
        from gateway.nav import page_context

        values = page_context(self)
        values.update(context or {})
        return aiohttp_jinja2.render_template(template, self.request, values, status=status)

    def redirect(self, location: str) -> web.HTTPSeeOther:
        return web.HTTPSeeOther(location)

    def set_cookie(self, name: str, value: str, **options: Any) -> None:
        """Queue a cookie for whatever response the handler returns."""
        self._set_cookies.append((name, value, options))

    def set_session_cookie(self, token: str, max_age: int | None = None) -> None:
        secure = is_secure(self.request, self.state.settings)
        self.set_cookie(
            session_cookie_name(secure),
            token,
            httponly=True,
            secure=secure,
            samesite="Lax",
            path="/",
            max_age=max_age,
        )

    def clear_session_cookie(self) -> None:
        self.set_session_cookie("", max_age=0)

    # -- forms --------------------------------------------------------------------------
    async def form(self) -> dict[str, str]:
        data = await read_form(self.request)
        return {k: v for k, v in data.items() if isinstance(v, str)}

    async def parse_form(self, schema: type[S]) -> tuple[S | None, dict[str, str], dict[str, str]]:
        """(value, field errors, raw values) of a form post, for re-rendering it on errors."""
        raw = await self.form()
        raw.pop(CSRF_FIELD, None)
        cleaned: dict[str, Any] = {k: v for k, v in raw.items() if v != ""}
        try:
            return msgspec.convert(cleaned, type=schema, strict=False), {}, raw
        except msgspec.ValidationError as exc:
            return None, validation_fields(exc), raw


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form; a body that is no form of its declared type (a multipart part with a
    bad header, no boundary, undecodable text, an unknown charset) is the client's error: 400."""
    try:
        return await request.post()
    except (HttpProcessingError, ValueError, LookupError) as exc:  # LookupError: charset
        raise ApiError(400, "bad_form", "the form data is malformed") from exc


def client_ip(
    request: web.Request, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> str:
    remote = request.remote or ""
    if not trusted:
        return remote
    try:
        hop = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    # Walk X-Forwarded-For from the right, skipping our own proxies.
    chain = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()]
    while any(hop in net for net in trusted) and chain:
        try:
            hop = ipaddress.ip_address(chain.pop())
        except ValueError:
            break
    return str(hop)


_NAMED_FIELD = re.compile(r"^Object (missing required|contains unknown) field `([^`]+)`$")


def validation_fields(exc: msgspec.ValidationError) -> dict[str, str]:
    """'Expected `int`, got `str` - at `$.impact`' -> {'impact': 'Expected `int`, got `str`'}.

    A missing or unknown top-level field names itself in the message rather than in the
    location: 'Object missing required field `email`' -> {'email': 'required field missing'}.
    """
    text = str(exc)
    message, sep, where = text.rpartition(" - at `$.")
    if sep:
        name = where.rstrip("`").split(".")[0].split("[")[0]
        return {name: message}
    named = _NAMED_FIELD.match(text)
    if named:
        missing = named.group(1) == "missing required"
        return {named.group(2): "required field missing" if missing else "unknown field"}
    return {"body": text}


def _wants_html(route: Route) -> bool:
    return route.kind == "page"


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    target = request.path_qs
    return web.HTTPSeeOther(f"/login?next={quote(target, safe='/')}")


async def _load_settings(ctx: Ctx) -> directory_pb2.PortalSettings:
    ws = ctx.workspace_id
    caches = ctx.state.caches

    async def load() -> directory_pb2.PortalSettings:
        req = directory_pb2.GetPortalSettingsRequest(caller=common_pb2.Caller(workspace_id=ws))
        return await ctx.call(ctx.backends.directory.GetPortalSettings, req, safe=True)

    return await caches.settings.get_or_load(ws, load)


async def _resolve_identity(ctx: Ctx) -> None:
    """Fill session and person from the cookie or (management API) bearer token, via caches."""
    request, state = ctx.request, ctx.state
    ws = ctx.workspace_id
    auth_header = request.headers.get("Authorization", "")
    if auth_header.startswith("Bearer ") and request.path.startswith("/management/api/"):
        token = auth_header[7:].strip()
        key = (ws, token_hash(token))

        async def load_api() -> auth_pb2.SessionInfo:
            req = auth_pb2.ResolveApiTokenRequest(workspace_id=ws, token=token)
            return await ctx.call(state.backends.auth.ResolveApiToken, req, safe=True)

        try:
            ctx.session = await state.caches.sessions.get_or_load(key, load_api)
        except ApiError as exc:
            if exc.status in (401, 404):
                return
            raise
        ctx.via_api_token = True
    else:
        secure = is_secure(request, state.settings)
        cookie = request.cookies.get(session_cookie_name(secure)) or request.cookies.get(
            session_cookie_name(not secure)
        )
        if not cookie:
            return
        token = cookie
        key = (ws, token_hash(token))

        async def load_session() -> auth_pb2.SessionInfo:
            req = auth_pb2.ResolveSessionRequest(workspace_id=ws, token=token, touch=True)
            return await ctx.call(state.backends.auth.ResolveSession, req, safe=True)

        try:
            ctx.session = await state.caches.sessions.get_or_load(key, load_session)
        except ApiError as exc:
            if exc.status in (401, 404):
                ctx.clear_session_cookie()
                return
            raise
        ctx.session_token = token
    if ctx.session is None:
        return
    person_id = ctx.session.person_id
    # Backend calls naming this person carry the principal auth issues for this session.
    credential_var.set(
        Credential(
            workspace_id=ws,
            person_id=person_id,
            token=token,
            api_token=ctx.via_api_token,
            surface="management" if ctx.route.surface == "management" else "portal",
        )
    )

    async def load_person() -> directory_pb2.EffectivePermissions:
        req = directory_pb2.GetEffectivePermissionsRequest(
            caller=common_pb2.Caller(workspace_id=ws), person_id=person_id
        )
        return await ctx.call(state.backends.directory.GetEffectivePermissions, req, safe=True)

    person = await state.caches.permissions.get_or_load((ws, person_id), load_person)
    if not person.active:
        ctx.session = None
        ctx.session_token = None
        return
    ctx.person = person
    ctx.permissions = frozenset(person.permissions)


def check_csrf(ctx: Ctx, submitted: str | None) -> None:
    """The CSRF check, for handlers that read a streamed form's token themselves."""
    _check_csrf(ctx, submitted)


def _check_csrf(ctx: Ctx, submitted: str | None) -> None:
    if ctx.via_api_token:
        return  # bearer tokens are not sent by browsers on their own
    expected = ctx.csrf_token
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise ApiError(403, "csrf", "missing or invalid CSRF token; reload the page and try again")


def body_limit(route: Route, settings: Settings) -> int:
    """The largest request body a route takes: its own max_body, else the gateway's limit."""
    return route.max_body or settings.max_body_bytes


def too_large(limit: int) -> ApiError:
    mib = 1024 * 1024
    size = f"{limit // mib} MB" if limit >= mib and limit % mib == 0 else f"{limit} bytes"
    return ApiError(413, "too_large", f"the request body is too large; the limit is {size}")


async def _parse_json_body(ctx: Ctx) -> Any:
    route, request = ctx.route, ctx.request
    raw = await request.read()
    limit = body_limit(route, ctx.state.settings)
    if len(raw) > limit:  # a chunked body has no Content-Length to refuse it by
        raise too_large(limit)
    if route.body is None:
        return None
    if not raw:
        raw = b"{}"
    try:
        # JSON is UTF-8 (RFC 8259): anything else (invalid or overlong sequences, encoded
        # surrogates, UTF-16/32, a byte order mark) is refused before parsing.
        raw.decode("utf-8")
        # The whole document first: the typed pass stops at an unknown or wrong field and
        # would let a broken string there (a lone surrogate escape, a raw NUL) pass as 422.
        msgspec.json.decode(raw)
        return msgspec.json.decode(raw, type=route.body)
    except msgspec.ValidationError as exc:
        fields = validation_fields(exc)
        raise ApiError(422, "invalid", "the request body is invalid", fields) from None
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "the request body is not valid UTF-8 JSON") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None


async def workspace_step(ctx: Ctx) -> None:
    """The host names a known workspace (404 otherwise); its portal settings are loaded."""
    if not ctx.route.needs_workspace:
        return
    workspace = ctx.request.get(WORKSPACE_KEY)
    if workspace is None:
        raise not_found("workspace")
    ctx.workspace = workspace
    ctx.portal_settings = await _load_settings(ctx)


async def identity_step(ctx: Ctx) -> None:
    """Who asks: the session cookie or an API token, resolved (and cached) through auth."""
    if ctx.route.needs_workspace:
        await _resolve_identity(ctx)


async def csrf_cookie_step(ctx: Ctx) -> None:
    """Every visitor gets the anonymous double-submit CSRF cookie (sign-in forms need it)."""
    ctx.anonymous_csrf = ctx.request.cookies.get(CSRF_COOKIE, "")
    if not ctx.anonymous_csrf:
        ctx.anonymous_csrf = secrets.token_urlsafe(24)
        ctx.set_cookie(
            CSRF_COOKIE,
            ctx.anonymous_csrf,
            httponly=True,
            samesite="Lax",
            path="/",
            secure=is_secure(ctx.request, ctx.state.settings),
        )


async def access_step(ctx: Ctx) -> None:
    """Signed in, two-factor enrolled if required, portal access / a management permission."""
    route, request = ctx.route, ctx.request
    if route.surface == "public":
        return
    if ctx.session is None or ctx.person is None:
        if _wants_html(route):
            raise login_redirect(request)
        raise ApiError(401, "unauthenticated", "sign in first")
    if ctx.session.two_factor_pending_enrollment and not route.allow_enrollment:
        if _wants_html(route):
            in_management = request.path.startswith("/management")
            raise web.HTTPSeeOther("/management/profile/2fa" if in_management else "/profile/2fa")
        raise ApiError(
            403, "two_factor_required", "this workspace requires two-factor; enrol first"
        )
    if route.surface == "portal":
        if not ctx.person.portal_access:
            raise ApiError(
                403, "portal_access_disabled", "portal access is not enabled for your account"
            )
        return
    if ctx.via_api_token and not request.path.startswith("/management/api/"):
        raise ApiError(401, "unauthenticated", "API tokens work only on the management API")
    # A token is worth no more than its owner: without a management permission
    # (say, every admin role revoked) it opens nothing, not even /api-tokens.
    if not ctx.is_manager:
        raise ApiError(403, "forbidden", "the management console needs a management permission")


async def section_step(ctx: Ctx) -> None:
    """A portal section that is off is gone (404, no data), and says so: a bookmark to it should
    not look like a broken link. Section toggles do not touch management."""
    section = ctx.route.section
    if ctx.route.surface != "management" and section is not None and not ctx.section_on(section):
        label = SECTION_LABELS[section]
        raise ApiError(
            404, "not_found", f"{label} are turned off in this portal by its administrator"
        )


async def permissions_step(ctx: Ctx) -> None:
    """Every permission the route names is held (403 naming the missing ones)."""
    if ctx.route.surface == "public":
        return
    missing = [p for p in ctx.route.permissions if p not in ctx.permissions]
    if missing:
        raise ApiError(403, "forbidden", f"this needs the permission {', '.join(missing)}")


async def csrf_step(ctx: Ctx) -> None:
    """A state-changing request is not too large (413) and carries the CSRF token."""
    request = ctx.request
    if request.method in SAFE_METHODS:
        return
    if not ctx.route.csrf:
        return
    limit = body_limit(ctx.route, ctx.state.settings)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None and ctx.route.streams_body:
        ctx.csrf_deferred = True  # checked by gateway/uploads.py as the stream reaches it
        return
    if submitted is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        submitted = (await read_form(request)).get(CSRF_FIELD)
    _check_csrf(ctx, submitted if isinstance(submitted, str) else None)


async def body_step(ctx: Ctx) -> None:
    """The JSON body and the query parameters match the route's schemas (415 / 422 otherwise)."""
    route, request = ctx.route, ctx.request
    if route.kind == "api" and route.body is not None and request.method not in SAFE_METHODS:
        if request.content_type not in ("application/json", ""):
            raise ApiError(415, "unsupported_media_type", "send the body as application/json")
        ctx.body = await _parse_json_body(ctx)
    if route.query is not None:
        try:
            ctx.query = msgspec.convert(dict(request.query), type=route.query, strict=False)
        except msgspec.ValidationError as exc:
            raise ApiError(
                422, "invalid", "the query parameters are invalid", validation_fields(exc)
            ) from None


async def unread_step(ctx: Ctx) -> None:
    """For a portal page: the person's unread notification count, for the navigation. Never
    refuses: when the notifications service does not answer at once the count is not shown."""
    from gateway.features.notifications.common import unread_for_nav

    if ctx.route.kind != "page" or ctx.request.method != "GET" or ctx.route.surface != "portal":
        return
    ctx.request["fd_unread_notifications"] = await unread_for_nav(ctx)


Step = Callable[[Ctx], Awaitable[None]]
STEPS: tuple[Step, ...] = (
    workspace_step,
    identity_step,
    csrf_cookie_step,
    access_step,
    section_step,
    permissions_step,
    csrf_step,
    body_step,
    unread_step,
)
"""The checks every request passes, in order, before its handler; each refuses by raising."""


def build_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def guarded(request: web.Request) -> web.StreamResponse:
        request[ROUTE_KEY] = route
        ctx = Ctx(request=request, route=route, state=request.app[STATE_KEY])
        request[CTX_KEY] = ctx
        for step in STEPS:
            await step(ctx)
        response = await route.handler(request, ctx)
        for name, value, options in ctx._set_cookies:
            response.set_cookie(name, value, **options)
        return response

    guarded.__name__ = getattr(route.handler, "__name__", "handler")
    return guarded


def error_response(request: web.Request, error: ApiError) -> web.StreamResponse:
    """JSON for the API (and non-page routes); an HTML page for browsers on pages."""
    route: Route | None = request.get(ROUTE_KEY)
    wants_page = (
        route.kind == "page"
        if route is not None
        else ("text/html" in request.headers.get("Accept", "") and "/api/" not in request.path)
    )
    if wants_page:
        ctx: Ctx | None = request.get(CTX_KEY)
        values: dict[str, Any] = {"error": error, "status": error.status}
        try:
            if ctx is not None:
                from gateway.nav import page_context

                values = {**page_context(ctx), **values}
            response = aiohttp_jinja2.render_template(
                "core/error.html", request, values, status=error.status
            )
        except Exception:
            response = web.Response(text=f"{error.status} {error.message}", status=error.status)
    else:
        response = web.Response(
            text=json.dumps(error.body()), status=error.status, content_type="application/json"
        )
    for key, value in error.headers.items():
        response.headers[key] = value
    ctx = request.get(CTX_KEY)
    if ctx is not None:
        for name, value, options in ctx._set_cookies:
            response.set_cookie(name, value, **options)
    return response
