"""The gateway's metrics are served on their own port, never on the public listener
(issue 12: /metrics answered on every workspace host to anyone)."""

from __future__ import annotations

import aiohttp

from deploy.embedded import free_port
from tests.integration.test_gateway_access import make_world
from tests.stack import Stack


async def test_metrics_only_on_the_metrics_port(stack: Stack) -> None:
    world = await make_world(stack)  # its gateway has no metrics port
    metrics_port = free_port()
    base = await stack.start_gateway(FRONTDESK_GATEWAY_METRICS_PORT=str(metrics_port))
    async with aiohttp.ClientSession() as http:
        for url, host in (
            (f"{world.base}/metrics", "acme.localhost"),
            (f"{base}/metrics", "acme.localhost"),
            (f"{base}/metrics", "127.0.0.1"),
        ):
            async with http.get(url, headers={"Host": host}) as resp:
                text = await resp.text()
                assert resp.status == 404, (url, host, resp.status)
                assert "frontdesk_http_requests_total" not in text
        async with http.get(f"{base}/healthz", headers={"Host": "acme.localhost"}) as resp:
            assert resp.status == 200
        async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/plain"
            assert (
                'frontdesk_http_requests_total{method="GET",route="/healthz",status="200"}' in text
            )
        # The metrics listener serves nothing else.
        async with http.get(f"http://127.0.0.1:{metrics_port}/api/v1/openapi.json") as resp:
            assert resp.status == 404
    # The OpenAPI document no longer lists /metrics.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/api/v1/openapi.json", headers={"Host": "acme.localhost"}) as resp,
    ):
        assert "/metrics" not in (await resp.json())["paths"]
