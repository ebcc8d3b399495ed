"""The e-mail of an intent: subject, plain-text and HTML parts, and its headers.

Threading: every mail about one item names the item's thread root in In-Reply-To and
References (`<ticket-<id>@<mail domain>>`), so clients group a ticket's mails however many
there are. Each mail has its own Message-ID, derived from its delivery id, so a resend after a
crash carries the same one and a receiving server can drop the copy.
Replies: a mail about a ticket or an issue has Reply-To `reply+<token>@<mail domain>`, the
token signed for that person and item (tokens.py); the inbound listener (inbound.py) adds a
reply as that person's comment.
Unsubscribe (RFC 8058): a List-Unsubscribe URL with a signed token, and
List-Unsubscribe-Post: List-Unsubscribe=One-Click; security messages have neither.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate

from services.notifications.domain import PREFERENCE, Intent
from services.notifications.tokens import REPLY_ITEMS, Tokens

# The first line of a mail one may answer; the reply's text ends where this line is quoted.
REPLY_ABOVE = "##- Reply above this line to add a comment -##"


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    message_id: str


def thread_id(item_kind: str, item_id: str, domain: str) -> str:
    return f"<{item_kind.replace('_', '-')}-{item_id}@{domain}>"


def message_id(delivery_id: uuid.UUID, domain: str) -> str:
    return f"<{delivery_id}@{domain}>"


class Composer:
    def __init__(self, tokens: Tokens, public_url: str, mail_domain: str, sender: str) -> None:
        self._tokens = tokens
        self._public_url = public_url
        self._domain = mail_domain
        self._sender = sender

    def base_url(self, slug: str) -> str:
        return self._public_url.replace("{slug}", slug).rstrip("/")

    def compose(
        self, intent: Intent, delivery_id: uuid.UUID, slug: str, sender_name: str
    ) -> Composed:
        base = self.base_url(slug)
        url = base + intent.link
        greeting = f"Hello {intent.person.name or intent.person.email},"
        by = f"{intent.actor_name} wrote:" if intent.actor_name and intent.text else ""
        reply_to = self.reply_address(intent)
        lines = [REPLY_ABOVE, ""] if reply_to else []
        lines += [greeting, "", intent.title, ""]
        if by:
            lines += [by, ""]
        lines += [intent.text, "", f"Open it: {url}", ""]
        headers: dict[str, str] = {
            "From": formataddr((sender_name, self._sender)),
            "To": formataddr((intent.person.name, intent.person.email)),
            "Subject": intent.title,
            "Date": formatdate(localtime=False, usegmt=True),
            "Message-ID": message_id(delivery_id, self._domain),
            "Auto-Submitted": "auto-generated",
            "X-Auto-Response-Suppress": "All",
            "X-Frontdesk-Kind": intent.kind.value,
            "X-Frontdesk-Event": str(intent.event_id),
        }
        if reply_to:
            headers["Reply-To"] = formataddr((sender_name, reply_to))
        if intent.item.kind not in ("account", "digest"):
            root = thread_id(intent.item.kind, intent.item.id, self._domain)
            headers["In-Reply-To"] = root
            headers["References"] = root
        unsubscribe = ""
        if PREFERENCE[intent.kind] is not None:
            token = self._tokens.unsubscribe(
                intent.workspace_id, uuid.UUID(intent.person.id), intent.kind
            )
            unsubscribe = f"{base}/unsubscribe/{token}"
            headers["List-Unsubscribe"] = f"<{unsubscribe}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            lines += ["--", f"Stop these e-mails: {unsubscribe}"]
        text = "\n".join(lines) + "\n"
        body_html = _html(greeting, intent.title, by, intent.text, url, unsubscribe, bool(reply_to))
        return Composed(intent.title, text, body_html, headers, headers["Message-ID"])

    def reply_address(self, intent: Intent) -> str:
        """The signed reply address of a mail about a ticket or issue ("" for other items)."""
        if intent.item.kind not in REPLY_ITEMS:
            return ""
        try:
            item_id = uuid.UUID(intent.item.id)
        except ValueError:
            return ""
        token = self._tokens.reply(
            intent.workspace_id,
            uuid.UUID(intent.person.id),
            intent.item.kind,
            item_id,
            datetime.now(UTC).date(),
        )
        return f"reply+{token}@{self._domain}"


def _html(
    greeting: str, title: str, by: str, text: str, url: str, unsubscribe: str, reply: bool
) -> str:
    e = html.escape
    paragraphs = "".join(f"<p>{e(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n") if p)
    quoted = (
        f'<p style="color:#555">{e(by)}</p><blockquote style="border-left:3px solid #ccc;'
        f'margin:0;padding-left:12px">{paragraphs}</blockquote>'
        if by
        else paragraphs
    )
    footer = (
        f'<p style="font-size:12px;color:#777"><a href="{e(unsubscribe)}">Stop these e-mails</a></p>'
        if unsubscribe
        else ""
    )
    above = f'<p style="color:#999;font-size:12px">{e(REPLY_ABOVE)}</p>' if reply else ""
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f'{above}<p>{e(greeting)}</p><h2 style="font-size:16px">{e(title)}</h2>{quoted}'
        f'<p><a href="{e(url)}">Open it in Frontdesk</a></p>{footer}</body></html>'
    )


def to_message(headers: dict[str, str], text: str, body_html: str) -> EmailMessage:
    """The MIME message (multipart/alternative: plain text, then HTML) of a stored delivery."""
    message = EmailMessage()
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(body_html, subtype="html")
    return message
