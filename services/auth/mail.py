"""Outgoing e-mail (confirmation links) through the configured SMTP server."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage


class Mailer:
    """Sends plain-text mail; smtplib blocks, so it runs in a worker thread."""

    def __init__(self, host: str, port: int, sender: str, timeout: float = 10.0) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._timeout = timeout

    @property
    def configured(self) -> bool:
        return bool(self._host)

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            smtp.send_message(message)
