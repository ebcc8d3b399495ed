"""The local mail catcher: an SMTP server (aiosmtpd) that keeps every mail it is given.

`./dev up` runs it (unless FRONTDESK_SMTP_HOST names a real server) and points the
notifications service at it; each mail is stored as <data>/mail/<n>.eml. `./dev mail` lists
them, `./dev mail show N` prints one, and `./dev mail reply N "text"` answers mail N as its
recipient would, through the notifications service's inbound listener (the reply becomes a
comment). Tests run `MailCatcher` in their own event loop.

    python -m deploy.mailcatcher serve --port 50125 --dir .frontdesk/mail
    python -m deploy.mailcatcher list [--dir .frontdesk/mail]
    python -m deploy.mailcatcher show N [--dir .frontdesk/mail]
    python -m deploy.mailcatcher reply N "text" --to 127.0.0.1:50181 [--dir .frontdesk/mail]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Caught:
    """One mail as the catcher received it."""

    number: int
    sender: str
    recipients: list[str]
    message: EmailMessage
    received_at: float

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def part(self, subtype: str) -> str:
        """The text of the message's text/<subtype> part ("" when it has none)."""
        body = self.message.get_body(preferencelist=(subtype,))
        return "" if body is None else str(body.get_content())


class _Handler:
    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        self._catcher.keep(str(envelope.mail_from or ""), list(envelope.rcpt_tos), data)
        return "250 Message accepted for delivery"


class MailCatcher:
    """An SMTP server on `host:port` (0: a free port) keeping what it receives, in memory and,
    with `folder`, as .eml files. `stop()` also cuts open connections (a server that went away)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, folder: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.folder = folder
        self.mails: list[Caught] = []
        self._server: asyncio.Server | None = None
        self._protocols: list[SMTP] = []
        self._arrived = asyncio.Event()
        self.on_mail: Callable[[Caught], None] | None = None

    def keep(self, sender: str, recipients: list[str], data: bytes) -> Caught:
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        caught = Caught(len(self.mails) + 1, sender, recipients, message, time.time())
        self.mails.append(caught)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{int(time.time() * 1000):013d}-{caught.number:06d}.eml").write_bytes(
                data
            )
        self._arrived.set()
        if self.on_mail is not None:
            self.on_mail(caught)
        return caught

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            smtp = SMTP(_Handler(self), hostname="frontdesk-catcher", enable_SMTPUTF8=True)
            self._protocols.append(smtp)
            return smtp

        self._server = await loop.create_server(protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for smtp in self._protocols:
                transport: Any = getattr(smtp, "transport", None)
                if transport is not None:
                    transport.close()
            self._protocols.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def wait_for(
        self, predicate: Callable[[Caught], bool], count: int = 1, timeout: float = 10.0
    ) -> list[Caught]:
        """The mails matching `predicate` once there are `count` of them (TimeoutError else)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.mails if predicate(m)]
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(found)} of {count} mails arrived in {timeout}s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))

    def to(self, address: str) -> list[Caught]:
        return [m for m in self.mails if address in m.recipients]


def reply_to(original: EmailMessage, text: str, sender: str = "") -> EmailMessage:
    """The answer a mail client writes to `original`: to its Reply-To, from its recipient
    (or `sender`), threaded, with the original quoted below the new text as Gmail quotes."""
    reply = EmailMessage()
    to = str(original.get("Reply-To") or original.get("From", ""))
    reply["From"] = sender or str(original.get("To", ""))
    reply["To"] = to
    subject = str(original.get("Subject", ""))
    reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    reply["Date"] = formatdate(localtime=False, usegmt=True)
    reply["Message-ID"] = make_msgid(domain="mail.example")
    if original.get("Message-ID"):
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = f"{original.get('References', '')} {original['Message-ID']}".strip()
    body = original.get_body(preferencelist=("plain",))
    old = "" if body is None else str(body.get_content())
    quoted = "\n".join(f"> {line}" if line else ">" for line in old.splitlines())
    when = str(original.get("Date", "a while ago"))
    reply.set_content(f"{text}\n\nOn {when}, {original.get('From', '')} wrote:\n{quoted}\n")
    return reply


async def send_reply(message: EmailMessage, host: str, port: int) -> tuple[int, str]:
    """Deliver `message` to its To address at host:port; the server's (code, text), a refusal
    included."""
    rcpt = [a for _, a in getaddresses(message.get_all("To", [])) if a]
    try:
        _, text = await aiosmtplib.send(message, hostname=host, port=port, recipients=rcpt)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return exc.recipients[0].code, exc.recipients[0].message
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    return 250, text


def stored(folder: Path) -> list[tuple[Path, EmailMessage]]:
    out: list[tuple[Path, EmailMessage]] = []
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        out.append((path, message))
    return out


async def _serve(host: str, port: int, folder: Path) -> None:
    catcher = MailCatcher(host, port, folder)
    await catcher.start()
    print(f"mail catcher on {host}:{catcher.port}, keeping mail in {folder}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await catcher.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.mailcatcher")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=50125)
    serve.add_argument("--dir", type=Path, default=Path(".frontdesk/mail"))
    listing = sub.add_parser("list")
    listing.add_argument("--dir", type=Path, default=Path(".frontdesk/mail"))
    show = sub.add_parser("show")
    show.add_argument("number", type=int)
    show.add_argument("--dir", type=Path, default=Path(".frontdesk/mail"))
    answer = sub.add_parser("reply", help="answer mail N through the inbound listener")
    answer.add_argument("number", type=int)
    answer.add_argument("text")
    answer.add_argument("--to", default="127.0.0.1:50181", help="the inbound listener")
    answer.add_argument("--from", dest="sender", default="", help="default: the mail's To")
    answer.add_argument("--dir", type=Path, default=Path(".frontdesk/mail"))
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(_serve(args.host, args.port, args.dir))
        return 0
    mails = stored(args.dir)
    if args.command == "list":
        if not mails:
            print(f"no mail in {args.dir}")
        for i, (_, m) in enumerate(mails, 1):
            print(f"{i:4}  {m.get('Date', '')}  {m.get('To', '')}  {m.get('Subject', '')}")
        return 0
    if not 1 <= args.number <= len(mails):
        print(f"no mail number {args.number} ({len(mails)} in {args.dir})")
        return 1
    if args.command == "show":
        print(mails[args.number - 1][0].read_text(errors="replace"))
        return 0
    original = mails[args.number - 1][1]
    if not original.get("Reply-To"):
        print(f"mail number {args.number} has no reply address (only ticket and issue mails do)")
        return 1
    host, _, port = args.to.rpartition(":")
    code, text = asyncio.run(
        send_reply(reply_to(original, args.text, args.sender), host or "127.0.0.1", int(port))
    )
    print(f"{code} {text}")
    return 0 if code == 250 else 1


if __name__ == "__main__":
    raise SystemExit(main())
