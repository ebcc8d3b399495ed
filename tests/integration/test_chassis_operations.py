"""OperationsService on a real service: dead letters listed over gRPC and by `./dev deadletters`,
and the pipeline gauges and retention of the chassis's housekeeping job."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from frontdesk.v1 import operations_pb2, operations_pb2_grpc

from deploy import deadletters
from deploy.launcher import Plan
from services.chassis import db, metrics
from services.chassis.housekeeping import Housekeeping, Retention
from tests.integration.test_chassis import MIGRATIONS
from tests.signing import channel
from tests.stack import Stack


async def test_a_dead_letter_of_a_running_service_is_listed_and_its_replay_reported(
    stack: Stack, nats_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await stack.start("directory")
    await stack.start("auth")
    nc = await nats.connect(nats_url)
    try:
        # Not an event at all: auth's access consumer can never handle it.
        await nc.jetstream().publish(f"fd.directory.{uuid.uuid4()}.garbage", b"\xff not protobuf")
    finally:
        await nc.close()
    async with channel(stack.addresses["auth"], audience="auth") as ch:
        ops = operations_pb2_grpc.OperationsServiceStub(ch)
        letters: list[operations_pb2.DeadLetter] = []
        for _ in range(200):
            resp = await ops.ListDeadLetters(operations_pb2.ListDeadLettersRequest())
            letters = list(resp.dead_letters)
            if letters:
                break
            await asyncio.sleep(0.05)
        assert [(d.consumer, d.event_id) for d in letters] == [("auth-access", "")]
        assert "unparseable" in letters[0].error
        replayed = await ops.ReplayDeadLetters(
            operations_pb2.ReplayDeadLettersRequest(ids=[letters[0].id])
        )
        assert [r.outcome for r in replayed.results] == ["unparseable"]
    monkeypatch.setenv("FRONTDESK_AUTH_ADDR", stack.addresses["auth"])
    # The CLI signs with the launcher's identity; here, with the test key (tests/signing.py).
    monkeypatch.setattr(
        deadletters, "connect", lambda address, service, plan: channel(address, audience=service)
    )
    assert await deadletters.list_letters(["auth"], "", False, Plan.from_env()) == 0
    out = capsys.readouterr().out
    assert "auth-access" in out and "(unparseable)" in out and "1 dead letter(s)" in out


async def test_housekeeping_reports_the_backlog_and_removes_old_rows_in_batches(
    stack: Stack, nats_url: str
) -> None:
    url = stack.database_url("housekeeping")
    await db.ensure_database(url)
    pool = await db.create_pool(url)
    stack.on_close(pool.close)
    await db.migrate(pool, "housekeeping_test", MIGRATIONS)
    nc = await nats.connect(nats_url)
    stack.on_close(nc.close)
    js = nc.jetstream()
    async with pool.acquire() as conn:
        await conn.execute(
            """
            insert into outbox (event_id, subject, payload, created_at, sent_at)
            select gen_random_uuid(), 'fd.directory.x.y', '', now() - interval '10 days',
                   case when n % 5 = 0 then null else now() - interval '9 days' end
            from generate_series(1, 25) as n
            """
        )
        await conn.execute(
            "insert into inbox (consumer, event_id, handled_at) "
            "select 'c', gen_random_uuid(), now() - interval '9 days' from generate_series(1, 7)"
        )
    job = Housekeeping("hk-test", pool, js, [], Retention(batch=4))
    await job.sample()
    assert metrics.OUTBOX_UNSENT.labels("hk-test")._value.get() == 5
    assert metrics.OUTBOX_OLDEST_UNSENT.labels("hk-test")._value.get() > 9 * 86400
    deleted = await job.sweep()
    assert deleted == {"outbox": 20, "inbox": 7, "dead_letters": 0, "consumer_failures": 0}
    async with pool.acquire() as conn:
        assert await conn.fetchval("select count(*) from outbox") == 5  # unsent ones stay
        assert await conn.fetchval("select count(*) from inbox") == 0
