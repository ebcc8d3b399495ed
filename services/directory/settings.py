"""Settings of the directory service, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.chassis.settings import ServiceSettings, env_bool, env_float


@dataclass(frozen=True)
class Settings(ServiceSettings):
    # Webhooks: first retry delay (doubling), an extra CA bundle to trust, and (tests, local
    # receivers only) plain http:// and private addresses.
    webhook_retry_base: float = 5.0
    webhook_ca_file: str = ""
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:  # type: ignore[override]
        base = ServiceSettings.from_env("directory", env)
        source = os.environ if env is None else env
        return cls(
            **vars(base),
            webhook_retry_base=env_float(source, "FRONTDESK_WEBHOOK_RETRY_BASE", 5.0),
            webhook_ca_file=source.get("FRONTDESK_WEBHOOK_CA_FILE", ""),
            webhook_allow_http=env_bool(source, "FRONTDESK_WEBHOOK_ALLOW_HTTP", False),
            webhook_allow_private=env_bool(source, "FRONTDESK_WEBHOOK_ALLOW_PRIVATE", False),
        )
