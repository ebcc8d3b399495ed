"""Every GET route of the gateway, streamed ones (the CSV exports) included, answers with the
security headers (issue 12: streamed responses went out without them)."""

from __future__ import annotations

import aiohttp

from gateway.routes import ROUTES
from tests.gateway_client import GatewayClient
from tests.integration.test_gateway_access import PASSWORD, make_world
from tests.stack import Stack

REQUIRED = {
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Cache-Control",
}
SOME_ID = "00000000-0000-4000-8000-000000000000"


async def test_every_get_route_and_every_stream_carries_the_security_headers(
    stack: Stack,
) -> None:
    world = await make_world(stack, services=("directory", "auth", "tickets", "compliance"))
    admin = await GatewayClient.open(world.base, "acme")
    stack.on_close(admin.close)
    status, body = await admin.login("admin@acme.test", PASSWORD, surface="management")
    assert status == 200, body

    missing: list[str] = []
    streamed = 0
    for route in ROUTES:
        if route.method != "GET" or route.path.startswith("/static"):
            continue
        path = "/".join(SOME_ID if part.startswith("{") else part for part in route.path.split("/"))
        async with admin.http.get(
            admin.base_url + path, headers=admin.headers(), allow_redirects=False
        ) as resp:
            await resp.read()
            if resp.headers.get("Transfer-Encoding") == "chunked":
                streamed += 1
            absent = REQUIRED - set(resp.headers)
            if path.endswith(".csv") or "csv" in resp.headers.get("Content-Type", ""):
                assert resp.status == 200, (path, resp.status)
            if absent:
                missing.append(f"{route.method} {path} ({resp.status}): {sorted(absent)}")
    assert streamed >= 1  # the CSV export streams
    assert not missing, "\n".join(missing)


async def test_the_csv_export_streams_with_the_headers(stack: Stack) -> None:
    world = await make_world(stack)
    admin = await GatewayClient.open(world.base, "acme")
    stack.on_close(admin.close)
    assert (await admin.login("admin@acme.test", PASSWORD, surface="management"))[0] == 200
    exports = [r.path for r in ROUTES if r.method == "GET" and r.path.endswith(".csv")]
    assert exports, "no CSV export in the route table"
    async with aiohttp.ClientSession(cookie_jar=admin.http.cookie_jar) as http:
        for path in exports:
            async with http.get(admin.base_url + path, headers=admin.headers()) as resp:
                text = await resp.text()
                assert resp.status == 200 and text.startswith("email,"), (path, text[:100])
                assert resp.headers["Content-Security-Policy"]
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert resp.headers["X-Frame-Options"] == "DENY"
                assert resp.headers["Cache-Control"] == "no-store"
