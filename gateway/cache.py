"""Per-replica caches of workspaces, portal settings, sessions and permissions.

They save the gRPC calls a request would otherwise cost. Freshness comes from events: each
replica subscribes to the directory's and auth's events and drops what they name, so a revoked
role or a signed-out session takes effect at once; the TTL is only a safety net for when NATS
is unreachable (and everything is dropped when the connection comes back).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from frontdesk.v1 import auth_events_pb2, auth_pb2, directory_pb2, events_pb2
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.chassis.events import kind, payload_of

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A bounded mapping whose entries expire after `ttl` seconds."""

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self.cap: float | None = None  # the longest an entry may live now (Caches.degrade)
        self._max = max_entries
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        # Bumped by every invalidation: a load that started before one must not be stored,
        # or a value read before a change would outlive the event that announced it.
        self._generation = 0

    def get(self, key: K) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        lifetime = self._ttl if ttl is None else ttl
        if self.cap is not None:
            lifetime = min(lifetime, self.cap)
        self._data[key] = (time.monotonic() + lifetime, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def drop(self, key: K) -> None:
        self._generation += 1
        self._data.pop(key, None)

    def drop_where(self, predicate: Callable[[K, V], bool]) -> int:
        self._generation += 1
        doomed = [k for k, (_, v) in self._data.items() if predicate(k, v)]
        for k in doomed:
            del self._data[k]
        return len(doomed)

    def clear(self) -> None:
        self._generation += 1
        self._data.clear()

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        value = self.get(key)
        if value is None:
            generation = self._generation
            value = await load()
            if generation == self._generation:
                self.put(key, value)
        return value


def token_hash(token: str) -> str:
    """The id under which a session token is stored and named in events (sha256 hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Caches:
    def __init__(self, ttl: float) -> None:
        self.workspaces: TtlCache[str, directory_pb2.Workspace] = TtlCache(ttl)
        self.unknown_hosts: TtlCache[str, bool] = TtlCache(min(ttl, 5.0))
        self.settings: TtlCache[str, directory_pb2.PortalSettings] = TtlCache(ttl)
        # (workspace_id, token hash) -> session
        self.sessions: TtlCache[tuple[str, str], auth_pb2.SessionInfo] = TtlCache(ttl)
        # (workspace_id, person_id) -> effective permissions with active / portal_access
        self.permissions: TtlCache[tuple[str, str], directory_pb2.EffectivePermissions] = TtlCache(
            ttl
        )
        # (workspace_id, person_id, token hash, surface, permissions) -> (expiry, principals by
        # audience): the signed principals auth issued for a session (gateway/principals.py)
        self.principals: TtlCache[
            tuple[str, str, str, str, tuple[str, ...]], tuple[float, dict[str, str]]
        ] = TtlCache(ttl)
        self.events_seen = 0
        self.degraded = False

    def _all(self) -> tuple[TtlCache[Any, Any], ...]:
        return (
            self.workspaces,
            self.unknown_hosts,
            self.settings,
            self.sessions,
            self.permissions,
            self.principals,
        )

    def clear(self) -> None:
        for cache in self._all():
            cache.clear()

    def degrade(self, without_events: float | None) -> None:
        """While NATS is away no event can tell this replica about a change: forget everything
        and keep entries at most `without_events` seconds (None: back to the TTL, after the
        reconnect's clear). The replica keeps serving, at the cost of more backend calls."""
        self.degraded = without_events is not None
        for cache in self._all():
            cache.clear()
            cache.cap = without_events

    def drop_person(self, workspace_id: str, person_id: str) -> None:
        self.permissions.drop((workspace_id, person_id))
        self.principals.drop_where(lambda k, _v: k[0] == workspace_id and k[1] == person_id)

    def drop_sessions_of(self, workspace_id: str, person_id: str) -> None:
        self.sessions.drop_where(lambda k, v: k[0] == workspace_id and v.person_id == person_id)
        self.principals.drop_where(lambda k, _v: k[0] == workspace_id and k[1] == person_id)

    def apply(self, event: events_pb2.Event) -> None:
        """Drop whatever `event` may have made stale."""
        self.events_seen += 1
        ws = event.workspace_id
        service, name = kind(event)
        payload = payload_of(event)
        if service == "directory":
            if name == "workspace_created":
                self.unknown_hosts.clear()
                return
            if name == "portal_settings_changed":
                self.settings.drop(ws)
                return
            if name == "portal_login_recorded":
                return
            affected = set(getattr(payload, "affected_person_ids", []))
            person_id = getattr(payload, "person_id", "")
            if person_id:
                affected.add(person_id)
            if affected:
                for pid in affected:
                    self.drop_person(ws, pid)
            else:
                # No list (e.g. a role nobody holds yet): drop the workspace's permissions.
                self.permissions.drop_where(lambda k, _v: k[0] == ws)
                self.principals.drop_where(lambda k, _v: k[0] == ws)
            if name in {"person_deactivated", "portal_access_changed"} and person_id:
                self.drop_sessions_of(ws, person_id)
        elif service == "auth":
            if name == "session_revoked":
                assert isinstance(payload, auth_events_pb2.SessionRevoked)
                if payload.all_sessions or not payload.session_ids:
                    self.drop_sessions_of(ws, payload.person_id)
                for sid in payload.session_ids:
                    self.sessions.drop((ws, sid))
            elif name in {"password_changed", "two_factor_enabled", "two_factor_disabled"}:
                self.drop_sessions_of(ws, getattr(payload, "person_id", ""))


class Invalidator:
    """Subscribes this replica (plain NATS, no durable: every replica sees every event)."""

    def __init__(self, nc: NATS, caches: Caches) -> None:
        self._nc = nc
        self._caches = caches
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        for subject in ("fd.directory.>", "fd.auth.>"):
            self._subs.append(await self._nc.subscribe(subject, cb=self._on_msg))

    @property
    def subscribed(self) -> bool:
        """True while the connection is up and both subscriptions are live (readiness)."""
        return self._nc.is_connected and len(self._subs) == 2

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = events_pb2.Event.FromString(msg.data)
            self._caches.apply(event)
        except Exception as exc:
            log.warning("cache invalidation skipped a message on %s: %s", msg.subject, exc)
