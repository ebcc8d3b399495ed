"""A reply by e-mail becomes its sender's comment on the ticket or issue the mail was about.

The reply address (`reply+<token>@<mail domain>`, tokens.py) names the workspace, the person and
the item. A reply is refused (an SMTP 550 with the reason, which the sending server bounces to
the person) when the token is forged or older than FRONTDESK_NOTIFICATIONS_REPLY_DAYS, when the
From address is not that person's (a token forwarded or leaked to someone else), when the person
may no longer comment (inactive, portal access off for a portal item, section off, no
permission: the directory as it is now), or when nothing is left after the quoted history is
cut. The comment is added by the owning service as that person, with their own access
(Ticket:comment-as-person / Issue:comment-as-person, services/chassis/on_behalf.py), with the
mail's Message-ID as its idempotency key: a mail delivered twice adds one comment. When a
backend does not answer, the reply is deferred (451): the sending server tries again later.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses

import grpc
from prometheus_client import Counter

from services.notifications.domain import Item, link_for
from services.notifications.people import Issues, People, Tickets
from services.notifications.quoting import new_text, text_of
from services.notifications.tokens import BadToken, Reply, Tokens

log = logging.getLogger(__name__)

REPLIES = Counter(
    "frontdesk_notification_replies_total",
    "Replies by e-mail received by the notifications service, by outcome",
    ["outcome"],
)

LOCAL_PREFIX = "reply+"


@dataclass
class Refusal(Exception):
    """An SMTP answer other than success: `code` and an enhanced status with the reason."""

    code: int
    status: str
    reason: str
    outcome: str = "refused"

    @property
    def smtp(self) -> str:
        return f"{self.code} {self.status} {self.reason}"


def _refused(reason: str, status: str = "5.7.1", outcome: str = "refused") -> Refusal:
    return Refusal(550, status, reason, outcome)


class Replies:
    def __init__(
        self,
        tokens: Tokens,
        people: People,
        tickets: Tickets,
        issues: Issues,
        mail_domain: str,
        reply_days: int = 90,
    ) -> None:
        self._tokens = tokens
        self._people = people
        self._tickets = tickets
        self._issues = issues
        self._domain = mail_domain.lower()
        self._days = reply_days

    def address(self, recipient: str) -> Reply:
        """The reply a recipient address names (a Refusal when forged, expired or not ours)."""
        local, _, domain = recipient.strip().strip("<>").rpartition("@")
        if not local.lower().startswith(LOCAL_PREFIX) or domain.lower() != self._domain:
            raise _refused(
                f"no such mailbox here: only reply addresses of {self._domain}", "5.1.1", "unknown"
            )
        try:
            reply = self._tokens.read_reply(local[len(LOCAL_PREFIX) :])
        except BadToken:
            raise _refused(
                "this reply address is not valid (damaged or forged)", "5.7.1", "forged"
            ) from None
        if reply.issued + timedelta(days=self._days) < datetime.now(UTC).date():
            raise _refused(
                "this reply address has expired: answer in Frontdesk instead", "5.7.1", "expired"
            )
        return reply

    async def receive(self, recipient: str, data: bytes) -> str:
        """Handle one reply (the raw message) to `recipient`; the SMTP answer to give."""
        try:
            reply = self.address(recipient)
            comment = await self._add(reply, data)
        except Refusal as r:
            log.info("reply by e-mail refused (%s): %s", r.outcome, r.reason)
            REPLIES.labels(r.outcome).inc()
            return r.smtp
        REPLIES.labels("added").inc()
        log.info("reply by e-mail added as comment %s by person %s", comment, reply.person_id)
        return "250 2.0.0 Your reply was added as a comment"

    async def _add(self, reply: Reply, data: bytes) -> str:
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        ws, person_id = str(reply.workspace_id), str(reply.person_id)
        try:
            person = await self._people.recipient(ws, person_id)
            sections = await self._people.sections(ws)
        except grpc.aio.AioRpcError as exc:
            raise _deferred(exc) from None
        senders = [a.lower() for _, a in getaddresses(message.get_all("From", [])) if a]
        if person is None or not person.email or senders != [person.email.lower()]:
            raise _refused(
                "this reply address belongs to someone else: reply from the address the "
                "mail was sent to",
                "5.7.1",
                "sender",
            )
        item = Item(reply.item_kind, str(reply.item_id))
        if link_for(person, item, sections) is None:
            raise _refused(f"you may no longer comment on this {_noun(reply)}", "5.7.1", "access")
        body = new_text(text_of(message))
        if not body:
            raise _refused("the reply has no text above the quoted message", "5.6.0", "empty")
        key = _key(message, data)
        if reply.item_kind == "issue" and not self._issues.configured:
            raise _refused("replies to issues are not set up here", "5.3.0", "unsupported")
        add = self._tickets.add_comment if reply.item_kind == "ticket" else self._issues.add_comment
        try:
            return await add(ws, str(reply.item_id), person_id, body, key)
        except grpc.aio.AioRpcError as exc:
            raise _answer(exc, reply) from None


def _noun(reply: Reply) -> str:
    return "ticket" if reply.item_kind == "ticket" else "issue"


def _key(message: EmailMessage, data: bytes) -> str:
    """The comment's idempotency key: the Message-ID, else a digest of the whole message."""
    message_id = str(message.get("Message-ID", "")).strip()
    if message_id:
        return "mail:" + message_id[:190]
    return "mail-sha256:" + hashlib.sha256(data).hexdigest()


def _deferred(exc: grpc.aio.AioRpcError) -> Refusal:
    code = exc.code()
    log.warning("reply by e-mail deferred: %s", code.name if code else "unknown")
    return Refusal(451, "4.3.0", "Frontdesk cannot take the reply now, try again later", "deferred")


def _answer(exc: grpc.aio.AioRpcError, reply: Reply) -> Refusal:
    code, what = exc.code(), _noun(reply)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return _refused(f"you may no longer comment on this {what}", "5.7.1", "access")
    if code == grpc.StatusCode.NOT_FOUND:
        return _refused(f"this {what} no longer exists", "5.1.1", "gone")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return _refused(f"this {what} is closed and takes no more comments", "5.7.1", "closed")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return _refused(f"the reply cannot be a comment: {exc.details()}", "5.6.0", "invalid")
    return _deferred(exc)
