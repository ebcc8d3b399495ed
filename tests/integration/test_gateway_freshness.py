"""Fast and fresh at once: two gateway replicas with warm caches see every access change within
one second, because each consumes the directory's and auth's events.

Both replicas run against the same real directory, auth and tickets services and the same NATS
server. Each case warms both caches (so a request costs no gRPC call for the session,
permissions or settings), makes one change through the services' gRPC APIs with a system
Caller (or signs out through one replica), then polls BOTH replicas for at most one second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from frontdesk.v1 import directory_pb2
from yarl import URL

from gateway.cache import Caches, TtlCache, token_hash
from gateway.routing import STATE_KEY
from tests.gateway_client import GatewayClient
from tests.integration.test_gateway_access import World, make_world
from tests.stack import Stack

FRESH_WITHIN = 1.0


@dataclass
class Replicas:
    world: World
    bases: list[str]
    caches: list[Caches]


async def _two_replicas(stack: Stack) -> Replicas:
    world = await make_world(stack)
    second = await stack.start_gateway()
    runners = stack._gateways
    assert len(runners) == 2
    return Replicas(world, [world.base, second], [r.app[STATE_KEY].caches for r in runners])


async def _signed_in_on_both(r: Replicas, email: str) -> list[GatewayClient]:
    """One browser session, used against each replica (as a load balancer would spread it)."""
    first = await r.world.client(email)
    token = first.cookie("fd_session")
    assert token
    second = await GatewayClient.open(r.bases[1], "acme")
    r.world.stack.on_close(second.close)
    second.http.cookie_jar.update_cookies({"fd_session": token}, URL(r.bases[1]))
    second.csrf = first.csrf
    return [first, second]


async def _warm(r: Replicas, clients: list[GatewayClient], person_id: str, path: str) -> None:
    for client, caches in zip(clients, r.caches, strict=True):
        for _ in range(2):
            status, body = await client.get(path)
            assert status == 200, body
        # The second request was served from this replica's caches: without the events, the
        # change below would stay invisible here until the entries expire.
        assert caches.permissions.get((r.world.ws, person_id)) is not None
        assert caches.settings.get(r.world.ws) is not None
        token = client.cookie("fd_session")
        assert token and caches.sessions.get((r.world.ws, token_hash(token))) is not None


async def _seen_on_both(
    clients: list[GatewayClient], path: str, expected: Callable[[int], bool]
) -> list[float]:
    """Poll each replica until `expected(status)`; returns how long each took (<= 1 s)."""
    started = time.monotonic()

    async def one(client: GatewayClient) -> float:
        while True:
            status, body = await client.get(path)
            elapsed = time.monotonic() - started
            if expected(status):
                return elapsed
            assert elapsed < FRESH_WITHIN, (
                f"{client.base_url}: still {status} {body} after {FRESH_WITHIN}s"
            )
            await asyncio.sleep(0.005)

    return list(await asyncio.gather(*(one(c) for c in clients)))


Change = Callable[[Replicas, str, list[GatewayClient]], Awaitable[Any]]


async def _revoke_role(r: Replicas, pid: str, _c: list[GatewayClient]) -> None:
    await r.world.directory.RevokeRole(
        directory_pb2.PersonRoleRequest(
            caller=r.world.system, person_id=pid, role_id=r.world.roles["Reporter"]
        )
    )


async def _remove_membership(r: Replicas, pid: str, _c: list[GatewayClient]) -> None:
    await r.world.directory.RemoveGroupMember(
        directory_pb2.GroupMemberRequest(
            caller=r.world.system, group_id=r.world.groups["Portal Users"], person_id=pid
        )
    )


async def _role_loses_permission(r: Replicas, pid: str, _c: list[GatewayClient]) -> None:
    await r.world.directory.UpdateRole(
        directory_pb2.UpdateRoleRequest(
            caller=r.world.system,
            role_id=r.world.roles["Portal User"],
            set_permissions=True,
            permissions=["Ticket:create", "Issue:read"],
        )
    )


async def _portal_access_off(r: Replicas, pid: str, _c: list[GatewayClient]) -> None:
    await r.world.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=r.world.system, person_id=pid, portal_access=False)
    )


async def _deactivate(r: Replicas, pid: str, _c: list[GatewayClient]) -> None:
    await r.world.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=r.world.system, person_id=pid, active=False)
    )


async def _section_off(r: Replicas, _pid: str, _c: list[GatewayClient]) -> None:
    await r.world.set_sections(tickets=False)


async def _sign_out_on_first(r: Replicas, _pid: str, clients: list[GatewayClient]) -> None:
    status, _ = await clients[0].post("/auth/logout")
    assert status == 200
    # The browser would drop its cookie; a stolen copy of it must stop working everywhere.
    token = clients[1].cookie("fd_session")
    clients[0].http.cookie_jar.update_cookies({"fd_session": token or ""}, URL(r.bases[0]))


async def _sign_out_everywhere(r: Replicas, _pid: str, clients: list[GatewayClient]) -> None:
    other = await r.world.client("pat@acme.test")  # a second session of the same person
    status, _ = await other.post("/api/v1/profile/sessions/sign-out-everywhere")
    assert status == 200


CASES: dict[str, tuple[Change, Callable[[int], bool]]] = {
    "revoked role": (_revoke_role, lambda s: s == 403),
    "removed group membership": (_remove_membership, lambda s: s == 403),
    "role lost a permission": (_role_loses_permission, lambda s: s == 403),
    "portal access disabled": (_portal_access_off, lambda s: s in (401, 403)),
    "person deactivated": (_deactivate, lambda s: s == 401),
    "section toggled off": (_section_off, lambda s: s == 404),
    "signed out": (_sign_out_on_first, lambda s: s == 401),
    "signed out everywhere": (_sign_out_everywhere, lambda s: s == 401),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_access_change_reaches_both_warm_replicas_within_a_second(
    stack: Stack, case: str
) -> None:
    r = await _two_replicas(stack)
    change, expected = CASES[case]
    if case == "revoked role":
        await r.world.role("Reporter", "Ticket:read", "Ticket:create")
        pid = await r.world.person("pat@acme.test", groups=(), roles=("Reporter",))
    else:
        pid = await r.world.person("pat@acme.test")
    clients = await _signed_in_on_both(r, "pat@acme.test")
    await _warm(r, clients, pid, "/api/v1/tickets")

    seen_before = [c.events_seen for c in r.caches]
    await change(r, pid, clients)
    took = await _seen_on_both(clients, "/api/v1/tickets", expected)
    assert max(took) < FRESH_WITHIN
    # Both replicas learnt it from an event, not from an expiry (the TTL is 30 s).
    assert all(c.events_seen > before for c, before in zip(r.caches, seen_before, strict=True))


async def test_a_granted_role_and_a_section_turned_on_also_show_within_a_second(
    stack: Stack,
) -> None:
    r = await _two_replicas(stack)
    await r.world.role("Reporter", "Ticket:read", "Ticket:create")
    pid = await r.world.person("pat@acme.test", groups=())
    clients = await _signed_in_on_both(r, "pat@acme.test")
    for client in clients:
        for _ in range(2):
            status, _ = await client.get("/api/v1/tickets")
            assert status == 403  # the refusal is cached too

    await r.world.directory.GrantRole(
        directory_pb2.PersonRoleRequest(
            caller=r.world.system, person_id=pid, role_id=r.world.roles["Reporter"]
        )
    )
    await _seen_on_both(clients, "/api/v1/tickets", lambda s: s == 200)

    await r.world.set_sections(tickets=False)
    await _seen_on_both(clients, "/api/v1/tickets", lambda s: s == 404)
    await r.world.set_sections(tickets=True)
    await _seen_on_both(clients, "/api/v1/tickets", lambda s: s == 200)


async def test_navigation_follows_a_section_toggle_on_both_replicas(stack: Stack) -> None:
    r = await _two_replicas(stack)
    await r.world.person("pat@acme.test")
    clients = await _signed_in_on_both(r, "pat@acme.test")
    for client in clients:
        status, me = await client.get("/api/v1/me")
        assert status == 200 and "tickets" in me["sections"]

    await r.world.set_sections(tickets=False)
    started = time.monotonic()
    for client in clients:
        while True:
            _, page = await client.get("/", headers={"Accept": "text/html"})
            if 'href="/tickets"' not in page:
                break
            assert time.monotonic() - started < FRESH_WITHIN
            await asyncio.sleep(0.005)


async def test_a_load_that_raced_an_invalidation_is_not_cached() -> None:
    """A value read before a change must not be stored after the change's event dropped the
    key; otherwise the old permissions would live on for a whole TTL."""
    cache: TtlCache[str, str] = TtlCache(30.0)
    loading = asyncio.Event()
    release = asyncio.Event()

    async def slow_load() -> str:
        loading.set()
        await release.wait()
        return "read before the change"

    task = asyncio.create_task(cache.get_or_load("k", slow_load))
    await loading.wait()
    cache.drop("k")  # the event arrives while the old value is on its way
    release.set()
    assert await task == "read before the change"  # this request may use it
    assert cache.get("k") is None  # but the next one loads again

    async def fresh() -> str:
        return "fresh"

    assert await cache.get_or_load("k", fresh) == "fresh"
    assert cache.get("k") == "fresh"


async def test_with_nats_down_the_cache_expiry_is_the_safety_net(
    stack: Stack, nats_server: Any
) -> None:
    if nats_server is None:
        pytest.skip("needs the embedded NATS server (FRONTDESK_TEST_NATS_URL is set)")
    stack.extra_env["FRONTDESK_CACHE_TTL"] = "1.5"
    r = await _two_replicas(stack)
    await r.world.role("Reporter", "Ticket:read", "Ticket:create")
    pid = await r.world.person("pat@acme.test", groups=(), roles=("Reporter",))
    clients = await _signed_in_on_both(r, "pat@acme.test")
    await _warm(r, clients, pid, "/api/v1/tickets")

    nats_server.stop()
    seen_before = [c.events_seen for c in r.caches]
    await _revoke_role(r, pid, clients)
    started = time.monotonic()
    took = await asyncio.wait_for(
        asyncio.gather(*(_poll_until(c, "/api/v1/tickets", lambda s: s == 403) for c in clients)),
        timeout=1.5 + 2.0,
    )
    assert all(t - started <= 3.5 for t in took)
    assert [c.events_seen for c in r.caches] == seen_before  # no event could have told them


async def test_with_nats_down_the_gateway_serves_with_short_lived_caches(
    stack: Stack, nats_server: Any
) -> None:
    """A broker outage is not a portal outage: the replicas stay ready, forget their caches
    and keep entries at most FRONTDESK_CACHE_TTL_WITHOUT_EVENTS, so a revocation no event can
    announce still takes effect within that time, far below the normal TTL."""
    if nats_server is None:
        pytest.skip("needs the embedded NATS server (FRONTDESK_TEST_NATS_URL is set)")
    stack.extra_env["FRONTDESK_CACHE_TTL"] = "600"
    stack.extra_env["FRONTDESK_CACHE_TTL_WITHOUT_EVENTS"] = "1.0"
    # Every backend up (compliance too): readiness is then about NATS alone.
    await stack.start("directory")
    await stack.start("compliance")
    r = await _two_replicas(stack)
    await r.world.role("Reporter", "Ticket:read", "Ticket:create")
    pid = await r.world.person("pat@acme.test", groups=(), roles=("Reporter",))
    clients = await _signed_in_on_both(r, "pat@acme.test")
    await _warm(r, clients, pid, "/api/v1/tickets")

    nats_server.stop()
    await asyncio.wait_for(_until(lambda: all(c.degraded for c in r.caches)), 10)
    for client in clients:
        status, body = await client.get("/api/v1/tickets")
        assert status == 200, body  # still served, from the backends
        async with client.http.get(f"{client.base_url}/readyz") as resp:
            ready = await resp.json()
        assert resp.status == 200, ready
        assert ready["events"] == "unavailable" and ready["caches"] == "short-lived (no events)"
    seen_before = [c.events_seen for c in r.caches]
    await _revoke_role(r, pid, clients)
    await asyncio.wait_for(
        asyncio.gather(*(_poll_until(c, "/api/v1/tickets", lambda s: s == 403) for c in clients)),
        timeout=1.0 + 3.0,
    )
    assert [c.events_seen for c in r.caches] == seen_before  # no event could have told them

    nats_server.start()
    await asyncio.wait_for(_until(lambda: not any(c.degraded for c in r.caches)), 30)


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.05)


async def _poll_until(client: GatewayClient, path: str, expected: Callable[[int], bool]) -> float:
    while True:
        status, _ = await client.get(path)
        if expected(status):
            return time.monotonic()
        await asyncio.sleep(0.02)
