"""The auth service with real PostgreSQL, NATS and directory: sign-in, throttling, sessions,
passwords, two-factor, API tokens, access-change events and self-registration.

Over 600 lines: one service's behaviour under one fixture set; split by concept (sessions, 2FA, tokens) in a later change.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import grpc
import pytest
from aiosmtpd.controller import Controller
from frontdesk.v1 import auth_pb2, directory_pb2

from deploy.embedded import free_port
from services.auth.crypto import code_at, current_step
from tests.integration.test_auth_support import (
    PASSWORD,
    AuthWorld,
    auth_events,
    early_in_totp_step,
    event_names,
    eventually,
    make_world,
    rpc_error,
)
from tests.stack import Stack

# --- sign-in ------------------------------------------------------------------------------


@pytest.fixture
async def auth_world(stack: Stack) -> AuthWorld:
    return await make_world(stack)


async def test_portal_sign_in_starts_a_session_and_records_the_portal_login(
    auth_world: AuthWorld, nats_url: str
) -> None:
    w = auth_world
    snapshot, close = await auth_events(nats_url, w.ws)
    w.stack.on_close(close)
    ann = await w.add_person("ann@example.com")

    result = await w.login("ann@example.com")
    assert result.status == "ok" and result.person_id == ann
    assert len(result.session_token) >= 40
    info = await w.resolve(result.session_token)
    assert info.person_id == ann and info.surface == "portal" and info.kind == "session"
    assert info.expires_at.ToDatetime() > datetime.now(UTC).replace(tzinfo=None)

    # Stored hashed: the token itself is nowhere in the database.
    db = await w.stack.connect("auth")
    ids = [r["id"] for r in await db.fetch("select id from sessions")]
    assert info.session_id in ids and result.session_token not in ids
    hashes = await db.fetch("select password_hash from credentials")
    assert all(h["password_hash"].startswith("$argon2id$") for h in hashes)

    person = await w.directory.GetPerson(
        directory_pb2.GetPersonRequest(caller=w.system(), person_id=ann)
    )
    assert person.HasField("last_portal_login_at")

    names = await eventually(lambda: _ready(event_names(snapshot()), "login_succeeded"))
    assert "login_succeeded" in names


async def _ready(names: list[str], wanted: str) -> list[str] | None:
    return names if wanted in names else None


async def test_wrong_password_and_unknown_email_get_the_same_answer(auth_world: AuthWorld) -> None:
    w = auth_world
    await w.add_person("bob@example.com")
    wrong = await rpc_error(w.login("bob@example.com", "not-the-password-at-all"))
    unknown = await rpc_error(w.login("nobody@example.com", "not-the-password-at-all"))
    assert wrong.code() == unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong.details() == unknown.details() == "invalid e-mail or password"


async def test_portal_access_off_refuses_the_portal_but_not_management(
    auth_world: AuthWorld,
) -> None:
    w = auth_world
    await w.add_person("carl@example.com", portal_access=False)
    refused = await rpc_error(w.login("carl@example.com", surface="portal"))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == "portal access is not enabled for this account"
    db = await w.stack.connect("auth")
    assert await db.fetchval("select count(*) from sessions") == 0

    management = await w.login("carl@example.com", surface="management")
    assert management.status == "ok"
    assert (await w.resolve(management.session_token)).surface == "management"


async def test_an_inactive_person_cannot_sign_in(auth_world: AuthWorld) -> None:
    w = auth_world
    dora = await w.add_person("dora@example.com")
    await w.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=w.system(), person_id=dora, active=False)
    )
    for surface in ("portal", "management"):
        err = await rpc_error(w.login("dora@example.com", surface=surface))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "deactivated" in (err.details() or "")


# --- throttling ---------------------------------------------------------------------------


async def test_failures_block_the_account_on_every_replica_with_retry_after(
    stack: Stack,
) -> None:
    w = await make_world(stack, FRONTDESK_THROTTLE_FREE_FAILURES="2")
    other = await w.replica(FRONTDESK_THROTTLE_FREE_FAILURES="2")
    await w.add_person("erin@example.com")
    for _ in range(3):
        err = await rpc_error(w.login("erin@example.com", "wrong-password-123"))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    # Now even the right password waits, on the other replica too, with Retry-After.
    blocked = await rpc_error(w.login("erin@example.com", stub=other))
    assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after = dict(blocked.trailing_metadata() or ())["retry-after"]
    assert 1 <= int(retry_after) <= 900

    # An unknown e-mail is throttled in exactly the same way (no enumeration).
    for _ in range(3):
        await rpc_error(w.login("ghost@example.com", "wrong-password-123"))
    ghost = await rpc_error(w.login("ghost@example.com", "wrong-password-123"))
    assert ghost.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    db = await stack.connect("auth")
    row = await db.fetchrow(
        "select failures, blocked_until from login_failures where key = $1",
        "account:erin@example.com",
    )
    assert row["failures"] == 3 and row["blocked_until"] is not None


async def test_thirty_failures_block_for_fifteen_minutes(auth_world: AuthWorld) -> None:
    w = auth_world
    await w.add_person("fay@example.com")
    db = await w.stack.connect("auth")
    # 29 failures already on record (as if spread over the last hours), then one more.
    await db.execute(
        "insert into login_failures (workspace_id, key, failures, last_failure_at) "
        "values ($1, 'account:fay@example.com', 29, now())",
        w.ws,
    )
    await rpc_error(w.login("fay@example.com", "wrong-password-123"))
    blocked = await rpc_error(w.login("fay@example.com"))
    assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 890 <= int(dict(blocked.trailing_metadata() or ())["retry-after"]) <= 900


async def test_one_address_trying_many_accounts_is_blocked(stack: Stack) -> None:
    w = await make_world(stack, FRONTDESK_THROTTLE_IP_FREE_FAILURES="3")
    for i in range(4):
        await rpc_error(
            w.login(f"user{i}@example.com", "wrong-password-123", client_ip="198.51.100.9")
        )
    blocked = await rpc_error(w.login("user9@example.com", client_ip="198.51.100.9"))
    assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Another address is not affected.
    other = await rpc_error(
        w.login("user9@example.com", "wrong-password-123", client_ip="198.51.100.10")
    )
    assert other.code() == grpc.StatusCode.UNAUTHENTICATED


# --- sessions -----------------------------------------------------------------------------


async def test_sessions_list_revoke_logout_and_everywhere(auth_world: AuthWorld) -> None:
    w = auth_world
    gil = await w.add_person("gil@example.com")
    a = await w.login("gil@example.com")
    b = await w.login("gil@example.com", surface="management")
    c = await w.login("gil@example.com")
    assert len({a.session_token, b.session_token, c.session_token}) == 3
    me = w.caller(gil)

    listed = await w.auth.ListSessions(
        auth_pb2.ListSessionsRequest(caller=me, current_token=a.session_token)
    )
    assert len(listed.sessions) == 3
    assert [s.current for s in listed.sessions].count(True) == 1
    b_id = (await w.resolve(b.session_token)).session_id

    # Another person cannot revoke it; the owner can.
    hal = await w.add_person("hal@example.com")
    err = await rpc_error(
        w.auth.RevokeSession(auth_pb2.RevokeSessionRequest(caller=w.caller(hal), session_id=b_id))
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await w.auth.RevokeSession(auth_pb2.RevokeSessionRequest(caller=me, session_id=b_id))
    assert (await rpc_error(w.resolve(b.session_token))).code() == grpc.StatusCode.UNAUTHENTICATED

    await w.auth.Logout(auth_pb2.LogoutRequest(workspace_id=w.ws, token=c.session_token))
    assert (await rpc_error(w.resolve(c.session_token))).code() == grpc.StatusCode.UNAUTHENTICATED
    await w.resolve(a.session_token)

    await w.auth.LogoutEverywhere(auth_pb2.LogoutEverywhereRequest(caller=me))
    assert (await rpc_error(w.resolve(a.session_token))).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_idle_and_absolute_timeouts_end_a_session(auth_world: AuthWorld) -> None:
    w = auth_world
    await w.add_person("ida@example.com")
    idle = await w.login("ida@example.com")
    absolute = await w.login("ida@example.com")
    db = await w.stack.connect("auth")
    idle_id = (await w.resolve(idle.session_token)).session_id
    abs_id = (await w.resolve(absolute.session_token)).session_id
    await db.execute(
        "update sessions set idle_expires_at = now() - interval '1 second' where id = $1", idle_id
    )
    await db.execute(
        "update sessions set expires_at = now() - interval '1 second' where id = $1", abs_id
    )
    for token in (idle.session_token, absolute.session_token):
        err = await rpc_error(w.resolve(token))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_session_of_one_workspace_is_unknown_in_another(stack: Stack) -> None:
    w = await make_world(stack)
    await w.add_person("jo@example.com")
    token = (await w.login("jo@example.com")).session_token
    other = await w.directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="globex", name="Globex", admin_email="admin@globex.example", admin_name="G"
        )
    )
    err = await rpc_error(
        w.auth.ResolveSession(
            auth_pb2.ResolveSessionRequest(workspace_id=other.workspace.id, token=token)
        )
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


# --- passwords ----------------------------------------------------------------------------


async def test_set_password_needs_person_manage(auth_world: AuthWorld) -> None:
    w = auth_world
    kim = await w.add_person("kim@example.com")
    lee = await w.add_person("lee@example.com")
    err = await rpc_error(
        w.auth.SetPassword(
            auth_pb2.SetPasswordRequest(caller=w.caller(kim), person_id=lee, password="x" * 20)
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    await w.auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=w.caller(kim, "Person:manage"), person_id=lee, password="marble-canyon-sunrise"
        )
    )
    assert (await w.login("lee@example.com", "marble-canyon-sunrise")).status == "ok"
    unknown = await rpc_error(
        w.auth.SetPassword(
            auth_pb2.SetPasswordRequest(
                caller=w.system(),
                person_id="00000000-0000-0000-0000-000000000001",
                password="x" * 20,
            )
        )
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_change_password_checks_the_current_one_and_ends_other_sessions(
    auth_world: AuthWorld, nats_url: str
) -> None:
    w = auth_world
    snapshot, close = await auth_events(nats_url, w.ws)
    w.stack.on_close(close)
    max_ = await w.add_person("max@example.com")
    here = await w.login("max@example.com")
    elsewhere = await w.login("max@example.com")
    me = w.caller(max_)

    def change(current: str, new: str) -> auth_pb2.ChangePasswordRequest:
        return auth_pb2.ChangePasswordRequest(
            caller=me,
            current_password=current,
            new_password=new,
            keep_session_token=here.session_token,
        )

    wrong = await rpc_error(w.auth.ChangePassword(change("nope-nope-nope", "granite-otter-river")))
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (wrong.details() or "").startswith("current_password:")
    for weak, problem in (
        ("short", "at least 8"),
        ("password123", "too common"),
        ("x" * 300, "at most"),
    ):
        err = await rpc_error(w.auth.ChangePassword(change(PASSWORD, weak)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.details() or "").startswith("new_password:") and problem in (
            err.details() or ""
        )

    long_one = "a long passphrase with spaces and no rules " * 3  # 129 characters
    await w.auth.ChangePassword(change(PASSWORD, long_one))
    await w.resolve(here.session_token)
    assert (
        await rpc_error(w.resolve(elsewhere.session_token))
    ).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await rpc_error(w.login("max@example.com"))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await w.login("max@example.com", long_one)).status == "ok"
    names = await eventually(lambda: _ready(event_names(snapshot()), "password_changed"))
    assert "session_revoked" in names


# --- two-factor ---------------------------------------------------------------------------


async def _enroll(w: AuthWorld, person_id: str, keep: str = "") -> tuple[str, list[str]]:
    me = w.caller(person_id)
    enrollment = await w.auth.BeginTotpEnrollment(
        auth_pb2.BeginTotpEnrollmentRequest(caller=me, account_label="me@acme")
    )
    assert enrollment.provisioning_uri.startswith("otpauth://totp/")
    assert enrollment.secret in enrollment.provisioning_uri
    assert enrollment.qr_svg.startswith("<svg")
    await early_in_totp_step()
    codes = await w.auth.ConfirmTotpEnrollment(
        auth_pb2.ConfirmTotpEnrollmentRequest(
            caller=me, code=code_at(enrollment.secret, current_step() - 1), keep_session_token=keep
        )
    )
    return enrollment.secret, list(codes.codes)


async def test_totp_second_step_accepts_each_code_once_on_any_replica(
    auth_world: AuthWorld, nats_url: str
) -> None:
    w = auth_world
    snapshot, close = await auth_events(nats_url, w.ws)
    w.stack.on_close(close)
    nia = await w.add_person("nia@example.com")
    secret, recovery = await _enroll(w, nia)
    assert len(recovery) == 10 and len(set(recovery)) == 10
    db = await w.stack.connect("auth")
    stored = await db.fetchval("select secret from totp where person_id = $1", nia)
    assert secret not in stored
    hashes = [r["code_hash"] for r in await db.fetch("select code_hash from recovery_codes")]
    assert len(hashes) == 10 and not set(recovery) & set(hashes)

    first = await w.login("nia@example.com")
    assert first.status == "second_factor" and first.pending_token and not first.session_token
    code = code_at(secret, current_step())
    ok = await w.auth.VerifySecondFactor(
        auth_pb2.VerifySecondFactorRequest(
            workspace_id=w.ws, pending_token=first.pending_token, code=code
        )
    )
    assert ok.status == "ok" and ok.session_token and ok.session_token != first.pending_token
    assert (await w.resolve(ok.session_token)).person_id == nia
    # The pending token is spent.
    again = await rpc_error(
        w.auth.VerifySecondFactor(
            auth_pb2.VerifySecondFactorRequest(
                workspace_id=w.ws, pending_token=first.pending_token, code=code
            )
        )
    )
    assert again.code() == grpc.StatusCode.UNAUTHENTICATED

    # The same code, replayed through another replica within its window, is refused.
    other = await w.replica()
    second = await w.login("nia@example.com", stub=other)
    replay = await rpc_error(
        other.VerifySecondFactor(
            auth_pb2.VerifySecondFactorRequest(
                workspace_id=w.ws, pending_token=second.pending_token, code=code
            )
        )
    )
    assert replay.code() == grpc.StatusCode.UNAUTHENTICATED
    # ... and says why, so the person waits for the next code instead of doubting the device.
    assert "already used" in (replay.details() or "") and "next code" in (replay.details() or "")

    # A recovery code works once.
    by_recovery = await other.VerifySecondFactor(
        auth_pb2.VerifySecondFactorRequest(
            workspace_id=w.ws, pending_token=second.pending_token, code=recovery[0].lower()
        )
    )
    assert by_recovery.status == "ok"
    third = await w.login("nia@example.com")
    reused = await rpc_error(
        w.auth.VerifySecondFactor(
            auth_pb2.VerifySecondFactorRequest(
                workspace_id=w.ws, pending_token=third.pending_token, code=recovery[0]
            )
        )
    )
    assert reused.code() == grpc.StatusCode.UNAUTHENTICATED
    status = await w.auth.GetTwoFactorStatus(
        auth_pb2.GetTwoFactorStatusRequest(caller=w.caller(nia))
    )
    assert status.enabled and status.recovery_codes_left == 9

    names = await eventually(lambda: _ready(event_names(snapshot()), "two_factor_enabled"))
    assert "login_succeeded" in names


async def test_wrong_codes_end_the_pending_sign_in(auth_world: AuthWorld) -> None:
    w = auth_world
    oli = await w.add_person("oli@example.com")
    secret, _ = await _enroll(w, oli)
    pending = (await w.login("oli@example.com")).pending_token
    right = code_at(secret, current_step() + 1)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        err = await rpc_error(
            w.auth.VerifySecondFactor(
                auth_pb2.VerifySecondFactorRequest(
                    workspace_id=w.ws, pending_token=pending, code=wrong
                )
            )
        )
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    late = await rpc_error(
        w.auth.VerifySecondFactor(
            auth_pb2.VerifySecondFactorRequest(workspace_id=w.ws, pending_token=pending, code=right)
        )
    )
    assert late.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_disable_regenerate_and_admin_reset(auth_world: AuthWorld) -> None:
    w = auth_world
    pat = await w.add_person("pat@example.com")
    secret, old_codes = await _enroll(w, pat)
    me = w.caller(pat)
    fresh = await w.auth.RegenerateRecoveryCodes(
        auth_pb2.RegenerateRecoveryCodesRequest(caller=me, code=code_at(secret, current_step()))
    )
    assert len(fresh.codes) == 10 and not set(fresh.codes) & set(old_codes)

    no_password = await rpc_error(
        w.auth.DisableTotp(
            auth_pb2.DisableTotpRequest(
                caller=me, password="wrong-wrong-wrong", code=fresh.codes[0]
            )
        )
    )
    assert no_password.code() == grpc.StatusCode.INVALID_ARGUMENT
    await w.auth.DisableTotp(
        auth_pb2.DisableTotpRequest(caller=me, password=PASSWORD, code=fresh.codes[0])
    )
    assert (await w.login("pat@example.com")).status == "ok"

    await _enroll(w, pat)
    assert (await w.login("pat@example.com")).status == "second_factor"
    denied = await rpc_error(
        w.auth.AdminResetTwoFactor(auth_pb2.AdminResetTwoFactorRequest(caller=me, person_id=pat))
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    await w.auth.AdminResetTwoFactor(
        auth_pb2.AdminResetTwoFactorRequest(
            caller=w.caller(w.admin_id, "Person:manage"), person_id=pat
        )
    )
    assert (await w.login("pat@example.com")).status == "ok"


async def test_workspace_requiring_two_factor_makes_new_sign_ins_enroll(
    auth_world: AuthWorld,
) -> None:
    w = auth_world
    quinn = await w.add_person("quinn@example.com")
    await w.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=w.system(), require_two_factor=True)
    )
    result = await w.login("quinn@example.com")
    assert result.status == "enroll_two_factor" and result.session_token
    info = await w.resolve(result.session_token)
    assert info.two_factor_pending_enrollment
    await _enroll(w, quinn, keep=result.session_token)
    assert not (await w.resolve(result.session_token)).two_factor_pending_enrollment
    assert (await w.login("quinn@example.com")).status == "second_factor"


# --- API tokens ---------------------------------------------------------------------------


async def test_api_tokens_are_shown_once_and_revocable(auth_world: AuthWorld) -> None:
    w = auth_world
    ray = await w.add_person("ray@example.com")
    me = w.caller(ray, "Ticket:manage")
    session = (await w.login("ray@example.com", surface="management")).session_token
    created = await w.auth.CreateApiToken(
        auth_pb2.CreateApiTokenRequest(
            caller=me, name="nightly export", expires_in_days=30, session_token=session
        )
    )
    assert created.secret.startswith(created.token.prefix) and len(created.secret) > 40
    listed = await w.auth.ListApiTokens(auth_pb2.ListApiTokensRequest(caller=me))
    assert [t.name for t in listed.tokens] == ["nightly export"]
    assert created.secret not in str(listed)
    info = await w.auth.ResolveApiToken(
        auth_pb2.ResolveApiTokenRequest(workspace_id=w.ws, token=created.secret)
    )
    assert info.person_id == ray and info.kind == "api_token"

    sue = await w.add_person("sue@example.com")
    err = await rpc_error(
        w.auth.RevokeApiToken(
            auth_pb2.RevokeApiTokenRequest(caller=w.caller(sue), token_id=created.token.id)
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await w.auth.RevokeApiToken(
        auth_pb2.RevokeApiTokenRequest(caller=me, token_id=created.token.id)
    )
    gone = await rpc_error(
        w.auth.ResolveApiToken(
            auth_pb2.ResolveApiTokenRequest(workspace_id=w.ws, token=created.secret)
        )
    )
    assert gone.code() == grpc.StatusCode.UNAUTHENTICATED
    bad = await rpc_error(
        w.auth.CreateApiToken(auth_pb2.CreateApiTokenRequest(caller=me, name=" "))
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and (bad.details() or "").startswith(
        "name:"
    )


# --- access-change events -----------------------------------------------------------------


async def test_deactivation_and_portal_access_off_end_sessions_at_once(
    auth_world: AuthWorld, nats_url: str
) -> None:
    w = auth_world
    snapshot, close = await auth_events(nats_url, w.ws)
    w.stack.on_close(close)
    tom = await w.add_person("tom@example.com")
    portal = await w.login("tom@example.com", surface="portal")
    management = await w.login("tom@example.com", surface="management")

    await w.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=w.system(), person_id=tom, portal_access=False)
    )

    async def portal_gone() -> bool:
        try:
            await w.resolve(portal.session_token)
        except grpc.aio.AioRpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    assert await eventually(portal_gone)
    assert (await w.resolve(management.session_token)).surface == "management"

    token = await w.auth.CreateApiToken(
        auth_pb2.CreateApiTokenRequest(
            caller=w.caller(tom),
            name="script",
            expires_in_days=30,
            session_token=management.session_token,
        )
    )
    await w.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=w.system(), person_id=tom, active=False)
    )

    async def all_gone() -> bool:
        try:
            await w.resolve(management.session_token)
        except grpc.aio.AioRpcError:
            return True
        return False

    assert await eventually(all_gone)
    revoked = await rpc_error(
        w.auth.ResolveApiToken(
            auth_pb2.ResolveApiTokenRequest(workspace_id=w.ws, token=token.secret)
        )
    )
    assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED

    def revocations() -> list[str]:
        return [
            e.auth.session_revoked.reason for e in snapshot() if e.auth.HasField("session_revoked")
        ]

    async def both() -> list[str] | None:
        got = revocations()
        return got if {"portal_access_disabled", "person_deactivated"} <= set(got) else None

    assert await eventually(both)


# --- self-registration --------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        raw = content.decode() if isinstance(content, bytes) else str(content)
        message = email.message_from_string(raw, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        self.messages.append((list(envelope.rcpt_tos), text))  # type: ignore[attr-defined]
        return "250 OK"


async def test_registration_with_mail_requires_confirmation(stack: Stack) -> None:
    inbox = _Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        w = await make_world(
            stack,
            FRONTDESK_SMTP_HOST="127.0.0.1",
            FRONTDESK_SMTP_PORT=str(port),
            FRONTDESK_SMTP_FROM="frontdesk@acme.example",
        )
        await w.directory.UpdatePortalSettings(
            directory_pb2.UpdatePortalSettingsRequest(caller=w.system(), self_registration="open")
        )
        reg = await w.auth.Register(
            auth_pb2.RegisterRequest(
                workspace_id=w.ws,
                email="una@example.com",
                name="Una",
                password=PASSWORD,
                confirm_url_base="https://acme.example/register/confirm",
            )
        )
        assert reg.confirmation_required and reg.person_id
        refused = await rpc_error(w.login("una@example.com"))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "confirm" in (refused.details() or "")

        assert len(inbox.messages) == 1
        to, text = inbox.messages[0]
        assert to == ["una@example.com"]
        link = next(line for line in text.splitlines() if "register/confirm?token=" in line)
        token = link.split("token=", 1)[1].strip()
        await w.auth.ConfirmEmail(auth_pb2.ConfirmEmailRequest(workspace_id=w.ws, token=token))
        assert (await w.login("una@example.com")).status == "ok"
        again = await rpc_error(
            w.auth.ConfirmEmail(auth_pb2.ConfirmEmailRequest(workspace_id=w.ws, token=token))
        )
        assert again.code() == grpc.StatusCode.NOT_FOUND

        # Registering a known address answers the same and mails the owner instead.
        dup = await w.auth.Register(
            auth_pb2.RegisterRequest(
                workspace_id=w.ws,
                email="una@example.com",
                name="Una",
                password=PASSWORD,
                confirm_url_base="https://acme.example/register/confirm",
            )
        )
        assert dup.confirmation_required
        assert len(inbox.messages) == 2 and "already has an account" in inbox.messages[1][1]
    finally:
        smtp.stop()


async def test_registration_without_mail_signs_in_at_once_and_obeys_the_mode(
    auth_world: AuthWorld,
) -> None:
    w = auth_world
    closed = await rpc_error(
        w.auth.Register(
            auth_pb2.RegisterRequest(
                workspace_id=w.ws, email="vic@example.com", name="Vic", password=PASSWORD
            )
        )
    )
    assert closed.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION)
    await w.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=w.system(), self_registration="open")
    )
    weak = await rpc_error(
        w.auth.Register(
            auth_pb2.RegisterRequest(
                workspace_id=w.ws, email="vic@example.com", name="Vic", password="password1"
            )
        )
    )
    assert weak.code() == grpc.StatusCode.INVALID_ARGUMENT and (weak.details() or "").startswith(
        "password:"
    )
    reg = await w.auth.Register(
        auth_pb2.RegisterRequest(
            workspace_id=w.ws, email="vic@example.com", name="Vic", password=PASSWORD
        )
    )
    assert not reg.confirmation_required
    assert (await w.login("vic@example.com")).person_id == reg.person_id
    dup = await rpc_error(
        w.auth.Register(
            auth_pb2.RegisterRequest(
                workspace_id=w.ws, email="vic@example.com", name="Vic", password=PASSWORD
            )
        )
    )
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
