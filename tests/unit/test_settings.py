"""Settings fail loudly at start and keep secrets out of repr."""

from __future__ import annotations

import pytest

from services.chassis.settings import ServiceSettings, SettingsError, env_bool


def test_missing_database_url_fails_with_its_name() -> None:
    with pytest.raises(SettingsError, match="FRONTDESK_DATABASE_URL"):
        ServiceSettings.from_env("tickets", {"FRONTDESK_NATS_URL": "nats://x:4222"})


def test_bad_integer_is_refused() -> None:
    env = {
        "FRONTDESK_DATABASE_URL": "postgresql://u:secret@h/db",
        "FRONTDESK_NATS_URL": "nats://x:4222",
        "FRONTDESK_METRICS_PORT": "nine",
    }
    with pytest.raises(SettingsError, match="FRONTDESK_METRICS_PORT"):
        ServiceSettings.from_env("tickets", env)


def test_each_service_gets_its_own_database_and_secrets_stay_out_of_repr() -> None:
    env = {
        "FRONTDESK_DATABASE_URL": "postgresql://u:secret@h:5432/postgres",
        "FRONTDESK_NATS_URL": "nats://x:4222",
    }
    settings = ServiceSettings.from_env("tickets", env)
    assert settings.database_url == "postgresql://u:secret@h:5432/frontdesk_tickets"
    assert "secret" not in repr(settings)


def test_booleans() -> None:
    assert env_bool({"X": "on"}, "X", False) is True
    assert env_bool({}, "X", True) is True
    with pytest.raises(SettingsError):
        env_bool({"X": "maybe"}, "X", False)
