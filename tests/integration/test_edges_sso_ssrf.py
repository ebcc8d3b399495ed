"""An admin-set OpenID issuer is never fetched from loopback, link-local or private addresses
unless FRONTDESK_SSO_ALLOW_PRIVATE_NETWORKS allows it (issue 12: server-side request forgery)."""

from __future__ import annotations

import grpc
from aiohttp import web
from frontdesk.v1 import auth_pb2

from deploy.embedded import free_port
from tests.integration.test_auth_support import make_world, rpc_error
from tests.stack import Stack


def test_address_classes() -> None:
    from services.auth.sso import address_allowed

    for blocked in (
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "169.254.169.254",
        "fe80::1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "fd00::1",
        "224.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    ):
        assert not address_allowed(blocked), blocked
    for public in ("93.184.215.14", "2606:4700:4700::1111", "8.8.8.8"):
        assert address_allowed(public), public


async def test_an_issuer_on_a_private_address_is_refused_and_never_fetched(
    stack: Stack,
) -> None:
    hits: list[str] = []

    async def discovery(request: web.Request) -> web.Response:
        hits.append(request.path)
        base = f"http://{request.host}"
        return web.json_response(
            {
                "issuer": base,
                "authorization_endpoint": base + "/auth",
                "token_endpoint": base + "/token",
                "jwks_uri": base + "/jwks",
            }
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stack.on_close(runner.cleanup)

    # Plain http to this machine is allowed (as in the SSO tests), private networks are not.
    w = await make_world(stack, FRONTDESK_SSO_ALLOW_PRIVATE_NETWORKS="false")
    issuers = [
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",  # a name: resolved, every address checked
        f"http://[::1]:{port}",
        "https://169.254.169.254",
        "https://10.1.2.3",
        "https://[::ffff:127.0.0.1]",
    ]
    for issuer in issuers:
        refused = await rpc_error(
            w.auth.PutSsoConfig(
                auth_pb2.PutSsoConfigRequest(
                    caller=w.caller(w.admin_id, "Settings:manage"),
                    enabled=True,
                    issuer=issuer,
                    client_id="frontdesk",
                    client_secret="s3cret-value",
                )
            ),
            issuer,
        )
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, issuer
        assert "private" in (refused.details() or ""), (issuer, refused.details())
    assert hits == []

    # With the setting on (a local identity provider), the same issuer is fetched.
    allowed = await w.replica(FRONTDESK_SSO_ALLOW_PRIVATE_NETWORKS="true")
    config = await allowed.PutSsoConfig(
        auth_pb2.PutSsoConfigRequest(
            caller=w.caller(w.admin_id, "Settings:manage"),
            enabled=True,
            issuer=f"http://127.0.0.1:{port}",
            client_id="frontdesk",
            client_secret="s3cret-value",
        )
    )
    assert config.enabled and hits == ["/.well-known/openid-configuration"]
