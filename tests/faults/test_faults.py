"""Issue 11's fault scenarios against a Frontdesk whose every part is its own OS process.

PostgreSQL is crashed (`pg_ctl stop -m immediate`), NATS killed, services SIGKILLed, stopped
(SIGSTOP) and restarted, under writes and access changes made through the gateways. The
assertions are counts of what the databases and streams hold, never timings (apart from the
readiness deadlines that scenario 8 is about).
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.faults.harness import eventually
from tests.faults.world import (
    RequestLoad,
    TicketLoad,
    World,
    assert_every_ticket_once,
    request,
    until_done,
)


def assert_pipeline_complete(counts: dict[str, int]) -> None:
    """Every directory event published once and applied once by auth; auth's own events
    published once; nothing given up."""
    assert counts["directory_stream"] == counts["directory_outbox"], counts
    assert counts["auth_inbox"] == counts["auth_inbox_distinct"], counts
    assert counts["auth_stream"] == counts["auth_outbox"], counts
    assert counts["auth_dead_letters"] == 0, counts


async def readyz_all(world: World) -> set[int]:
    return {await world.suite.readyz(g) for g in world.suite.gateways()}


# 8 -------------------------------------------------------------------------------------------
async def test_postgres_down_readyz_red_within_2s_and_green_within_2s(world: World) -> None:
    suite = world.suite
    assert await readyz_all(world) == {200}
    suite.pg.stop("immediate")
    try:

        async def red() -> bool:
            return await readyz_all(world) == {503}

        await eventually(red, 2.0, "/readyz not ready on every gateway")
        status, _ = await request(world.portal[0], "GET", "/api/v1/tickets")
        assert status == 503
    finally:
        suite.pg.start()

    async def green() -> bool:
        return await readyz_all(world) == {200}

    await eventually(green, 2.0, "/readyz ready again on every gateway")


# 1 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("outage", [5, 30])
async def test_postgres_crash_loses_nothing_and_revocation_reaches_every_gateway(
    world: World, outage: float
) -> None:
    suite = world.suite
    victim_id, email, password = await world.person()
    victim = await world.signed_in(email, password, "portal")
    toggled, _, _ = await world.person()
    load = TicketLoad(world)
    async with load.running():
        await load.wait_for(3)
        changes = asyncio.create_task(_access_changes(world, toggled, 20))
        suite.pg.stop("immediate")
        await asyncio.sleep(outage)  # the outage itself (its length is the scenario)
        suite.pg.start()
        await changes
        await load.wait_for(3)
    await world.set_access(victim_id, active=False)
    await world.refused_everywhere(victim)
    counts = await world.settled()
    assert_pipeline_complete(counts)
    await assert_every_ticket_once(world, load)
    assert await world.live_sessions(victim_id) == 0


async def _access_changes(world: World, person_id: str, n: int) -> None:
    for i in range(n):
        await world.set_access(person_id, portal_access=i % 2 == 1)


# 2 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("outage", [10, 60])
async def test_nats_killed_during_200_access_changes_loses_and_doubles_nothing(
    world: World, outage: float
) -> None:
    suite = world.suite
    victim_id, email, password = await world.person()
    victim = await world.signed_in(email, password, "portal")
    toggled, _, _ = await world.person()
    before = await world.counts()
    changes = asyncio.create_task(_access_changes(world, toggled, 200))
    await _until_outbox_grew(world, before["directory_outbox"] + 20)
    suite.kill_nats()
    await asyncio.sleep(outage)
    suite.start_nats()
    await changes
    await world.set_access(victim_id, active=False)
    counts = await world.settled()
    assert counts["directory_outbox"] - before["directory_outbox"] >= 201
    assert_pipeline_complete(counts)
    await world.refused_everywhere(victim)
    assert await world.live_sessions(victim_id) == 0


async def _until_outbox_grew(world: World, rows: int) -> None:
    async def grown() -> bool:
        return (await world.counts())["directory_outbox"] >= rows

    await eventually(grown, 60, "access changes under way")


# 6 -------------------------------------------------------------------------------------------
async def test_rolling_restart_of_every_component_under_load_fails_no_request(
    world: World,
) -> None:
    """SIGTERM one replica at a time (every service replica, then the gateways), each restarted
    and ready before the next; the load client redispatches only a request that never reached a
    gateway (connection refused or closed before an answer), as a load balancer does. NATS and
    PostgreSQL are single servers here: NATS is restarted after the load, PostgreSQL not at all."""
    suite = world.suite
    load = RequestLoad(world)
    async with load.running():
        await load.wait_for(5)
        order = [p for n, p in suite.procs.items() if not n.startswith("gateway")]
        for proc in [*order, *suite.gateways()]:
            proc.stop()
            await suite.restart(proc)
            await load.wait_for(3)
    assert load.failed == []
    assert load.answered >= 3 * (len(suite.procs) + 1)
    # NATS is one server here: restarting it is an outage of the event pipeline (calls still
    # work: readiness leaves NATS out); it must lose no event all the same.
    suite.nats.stop()
    suite.start_nats()
    assert_pipeline_complete(await world.settled())


# 3 -------------------------------------------------------------------------------------------
async def test_tickets_service_sigkilled_under_idempotent_retries(world: World) -> None:
    suite = world.suite
    tickets = suite.procs["tickets-0"]
    load = TicketLoad(world)
    async with load.running():
        await load.wait_for(5)
        tickets.signal(signal.SIGKILL)
        tickets.wait_exit()
        await suite.restart(tickets)
        await load.wait_for(5)
    await assert_every_ticket_once(world, load)
    assert_pipeline_complete(await world.settled())


# 4 -------------------------------------------------------------------------------------------
async def test_consumer_stopped_20s_catches_up_and_the_revocation_holds(world: World) -> None:
    suite = world.suite
    auths = suite.replicas("auth")
    victim_id, email, password = await world.person()
    victim = await world.signed_in(email, password, "portal")
    toggled, _, _ = await world.person()
    for proc in auths:
        proc.signal(signal.SIGSTOP)
    try:
        await world.set_access(victim_id, active=False)
        await _access_changes(world, toggled, 10)
        assert await world.unhandled_directory_events()  # nobody consumes meanwhile
        await asyncio.sleep(20)
    finally:
        for proc in auths:
            proc.signal(signal.SIGCONT)
    counts = await world.settled()
    assert_pipeline_complete(counts)
    assert await world.live_sessions(victim_id) == 0
    await world.refused_everywhere(victim)


# 5 -------------------------------------------------------------------------------------------
async def test_two_auth_replicas_one_killed_publish_and_apply_each_event_once(
    world: World,
) -> None:
    suite = world.suite
    persons = [await world.person() for _ in range(4)]
    sessions = [await world.signed_in(e, pw, "portal") for _, e, pw in persons]
    toggled, _, _ = await world.person()
    before = await world.counts()
    changes = asyncio.create_task(_access_changes(world, toggled, 40))
    await _until_outbox_grew(world, before["directory_outbox"] + 10)
    doomed = suite.procs["auth-1"]
    doomed.signal(signal.SIGKILL)
    doomed.wait_exit()
    for person_id, _, _ in persons:  # each ends a session: auth publishes session_revoked
        await world.set_access(person_id, portal_access=False)
    await changes
    await suite.restart(doomed)
    counts = await world.settled()
    assert_pipeline_complete(counts)
    assert counts["auth_outbox"] - before["auth_outbox"] >= len(persons)
    for (person_id, _, _), session in zip(persons, sessions, strict=True):
        assert await world.live_sessions(person_id) == 0
        await world.refused_everywhere(session)


# 7 -------------------------------------------------------------------------------------------
async def test_slow_backend_is_504_within_the_deadline_and_readyz_red_then_green(
    world: World,
) -> None:
    tickets = world.suite.replicas("tickets")
    for proc in tickets:
        proc.signal(signal.SIGSTOP)  # it accepts connections and answers nothing
    try:
        status, body = await request(world.portal[0], "GET", "/api/v1/tickets")
        assert status == 504, body
        assert body["error"]["code"] == "timeout"

        async def red() -> bool:
            return await readyz_all(world) == {503}

        await eventually(red, 10, "/readyz red while tickets hangs")
    finally:
        for proc in tickets:
            proc.signal(signal.SIGCONT)

    async def green() -> bool:
        return await readyz_all(world) == {200}

    await eventually(green, 10, "/readyz green again")
    status, _ = await until_done(world.portal[1], "GET", "/api/v1/tickets")
    assert status == 200
