"""Compliance at scale, through the real gRPC service: completing tests concurrently (each fail
opens an issue and schedules the next period in the same transaction), the tester's list of
tests at N tests, and one sweep marking N tests overdue (with one outbox event each).

    .venv/bin/python bench/bench_compliance.py [--tests 2000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from frontdesk.v1 import common_pb2, compliance_pb2, compliance_pb2_grpc

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from tests.people import workspace
from tests.signing import channel
from tests.stack import Stack

C = compliance_pb2


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def main(n: int, concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-compliance-"))
    pg = EmbeddedPostgres(work / "pg", free_port())
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    stack = Stack(pg_url=pg.url, nats_url=ns.url)
    try:
        await stack.start("directory")  # compliance checks owners with it
        await stack.start(
            "compliance", FRONTDESK_SHUTDOWN_GRACE="1", FRONTDESK_COMPLIANCE_SWEEP_INTERVAL="3600"
        )
        people = await workspace(stack)
        ch = channel(stack.addresses["compliance"])
        stub = compliance_pb2_grpc.ComplianceServiceStub(ch)
        ws = people.ws
        tester = await people.person("Control:read", "ControlTest:read", "ControlTest:update")
        system = common_pb2.Caller(workspace_id=ws)
        me = common_pb2.Caller(
            workspace_id=ws,
            person_id=tester,
            permissions=["Control:read", "ControlTest:read", "ControlTest:update"],
        )

        # n monthly controls owned by the tester (checked with the directory each time): each
        # gets its first test at creation.
        started = time.perf_counter()
        sem = asyncio.Semaphore(concurrency)

        async def make(i: int) -> None:
            async with sem:
                await stub.CreateControl(
                    C.CreateControlRequest(
                        caller=system,
                        title=f"Control {i}",
                        frequency=C.CONTROL_FREQUENCY_MONTHLY,
                        owner_id=tester,
                    )
                )

        await asyncio.gather(*(make(i) for i in range(n)))
        created = time.perf_counter() - started
        print(f"create {n} controls (+ first test each): {created:.2f} s, {n / created:.0f}/s")

        # The tester's list: first and last page.
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            first = await stub.ListMyControlTests(
                C.ListMyControlTestsRequest(caller=me, page=common_pb2.PageRequest(page_size=25))
            )
            lat.append(time.perf_counter() - t0)
        print(
            f"ListMyControlTests first page of {first.total}: median {ms(statistics.median(lat))}"
        )
        # Keyset paging: walk to the last page with the tokens the service issues.
        token, pages, last = first.next_page_token, 1, 0.0
        while token:
            t0 = time.perf_counter()
            page = await stub.ListMyControlTests(
                C.ListMyControlTestsRequest(
                    caller=me, page=common_pb2.PageRequest(page_size=25, page_token=token)
                )
            )
            last = time.perf_counter() - t0
            token, pages = page.next_page_token, pages + 1
        print(f"ListMyControlTests last page (page {pages}, by its token): {ms(last)}")

        # Complete half of them as failures, concurrently.
        half = n // 2
        times: list[float] = []

        async def complete(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                await stub.CompleteControlTest(
                    C.CompleteControlTestRequest(
                        caller=me,
                        control_test_id=f"TST-{i + 1}",
                        result=C.CONTROL_TEST_RESULT_FAIL,
                        notes="bench",
                    )
                )
                times.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(complete(i) for i in range(half)))
        took = time.perf_counter() - started
        times.sort()
        print(
            f"complete {half} tests as fail (issue + next test each), concurrency {concurrency}: "
            f"{half / took:.0f}/s, p50 {ms(times[len(times) // 2])}, "
            f"p99 {ms(times[int(len(times) * 0.99)])}"
        )

        # One sweep marks the other half overdue.
        db = await asyncpg.connect(stack.database_url("compliance"))
        try:
            await db.execute(
                "update control_tests set due_date = current_date - 1 where state = 'scheduled'"
                " and seq <= $1",
                n,
            )
            t0 = time.perf_counter()
            total = 0
            while True:
                swept = await stub.SweepControlTests(C.SweepControlTestsRequest(caller=system))
                total += swept.marked_overdue
                if swept.marked_overdue == 0:
                    break
            print(
                f"sweep marking {total} tests overdue (+ one event each): {ms(time.perf_counter() - t0)}"
            )
            unsent = await db.fetchval("select count(*) from outbox where sent_at is null")
            print(f"outbox rows still unsent right after: {unsent}")
        finally:
            await db.close()
        await ch.close()
    finally:
        await stack.close()
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.tests, args.concurrency))
