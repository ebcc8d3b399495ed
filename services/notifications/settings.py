"""Settings of the notifications service, read from the environment once."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.chassis.settings import (
    ServiceSettings,
    SettingsError,
    env_bool,
    env_float,
    env_int,
)
from services.chassis.smtp import SmtpSettings


@dataclass(frozen=True)
class Settings(ServiceSettings):
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    # Key of the signed unsubscribe and reply tokens (32+ bytes, base64).
    secret_key: bytes = field(default=b"", repr=False)
    # The portal's address of a workspace, "{slug}" replaced by its slug.
    public_url: str = "https://{slug}.localhost"
    # The domain of Message-IDs and reply addresses.
    mail_domain: str = "localhost"
    # Sending: first retry after retry_base seconds, doubling up to retry_max; a mail not sent
    # after give_up_after seconds is marked failed.
    retry_base: float = 1.0
    retry_max: float = 300.0
    give_up_after: float = 86400.0
    # The tickets service, for the text of the comment a mail quotes.
    tickets_addr: str = ""
    # Send mails at all (off: intents are recorded and stay pending), with how many senders
    # side by side (each its own SMTP connection).
    send: bool = True
    senders: int = 3
    # The compliance service, for replies by e-mail to issues.
    compliance_addr: str = ""
    # Replies by e-mail: the listener ("host:port", empty: none), "smtp" or "lmtp", and how
    # many days a mail's reply address stays valid.
    inbound_listen: str = ""
    inbound_protocol: str = "smtp"
    reply_days: int = 90
    # Reminders of control tests due within due_soon_days days (0: none), looked for every
    # reminder_interval seconds.
    due_soon_days: int = 3
    reminder_interval: float = 3600.0
    # The weekly digest's day (1 = Monday .. 7; 0: no digests).
    digest_weekday: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:  # type: ignore[override]
        source = os.environ if env is None else env
        base = ServiceSettings.from_env("notifications", source)
        if not base.directory_addr:
            raise SettingsError(
                "environment variable FRONTDESK_DIRECTORY_ADDR is required: "
                "notifications reads recipients and their preferences from the directory"
            )
        raw_key = source.get("FRONTDESK_NOTIFICATIONS_SECRET_KEY", "")
        if not raw_key:
            raise SettingsError(
                "environment variable FRONTDESK_NOTIFICATIONS_SECRET_KEY is required "
                "(32 random bytes, base64): it signs unsubscribe links and reply addresses"
            )
        try:
            key = base64.b64decode(raw_key, validate=True)
        except ValueError:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_SECRET_KEY must be base64") from None
        if len(key) < 32:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_SECRET_KEY must hold at least 32 bytes")
        base_domain = source.get("FRONTDESK_BASE_DOMAIN", "localhost").strip(".").lower()
        give_up = env_float(source, "FRONTDESK_NOTIFICATIONS_GIVE_UP_AFTER", 86400.0)
        if give_up <= 0:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_GIVE_UP_AFTER must be positive")
        protocol = source.get("FRONTDESK_NOTIFICATIONS_INBOUND_PROTOCOL", "smtp").strip().lower()
        if protocol not in ("smtp", "lmtp"):
            raise SettingsError("FRONTDESK_NOTIFICATIONS_INBOUND_PROTOCOL must be smtp or lmtp")
        listen = source.get("FRONTDESK_NOTIFICATIONS_INBOUND_LISTEN", "").strip()
        if listen and not listen.rpartition(":")[2].isdigit():
            raise SettingsError(
                f"FRONTDESK_NOTIFICATIONS_INBOUND_LISTEN must be host:port, got {listen!r}"
            )
        senders = env_int(source, "FRONTDESK_NOTIFICATIONS_SENDERS", 3)
        if not 1 <= senders <= 8:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_SENDERS must be 1..8")
        reply_days = env_int(source, "FRONTDESK_NOTIFICATIONS_REPLY_DAYS", 90)
        if reply_days <= 0:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_REPLY_DAYS must be positive")
        due_soon = env_int(source, "FRONTDESK_NOTIFICATIONS_DUE_SOON_DAYS", 3)
        if due_soon < 0:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_DUE_SOON_DAYS must be 0 or more")
        interval = env_float(source, "FRONTDESK_NOTIFICATIONS_REMINDER_INTERVAL", 3600.0)
        if interval <= 0:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_REMINDER_INTERVAL must be positive")
        weekday = env_int(source, "FRONTDESK_NOTIFICATIONS_DIGEST_WEEKDAY", 1)
        if not 0 <= weekday <= 7:
            raise SettingsError("FRONTDESK_NOTIFICATIONS_DIGEST_WEEKDAY must be 0 (off) or 1..7")
        return cls(
            **vars(base),
            smtp=SmtpSettings.from_env(source),
            secret_key=key,
            public_url=source.get("FRONTDESK_PUBLIC_URL", f"https://{{slug}}.{base_domain}"),
            mail_domain=source.get("FRONTDESK_MAIL_DOMAIN", base_domain),
            retry_base=env_float(source, "FRONTDESK_NOTIFICATIONS_RETRY_BASE", 1.0),
            retry_max=env_float(source, "FRONTDESK_NOTIFICATIONS_RETRY_MAX", 300.0),
            give_up_after=give_up,
            tickets_addr=source.get("FRONTDESK_TICKETS_ADDR", ""),
            send=env_bool(source, "FRONTDESK_NOTIFICATIONS_SEND", True),
            senders=senders,
            compliance_addr=source.get("FRONTDESK_COMPLIANCE_ADDR", ""),
            inbound_listen=listen,
            inbound_protocol=protocol,
            reply_days=reply_days,
            due_soon_days=due_soon,
            reminder_interval=interval,
            digest_weekday=weekday,
        )
