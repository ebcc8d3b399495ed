"""Sign-in through the gateway: JSON and pages, cookies, CSRF, throttling, two-factor, SSO."""

from __future__ import annotations

from urllib.parse import urlencode

import grpc
import pytest
from frontdesk.v1 import auth_pb2, directory_pb2

from services.auth.crypto import code_at, current_step
from tests.gateway_client import GatewayClient
from tests.integration.test_auth_support import (
    PASSWORD,
    AuthWorld,
    early_in_totp_step,
    make_world,
    run_oidc_provider,
    sign_in_at_provider,
)
from tests.stack import Stack


async def _gateway(stack: Stack, **auth_env: str) -> tuple[AuthWorld, str]:
    w = await make_world(stack, **auth_env)
    return w, await stack.start_gateway()


async def _client(stack: Stack, base: str, slug: str) -> GatewayClient:
    client = await GatewayClient.open(base, slug)
    stack.on_close(client.close)
    return client


async def test_json_sign_in_sets_an_http_only_cookie_and_sign_out_ends_it(stack: Stack) -> None:
    w, base = await _gateway(stack)
    ann = await w.add_person("ann@example.com")
    client = await _client(stack, base, w.slug)

    # Without the CSRF double-submit the sign-in is refused.
    status, body = await client.post(
        "/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert status == 403 and body["error"]["code"] == "csrf"

    status, body = await client.login("ann@example.com", PASSWORD)
    assert status == 200 and body == {"status": "ok", "person_id": ann}
    cookie = next(c for c in client.http.cookie_jar if c.key == "fd_session")
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    status, me = await client.get("/api/v1/me")
    assert status == 200 and me["person_id"] == ann

    status, _ = await client.post("/auth/logout")
    assert status == 200
    status, _ = await client.get("/api/v1/me")
    assert status == 401


async def test_refusals_have_the_right_status_and_message(stack: Stack) -> None:
    w, base = await _gateway(
        stack, FRONTDESK_THROTTLE_FREE_FAILURES="1", FRONTDESK_THROTTLE_WAIT_SECONDS="60"
    )
    await w.add_person("bob@example.com", portal_access=False)
    client = await _client(stack, base, w.slug)

    status, body = await client.login("bob@example.com", "wrong-password-123")
    assert status == 401 and body["error"]["message"] == "invalid e-mail or password"
    status, body = await client.login("bob@example.com", PASSWORD)
    assert status == 403 and body["error"]["code"] == "portal_access_off"
    assert body["error"]["message"] == "portal access is not enabled for this account"
    status, body = await client.login("bob@example.com", PASSWORD, surface="management")
    assert status == 200  # management sign-in is not affected by the flag

    for _ in range(2):  # the sign-in above cleared the count
        await client.login("bob@example.com", "wrong-password-123")
    async with client.http.post(
        client.base_url + "/auth/login",
        json={"email": "bob@example.com", "password": PASSWORD},
        headers=client.headers(),
    ) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1


async def test_two_factor_sign_in_through_the_gateway(stack: Stack) -> None:
    w, base = await _gateway(stack)
    cy = await w.add_person("cy@example.com")
    me = w.caller(cy)
    enrollment = await w.auth.BeginTotpEnrollment(auth_pb2.BeginTotpEnrollmentRequest(caller=me))
    await early_in_totp_step()
    await w.auth.ConfirmTotpEnrollment(
        auth_pb2.ConfirmTotpEnrollmentRequest(
            caller=me, code=code_at(enrollment.secret, current_step() - 1)
        )
    )
    client = await _client(stack, base, w.slug)
    status, body = await client.login("cy@example.com", PASSWORD)
    assert status == 200 and body["status"] == "second_factor"
    assert client.cookie("fd_session") is None
    status, body = await client.post("/auth/totp", json={"code": "000000"})
    if code_at(enrollment.secret, current_step()) != "000000":
        assert status == 401
    status, body = await client.post(
        "/auth/totp", json={"code": code_at(enrollment.secret, current_step())}
    )
    assert status == 200 and body["status"] == "ok"
    await client.refresh_csrf()
    status, me_body = await client.get("/api/v1/me")
    assert status == 200 and me_body["person_id"] == cy


async def test_sign_in_page_posts_back_and_redirects_to_next(stack: Stack) -> None:
    w, base = await _gateway(stack)
    await w.add_person("dee@example.com")
    client = await _client(stack, base, w.slug)
    status, page = await client.get("/login?next=/tickets")
    assert status == 200 and 'name="password"' in page
    csrf = client.cookie("fd_csrf")
    assert csrf
    status, page = await client.post(
        "/login",
        data={
            "csrf_token": csrf,
            "email": "dee@example.com",
            "password": "nope-nope-nope",
            "next": "/tickets",
        },
    )
    assert status == 401 and "invalid e-mail or password" in page
    async with client.http.post(
        client.base_url + "/login",
        data={
            "csrf_token": csrf,
            "email": "dee@example.com",
            "password": PASSWORD,
            "next": "https://evil.test/",
        },
        headers={"Host": client.host},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/"
    assert client.cookie("fd_session")


async def test_single_sign_on_through_the_gateway(stack: Stack) -> None:
    w, base = await _gateway(stack)
    ann = await w.add_person("ann@example.com", password=None)
    client = await _client(stack, base, w.slug)
    redirect_uri = f"http://{client.host}/auth/sso/callback"
    async with run_oidc_provider(redirect_uri) as provider:
        await w.auth.PutSsoConfig(
            auth_pb2.PutSsoConfigRequest(
                caller=w.system(),
                enabled=True,
                issuer=provider.issuer,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
            )
        )
        status, page = await client.get("/login")
        assert "/auth/sso/start" in page
        async with client.http.get(
            client.base_url + "/auth/sso/start?next=/tickets",
            headers={"Host": client.host},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
            location = resp.headers["Location"]
        assert location.startswith(provider.issuer)
        back = await sign_in_at_provider(location, "ann@example.com", redirect_uri)

        # The same answer in another browser (no state cookie) is refused.
        stranger = await _client(stack, base, w.slug)
        status, _ = await stranger.get("/auth/sso/callback?" + urlencode(back))
        assert status == 401

        async with client.http.get(
            client.base_url + "/auth/sso/callback?" + urlencode(back),
            headers={"Host": client.host},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/tickets"
        status, me = await client.get("/api/v1/me")
        assert status == 200 and me["person_id"] == ann


@pytest.mark.parametrize("mode", ["open"])
async def test_registration_page_and_json(stack: Stack, mode: str) -> None:
    from frontdesk.v1 import directory_pb2

    w, base = await _gateway(stack)
    client = await _client(stack, base, w.slug)
    status, _ = await client.get("/register")
    assert status == 404  # off by default
    await w.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=w.system(), self_registration=mode)
    )
    # The gateway caches portal settings until the change event arrives; a fresh gateway sees it.
    base = await stack.start_gateway()
    client = await _client(stack, base, w.slug)
    await client.anonymous_csrf()
    status, body = await client.post(
        "/auth/register", json={"email": "eve@example.com", "name": "Eve", "password": "short"}
    )
    assert status == 422 and "password" in body["error"]["fields"]
    status, body = await client.post(
        "/auth/register", json={"email": "eve@example.com", "name": "Eve", "password": PASSWORD}
    )
    assert status == 201 and body == {"status": "registered"}
    status, body = await client.login("eve@example.com", PASSWORD)
    assert status == 200 and body["status"] == "ok"


async def test_the_username_signs_in_like_the_e_mail(stack: Stack) -> None:
    """The profile invites people to set a username; it signs them in (without regard to
    case), and only where a person typed it: a lookup by e-mail never matches a username."""
    w, base = await _gateway(stack)
    una = await w.add_person("una@example.com")
    client = await _client(stack, base, w.slug)
    status, body = await client.login("una@example.com", PASSWORD)
    assert status == 200, body
    status, profile = await client.patch("/api/v1/profile", json={"login_name": "Una.U"})
    assert status == 200 and profile["login_name"] == "Una.U", profile
    await client.post("/auth/logout")

    other = await _client(stack, base, w.slug)
    status, body = await other.login("una.u", PASSWORD)
    assert status == 200 and body["person_id"] == una, body
    status, body = await other.login("nobody.here", PASSWORD)
    assert status == 401 and body["error"]["message"] == "invalid e-mail or password"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await w.directory.FindPersonByEmail(
            directory_pb2.FindPersonByEmailRequest(caller=w.system(), email="una.u")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    found = await w.directory.FindPersonByEmail(
        directory_pb2.FindPersonByEmailRequest(caller=w.system(), email="UNA.U", or_login_name=True)
    )
    assert found.id == una
