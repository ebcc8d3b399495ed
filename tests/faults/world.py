"""The fault suite's Frontdesk and what users do on it: one workspace, an admin who files
tickets with Idempotency-Key retries, persons whose access changes, sessions on every gateway.

Everything goes through the gateways as a user would (management and portal JSON API); the
assertions read what each service's database and the JetStream streams hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nats
from yarl import URL

from deploy.launcher import create_workspace
from services.chassis.identity import Identity
from services.chassis.settings import IdentitySettings
from tests.faults.harness import Proc, Suite, eventually
from tests.gateway_client import GatewayClient
from tests.signing import keys

API = "/management/api/v1"
SLUG = "faults"
TICKET = {
    "type": "incident",
    "title": "Printer on fire",
    "description": "Third floor",
    "impact": "low",
    "urgency": "low",
}


async def request(client: GatewayClient, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    """One request; a connection that failed before an answer is status 0 (never raises)."""
    try:
        return await client.request(method, path, **kw)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return 0, str(exc)


async def until_done(
    client: GatewayClient, method: str, path: str, *, within: float = 120.0, **kw: Any
) -> tuple[int, Any]:
    """Repeat a request while our infrastructure is away (0, 502-504), as a client honouring
    Retry-After would; the last answer."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status, body = await request(client, method, path, **kw)
        if status not in (0, 502, 503, 504) or asyncio.get_running_loop().time() > deadline:
            return status, body
        await asyncio.sleep(0.2)


@dataclass
class World:
    suite: Suite
    ws: str = ""
    admin_email: str = "admin@faults.example"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    admin: list[GatewayClient] = field(default_factory=list)  # management, per gateway
    portal: list[GatewayClient] = field(default_factory=list)  # the admin's portal sessions
    clients: list[GatewayClient] = field(default_factory=list)

    async def open(self) -> None:
        directory, auth = self.suite.procs["directory-0"], self.suite.procs["auth-0"]
        launcher = Identity.from_settings(
            "launcher",
            IdentitySettings.from_env(
                {**keys().env(), "FRONTDESK_IDENTITY_KEY_FILE": keys().key_file("launcher")}
            ),
        )
        created = await create_workspace(
            launcher,
            directory.address,
            auth.address,
            SLUG,
            "Faults",
            self.admin_email,
            "Fault Admin",
            self.admin_password,
        )
        self.ws = created.workspace.id
        self.admin = await self.signed_in(self.admin_email, self.admin_password, "management")
        status, body = await until_done(
            self.admin[0],
            "PATCH",
            f"{API}/persons/{created.admin.id}",
            json={"portal_access": True},
        )
        assert status == 200, body
        self.portal = await self.signed_in(self.admin_email, self.admin_password, "portal")

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    async def client(self, gateway: Proc) -> GatewayClient:
        client = await GatewayClient.open(f"http://{gateway.address}", SLUG)
        self.clients.append(client)
        return client

    async def signed_in(self, email: str, password: str, surface: str) -> list[GatewayClient]:
        """One session, used on every gateway replica (as a load balancer would spread it)."""
        gateways = self.suite.gateways()
        first = await self.client(gateways[0])
        status, body = await first.login(email, password, surface)
        assert status == 200 and body.get("status") == "ok", body
        token = first.cookie("fd_session")
        assert token
        clients = [first]
        for gateway in gateways[1:]:
            other = await self.client(gateway)
            other.http.cookie_jar.update_cookies({"fd_session": token}, URL(other.base_url))
            other.csrf = first.csrf
            clients.append(other)
        return clients

    async def person(self, portal_access: bool = True) -> tuple[str, str, str]:
        """A new person with a password: (id, e-mail, password)."""
        email = f"p{uuid.uuid4().hex[:10]}@faults.example"
        status, body = await until_done(
            self.admin[0],
            "POST",
            f"{API}/persons",
            json={"email": email, "name": "Fault Person", "portal_access": portal_access},
        )
        assert status == 201, body
        password = secrets.token_urlsafe(12)
        status, ok = await until_done(
            self.admin[0],
            "POST",
            f"{API}/persons/{body['id']}/password",
            json={"password": password},
        )
        assert status == 200, ok
        return str(body["id"]), email, password

    async def set_access(self, person_id: str, **change: bool) -> None:
        """An access change (portal_access / active), repeated through outages until done."""
        status, body = await until_done(
            self.admin[0], "PATCH", f"{API}/persons/{person_id}", json=change
        )
        assert status == 200, body

    async def refused_everywhere(self, sessions: list[GatewayClient]) -> None:
        """Every gateway replica refuses the session (401), checked until it holds."""

        async def refused() -> bool:
            statuses = [(await request(c, "GET", "/api/v1/me"))[0] for c in sessions]
            return all(s == 401 for s in statuses)

        await eventually(refused, 30, "the revoked session refused on every gateway")

    # -- what the data holds ---------------------------------------------------------------
    async def settled(self) -> dict[str, int]:
        """Wait until every outbox is published and auth's consumer has every directory event;
        then the counts: directory events, auth inbox rows for them, stream messages."""

        async def done() -> bool:
            for service in ("directory", "auth", "tickets"):
                conn = await self.suite.connect(service)
                try:
                    if await conn.fetchval("select count(*) from outbox where sent_at is null"):
                        return False
                finally:
                    await conn.close()
            missing = await self.unhandled_directory_events()
            return not missing

        await eventually(done, 90, "every outbox published and every event handled")
        return await self.counts()

    async def unhandled_directory_events(self) -> set[str]:
        published = await self._ids("directory", "select event_id from outbox")
        handled = await self._ids(
            "auth", "select event_id from inbox where consumer = 'auth-access'"
        )
        return published - handled

    async def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for service in ("directory", "auth", "tickets"):
            conn = await self.suite.connect(service)
            try:
                counts[f"{service}_outbox"] = await conn.fetchval("select count(*) from outbox")
            finally:
                await conn.close()
        conn = await self.suite.connect("auth")
        try:
            counts["auth_inbox"] = await conn.fetchval(
                "select count(*) from inbox where consumer = 'auth-access'"
            )
            counts["auth_inbox_distinct"] = await conn.fetchval(
                "select count(distinct event_id) from inbox where consumer = 'auth-access'"
            )
            counts["auth_dead_letters"] = await conn.fetchval("select count(*) from dead_letters")
        finally:
            await conn.close()
        nc = await nats.connect(self.suite.nats.url)
        try:
            js = nc.jetstream()
            for stream, key in (("FD_DIRECTORY", "directory"), ("FD_AUTH", "auth")):
                info = await js.stream_info(stream)
                counts[f"{key}_stream"] = info.state.messages
        finally:
            await nc.close()
        return counts

    async def _ids(self, service: str, sql: str) -> set[str]:
        conn = await self.suite.connect(service)
        try:
            return {str(r[0]) for r in await conn.fetch(sql)}
        finally:
            await conn.close()

    async def live_sessions(self, person_id: str) -> int:
        conn = await self.suite.connect("auth")
        try:
            n: int = await conn.fetchval(
                "select count(*) from sessions where person_id = $1 and expires_at > now()",
                uuid.UUID(person_id),
            )
            return n
        finally:
            await conn.close()

    async def tickets_by_key(self, keys: set[str]) -> dict[str, int]:
        conn = await self.suite.connect("tickets")
        try:
            rows = await conn.fetch(
                "select idempotency_key, count(*) as n from tickets "
                "where idempotency_key = any($1::text[]) group by idempotency_key",
                sorted(keys),
            )
            return {r["idempotency_key"]: r["n"] for r in rows}
        finally:
            await conn.close()


@dataclass
class TicketLoad:
    """Files tickets in a loop, alternating gateways; each key is retried until acknowledged."""

    world: World
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> ticket id
    failed: list[tuple[int, Any]] = field(default_factory=list)  # final non-2xx answers
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            key = uuid.uuid4().hex
            client = self.world.portal[n % len(self.world.portal)]
            n += 1
            status, body = await until_done(
                client, "POST", "/api/v1/tickets", json=TICKET, headers={"Idempotency-Key": key}
            )
            if status == 201:
                self.acknowledged[key] = body["id"]
            else:
                self.failed.append((status, body))
            await asyncio.sleep(0.05)

    async def wait_for(self, count: int) -> None:
        target = len(self.acknowledged) + count

        async def enough() -> bool:
            return len(self.acknowledged) >= target

        await eventually(enough, 120, f"{count} more acknowledged tickets")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TicketLoad]:
        task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.wait_for(task, 150)


async def assert_every_ticket_once(world: World, load: TicketLoad) -> None:
    assert load.failed == []
    keys = set(load.acknowledged)
    assert keys, "the load acknowledged no ticket"
    by_key = await world.tickets_by_key(keys)
    assert set(by_key) == keys  # 0 lost
    assert set(by_key.values()) == {1}  # 0 duplicated


@dataclass
class RequestLoad:
    """Reads and idempotent writes spread over the gateways; a request that never reached one
    (status 0) goes to the next gateway, any answer that is not 2xx is a failure."""

    world: World
    answered: int = 0
    failed: list[tuple[str, int, Any]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, n: int, method: str, path: str, **kw: Any) -> None:
        sessions = self.world.portal
        for attempt in range(len(sessions) * 10):
            client = sessions[(n + attempt) % len(sessions)]
            status, body = await request(client, method, path, **kw)
            if status == 0:
                await asyncio.sleep(0.05)
                continue
            if status >= 300:
                self.failed.append((f"{method} {path} via {client.base_url}", status, body))
            else:
                self.answered += 1
            return
        self.failed.append((f"{method} {path}", 0, "no gateway reachable"))

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            if n % 3 == 0:
                key = uuid.uuid4().hex
                await self._one(
                    n, "POST", "/api/v1/tickets", json=TICKET, headers={"Idempotency-Key": key}
                )
            else:
                await self._one(n, "GET", "/api/v1/tickets" if n % 3 == 1 else "/api/v1/me")
            await asyncio.sleep(0.02)

    async def wait_for(self, count: int) -> None:
        target = self.answered + count

        async def enough() -> bool:
            return self.answered >= target

        await eventually(enough, 60, f"{count} more answered requests")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RequestLoad]:
        task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.wait_for(task, 60)
