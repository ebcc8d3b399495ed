"""One page-token format for every list: keyset paging.

A token holds the listing it belongs to and the sort-key values of the last row returned, as
unpadded base64url JSON (`{"l": listing, "k": [values]}`). It is opaque to clients and checked
on the way in: a token of another listing, of the wrong shape or with a value of the wrong type
(a crafted token) is refused as INVALID_ARGUMENT on `page_token`, never handed to SQL.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from services.chassis.errors import InvalidField

R = TypeVar("R")
KeyType = type[str] | type[int] | type[bool] | type[uuid.UUID] | type[datetime] | type[date]
NOT_OURS = "not a token this service issued"
MAX_INT = 2**63


@dataclass(frozen=True)
class Page:
    """The page a request asks for: its size and the position after which it starts."""

    size: int
    after: tuple[Any, ...] | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _typed(key: KeyType, value: Any) -> Any:
    """`value` as a `key`, or ValueError when it is not one."""
    if key is bool:
        if type(value) is bool:
            return value
    elif key is int:
        if type(value) is int and 0 <= value < MAX_INT:
            return value
    elif key is str:
        if isinstance(value, str) and "\x00" not in value:
            return value
    elif isinstance(value, str):
        if key is uuid.UUID:
            return uuid.UUID(value)
        if key is datetime:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed
        elif key is date:
            return date.fromisoformat(value)
    raise ValueError(value)


@dataclass(frozen=True)
class Keyset:
    """A listing's order: its name (bound into its tokens), the types of its sort key, and the
    page sizes it allows (0 asks for `default`; more than `maximum` gets `maximum`)."""

    listing: str
    keys: tuple[KeyType, ...]
    default: int = 50
    maximum: int = 500

    def token(self, values: Sequence[Any]) -> str:
        data = {"l": self.listing, "k": [_plain(v) for v in values]}
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def position(self, token: str) -> tuple[Any, ...] | None:
        """The position a token holds, or None when it is not a token of this listing."""
        try:
            raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
            data = json.loads(raw)
            if not isinstance(data, dict) or set(data) != {"l", "k"}:
                return None
            values = data["k"]
            if data["l"] != self.listing or not isinstance(values, list):
                return None
            if len(values) != len(self.keys):
                return None
            return tuple(_typed(k, v) for k, v in zip(self.keys, values, strict=True))
        except (ValueError, TypeError, binascii.Error, UnicodeError):
            return None

    def page(self, size: int, token: str) -> Page:
        """The page a request asks for (InvalidField on page_size or page_token otherwise)."""
        if size < 0:
            raise InvalidField("page_size", "must not be negative")
        size = min(size or self.default, self.maximum)
        if not token:
            return Page(size)
        after = self.position(token)
        if after is None:
            raise InvalidField("page_token", NOT_OURS)
        return Page(size, after)

    def cut(
        self, page: Page, rows: Sequence[R], key: Callable[[R], Sequence[Any]]
    ) -> tuple[list[R], str]:
        """The page's rows out of up to size + 1 fetched, and the token of the next page ("" when
        no row follows)."""
        kept = list(rows[: page.size])
        if len(rows) <= page.size or not kept:
            return kept, ""
        return kept, self.token(key(kept[-1]))
