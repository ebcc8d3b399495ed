"""No password, code, secret or token ever appears in a log line of a full auth flow."""

from __future__ import annotations

import io
import logging
import re

import pytest
from frontdesk.v1 import auth_pb2

from services.auth.crypto import code_at, current_step
from services.chassis.logs import JsonFormatter
from tests.integration.test_auth_support import (
    PASSWORD,
    AuthWorld,
    early_in_totp_step,
    make_world,
    rpc_error,
)
from tests.stack import Stack


@pytest.fixture
def captured_logs() -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_a_full_sign_in_two_factor_and_token_flow_logs_no_secret(
    stack: Stack, captured_logs: io.StringIO
) -> None:
    w: AuthWorld = await make_world(stack)
    secrets: list[str] = [PASSWORD]
    ann = await w.add_person("ann@example.com")
    me = w.caller(ann)

    wrong = "wrong-password-for-the-log-test"
    secrets.append(wrong)
    await rpc_error(w.login("ann@example.com", wrong))
    first = await w.login("ann@example.com")
    secrets.append(first.session_token)

    enrollment = await w.auth.BeginTotpEnrollment(
        auth_pb2.BeginTotpEnrollmentRequest(caller=me, account_label="ann")
    )
    secrets.append(enrollment.secret)
    await early_in_totp_step()
    confirm_code = code_at(enrollment.secret, current_step() - 1)
    codes = await w.auth.ConfirmTotpEnrollment(
        auth_pb2.ConfirmTotpEnrollmentRequest(
            caller=me, code=confirm_code, keep_session_token=first.session_token
        )
    )
    secrets.extend(codes.codes)

    pending = await w.login("ann@example.com")
    secrets.append(pending.pending_token)
    totp_code = code_at(enrollment.secret, current_step())
    session = await w.auth.VerifySecondFactor(
        auth_pb2.VerifySecondFactorRequest(
            workspace_id=w.ws, pending_token=pending.pending_token, code=totp_code
        )
    )
    secrets.append(session.session_token)
    await rpc_error(  # a replay, logged as a failure
        w.auth.VerifySecondFactor(
            auth_pb2.VerifySecondFactorRequest(
                workspace_id=w.ws, pending_token=pending.pending_token, code=totp_code
            )
        )
    )
    pending2 = await w.login("ann@example.com")
    secrets.append(pending2.pending_token)
    await w.auth.VerifySecondFactor(
        auth_pb2.VerifySecondFactorRequest(
            workspace_id=w.ws, pending_token=pending2.pending_token, code=codes.codes[0]
        )
    )

    token = await w.auth.CreateApiToken(  # from the session that just passed the second factor
        auth_pb2.CreateApiTokenRequest(
            caller=me, name="ci", expires_in_days=30, session_token=session.session_token
        )
    )
    secrets.append(token.secret)
    await w.auth.ResolveApiToken(
        auth_pb2.ResolveApiTokenRequest(workspace_id=w.ws, token=token.secret)
    )
    new_password = "quiet-harbor-lantern-77"
    secrets.append(new_password)
    await w.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(
            caller=me,
            current_password=PASSWORD,
            new_password=new_password,
            keep_session_token=session.session_token,
        )
    )
    await w.auth.Logout(auth_pb2.LogoutRequest(workspace_id=w.ws, token=session.session_token))

    text = captured_logs.getvalue()
    assert "signed in" in text and "password changed" in text  # the flow was logged
    for secret in secrets:
        assert secret and secret not in text, "a secret appeared in the logs"
    for code in (confirm_code, totp_code):  # six digits: only as a word of their own
        assert not re.search(rf"\b{code}\b", text), "a TOTP code appeared in the logs"
