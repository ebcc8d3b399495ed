"""Auth refuses to start without its secret key unless an explicit development flag says so
(issue 12: TOTP and SSO secrets were stored in clear with only a warning)."""

from __future__ import annotations

import pytest

from services.auth.settings import Settings
from services.chassis.settings import SettingsError
from tests.stack import Stack


async def test_auth_without_a_secret_key_refuses_to_start(stack: Stack) -> None:
    env = stack.env(FRONTDESK_AUTH_SECRET_KEY="")
    env.pop("FRONTDESK_AUTH_ALLOW_UNSEALED_SECRETS", None)
    with pytest.raises(SettingsError, match="FRONTDESK_AUTH_SECRET_KEY"):
        Settings.from_env(env)


async def test_the_explicit_dev_flag_lets_auth_run_unsealed(stack: Stack) -> None:
    await stack.start("directory")
    running = await stack.start(
        "auth", FRONTDESK_AUTH_SECRET_KEY="", FRONTDESK_AUTH_ALLOW_UNSEALED_SECRETS="true"
    )
    assert running.port > 0
    # A key present means sealing, whatever the flag says.
    settings = Settings.from_env(stack.env())
    assert settings.secret_key is not None and len(settings.secret_key) == 32
