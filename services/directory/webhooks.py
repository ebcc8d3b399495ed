"""Webhooks: the workspace's directory events POSTed to HTTPS endpoints, signed per Standard
Webhooks, retried with backoff, logged.

A durable consumer ("directory-webhooks") turns each directory event into one pending delivery
per endpoint that wants it, in the transaction that records the event in the inbox (so a
redelivered event adds nothing). Senders on every replica take due deliveries with SKIP LOCKED
and POST them: `webhook-id` is the event_id (receivers de-duplicate by it), `webhook-timestamp`
the send time, `webhook-signature` "v1,<base64 HMAC-SHA256 of id.timestamp.body>". A 2xx answer
is delivered; anything else (or no answer) is retried after 1, 2, 4, ... times the base delay,
up to MAX_ATTEMPTS, then failed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import secrets
import ssl
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from frontdesk.v1 import directory_events_pb2, events_pb2
from google.protobuf.json_format import MessageToDict
from nats.js import JetStreamContext
from standardwebhooks.webhooks import Webhook

from services.chassis.caller import Caller
from services.chassis.errors import InvalidField, NotFound
from services.chassis.events import kind
from services.chassis.inbox import Consumer
from services.chassis.tasks import stop_task
from services.directory import store, webhooks_store
from services.directory.domain import clean_text, require

log = logging.getLogger(__name__)

DURABLE = "directory-webhooks"
MAX_ATTEMPTS = 8
MAX_ENDPOINTS = 20
EVENT_TYPES = frozenset(
    f.name for f in directory_events_pb2.DirectoryEvent.DESCRIPTOR.oneofs_by_name["kind"].fields
)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str, *, allow_http: bool, allow_private: bool) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise InvalidField("url", "use an https:// address")
    if not parts.hostname or len(url) > 2000 or parts.username or parts.password:
        raise InvalidField("url", "give an address like https://hooks.example.com/frontdesk")
    if not allow_private:
        host = parts.hostname.lower()
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if (
            host == "localhost"
            or host.endswith(".localhost")
            or (
                ip is not None
                and (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved)
            )
        ):
            raise InvalidField("url", "webhooks go to public addresses only")
    return url


async def _public_only(url: str) -> None:
    """Refuse a host name that resolves to a loopback, private or link-local address (the
    address rules of check_url, applied to what DNS says at send time)."""
    host = urlsplit(url).hostname or ""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved:
            raise InvalidField("url", f"{host} resolves to a non-public address")


def body_of(event: events_pb2.Event) -> tuple[str, str]:
    """(event type, JSON body) of a directory event, in Standard Webhooks' shape."""
    _, name = kind(event)
    payload = getattr(event.directory, name)
    body = {
        "type": f"directory.{name}",
        "timestamp": event.occurred_at.ToDatetime(tzinfo=UTC).isoformat(),
        "event_id": event.event_id,
        "workspace_id": event.workspace_id,
        "actor_id": event.actor_id,
        "data": MessageToDict(
            payload, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ),
    }
    return name, json.dumps(body, separators=(",", ":"))


def signed_headers(secret: str, msg_id: str, body: str, now: datetime) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
        "Content-Type": "application/json",
        "User-Agent": "Frontdesk-Webhooks/1",
    }


class WebhookService:
    def __init__(
        self, pool: asyncpg.Pool, *, allow_http: bool = False, allow_private: bool = False
    ) -> None:
        self._pool = pool
        self._allow_http = allow_http
        self._allow_private = allow_private

    async def create(
        self, caller: Caller, url: str, description: str, event_types: list[str]
    ) -> webhooks_store.Endpoint:
        """Writes an audit row; deliveries start with the next event."""
        require(caller, "Settings:manage")
        url = check_url(url, allow_http=self._allow_http, allow_private=self._allow_private)
        description = clean_text(description, "description", 200)
        unknown = sorted(set(event_types) - EVENT_TYPES)
        if unknown:
            raise InvalidField("event_types", f"unknown event(s): {', '.join(unknown)}")
        endpoint = webhooks_store.Endpoint(
            uuid.uuid4(),
            caller.workspace_id,
            url,
            description,
            new_secret(),
            tuple(dict.fromkeys(event_types)),
            datetime.now(UTC),
        )
        async with self._pool.acquire() as conn, conn.transaction():
            if await store.get_settings(conn, caller.workspace_id) is None:
                raise NotFound("workspace not found")
            if len(await webhooks_store.list_endpoints(conn, caller.workspace_id)) >= MAX_ENDPOINTS:
                raise InvalidField("url", f"at most {MAX_ENDPOINTS} webhooks per workspace")
            created = await webhooks_store.insert_endpoint(conn, endpoint, caller.actor)
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "webhook.created",
                "webhook",
                str(created.id),
                None,
                {"url": url, "event_types": list(created.event_types)},
            )
        return created

    async def endpoints(self, caller: Caller) -> list[webhooks_store.Endpoint]:
        require(caller, "Settings:manage")
        async with self._pool.acquire() as conn:
            return await webhooks_store.list_endpoints(conn, caller.workspace_id)

    async def delete(self, caller: Caller, endpoint_id: uuid.UUID) -> None:
        require(caller, "Settings:manage")
        async with self._pool.acquire() as conn, conn.transaction():
            if not await webhooks_store.delete_endpoint(conn, caller.workspace_id, endpoint_id):
                raise NotFound("webhook not found")
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "webhook.deleted",
                "webhook",
                str(endpoint_id),
                None,
                None,
            )

    async def deliveries(
        self, caller: Caller, endpoint_id: uuid.UUID | None, limit: int
    ) -> list[webhooks_store.Delivery]:
        require(caller, "Settings:manage")
        limit = 50 if limit <= 0 else min(limit, 500)
        async with self._pool.acquire() as conn:
            return await webhooks_store.list_deliveries(
                conn, caller.workspace_id, endpoint_id, limit
            )


def webhook_consumer(pool: asyncpg.Pool, js: JetStreamContext) -> Consumer:
    async def handle(conn: asyncpg.Connection, event: events_pb2.Event) -> None:
        service, _ = kind(event)
        if service != "directory" or not event.workspace_id:
            return
        name, body = body_of(event)
        await webhooks_store.enqueue(
            conn, uuid.UUID(event.workspace_id), uuid.UUID(event.event_id), name, body
        )

    return Consumer(
        pool, js, durable=DURABLE, stream="FD_DIRECTORY", subject="fd.directory.>", handler=handle
    )


class WebhookSender:
    """Sends due deliveries; every replica runs one (SKIP LOCKED shares the work)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        retry_base: float = 5.0,
        ca_file: str = "",
        timeout: float = 10.0,
        poll_interval: float = 0.5,
        concurrency: int = 8,
        allow_private: bool = False,
    ) -> None:
        self._pool = pool
        self._allow_private = allow_private
        self._retry_base = retry_base
        self._ca_file = ca_file
        self._timeout = timeout
        self._poll = poll_interval
        self._concurrency = concurrency
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        context = ssl.create_default_context()
        if self._ca_file:
            context.load_verify_locations(self._ca_file)
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        self._task = asyncio.create_task(self._run(), name="directory-webhooks")

    async def stop(self) -> None:
        await stop_task(self._task)
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        while True:
            try:
                if await self.send_due():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook sender: %s", exc)
            await asyncio.sleep(self._poll)

    async def send_due(self) -> int:
        """Send one batch of due deliveries; returns how many were attempted."""
        lease = self._timeout * 2 + 5
        async with self._pool.acquire() as conn, conn.transaction():
            due = await webhooks_store.claim_due(conn, self._concurrency * 4, lease)
        if not due:
            return 0
        await asyncio.gather(*(self._send(d, e) for d, e in due))
        return len(due)

    async def _send(
        self, delivery: webhooks_store.Delivery, endpoint: webhooks_store.Endpoint
    ) -> None:
        assert self._http is not None
        headers = signed_headers(
            endpoint.secret, str(delivery.event_id), delivery.body, datetime.now(UTC)
        )
        status: int | None = None
        error = ""
        try:
            if not self._allow_private:
                await _public_only(endpoint.url)
            async with self._http.post(
                endpoint.url, data=delivery.body.encode(), headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                with contextlib.suppress(Exception):
                    await resp.content.read(4096)
        except (aiohttp.ClientError, TimeoutError, OSError, InvalidField) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        delivered = status is not None and 200 <= status < 300
        if not delivered and not error:
            error = f"answered {status}"
        attempt = delivery.attempts + 1
        retry_in = (
            None if delivered or attempt >= MAX_ATTEMPTS else self._retry_base * 2 ** (attempt - 1)
        )
        async with self._pool.acquire() as conn:
            await webhooks_store.record_attempt(
                conn, delivery, delivered=delivered, status=status, error=error, retry_in=retry_in
            )
        if not delivered:
            log.info(
                "webhook %s to endpoint %s: attempt %d failed (%s)",
                delivery.id,
                endpoint.id,
                attempt,
                error,
            )
