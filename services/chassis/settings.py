"""Settings read from the environment once, at start; a missing or bad value fails loudly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
class TlsSettings:
    """Mutual TLS between components (chassis/tls.py): all three files, or none (plain text)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # A plain-text port serving only grpc.health.v1, for probes that cannot present a client
    # certificate (the kubelet's gRPC probe); "" for none.
    health_listen: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.ca_file)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TlsSettings:
        values = cls(
            ca_file=env.get("FRONTDESK_TLS_CA_FILE", ""),
            cert_file=env.get("FRONTDESK_TLS_CERT_FILE", ""),
            key_file=env.get("FRONTDESK_TLS_KEY_FILE", ""),
            health_listen=env.get("FRONTDESK_HEALTH_LISTEN", ""),
        )
        given = [bool(values.ca_file), bool(values.cert_file), bool(values.key_file)]
        if any(given) and not all(given):
            raise SettingsError(
                "set all of FRONTDESK_TLS_CA_FILE, FRONTDESK_TLS_CERT_FILE and "
                "FRONTDESK_TLS_KEY_FILE for mutual TLS, or none of them"
            )
        for path in (values.ca_file, values.cert_file, values.key_file):
            if path and not Path(path).is_file():
                raise SettingsError(f"TLS file {path!r} does not exist")
        return values

    def read(self) -> tuple[bytes, bytes, bytes]:
        return (
            Path(self.ca_file).read_bytes(),
            Path(self.cert_file).read_bytes(),
            Path(self.key_file).read_bytes(),
        )


@dataclass(frozen=True)
class IdentitySettings:
    """A component's signing key, the keys it trusts and its TLS (chassis/identity.py)."""

    key_pem: str = field(default="", repr=False)
    trusted_keys_file: str = ""
    service_keys_file: str = ""
    previous_keys_file: str = ""
    auth_addr: str = ""
    principal_ttl: int = 60
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IdentitySettings:
        key_pem = env.get("FRONTDESK_IDENTITY_KEY", "")
        key_file = env.get("FRONTDESK_IDENTITY_KEY_FILE", "")
        if key_file and not key_pem:
            try:
                key_pem = Path(key_file).read_text()
            except OSError as exc:
                raise SettingsError(f"FRONTDESK_IDENTITY_KEY_FILE {key_file!r}: {exc}") from None
        ttl = env_int(env, "FRONTDESK_PRINCIPAL_TTL", 60)
        if not 5 <= ttl <= 300:
            raise SettingsError("FRONTDESK_PRINCIPAL_TTL must be between 5 and 300 seconds")
        return cls(
            key_pem=key_pem,
            trusted_keys_file=env.get("FRONTDESK_TRUSTED_KEYS_FILE", ""),
            service_keys_file=env.get("FRONTDESK_SERVICE_KEYS_FILE", ""),
            previous_keys_file=env.get("FRONTDESK_IDENTITY_PREVIOUS_KEYS_FILE", ""),
            auth_addr=env.get("FRONTDESK_AUTH_ADDR", ""),
            principal_ttl=ttl,
            tls=TlsSettings.from_env(env),
        )


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
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    # Retention (seconds) of sent outbox rows, inbox rows and dead letters; see housekeeping.py.
    outbox_retention: float = 7 * 86400.0
    inbox_retention: float = 8 * 86400.0
    dead_letter_retention: float = 30 * 86400.0
    housekeeping_interval: float = 5.0
    stream_replicas: int = 1

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        prefix = env.get("FRONTDESK_DB_PREFIX", "frontdesk_")
        database = env.get(f"FRONTDESK_{service.upper()}_DATABASE", f"{prefix}{service}")
        # A service's own URL (its own role, owning only its database) wins over the shared
        # server URL, on which each service uses the database named after it.
        own = env.get(f"FRONTDESK_{service.upper()}_DATABASE_URL", "")
        if own:
            database_url = database_url_for(own, urlsplit(own).path.lstrip("/") or database)
        else:
            database_url = database_url_for(env_str(env, "FRONTDESK_DATABASE_URL"), database)
        return cls(
            service=service,
            database_url=database_url,
            nats_url=env_str(env, "FRONTDESK_NATS_URL"),
            grpc_listen=env_str(env, "FRONTDESK_GRPC_LISTEN", "0.0.0.0:50051"),
            metrics_port=env_int(env, "FRONTDESK_METRICS_PORT", 0),
            log_level=env.get("FRONTDESK_LOG_LEVEL", "INFO").upper(),
            directory_addr=env.get("FRONTDESK_DIRECTORY_ADDR", ""),
            shutdown_grace=env_float(env, "FRONTDESK_SHUTDOWN_GRACE", 5.0),
            identity=IdentitySettings.from_env(env),
            outbox_retention=env_float(env, "FRONTDESK_OUTBOX_RETENTION_DAYS", 7.0) * 86400.0,
            inbox_retention=env_float(env, "FRONTDESK_INBOX_RETENTION_DAYS", 8.0) * 86400.0,
            dead_letter_retention=env_float(env, "FRONTDESK_DEAD_LETTER_RETENTION_DAYS", 30.0)
            * 86400.0,
            housekeeping_interval=env_float(env, "FRONTDESK_HOUSEKEEPING_INTERVAL", 5.0),
            stream_replicas=_stream_replicas(env),
        )


def _stream_replicas(env: Mapping[str, str]) -> int:
    """Copies of each JetStream stream: 1 on one server, 3 (or 5) on a NATS cluster."""
    replicas = env_int(env, "FRONTDESK_NATS_STREAM_REPLICAS", 1)
    if not 1 <= replicas <= 5:
        raise SettingsError(f"FRONTDESK_NATS_STREAM_REPLICAS must be 1 to 5, got {replicas}")
    return replicas
