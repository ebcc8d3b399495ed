"""API tokens are made only from an interactive session (with the second factor when enrolled)
and never live longer than the workspace allows (issue 12: a token could mint permanent ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from frontdesk.v1 import auth_pb2, directory_pb2

from services.auth.crypto import code_at, current_step
from tests.gateway_client import GatewayClient
from tests.integration.test_auth_support import (
    PASSWORD,
    AuthWorld,
    early_in_totp_step,
    make_world,
    rpc_error,
)
from tests.stack import Stack


def _create(
    w: AuthWorld, person: str, days: int, session: str = "", code: str = ""
) -> auth_pb2.CreateApiTokenRequest:
    return auth_pb2.CreateApiTokenRequest(
        caller=w.caller(person, "Ticket:manage"),
        name="export",
        expires_in_days=days,
        session_token=session,
        code=code,
    )


async def test_creating_a_token_needs_a_session_of_the_same_person_and_a_capped_expiry(
    stack: Stack,
) -> None:
    w = await make_world(stack)
    ray = await w.add_person("ray@example.com")
    await w.add_person("sue@example.com")
    ray_session = (await w.login("ray@example.com", surface="management")).session_token
    sue_session = (await w.login("sue@example.com", surface="management")).session_token

    made = await w.auth.CreateApiToken(_create(w, ray, 30, ray_session))
    expires = made.token.expires_at.ToDatetime().replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(hours=1)

    for session in ("", sue_session, made.secret, "not-a-session"):
        refused = await rpc_error(w.auth.CreateApiToken(_create(w, ray, 30, session)))
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, session
        assert dict(refused.trailing_metadata() or ()).get("error-code") == (
            "interactive_session_required"
        )

    for days in (0, 91, 3650):  # never-expiring, or over the default cap of 90 days
        bad = await rpc_error(w.auth.CreateApiToken(_create(w, ray, days, ray_session)))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT, days
        assert (bad.details() or "").startswith("expires_in_days:")
    assert (await w.auth.CreateApiToken(_create(w, ray, 90, ray_session))).secret

    await w.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=w.system(), api_token_max_days=7)
    )
    settings = await w.directory.GetPortalSettings(
        directory_pb2.GetPortalSettingsRequest(caller=w.system())
    )
    assert settings.api_token_max_days == 7
    bad = await rpc_error(w.auth.CreateApiToken(_create(w, ray, 8, ray_session)))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "7" in (bad.details() or "")
    assert (await w.auth.CreateApiToken(_create(w, ray, 7, ray_session))).secret
    db = await stack.connect("auth")
    assert await db.fetchval("select count(*) from api_tokens where expires_at is null") == 0


async def test_with_two_factor_a_recent_second_step_or_a_code_is_needed(stack: Stack) -> None:
    w = await make_world(stack)
    kim = await w.add_person("kim@example.com")
    old = (await w.login("kim@example.com", surface="management")).session_token
    me = w.caller(kim)
    enrollment = await w.auth.BeginTotpEnrollment(
        auth_pb2.BeginTotpEnrollmentRequest(caller=me, account_label="kim")
    )
    secret = enrollment.secret
    await early_in_totp_step()
    await w.auth.ConfirmTotpEnrollment(
        auth_pb2.ConfirmTotpEnrollmentRequest(
            caller=me, code=code_at(secret, current_step() - 1), keep_session_token=old
        )
    )
    # The kept session was opened with the password alone: it must prove the second factor.
    refused = await rpc_error(w.auth.CreateApiToken(_create(w, kim, 30, old)))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert dict(refused.trailing_metadata() or ()).get("error-code") == "second_factor_required"
    wrong = await rpc_error(w.auth.CreateApiToken(_create(w, kim, 30, old, code="000000")))
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        await w.auth.CreateApiToken(_create(w, kim, 30, old, code=code_at(secret, current_step())))
    ).secret

    # A session that just passed the second factor may create tokens without a new code.
    pending = await w.login("kim@example.com", surface="management")
    assert pending.status == "second_factor"
    fresh = await w.auth.VerifySecondFactor(
        auth_pb2.VerifySecondFactorRequest(
            workspace_id=w.ws,
            pending_token=pending.pending_token,
            code=code_at(secret, current_step() + 1),
        )
    )
    assert (await w.auth.CreateApiToken(_create(w, kim, 30, fresh.session_token))).secret


async def test_an_api_token_cannot_create_tokens_through_the_gateway(stack: Stack) -> None:
    w = await make_world(stack)
    base = await stack.start_gateway()
    client = await GatewayClient.open(base, w.slug)
    stack.on_close(client.close)
    await w.auth.SetPassword(
        auth_pb2.SetPasswordRequest(caller=w.system(), person_id=w.admin_id, password=PASSWORD)
    )
    status, body = await client.login(w.admin_email, PASSWORD, surface="management")
    assert status == 200, body

    status, body = await client.post(
        "/management/api/v1/api-tokens", json={"name": "forever", "expires_in_days": 0}
    )
    assert status == 422, body
    status, made = await client.post(
        "/management/api/v1/api-tokens", json={"name": "ci", "expires_in_days": 30}
    )
    assert status == 201, made

    bearer = await GatewayClient.open(base, w.slug)
    stack.on_close(bearer.close)
    auth = {"Authorization": f"Bearer {made['secret']}"}
    status, listed = await bearer.get("/management/api/v1/api-tokens", headers=auth)
    assert status == 200 and [t["name"] for t in listed["items"]] == ["ci"]
    status, body = await bearer.post(
        "/management/api/v1/api-tokens",
        json={"name": "forever", "expires_in_days": 30},
        headers=auth,
    )
    assert status == 403, body
    assert body["error"]["code"] == "interactive_session_required"
    status, listed = await bearer.get("/management/api/v1/api-tokens", headers=auth)
    assert [t["name"] for t in listed["items"]] == ["ci"]

    # The cap is a workspace setting, shown and edited on the settings page.
    status, settings = await client.get("/management/api/v1/portal-settings")
    assert status == 200 and settings["api_token_max_days"] == 90
    status, form = await client.post(
        "/management/portal-settings",
        data={
            "csrf_token": client.csrf,
            "self_registration": "off",
            "portal_access_default": "on",
            "api_token_max_days": "14",
        },
    )
    assert status == 303, form
    status, page = await client.get("/management/portal-settings")
    assert 'id="api_token_max_days" name="api_token_max_days" value="14"' in page
    status, body = await client.post(
        "/management/api/v1/api-tokens", json={"name": "long", "expires_in_days": 30}
    )
    assert status == 422 and "14" in body["error"]["message"], body
    status, page = await client.get("/management/api-tokens")
    assert "at most 14 in this workspace" in page
