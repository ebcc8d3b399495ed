"""Settings read from the environment once, at start; a missing or bad value fails loudly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value == "":
        raise SettingsError(f"environment variable {name} is required")
    return value


def env_int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise SettingsError(f"environment variable {name} is required")
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(
            f"environment variable {name} must be an integer, got {raw!r}"
        ) from None


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be a number, got {raw!r}") from None


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"environment variable {name} must be a boolean, got {raw!r}")


def database_url_for(server_url: str, database: str) -> str:
    """The URL of `database` on the server that `server_url` points at."""
    parts = urlsplit(server_url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise SettingsError(
            f"database URL must start with postgresql://, got scheme {parts.scheme!r}"
        )
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@dataclass(frozen=True)
class ServiceSettings:
    """What every backend service needs: its database, NATS, and where to listen."""

    service: str
    database_url: str = field(repr=False)
    nats_url: str
    grpc_listen: str
    metrics_port: int
    log_level: str
    directory_addr: str
    shutdown_grace: float

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        prefix = env.get("FRONTDESK_DB_PREFIX", "frontdesk_")
        database = env.get(f"FRONTDESK_{service.upper()}_DATABASE", f"{prefix}{service}")
        server = env_str(env, "FRONTDESK_DATABASE_URL")
        return cls(
            service=service,
            database_url=database_url_for(server, database),
            nats_url=env_str(env, "FRONTDESK_NATS_URL"),
            grpc_listen=env_str(env, "FRONTDESK_GRPC_LISTEN", "0.0.0.0:50051"),
            metrics_port=env_int(env, "FRONTDESK_METRICS_PORT", 0),
            log_level=env.get("FRONTDESK_LOG_LEVEL", "INFO").upper(),
            directory_addr=env.get("FRONTDESK_DIRECTORY_ADDR", ""),
            shutdown_grace=env_float(env, "FRONTDESK_SHUTDOWN_GRACE", 5.0),
        )
