"""Outgoing SMTP with aiosmtplib: one connection kept open between mails, TLS and login as
configured (FRONTDESK_SMTP_*).

`send` raises `Refused` when the server refused the mail for good (a 5xx answer: no retry
helps) and `Unreachable` when it could not be handed over now (down, timeout, 4xx): the
sender retries that one later.
"""

from __future__ import annotations

import contextlib
import time
from email.message import EmailMessage

import aiosmtplib

from services.notifications.settings import SmtpSettings

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
