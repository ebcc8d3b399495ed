"""The access snapshot: a workspace's persons, roles and groups, with the JetStream sequence of
the directory's stream that the snapshot already reflects (see protos/frontdesk/v1/access.proto).

Why it is consistent: the stream's last sequence S is read from JetStream *before* the database
snapshot (a repeatable-read, read-only transaction) is taken. The outbox relay publishes an
event only after the transaction that wrote it committed, so every event with a sequence <= S
is visible to the snapshot; a consumer starting at S + 1 misses nothing. Later pages of the same
snapshot keep S (they are read later, so they reflect at least as much).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass

import asyncpg
from nats.js import JetStreamContext

from services.chassis.caller import Caller
from services.chassis.errors import InvalidField
from services.chassis.events import STREAMS
from services.directory import access_store
from services.directory.domain import DEFAULT_PAGE, MAX_PAGE, require

STREAM = STREAMS["directory"]


@dataclass(frozen=True)
class Snapshot:
    stream: str
    sequence: int
    persons: list[access_store.PersonAccess]
    roles: list[tuple[uuid.UUID, str, tuple[str, ...]]]
    groups: list[tuple[uuid.UUID, str, tuple[uuid.UUID, ...]]]
    next_page_token: str
    total: int


def _token(last_email: str, sequence: int) -> str:
    raw = json.dumps([last_email, sequence], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _untoken(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
        last, sequence = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidField("page_token", "not a token this service issued") from None
    if not isinstance(last, str) or "\x00" in last or type(sequence) is not int or sequence < 0:
        raise InvalidField("page_token", "not a token this service issued")
    return last, sequence


class AccessService:
    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext) -> None:
        self._pool = pool
        self._js = js

    async def snapshot(
        self, caller: Caller, size: int, token: str, ids: list[uuid.UUID] | None
    ) -> Snapshot:
        require(caller, "Person:read")
        if size < 0:
            raise InvalidField("page_size", "must not be negative")
        size = min(size or DEFAULT_PAGE, MAX_PAGE)
        if ids is not None and len(ids) > MAX_PAGE:
            raise InvalidField("person_ids", f"at most {MAX_PAGE} at a time")
        after: str | None = None
        if token:
            after, sequence = _untoken(token)
        else:
            # Before the database snapshot: see the module's docstring.
            info = await self._js.stream_info(STREAM)
            sequence = int(info.state.last_seq)
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            persons, more, total = await access_store.persons_page(
                conn, caller.workspace_id, after, size, ids
            )
            roles = await access_store.roles(conn, caller.workspace_id)
            groups = await access_store.groups(conn, caller.workspace_id)
        next_token = _token(persons[-1].email.lower(), sequence) if more and persons else ""
        return Snapshot(STREAM, sequence, persons, roles, groups, next_token, total)
