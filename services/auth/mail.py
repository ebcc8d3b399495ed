"""Outgoing e-mail of auth (confirmation links), through the chassis's aiosmtplib sender."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from services.chassis import smtp


class Mailer:
    """Sends plain-text mail; one connection per mail (auth sends few)."""

    def __init__(self, settings: smtp.SmtpSettings) -> None:
        self._settings = settings

    @property
    def configured(self) -> bool:
        return self._settings.configured

    async def send(self, to: str, subject: str, body: str) -> None:
        """Raises smtp.Refused or smtp.Unreachable when the mail was not handed over."""
        s = self._settings
        message = EmailMessage()
        message["From"] = formataddr((s.sender_name or "Frontdesk", s.sender))
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=s.sender.rpartition("@")[2] or None)
        message.set_content(body)
        sender = smtp.Mailer(s)
        try:
            await sender.send(message)
        finally:
            await sender.close()
