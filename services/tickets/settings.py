"""Settings of the tickets service, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.chassis.settings import ServiceSettings


@dataclass(frozen=True)
class Settings(ServiceSettings):
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:  # type: ignore[override]
        base = ServiceSettings.from_env("tickets", env)
        return cls(**vars(base))
