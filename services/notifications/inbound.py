"""The inbound mail listener: an SMTP or LMTP server (aiosmtpd) for replies by e-mail.

A mail server (Postfix: `transport_maps` sending `reply+*@<mail domain>` to
`lmtp:inet:<host>:<port>`; locally `./dev mail reply`) delivers replies here
(FRONTDESK_NOTIFICATIONS_INBOUND_LISTEN, FRONTDESK_NOTIFICATIONS_INBOUND_PROTOCOL). Each
recipient is checked when it is named (RCPT: a forged or expired reply address is refused at
once); one reply address per message (a second is deferred with 452, so the sending server
sends it on its own); the message is handled at DATA (replies.py) and answered 250, 550 with
the reason, or 451 when Frontdesk cannot take it now. Started and stopped with the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.notifications.replies import Refusal, Replies

log = logging.getLogger(__name__)

MAX_MESSAGE = 10 * 1024 * 1024  # bytes of one reply (its attachments are not kept)


class _Handler:
    def __init__(self, replies: Replies) -> None:
        self._replies = replies

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if envelope.rcpt_tos:
            return "452 4.5.3 One reply address per message: send the others separately"
        try:
            self._replies.address(address)
        except Refusal as r:
            log.info("reply address refused at RCPT (%s)", r.outcome)
            return r.smtp
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        try:
            return await self._replies.receive(envelope.rcpt_tos[0], data)
        except Exception:
            log.exception("reply by e-mail failed")
            return "451 4.3.0 Frontdesk cannot take the reply now, try again later"


class Inbound:
    """The listener on `listen` ("host:port", port 0: a free one, see `port`)."""

    name = "notifications-inbound"

    def __init__(self, replies: Replies, listen: str, protocol: str = "smtp") -> None:
        host, _, port = listen.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self._protocol = LMTP if protocol == "lmtp" else SMTP
        self._handler = _Handler(replies)
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTP] = []

    async def start(self) -> None:
        def session() -> SMTP:
            smtp = self._protocol(
                self._handler,
                hostname="frontdesk-notifications",
                data_size_limit=MAX_MESSAGE,
                enable_SMTPUTF8=True,
                timeout=60,
            )
            self._sessions = [s for s in self._sessions if _open(s)] + [smtp]
            return smtp

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("replies by e-mail on %s:%d (%s)", self.host, self.port, self._protocol.__name__)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for smtp in self._sessions:
            transport: Any = getattr(smtp, "transport", None)
            if transport is not None:
                transport.close()
        self._sessions.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def _open(smtp: SMTP) -> bool:
    transport: Any = getattr(smtp, "transport", None)
    return transport is not None and not transport.is_closing()
