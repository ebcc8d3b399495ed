"""Settings of the compliance service, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.chassis.attachments import FileSettings
from services.chassis.settings import ServiceSettings, SettingsError, env_float


@dataclass(frozen=True)
class Settings(ServiceSettings):
    # Seconds between sweeps (overdue transitions, tests of periods that have started).
    sweep_interval: float = 60.0
    # Attachments: the object store (FRONTDESK_S3_*), limits, the sweeper's interval.
    files: FileSettings = field(default_factory=FileSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:  # type: ignore[override]
        env = os.environ if env is None else env
        base = ServiceSettings.from_env("compliance", env)
        if not base.directory_addr:
            raise SettingsError(
                "environment variable FRONTDESK_DIRECTORY_ADDR is required: "
                "compliance checks owners and assignees with the directory"
            )
        return cls(
            **vars(base),
            sweep_interval=env_float(env, "FRONTDESK_COMPLIANCE_SWEEP_INTERVAL", 60.0),
            files=FileSettings.from_env(env),
        )
