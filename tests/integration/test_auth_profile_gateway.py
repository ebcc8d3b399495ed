"""The profile and the admins' auth settings through the gateway."""

from __future__ import annotations

from frontdesk.v1 import auth_pb2, directory_pb2

from services.auth.crypto import code_at, current_step
from tests.gateway_client import GatewayClient
from tests.integration.test_auth_support import (
    PASSWORD,
    early_in_totp_step,
    make_world,
    run_oidc_provider,
)
from tests.stack import Stack


async def test_profile_password_sessions_and_two_factor(stack: Stack) -> None:
    w = await make_world(stack)
    base = await stack.start_gateway()
    ann = await w.add_person("ann@example.com")
    client = await GatewayClient.open(base, w.slug)
    stack.on_close(client.close)
    other = await GatewayClient.open(base, w.slug)
    stack.on_close(other.close)
    assert (await client.login("ann@example.com", PASSWORD))[0] == 200
    assert (await other.login("ann@example.com", PASSWORD))[0] == 200

    status, profile = await client.get("/api/v1/profile")
    assert status == 200 and profile["email"] == "ann@example.com"
    assert profile["two_factor"]["enabled"] is False

    # CSRF is required on every state change.
    status, body = await client.request(
        "PATCH", "/api/v1/profile", json={"login_name": "ann"}, headers={"X-CSRF-Token": "x"}
    )
    assert status == 403
    status, profile = await client.patch(
        "/api/v1/profile", json={"login_name": "ann", "notifications": {"weekly_digest": True}}
    )
    assert status == 200 and profile["login_name"] == "ann"
    assert profile["notifications"]["weekly_digest"] is True

    status, sessions = await client.get("/api/v1/profile/sessions")
    assert status == 200 and len(sessions["items"]) == 2
    assert sum(s["current"] for s in sessions["items"]) == 1

    status, body = await client.post(
        "/api/v1/profile/password",
        json={"current_password": "nope-nope", "new_password": "amber-falcon-meadow"},
    )
    assert status == 422 and "current_password" in body["error"]["fields"]
    status, body = await client.post(
        "/api/v1/profile/password",
        json={"current_password": PASSWORD, "new_password": "amber-falcon-meadow"},
    )
    assert status == 200
    assert (await client.get("/api/v1/me"))[0] == 200
    assert (await other.get("/api/v1/me"))[0] == 401  # the other session ended

    status, enrollment = await client.post("/api/v1/profile/2fa/enroll")
    assert status == 200 and enrollment["qr_svg"].startswith("<svg")
    await early_in_totp_step()
    code = code_at(enrollment["secret"], current_step() - 1)
    status, codes = await client.post("/api/v1/profile/2fa/confirm", json={"code": code})
    assert status == 200 and len(codes["recovery_codes"]) == 10
    status, tf = await client.get("/api/v1/profile/2fa")
    assert tf == {"enabled": True, "recovery_codes_left": 10, "required_by_workspace": False}

    status, page = await client.get("/profile")
    assert status == 200 and "Sign out everywhere" in page and "recovery codes left" in page
    status, page = await client.get("/profile/2fa")
    assert status == 200 and "Turn off two-factor" in page

    status, _ = await client.post("/api/v1/profile/sessions/sign-out-everywhere")
    assert status == 200
    assert (await client.get("/api/v1/me"))[0] == 401
    assert ann


async def test_a_workspace_requiring_two_factor_sends_new_sign_ins_to_enrol(stack: Stack) -> None:
    w = await make_world(stack)
    await w.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=w.system(), require_two_factor=True)
    )
    base = await stack.start_gateway()
    await w.add_person("bo@example.com")
    client = await GatewayClient.open(base, w.slug)
    stack.on_close(client.close)
    status, body = await client.login("bo@example.com", PASSWORD)
    assert status == 200 and body["status"] == "enroll_two_factor"
    await client.refresh_csrf()
    status, body = await client.get("/api/v1/profile/sessions")
    assert status == 403 and body["error"]["code"] == "two_factor_required"
    status, me = await client.get("/api/v1/profile/2fa")
    assert status == 200 and me["required_by_workspace"]
    # CSRF for an enroll-only session comes from the session token as well.
    status, csrf = await client.get("/auth/csrf")
    client.csrf = csrf["csrf_token"]
    status, enrollment = await client.post("/api/v1/profile/2fa/enroll")
    assert status == 200
    status, _ = await client.post(
        "/api/v1/profile/2fa/confirm",
        json={"code": code_at(enrollment["secret"], current_step() - 1)},
    )
    assert status == 200
    status, _ = await client.get("/api/v1/profile/sessions")
    assert status == 200


async def test_admin_configures_sso_and_uses_api_tokens(stack: Stack) -> None:
    w = await make_world(stack)
    base = await stack.start_gateway()
    await w.auth.SetPassword(
        auth_pb2.SetPasswordRequest(caller=w.system(), person_id=w.admin_id, password=PASSWORD)
    )
    admin = await GatewayClient.open(base, w.slug)
    stack.on_close(admin.close)
    assert (await admin.login(w.admin_email, PASSWORD, surface="management"))[0] == 200

    async with run_oidc_provider() as provider:
        status, body = await admin.put(
            "/management/api/v1/sso",
            json={
                "enabled": True,
                "issuer": provider.issuer,
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
                "allowed_domains": ["example.com"],
            },
        )
        assert status == 200 and body["has_client_secret"] is True
        assert provider.client_secret not in str(body)
        status, body = await admin.get("/management/api/v1/sso")
        assert status == 200 and body["issuer"] == provider.issuer
        status, page = await admin.get("/management/sso")
        assert status == 200 and provider.issuer in page and provider.client_secret not in page

    status, created = await admin.post(
        "/management/api/v1/api-tokens", json={"name": "export", "expires_in_days": 7}
    )
    assert status == 201 and created["secret"].startswith(created["token"]["prefix"])
    script = await GatewayClient.open(base, w.slug)
    stack.on_close(script.close)
    bearer = {"Authorization": f"Bearer {created['secret']}"}
    status, listed = await script.get("/management/api/v1/api-tokens", headers=bearer)
    assert status == 200 and [t["name"] for t in listed["items"]] == ["export"]
    status, _ = await admin.delete(f"/management/api/v1/api-tokens/{created['token']['id']}")
    assert status == 200
    status, _ = await script.get("/management/api/v1/api-tokens", headers=bearer)
    assert status == 401

    # An admin resets a person's two-factor.
    cy = await w.add_person("cy@example.com")
    me = w.caller(cy)
    e = await w.auth.BeginTotpEnrollment(auth_pb2.BeginTotpEnrollmentRequest(caller=me))
    await w.auth.ConfirmTotpEnrollment(
        auth_pb2.ConfirmTotpEnrollmentRequest(caller=me, code=code_at(e.secret, current_step()))
    )
    status, _ = await admin.post(f"/management/api/v1/persons/{cy}/two-factor/reset")
    assert status == 200
    assert (await w.login("cy@example.com")).status == "ok"
