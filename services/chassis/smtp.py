"""Outgoing e-mail for every service that sends any (notifications, auth's confirmations):
the mail server's settings (FRONTDESK_SMTP_*: TLS or STARTTLS, login, sender) and an aiosmtplib
sender that keeps one connection open between mails, checked before use when idle.

`send` raises `Refused` when the server refused the mail for good (a 5xx answer: no retry
helps) and `Unreachable` when it could not be handed over now (down, timeout, 4xx): the caller
retries that one later, or says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib

from services.chassis.settings import SettingsError, env_float, env_int

SECURITY_MODES = ("none", "starttls", "tls")


@dataclass(frozen=True)
class SmtpSettings:
    """The outgoing mail server (FRONTDESK_SMTP_*): the local catcher under ./dev up."""

    host: str = ""
    port: int = 25
    security: str = "none"  # "none", "starttls" (upgrade on connect) or "tls" (implicit TLS)
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "frontdesk@localhost"  # the From address
    sender_name: str = "Frontdesk"  # shown before it; the workspace's name when empty
    timeout: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        security = env.get("FRONTDESK_SMTP_SECURITY", "none").strip().lower()
        if security not in SECURITY_MODES:
            raise SettingsError(
                f"FRONTDESK_SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, got {security!r}"
            )
        username = env.get("FRONTDESK_SMTP_USERNAME", "")
        password = env.get("FRONTDESK_SMTP_PASSWORD", "")
        if bool(username) != bool(password):
            raise SettingsError(
                "set both FRONTDESK_SMTP_USERNAME and FRONTDESK_SMTP_PASSWORD, or neither"
            )
        return cls(
            host=env.get("FRONTDESK_SMTP_HOST", ""),
            port=env_int(env, "FRONTDESK_SMTP_PORT", 465 if security == "tls" else 25),
            security=security,
            username=username,
            password=password,
            sender=env.get("FRONTDESK_SMTP_FROM", "frontdesk@localhost"),
            sender_name=env.get("FRONTDESK_SMTP_SENDER_NAME", ""),
            timeout=env_float(env, "FRONTDESK_SMTP_TIMEOUT", 10.0),
        )


_IDLE_CHECK = 5.0  # seconds idle after which the connection is checked before use


class Refused(Exception):
    """The server refused the mail permanently (5xx)."""


class Unreachable(Exception):
    """The mail could not be handed over now; try again later."""


class Mailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._smtp: aiosmtplib.SMTP | None = None
        self._used = 0.0

    @property
    def configured(self) -> bool:
        return self._settings.configured

    async def _connection(self) -> aiosmtplib.SMTP:
        smtp = self._smtp
        if smtp is not None and smtp.is_connected:
            if time.monotonic() - self._used < _IDLE_CHECK:
                return smtp
            try:
                await smtp.noop()
                return smtp
            except aiosmtplib.SMTPException:
                await self.close()
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            start_tls=True if s.security == "starttls" else False,
            username=s.username or None,
            password=s.password or None,
            timeout=s.timeout,
        )
        await smtp.connect()
        self._smtp = smtp
        return smtp

    async def send(self, message: EmailMessage) -> None:
        if not self.configured:
            raise Unreachable("no mail server configured (FRONTDESK_SMTP_HOST)")
        try:
            smtp = await self._connection()
            await smtp.send_message(message)
        except aiosmtplib.SMTPResponseException as exc:
            await self.close()
            if 500 <= exc.code < 600:
                raise Refused(f"{exc.code} {exc.message}") from None
            raise Unreachable(f"{exc.code} {exc.message}") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await self.close()
            codes = [r.code for r in exc.recipients]
            if codes and all(500 <= c < 600 for c in codes):
                raise Refused("; ".join(f"{r.code} {r.message}" for r in exc.recipients)) from None
            raise Unreachable(str(exc)) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise Unreachable(f"{type(exc).__name__}: {exc}") from None
        self._used = time.monotonic()

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                if smtp.is_connected:
                    await smtp.quit(timeout=2)
            with contextlib.suppress(Exception):
                smtp.close()
