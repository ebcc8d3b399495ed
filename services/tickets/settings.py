"""Settings of the tickets service, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.chassis.attachments import FileSettings
from services.chassis.settings import ServiceSettings, SettingsError


@dataclass(frozen=True)
class Settings(ServiceSettings):
    # Attachments: the object store (FRONTDESK_S3_*), limits, the sweeper's interval.
    files: FileSettings = field(default_factory=FileSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:  # type: ignore[override]
        base = ServiceSettings.from_env("tickets", env)
        if not base.directory_addr:
            raise SettingsError(
                "environment variable FRONTDESK_DIRECTORY_ADDR is required: "
                "tickets checks requesters and assignees with the directory"
            )
        source = os.environ if env is None else env
        return cls(**vars(base), files=FileSettings.from_env(source))
