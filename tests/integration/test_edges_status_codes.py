"""Refusals that mean "not allowed" answer 403 with their own code (issue 12: they were 409)."""

from __future__ import annotations

from frontdesk.v1 import directory_pb2

from tests.gateway_client import GatewayClient
from tests.integration.test_auth_support import PASSWORD, make_world
from tests.stack import Stack


async def test_portal_access_off_and_closed_registration_are_403(stack: Stack) -> None:
    w = await make_world(stack)
    base = await stack.start_gateway()
    await w.add_person("bob@example.com", portal_access=False)
    client = await GatewayClient.open(base, w.slug)
    stack.on_close(client.close)

    status, body = await client.login("bob@example.com", PASSWORD)
    assert status == 403, body
    assert body["error"]["code"] == "portal_access_off"
    assert body["error"]["message"] == "portal access is not enabled for this account"
    assert client.cookie("fd_session") in (None, "")

    await client.anonymous_csrf()
    status, body = await client.post(
        "/auth/register",
        json={"email": "new@example.com", "name": "New", "password": PASSWORD},
    )
    assert status == 403, body
    assert body["error"]["code"] == "registration_closed"

    # Open registration, then the same call is accepted.
    await w.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=w.system(), self_registration="open")
    )
    status, body = await client.post(
        "/auth/register",
        json={"email": "new@example.com", "name": "New", "password": PASSWORD},
    )
    assert status in (200, 201), body
