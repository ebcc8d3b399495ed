"""The gateway's own behaviour: ops endpoints, hosts, the error shape, limits, headers, backends
that are down or slow, request ids and access logs, metrics and the OpenAPI document.

Everything runs against real services (directory, and a real gRPC server that is slow on purpose
for the deadline tests), a real NATS server and a gateway on port 0.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from frontdesk.v1 import directory_pb2, directory_pb2_grpc
from openapi_spec_validator import validate

from deploy.embedded import free_port
from gateway.routes import ROUTES
from services.chassis.logs import JsonFormatter
from tests.gateway_client import GatewayClient
from tests.signing import channel
from tests.stack import SERVICES, Stack

HTML = {"Accept": "text/html,application/xhtml+xml"}


async def _directory_with_acme(stack: Stack) -> str:
    """Directory running with workspace 'acme'; returns the workspace id."""
    await stack.start("directory")
    async with channel(stack.addresses["directory"]) as ch:
        created = await directory_pb2_grpc.DirectoryServiceStub(ch).CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada"
            )
        )
    return str(created.workspace.id)


async def _client(stack: Stack, base: str, slug: str = "acme") -> GatewayClient:
    client = await GatewayClient.open(base, slug)
    stack.on_close(client.close)
    return client


def _assert_error_shape(body: Any, status_code: str) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == status_code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in json.dumps(body)


# -- ops ------------------------------------------------------------------------------------


async def test_readyz_names_each_backend_and_turns_green_when_all_serve(stack: Stack) -> None:
    base = await stack.start_gateway()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503
            assert body["backends"] == {name: "unavailable" for name in SERVICES}
    for name in SERVICES:
        await stack.start(name)
    base = await stack.start_gateway()
    async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        assert body == {
            "status": "ready",
            "events": "subscribed",
            "caches": "normal",
            "backends": {name: "serving" for name in SERVICES},
        }


async def test_metrics_expose_request_counts_per_route_template(stack: Stack) -> None:
    await _directory_with_acme(stack)
    metrics_port = free_port()
    base = await stack.start_gateway(FRONTDESK_GATEWAY_METRICS_PORT=str(metrics_port))
    client = await _client(stack, base)
    await client.get("/healthz")
    await client.get("/api/v1/tickets/INC-123456")  # not signed in: 401, counted by template
    await client.get(f"/no-such-page-{uuid.uuid4().hex}")
    async with client.http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
        status, text = resp.status, await resp.text()
    assert status == 200
    assert 'frontdesk_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert (
        'frontdesk_http_requests_total{method="GET",route="/api/v1/tickets/{id}",status="401"}'
        in text
    )
    # Unknown paths share one label, so scanners cannot blow up the metric's cardinality.
    assert 'route="unmatched",status="404"' in text
    assert "no-such-page" not in text
    assert 'frontdesk_http_request_seconds_bucket{le="0.005",method="GET",route="/healthz"}' in text


# -- hosts ----------------------------------------------------------------------------------


async def test_unknown_host_is_404_in_the_error_shape_and_as_a_page(stack: Stack) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    async with aiohttp.ClientSession() as http:
        for host in ("nosuch.localhost", "example.org", "a.b.localhost", "localhost"):
            async with http.get(f"{base}/api/v1/me", headers={"Host": host}) as resp:
                assert resp.status == 404, host
                _assert_error_shape(await resp.json(), "not_found")
        async with http.get(f"{base}/", headers={"Host": "nosuch.localhost", **HTML}) as resp:
            assert resp.status == 404
            assert "text/html" in resp.headers["Content-Type"]
            page = await resp.text()
            assert "Not found" in page and "Acme" not in page
        async with http.get(f"{base}/login", headers={"Host": "nosuch.localhost", **HTML}) as resp:
            assert resp.status == 404
            assert "text/html" in resp.headers["Content-Type"]


async def test_known_host_selects_its_workspace_case_insensitively(stack: Stack) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    port = base.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http:
        for host in (f"acme.localhost:{port}", f"ACME.localhost:{port}", "acme.localhost."):
            async with http.get(f"{base}/auth/csrf", headers={"Host": host}) as resp:
                assert resp.status == 200, host
                assert len((await resp.json())["csrf_token"]) >= 20
        async with http.get(
            f"{base}/login", headers={"Host": f"acme.localhost:{port}", **HTML}
        ) as resp:
            assert resp.status == 200
            assert "Acme" in await resp.text()


async def test_a_workspace_created_after_a_miss_is_found_at_once(stack: Stack) -> None:
    """The 'unknown host' answer is cached, but a workspace_created event clears it."""
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    client = await _client(stack, base, "globex")
    status, _ = await client.get("/auth/csrf")
    assert status == 404
    async with channel(stack.addresses["directory"]) as ch:
        await directory_pb2_grpc.DirectoryServiceStub(ch).CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug="globex", name="Globex", admin_email="admin@globex.test", admin_name="G"
            )
        )
    status = 0
    for _ in range(50):
        status, _ = await client.get("/auth/csrf")
        if status == 200:
            break
        await asyncio.sleep(0.02)
    assert status == 200


# -- the error shape and input limits ------------------------------------------------------


async def test_malformed_json_is_400_and_wrong_types_are_422_with_fields(stack: Stack) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    client = await _client(stack, base)
    await client.anonymous_csrf()
    json_type = {"Content-Type": "application/json"}

    status, body = await client.post("/auth/login", data=b'{"email": ', headers=json_type)
    assert status == 400
    _assert_error_shape(body, "bad_json")

    status, body = await client.post("/auth/login", json={"email": 5, "password": "x"})
    assert status == 422
    _assert_error_shape(body, "invalid")
    assert set(body["error"]["fields"]) == {"email"}
    assert "str" in body["error"]["fields"]["email"]

    status, body = await client.post("/auth/login", json={"password": "x"})
    assert status == 422 and set(body["error"]["fields"]) == {"email"}

    status, body = await client.post(
        "/auth/login", json={"email": "a@b.c", "password": "x", "surface": "moon"}
    )
    assert status == 422 and set(body["error"]["fields"]) == {"surface"}

    status, body = await client.post(
        "/auth/login", json={"email": "a@b.c", "password": "x", "is_admin": True}
    )
    assert status == 422 and set(body["error"]["fields"]) == {"is_admin"}

    status, body = await client.post("/auth/login", json=["a", "b"])
    assert status == 422
    _assert_error_shape(body, "invalid")

    status, body = await client.post(
        "/auth/login", data="email=a", headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    _assert_error_shape(body, "unsupported_media_type")


async def test_a_body_over_the_limit_is_413_before_it_is_parsed(stack: Stack) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway(FRONTDESK_MAX_BODY_BYTES="4096")
    client = await _client(stack, base)
    await client.anonymous_csrf()
    huge = {"email": "a@b.c", "password": "x" * 5000}
    status, body = await client.post("/auth/login", json=huge)
    assert status == 413
    _assert_error_shape(body, "too_large")

    # Without a Content-Length (chunked), the limit still holds.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "a@b.c", "password": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    async with client.http.post(
        client.base_url + "/auth/login",
        data=chunks(),
        headers=client.headers({"Content-Type": "application/json"}),
    ) as resp:
        assert resp.status == 413
        _assert_error_shape(await resp.json(), "too_large")

    # A form post over the limit is refused the same way.
    status, body = await client.post(
        "/login", data={"email": "a@b.c", "password": "y" * 5000, "csrf_token": client.csrf}
    )
    assert status == 413


async def test_unknown_routes_are_404_and_wrong_methods_405_in_the_error_shape(
    stack: Stack,
) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    client = await _client(stack, base)
    status, body = await client.get("/api/v1/nothing-here")
    assert status == 404
    _assert_error_shape(body, "not_found")
    status, body = await client.get("/management/api/v1/nothing-here")
    assert status == 404
    _assert_error_shape(body, "not_found")

    status, page = await client.get("/nothing-here", headers=HTML)
    assert status == 404 and "Not found" in page

    async with client.http.put(client.base_url + "/api/v1/me", headers=client.headers()) as resp:
        assert resp.status == 405
        _assert_error_shape(await resp.json(), "method_not_allowed")
        assert resp.headers["Allow"] == "GET"


# -- security headers ------------------------------------------------------------------------


def _check_security_headers(headers: Any) -> None:
    csp = headers["Content-Security-Policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["script-src"] == "script-src 'self'"
    assert directives["default-src"] == "default-src 'self'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in (
        "same-origin",
        "strict-origin-when-cross-origin",
        "no-referrer",
    )
    assert headers["X-Frame-Options"] == "DENY"


async def test_security_headers_on_pages_api_errors_and_redirects(stack: Stack) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    client = await _client(stack, base)
    for method, path, headers, expected in (
        ("GET", "/login", HTML, 200),
        ("GET", "/auth/csrf", {}, 200),
        ("GET", "/api/v1/me", {}, 401),
        ("GET", "/tickets", HTML, 303),
        ("GET", "/nothing", HTML, 404),
        ("POST", "/auth/login", {}, 403),
    ):
        async with client.http.request(
            method,
            client.base_url + path,
            headers={"Host": client.host, **headers},
            allow_redirects=False,
        ) as resp:
            assert resp.status == expected, path
            _check_security_headers(resp.headers)
            assert "Strict-Transport-Security" not in resp.headers
            assert "X-Request-Id" in resp.headers
    for path in ("/api/v1/me", "/login", "/tickets"):
        async with client.http.get(
            client.base_url + path, headers={"Host": client.host}, allow_redirects=False
        ) as r:
            assert r.headers["Cache-Control"] == "no-store", path
    async with client.http.get(
        client.base_url + "/static/app.css", headers={"Host": client.host}
    ) as r:
        assert r.status == 200 and "no-store" not in r.headers.get("Cache-Control", "")
        _check_security_headers(r.headers)
    # The pages carry no inline script or style for the CSP to block.
    _, page = await client.get("/login", headers=HTML)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "<style" not in page and " style=" not in page and " onclick=" not in page


async def test_hsts_only_when_enabled_and_served_securely(stack: Stack) -> None:
    await _directory_with_acme(stack)
    plain_hsts = await stack.start_gateway(FRONTDESK_HSTS="1")
    secure_hsts = await stack.start_gateway(FRONTDESK_HSTS="1", FRONTDESK_SECURE_COOKIES="1")
    secure_no_hsts = await stack.start_gateway(FRONTDESK_SECURE_COOKIES="1")
    async with aiohttp.ClientSession() as http:
        for base, expected in ((plain_hsts, False), (secure_hsts, True), (secure_no_hsts, False)):
            async with http.get(f"{base}/login", headers={"Host": "acme.localhost", **HTML}) as r:
                assert r.status == 200
                assert ("Strict-Transport-Security" in r.headers) is expected, base
                if expected:
                    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
                _check_security_headers(r.headers)


# -- backends that are down or slow -------------------------------------------------------


async def test_a_backend_that_is_down_gives_503_within_the_deadline(stack: Stack) -> None:
    # No directory running: the gateway's address for it refuses connections.
    base = await stack.start_gateway(FRONTDESK_BACKEND_TIMEOUT="1.0")
    client = await _client(stack, base)
    status, body = await asyncio.wait_for(client.get("/api/v1/me"), 3.0)
    assert status == 503
    _assert_error_shape(body, "unavailable")
    status, page = await asyncio.wait_for(client.get("/", headers=HTML), 3.0)
    assert status == 503
    assert "Something went wrong" in page and "Traceback" not in page
    assert "127.0.0.1:1" not in page


class SlowDirectory(directory_pb2_grpc.DirectoryServiceServicer):
    """A real directory endpoint that knows 'acme' at once but answers settings too late."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def GetWorkspace(
        self, request: directory_pb2.GetWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Workspace:
        if request.slug == "slow":
            await asyncio.sleep(self.delay)
        return directory_pb2.Workspace(id=str(uuid.uuid4()), slug=request.slug, name="Slow Inc")

    async def GetPortalSettings(
        self, request: directory_pb2.GetPortalSettingsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.PortalSettings:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return directory_pb2.PortalSettings(workspace_id=request.caller.workspace_id)


@pytest.fixture
async def slow_directory() -> AsyncIterator[str]:
    server = grpc.aio.server()
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(SlowDirectory(30.0), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def test_a_slow_backend_gives_504_within_the_deadline(
    stack: Stack, slow_directory: str
) -> None:
    base = await stack.start_gateway(
        FRONTDESK_DIRECTORY_ADDR=slow_directory, FRONTDESK_BACKEND_TIMEOUT="0.5"
    )
    client = await _client(stack, base)
    # Host lookup answers, portal settings do not.
    status, body = await asyncio.wait_for(client.get("/auth/csrf"), 3.0)
    assert status == 504
    _assert_error_shape(body, "timeout")
    assert body["error"]["message"] == "a backend service timed out"
    status, page = await asyncio.wait_for(client.get("/login", headers=HTML), 3.0)
    assert status == 504 and "Something went wrong" in page

    # The host lookup itself too slow.
    slow = await _client(stack, base, "slow")
    status, body = await asyncio.wait_for(slow.get("/api/v1/me"), 3.0)
    assert status == 504
    _assert_error_shape(body, "timeout")

    # Ops routes do not depend on the backends answering.
    status, body = await asyncio.wait_for(client.get("/healthz"), 3.0)
    assert status == 200


# -- request ids and access logs ----------------------------------------------------------


async def test_request_ids_are_returned_and_logged_with_workspace_and_status(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    client = await _client(stack, base)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter("gateway"))
    access = logging.getLogger("gateway.access")
    access.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            async with client.http.get(
                client.base_url + "/api/v1/me",
                headers={"Host": client.host, "X-Request-Id": "trace-abc-123"},
            ) as resp:
                assert resp.status == 401
                assert resp.headers["X-Request-Id"] == "trace-abc-123"
            async with client.http.get(
                client.base_url + "/auth/csrf", headers={"Host": client.host}
            ) as resp:
                generated = resp.headers["X-Request-Id"]
                assert re.fullmatch(r"[0-9a-f]{32}", generated)
            async with client.http.get(
                client.base_url + "/auth/csrf",
                headers={"Host": client.host, "X-Request-Id": "bad id\u00e9<script>"},
            ) as resp:
                replaced = resp.headers["X-Request-Id"]
                assert re.fullmatch(r"[0-9a-f]{32}", replaced)
            async with client.http.get(
                client.base_url + "/auth/csrf", headers={"Host": "nosuch.localhost"}
            ) as resp:
                assert resp.status == 404
    finally:
        access.removeHandler(handler)

    records = [r for r in caplog.records if r.name == "gateway.access"]
    by_path = [(r.method, r.path, r.status, r.workspace) for r in records]  # type: ignore[attr-defined]
    assert ("GET", "/api/v1/me", 401, "acme") in by_path
    assert ("GET", "/auth/csrf", 200, "acme") in by_path
    assert ("GET", "/auth/csrf", 404, None) in by_path

    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    me = next(x for x in logged if x["path"] == "/api/v1/me")
    assert me["request_id"] == "trace-abc-123"
    assert me["status"] == 401 and me["workspace"] == "acme" and me["method"] == "GET"
    assert isinstance(me["duration_ms"], float | int)
    assert {x["request_id"] for x in logged} >= {"trace-abc-123", generated, replaced}
    # Cookies and tokens never reach the access log.
    assert "fd_csrf" not in lines.getvalue()


# -- OpenAPI ---------------------------------------------------------------------------------


def _resolve_refs(node: Any, components: dict[str, Any], seen: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.startswith("#/components/schemas/"), ref
            name = ref.rsplit("/", 1)[1]
            assert name in components, f"unresolved {ref}"
            if name not in seen:
                seen.add(name)
                _resolve_refs(components[name], components, seen)
        for value in node.values():
            _resolve_refs(value, components, seen)
    elif isinstance(node, list):
        for value in node:
            _resolve_refs(value, components, seen)


async def test_openapi_document_is_valid_and_covers_every_json_route(stack: Stack) -> None:
    await _directory_with_acme(stack)
    base = await stack.start_gateway()
    client = await _client(stack, base)
    status, doc = await client.get("/api/v1/openapi.json")
    assert status == 200
    validate(doc)  # OpenAPI 3.1 schema, including the JSON Schemas of bodies
    assert doc["openapi"].startswith("3.")

    api_routes = [r for r in ROUTES if r.kind == "api" and r.needs_workspace]
    assert len(api_routes) > 50
    for route in api_routes:
        op = doc["paths"].get(route.path, {}).get(route.method.lower())
        assert op is not None, f"{route.method} {route.path} missing from OpenAPI"
        assert op["x-permissions"] == list(route.permissions)
        assert str(route.status) in op["responses"]
        if route.section:
            assert op["x-portal-section"] == route.section
        if route.body is not None:
            assert "requestBody" in op, route.path
        if route.surface != "public":
            assert "401" in op["responses"] and "403" in op["responses"]
        names = set(re.findall(r"{(\w+)}", route.path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert names == declared, route.path
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in api_routes}
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))

    components = doc["components"]["schemas"]
    seen: set[str] = set()
    _resolve_refs(doc["paths"], components, seen)
    assert "Error" in seen
    # Every portal and management API path is under its documented prefix.
    for path in doc["paths"]:
        assert path.startswith(("/api/v1/", "/management/api/v1/", "/auth/")), path


def test_the_route_table_script_lists_every_route_with_its_guard() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "scripts" / "route_table.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line for line in out.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == len(ROUTES)
    for row, route in zip(rows, ROUTES, strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[1:5] == [route.method, f"`{route.path}`", route.surface, route.kind]
        for permission in route.permissions:
            assert f"`{permission}`" in cells[5]
        assert cells[6] == (route.section or "—")
