"""Settings of the tickets service, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.chassis.settings import ServiceSettings, SettingsError


@dataclass(frozen=True)
class Settings(ServiceSettings):
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:  # type: ignore[override]
        base = ServiceSettings.from_env("tickets", env)
        if not base.directory_addr:
            raise SettingsError(
                "environment variable FRONTDESK_DIRECTORY_ADDR is required: "
                "tickets checks requesters and assignees with the directory"
            )
        return cls(**vars(base))
