"""Signed tokens of unsubscribe links: HMAC-SHA256 over what they name, with the service's key.

An unsubscribe token names the workspace, the person and the kind of message; it does not
expire (a mail's link must keep working), and the worst it can do is turn one preference off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from services.notifications.domain import PREFERENCE, Kind

_VERSION = "u1"


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
