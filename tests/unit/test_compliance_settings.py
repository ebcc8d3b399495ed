"""Compliance settings: the directory address is required (owners and assignees are checked with it)."""

from __future__ import annotations

import pytest

from services.chassis.settings import SettingsError
from services.compliance.settings import Settings

BASE = {
    "FRONTDESK_DATABASE_URL": "postgresql://u@localhost:5432/x",
    "FRONTDESK_NATS_URL": "nats://localhost:4222",
}


def test_compliance_refuses_to_start_without_the_directory_address() -> None:
    with pytest.raises(SettingsError, match="FRONTDESK_DIRECTORY_ADDR is required"):
        Settings.from_env(BASE)
    with pytest.raises(SettingsError, match="FRONTDESK_DIRECTORY_ADDR is required"):
        Settings.from_env({**BASE, "FRONTDESK_DIRECTORY_ADDR": ""})
    settings = Settings.from_env({**BASE, "FRONTDESK_DIRECTORY_ADDR": "directory:50051"})
    assert settings.directory_addr == "directory:50051"
