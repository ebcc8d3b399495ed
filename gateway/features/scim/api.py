"""The SCIM 2.0 endpoint of each workspace, https://<workspace host>/scim/v2/ (RFC 7644).

Only HTTP lives here: the bearer token, throttling, the body, ETag/If-Match headers and the
SCIM error format. The directory validates, applies and stores (and checks the token on every
call, so a revoked token stops at once). These routes are outside the route table's session
pipeline on purpose: no cookies, no CSRF, and SCIM's own error shape and media type.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from frontdesk.v1 import scim_pb2, scim_pb2_grpc

from gateway.features.scim.throttle import FailureWindow, TokenBuckets
from gateway.routing import STATE_KEY, WORKSPACE_KEY, client_ip, is_secure
from services.chassis.grpcio import call

log = logging.getLogger(__name__)

MEDIA = "application/scim+json"
PREFIX = "/scim/v2"
# At most this many failed authentications per client address a minute.
AUTH_FAILURES = 20
THROTTLE_KEY: web.AppKey[TokenBuckets] = web.AppKey("scim_buckets", TokenBuckets)
FAILURES_KEY: web.AppKey[FailureWindow] = web.AppKey("scim_failures", FailureWindow)
RESOURCES = {"Users": "User", "Groups": "Group"}

Handler = Callable[[web.Request, scim_pb2.ScimContext], Awaitable[web.StreamResponse]]


class ScimHttpError(Exception):
    def __init__(
        self, status: int, detail: str, scim_type: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}


def error_response(exc: ScimHttpError) -> web.Response:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(exc.status),
        "detail": exc.detail,
    }
    if exc.scim_type:
        body["scimType"] = exc.scim_type
    response = web.Response(
        text=json.dumps(body), status=exc.status, content_type=MEDIA, headers=exc.headers
    )
    return response


def _from_grpc(exc: grpc.aio.AioRpcError) -> ScimHttpError:
    meta = {k: str(v) for k, v in (exc.trailing_metadata() or ())}
    if "scim-status" in meta:
        return ScimHttpError(
            int(meta["scim-status"]), exc.details() or "", meta.get("scim-type", "")
        )
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return ScimHttpError(
            503, "the directory is unavailable; retry later", headers={"Retry-After": "5"}
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ScimHttpError(504, "the directory timed out")
    if code == grpc.StatusCode.NOT_FOUND:
        return ScimHttpError(404, exc.details() or "not found")
    log.warning("SCIM backend error %s: %s", code, exc.details())
    return ScimHttpError(502, "the directory failed")


async def _body(request: web.Request) -> bytes:
    state = request.app[STATE_KEY]
    limit = state.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ScimHttpError(413, f"the body is larger than {limit} bytes", "tooLarge")
    ctype = request.content_type
    if ctype not in (MEDIA, "application/json", "", "application/octet-stream"):
        raise ScimHttpError(415, "send the body as application/scim+json", "invalidSyntax")
    try:
        raw = await request.content.read(limit + 1)
    except Exception:
        raise ScimHttpError(400, "the body could not be read", "invalidSyntax") from None
    if len(raw) > limit:
        raise ScimHttpError(413, f"the body is larger than {limit} bytes", "tooLarge")
    return raw


def _stub(request: web.Request) -> scim_pb2_grpc.ScimServiceStub:
    return request.app[STATE_KEY].backends.scim


async def _rpc(request: web.Request, method: Any, message: Any) -> Any:
    state = request.app[STATE_KEY]
    try:
        return await call(method, message, timeout=state.settings.backend_timeout)
    except grpc.aio.AioRpcError as exc:
        raise _from_grpc(exc) from None
    except TimeoutError:
        raise ScimHttpError(504, "the directory timed out") from None


def _document(doc: scim_pb2.ScimDocument, status: int = 200) -> web.Response:
    headers: dict[str, str] = {}
    if doc.etag:
        headers["ETag"] = doc.etag
    if doc.location and status == 201:
        headers["Location"] = doc.location
    return web.Response(body=doc.json, status=status, content_type=MEDIA, headers=headers)


def _resource(request: web.Request) -> str:
    """The resource type of the path; "" for the server root (POST /.search)."""
    if "resource" not in request.match_info:
        return ""
    name = RESOURCES.get(request.match_info["resource"])
    if name is None:
        raise ScimHttpError(404, f"unknown endpoint {request.path}")
    return name


def _count(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ScimHttpError(400, "count: give a number", "invalidValue") from None


def _start(raw: str | None) -> int:
    if not raw:
        return 1
    try:
        return int(raw)
    except ValueError:
        raise ScimHttpError(400, "startIndex: give a number", "invalidValue") from None


# ---- handlers (after authentication and throttling) ----


async def discover(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
    endpoint = request.match_info["endpoint"]
    doc = await _rpc(
        request,
        _stub(request).Discover,
        scim_pb2.ScimDiscoverRequest(
            context=ctx, endpoint=endpoint, id=request.match_info.get("item", "")
        ),
    )
    return _document(doc)


async def list_resources(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
    q = request.query
    message = scim_pb2.ScimSearchRequest(
        context=ctx,
        resource_type=_resource(request),
        filter=q.get("filter", ""),
        start_index=_start(q.get("startIndex")),
        sort_by=q.get("sortBy", ""),
        sort_order=q.get("sortOrder", ""),
        attributes=q.get("attributes", ""),
        excluded_attributes=q.get("excludedAttributes", ""),
    )
    count = _count(q.get("count"))
    if count is not None:
        message.count = count
    return _document(await _rpc(request, _stub(request).Search, message))


async def search_post(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
    """POST /Users/.search: the query parameters in a SearchRequest body."""
    raw = await _body(request)
    try:
        body = json.loads(raw or b"{}")
        assert isinstance(body, dict)
    except (ValueError, AssertionError, UnicodeDecodeError):
        raise ScimHttpError(400, "the body is not a SearchRequest", "invalidSyntax") from None

    def text(key: str) -> str:
        value = body.get(key)
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return "" if value is None else str(value)

    message = scim_pb2.ScimSearchRequest(
        context=ctx,
        resource_type=_resource(request),
        filter=text("filter"),
        start_index=_start(text("startIndex")),
        sort_by=text("sortBy"),
        sort_order=text("sortOrder"),
        attributes=text("attributes"),
        excluded_attributes=text("excludedAttributes"),
    )
    count = _count(text("count"))
    if count is not None:
        message.count = count
    return _document(await _rpc(request, _stub(request).Search, message))


async def create(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
    raw = await _body(request)
    doc = await _rpc(
        request,
        _stub(request).Create,
        scim_pb2.ScimWriteRequest(
            context=ctx,
            resource_type=_resource(request),
            json=raw,
            attributes=request.query.get("attributes", ""),
            excluded_attributes=request.query.get("excludedAttributes", ""),
        ),
    )
    return _document(doc, 201)


async def get_one(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
    doc = await _rpc(
        request,
        _stub(request).Get,
        scim_pb2.ScimGetRequest(
            context=ctx,
            resource_type=_resource(request),
            id=request.match_info["item"],
            attributes=request.query.get("attributes", ""),
            excluded_attributes=request.query.get("excludedAttributes", ""),
        ),
    )
    if doc.etag and doc.etag in [
        t.strip() for t in request.headers.get("If-None-Match", "").split(",")
    ]:
        return web.Response(status=304, headers={"ETag": doc.etag})
    return _document(doc)


def _writer(method_name: str) -> Handler:
    async def handler(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
        raw = await _body(request)
        method = getattr(_stub(request), method_name)
        doc = await _rpc(
            request,
            method,
            scim_pb2.ScimWriteRequest(
                context=ctx,
                resource_type=_resource(request),
                id=request.match_info["item"],
                json=raw,
                if_match=request.headers.get("If-Match", ""),
                attributes=request.query.get("attributes", ""),
                excluded_attributes=request.query.get("excludedAttributes", ""),
            ),
        )
        return _document(doc)

    handler.__name__ = method_name.lower()
    return handler


async def delete(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
    await _rpc(
        request,
        _stub(request).Delete,
        scim_pb2.ScimDeleteRequest(
            context=ctx,
            resource_type=_resource(request),
            id=request.match_info["item"],
            if_match=request.headers.get("If-Match", ""),
        ),
    )
    return web.Response(status=204)


async def unknown(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
    raise ScimHttpError(404, f"no SCIM endpoint at {request.path}")


# ---- the guard every SCIM request passes ----


def guarded(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            workspace = request.get(WORKSPACE_KEY)
            if workspace is None:
                raise ScimHttpError(404, "no workspace at this address")
            state = request.app[STATE_KEY]
            ip = client_ip(request, state.settings.trusted_proxies)
            failures = request.app[FAILURES_KEY]
            if wait := failures.blocked(ip):
                raise ScimHttpError(
                    429,
                    "too many failed authentications; wait",
                    headers={"Retry-After": str(int(wait) + 1)},
                )
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                failures.failed(ip)
                raise ScimHttpError(
                    401,
                    "send the workspace's SCIM token as a Bearer token",
                    headers={"WWW-Authenticate": 'Bearer realm="scim"'},
                )
            key = (workspace.id, hashlib.sha256(token.encode()).hexdigest())
            if wait := request.app[THROTTLE_KEY].take(key):
                raise ScimHttpError(
                    429,
                    "too many requests for this token; slow down",
                    headers={"Retry-After": str(int(wait) + 1)},
                )
            scheme_name = "https" if is_secure(request, state.settings) else request.scheme
            ctx = scim_pb2.ScimContext(
                workspace_id=workspace.id,
                token=token,
                base_url=f"{scheme_name}://{request.host}{PREFIX}",
            )
            try:
                return await handler(request, ctx)
            except ScimHttpError as exc:
                if exc.status == 401:
                    failures.failed(ip)
                    exc.headers.setdefault("WWW-Authenticate", 'Bearer realm="scim"')
                raise
        except ScimHttpError as exc:
            return error_response(exc)

    wrapper.__name__ = getattr(handler, "__name__", "scim")
    return wrapper


def install(app: web.Application) -> None:
    """Add the /scim/v2/ routes and their throttles to the gateway application."""
    settings = app[STATE_KEY].settings
    app[THROTTLE_KEY] = TokenBuckets(settings.scim_rate, settings.scim_burst)
    app[FAILURES_KEY] = FailureWindow(AUTH_FAILURES, 60.0)
    r = app.router
    discovery = "ServiceProviderConfig|ResourceTypes|Schemas"
    routes: list[tuple[str, dict[str, Handler]]] = [
        (f"{PREFIX}/{{endpoint:{discovery}}}", {"GET": discover}),
        (f"{PREFIX}/{{endpoint:ResourceTypes|Schemas}}/{{item}}", {"GET": discover}),
        (f"{PREFIX}/{{resource:Users|Groups}}", {"GET": list_resources, "POST": create}),
        (f"{PREFIX}/{{resource:Users|Groups}}/.search", {"POST": search_post}),
        (f"{PREFIX}/.search", {"POST": search_post}),
        (
            f"{PREFIX}/{{resource:Users|Groups}}/{{item}}",
            {
                "GET": get_one,
                "PUT": _writer("Replace"),
                "PATCH": _writer("Patch"),
                "DELETE": delete,
            },
        ),
    ]
    for path, methods in routes:
        r.add_route("*", path, guarded(_by_method(methods)))
    r.add_route("*", PREFIX + "{tail:(/.*)?}", guarded(unknown))


def _by_method(methods: dict[str, Handler]) -> Handler:
    allowed = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))

    async def dispatch(request: web.Request, ctx: scim_pb2.ScimContext) -> web.StreamResponse:
        method = "GET" if request.method == "HEAD" else request.method
        handler = methods.get(method)
        if handler is None:
            raise ScimHttpError(
                405, f"{request.method} is not allowed here", headers={"Allow": allowed}
            )
        return await handler(request, ctx)

    return dispatch
