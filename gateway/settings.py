"""Gateway settings, read from the environment once; a missing backend address fails at start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.chassis.settings import (
    IdentitySettings,
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_str,
)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    base_domain: str
    directory_addr: str
    auth_addr: str
    tickets_addr: str
    compliance_addr: str
    nats_url: str
    secure_cookies: bool
    hsts: bool
    cache_ttl: float
    # While NATS is away (no invalidation events), cached entries live at most this long.
    cache_ttl_without_events: float
    backend_timeout: float
    max_body_bytes: int
    max_upload_bytes: int
    metrics_enabled: bool
    log_level: str
    # Prometheus metrics listen here (0: not served); never on the public listener.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 0
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # The gateway's signing key, trusted keys and TLS (services/chassis/identity.py).
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    shutdown_grace: float = 20.0
    # SCIM requests a second per SCIM token (per gateway replica), and the burst allowed.
    scim_rate: float = 50.0
    scim_burst: float = 200.0
    # Optional: without it the notification routes answer 503 and the portal shows no count.
    notifications_addr: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("FRONTDESK_GATEWAY_HOST", "0.0.0.0"),
            port=env_int(env, "FRONTDESK_GATEWAY_PORT", 8080),
            base_domain=env.get("FRONTDESK_BASE_DOMAIN", "localhost").lower().strip("."),
            directory_addr=env_str(env, "FRONTDESK_DIRECTORY_ADDR"),
            auth_addr=env_str(env, "FRONTDESK_AUTH_ADDR"),
            tickets_addr=env_str(env, "FRONTDESK_TICKETS_ADDR"),
            compliance_addr=env_str(env, "FRONTDESK_COMPLIANCE_ADDR"),
            notifications_addr=env.get("FRONTDESK_NOTIFICATIONS_ADDR", ""),
            nats_url=env_str(env, "FRONTDESK_NATS_URL"),
            secure_cookies=env_bool(env, "FRONTDESK_SECURE_COOKIES", False),
            hsts=env_bool(env, "FRONTDESK_HSTS", False),
            cache_ttl=env_float(env, "FRONTDESK_CACHE_TTL", 30.0),
            cache_ttl_without_events=env_float(env, "FRONTDESK_CACHE_TTL_WITHOUT_EVENTS", 2.0),
            backend_timeout=env_float(env, "FRONTDESK_BACKEND_TIMEOUT", 5.0),
            max_body_bytes=env_int(env, "FRONTDESK_MAX_BODY_BYTES", 1024 * 1024),
            max_upload_bytes=env_int(env, "FRONTDESK_MAX_UPLOAD_BYTES", 50 * 1024 * 1024),
            metrics_enabled=env_bool(env, "FRONTDESK_GATEWAY_METRICS", True),
            log_level=env.get("FRONTDESK_LOG_LEVEL", "INFO").upper(),
            trusted_proxies=_networks(env.get("FRONTDESK_TRUSTED_PROXIES", "")),
            identity=IdentitySettings.from_env(env),
            metrics_host=env.get("FRONTDESK_GATEWAY_METRICS_HOST", "0.0.0.0"),
            metrics_port=env_int(env, "FRONTDESK_GATEWAY_METRICS_PORT", 0),
            shutdown_grace=env_float(env, "FRONTDESK_SHUTDOWN_GRACE", 20.0),
            scim_rate=env_float(env, "FRONTDESK_SCIM_RATE", 50.0),
            scim_burst=env_float(env, "FRONTDESK_SCIM_BURST", 200.0),
        )


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """'10.0.0.0/8, 127.0.0.1' -> networks; a malformed entry stops the gateway at start."""
    nets = []
    for part in raw.split(","):
        if part.strip():
            try:
                nets.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise SettingsError(
                    f"FRONTDESK_TRUSTED_PROXIES: {part.strip()!r} is not an address or network"
                ) from None
    return tuple(nets)
