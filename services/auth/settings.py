"""Settings of the auth service, read from the environment once."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.chassis.settings import (
    ServiceSettings,
    SettingsError,
    env_bool,
    env_int,
)
from services.chassis.smtp import SmtpSettings


@dataclass(frozen=True)
class Settings(ServiceSettings):
    # Sessions: idle timeout (extended by activity) and absolute lifetime, in seconds.
    session_idle_seconds: int = 3600
    session_max_seconds: int = 12 * 3600
    # A sign-in waiting for its second factor.
    pending_login_seconds: int = 300
    # Throttling (Keycloak-like): failures allowed before waits start, the wait after the
    # first counted failure (doubling), the longest wait, the failure count that blocks for
    # the longest wait, and how long after the last failure the count starts over.
    throttle_free_failures: int = 5
    throttle_ip_free_failures: int = 20
    throttle_wait_seconds: int = 2
    throttle_max_wait_seconds: int = 900
    throttle_max_failures: int = 30
    throttle_reset_seconds: int = 12 * 3600
    # Outgoing mail for e-mail confirmation (the same FRONTDESK_SMTP_* as notifications);
    # no host means no confirmation mail can be sent.
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    # 32-byte key (base64) sealing TOTP secrets and SSO client secrets at rest (AES-GCM).
    secret_key: bytes | None = field(default=None, repr=False)
    # Without a key auth refuses to start, unless this development flag is set explicitly.
    allow_unsealed_secrets: bool = False
    # SSO endpoints on 127.0.0.1 over plain HTTP are accepted only when this is on (tests).
    sso_allow_insecure_http: bool = False
    # Issuers on loopback, link-local or private addresses only when this is on (local IdPs).
    sso_allow_private_networks: bool = False
    totp_issuer: str = "Frontdesk"

    @property
    def smtp_configured(self) -> bool:
        return self.smtp.configured

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:  # type: ignore[override]
        env = os.environ if env is None else env
        base = ServiceSettings.from_env("auth", env)
        idle = env_int(env, "FRONTDESK_SESSION_IDLE_SECONDS", 3600)
        absolute = env_int(env, "FRONTDESK_SESSION_MAX_SECONDS", 12 * 3600)
        if idle <= 0 or absolute < idle:
            raise SettingsError(
                "FRONTDESK_SESSION_IDLE_SECONDS must be positive and at most "
                "FRONTDESK_SESSION_MAX_SECONDS"
            )
        raw_key = env.get("FRONTDESK_AUTH_SECRET_KEY", "")
        key: bytes | None = None
        if raw_key:
            try:
                key = base64.urlsafe_b64decode(raw_key + "=" * (-len(raw_key) % 4))
            except (binascii.Error, ValueError):
                raise SettingsError("FRONTDESK_AUTH_SECRET_KEY must be base64") from None
            if len(key) != 32:
                raise SettingsError("FRONTDESK_AUTH_SECRET_KEY must decode to 32 bytes")
        unsealed = env_bool(env, "FRONTDESK_AUTH_ALLOW_UNSEALED_SECRETS", False)
        if key is None and not unsealed:
            raise SettingsError(
                "FRONTDESK_AUTH_SECRET_KEY is required (32 random bytes, base64): it seals TOTP "
                "and SSO client secrets; only for local development may "
                "FRONTDESK_AUTH_ALLOW_UNSEALED_SECRETS=true run without it"
            )
        return cls(
            **vars(base),
            session_idle_seconds=idle,
            session_max_seconds=absolute,
            pending_login_seconds=env_int(env, "FRONTDESK_PENDING_LOGIN_SECONDS", 300),
            throttle_free_failures=env_int(env, "FRONTDESK_THROTTLE_FREE_FAILURES", 5),
            throttle_ip_free_failures=env_int(env, "FRONTDESK_THROTTLE_IP_FREE_FAILURES", 20),
            throttle_wait_seconds=env_int(env, "FRONTDESK_THROTTLE_WAIT_SECONDS", 2),
            throttle_max_wait_seconds=env_int(env, "FRONTDESK_THROTTLE_MAX_WAIT_SECONDS", 900),
            throttle_max_failures=env_int(env, "FRONTDESK_THROTTLE_MAX_FAILURES", 30),
            throttle_reset_seconds=env_int(env, "FRONTDESK_THROTTLE_RESET_SECONDS", 12 * 3600),
            smtp=SmtpSettings.from_env(env),
            secret_key=key,
            allow_unsealed_secrets=unsealed,
            sso_allow_insecure_http=env_bool(env, "FRONTDESK_SSO_ALLOW_INSECURE_HTTP", False),
            sso_allow_private_networks=env_bool(env, "FRONTDESK_SSO_ALLOW_PRIVATE_NETWORKS", False),
            totp_issuer=env.get("FRONTDESK_TOTP_ISSUER", "") or "Frontdesk",
        )
