"""Signed tokens of unsubscribe links and reply addresses: HMAC-SHA256 over what they name,
with the service's key.

An unsubscribe token names the workspace, the person and the kind of message; it does not
expire (a mail's link must keep working), and the worst it can do is turn one preference off.

A reply token (the local part of `reply+<token>@<mail domain>`) names the workspace, the person,
the item (ticket or issue) and the day it was issued, so it expires (FRONTDESK_NOTIFICATIONS_
REPLY_DAYS). It is base32 in lower case, because mail servers may change the case of a local
part; 100 characters, longer than RFC 5321's 64 for a local part, as GitHub's reply addresses
are, which the mail servers people use (Postfix, Exchange, Gmail) accept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import date

from services.notifications.domain import PREFERENCE, Kind

_VERSION = "u1"
_REPLY_VERSION = 1
_EPOCH = date(2020, 1, 1)
# Item kinds a reply may comment on, one byte each in the token.
REPLY_ITEMS = {"ticket": 1, "issue": 2}
_REPLY_ITEM_NAMES = {v: k for k, v in REPLY_ITEMS.items()}
_REPLY_MAC = 10  # bytes of HMAC: 80 bits, forged only by luck against an online check
_REPLY_BODY = struct.Struct(">B16s16sB16sH")


class BadToken(ValueError):
    """Malformed, forged, or signed with another key."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Unsubscribe:
    workspace_id: uuid.UUID
    person_id: uuid.UUID
    kind: Kind


@dataclass(frozen=True)
class Reply:
    workspace_id: uuid.UUID
    person_id: uuid.UUID
    item_kind: str  # "ticket" or "issue"
    item_id: uuid.UUID
    issued: date


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).rstrip(b"=").decode().lower()


def _unb32(text: str) -> bytes:
    upper = text.upper()
    return base64.b32decode(upper + "=" * (-len(upper) % 8))


class Tokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, message: str) -> str:
        return _b64(hmac.new(self._key, message.encode(), hashlib.sha256).digest()[:18])

    def unsubscribe(self, workspace_id: uuid.UUID, person_id: uuid.UUID, kind: Kind) -> str:
        body = f"{_VERSION}.{_b64(workspace_id.bytes)}.{_b64(person_id.bytes)}.{kind.value}"
        return f"{body}.{self._sign(body)}"

    def read_unsubscribe(self, token: str) -> Unsubscribe:
        parts = token.strip().split(".")
        if len(parts) != 5 or parts[0] != _VERSION:
            raise BadToken("malformed unsubscribe token")
        body, signature = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(self._sign(body), signature):
            raise BadToken("the unsubscribe token does not verify")
        try:
            ws = uuid.UUID(bytes=_unb64(parts[1]))
            person = uuid.UUID(bytes=_unb64(parts[2]))
            kind = Kind(parts[3])
        except ValueError:
            raise BadToken("malformed unsubscribe token") from None
        if PREFERENCE[kind] is None:
            raise BadToken("security messages cannot be unsubscribed")
        return Unsubscribe(ws, person, kind)

    def digest(self, what: str, value: str) -> str:
        """A keyed digest of a value kept only to be recognised (a sign-in's address)."""
        return _b64(hmac.new(self._key, f"{what}:{value}".encode(), hashlib.sha256).digest()[:18])

    # -- reply addresses ----------------------------------------------------------------------
    def reply(
        self,
        workspace_id: uuid.UUID,
        person_id: uuid.UUID,
        item_kind: str,
        item_id: uuid.UUID,
        issued: date,
    ) -> str:
        body = _REPLY_BODY.pack(
            _REPLY_VERSION,
            workspace_id.bytes,
            person_id.bytes,
            REPLY_ITEMS[item_kind],
            item_id.bytes,
            (issued - _EPOCH).days,
        )
        return _b32(body + self._mac(body))

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"reply:" + body, hashlib.sha256).digest()[:_REPLY_MAC]

    def read_reply(self, token: str) -> Reply:
        """The reply a token names (BadToken when malformed or forged; expiry is the caller's)."""
        try:
            raw = _unb32(token.strip())
        except (ValueError, TypeError):
            raise BadToken("malformed reply address") from None
        if len(raw) != _REPLY_BODY.size + _REPLY_MAC or _b32(raw) != token.strip().lower():
            raise BadToken("malformed reply address")  # (also: stray bits in the last letter)
        body, mac = raw[: _REPLY_BODY.size], raw[_REPLY_BODY.size :]
        if not hmac.compare_digest(self._mac(body), mac):
            raise BadToken("the reply address does not verify")
        version, ws, person, item_kind, item, days = _REPLY_BODY.unpack(body)
        if version != _REPLY_VERSION or item_kind not in _REPLY_ITEM_NAMES:
            raise BadToken("malformed reply address")
        return Reply(
            uuid.UUID(bytes=ws),
            uuid.UUID(bytes=person),
            _REPLY_ITEM_NAMES[item_kind],
            uuid.UUID(bytes=item),
            date.fromordinal(_EPOCH.toordinal() + days),
        )
