"""The gateway's own behaviour: ops endpoints, unknown hosts, the error shape, OpenAPI, headers."""

from __future__ import annotations

import aiohttp

from tests.stack import SERVICES, Stack


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
        assert body == {"status": "ready", "backends": {name: "serving" for name in SERVICES}}


async def test_unknown_host_is_404_in_the_error_shape(stack: Stack) -> None:
    await stack.start("directory")
    base = await stack.start_gateway()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v1/me", headers={"Host": "nosuch.localhost"}) as resp:
            assert resp.status == 404
            body = await resp.json()
            assert body["error"]["code"] == "not_found"
        async with http.get(
            f"{base}/", headers={"Host": "nosuch.localhost", "Accept": "text/html"}
        ) as resp:
            assert resp.status == 404
            assert "text/html" in resp.headers["Content-Type"]
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_metrics_expose_request_counts_per_route(stack: Stack) -> None:
    base = await stack.start_gateway()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz"):
            pass
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
    assert 'frontdesk_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "frontdesk_http_request_seconds_bucket" in text
