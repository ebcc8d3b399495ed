"""My tickets at scale: 10,000 tickets of one requester (among other requesters' tickets),
created through the real gRPC service, then the time to fetch the first, middle and last
page of ListMyTickets by walking the keyset tokens, plus filtered and searched pages, and
assignments (each checks the agent with the directory service).

    .venv/bin/python bench/bench_tickets_paging.py [--tickets 10000] [--page-size 25]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from frontdesk.v1 import common_pb2, tickets_pb2, tickets_pb2_grpc

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from tests.people import workspace
from tests.signing import channel
from tests.stack import Stack

T = tickets_pb2


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def timed(coro: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = await coro  # type: ignore[misc]
    return time.perf_counter() - started, result


async def main(n: int, page_size: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-tickets-"))
    pg = EmbeddedPostgres(work / "pg", free_port())  # durable settings, like production
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    stack = Stack(pg_url=pg.url, nats_url=ns.url)
    try:
        await stack.start("directory")  # tickets checks assignees with it
        await stack.start("tickets", FRONTDESK_SHUTDOWN_GRACE="1")
        people = await workspace(stack)
        ch = channel(stack.addresses["tickets"])
        stub = tickets_pb2_grpc.TicketServiceStub(ch)
        ws, me = people.ws, await people.person("Ticket:read", "Ticket:create")
        mine = common_pb2.Caller(
            workspace_id=ws, person_id=me, permissions=["Ticket:read", "Ticket:create"]
        )
        others = [
            common_pb2.Caller(
                workspace_id=ws,
                person_id=await people.person("Ticket:create"),
                permissions=["Ticket:create"],
            )
            for _ in range(20)
        ]

        sem = asyncio.Semaphore(32)

        async def create(who: common_pb2.Caller, i: int) -> None:
            async with sem:
                await stub.CreateTicket(
                    T.CreateTicketRequest(
                        caller=who,
                        type=T.TICKET_TYPE_INCIDENT,
                        title=f"Ticket {i} about printer {i % 97}",
                        description=f"Something broke, case {i}",
                        impact=T.TICKET_LEVEL_MEDIUM,
                        urgency=T.TICKET_LEVEL_LOW if i % 3 else T.TICKET_LEVEL_HIGH,
                    )
                )

        started = time.perf_counter()
        await asyncio.gather(*(create(mine, i) for i in range(n)))
        await asyncio.gather(*(create(others[i % len(others)], n + i) for i in range(n // 2)))
        elapsed = time.perf_counter() - started
        total = n + n // 2
        print(
            f"created {total} tickets ({n} of one requester) through gRPC in {elapsed:.1f} s "
            f"({total / elapsed:.0f}/s, 32 concurrent)"
        )
        conn = await asyncpg.connect(stack.database_url("tickets"))
        await conn.execute("analyze tickets")

        # Walk every page, timing each call.
        times: list[float] = []
        token = ""
        seen = 0
        while True:
            t, resp = await timed(
                stub.ListMyTickets(
                    T.ListMyTicketsRequest(
                        caller=mine,
                        page=common_pb2.PageRequest(page_size=page_size, page_token=token),
                    )
                )
            )
            assert isinstance(resp, T.ListTicketsResponse)
            times.append(t)
            seen += len(resp.tickets)
            token = resp.next_page_token
            if not token:
                break
        assert seen == n, seen
        pages = len(times)
        mid = pages // 2
        print(f"walked {pages} pages of {page_size} ({seen} tickets)")
        print(f"  first page   {ms(times[0])}")
        print(f"  middle page  {ms(times[mid])}  (page {mid + 1})")
        print(f"  last page    {ms(times[-1])}  (page {pages})")
        print(
            f"  all pages    median {ms(statistics.median(times))}, "
            f"p95 {ms(sorted(times)[int(len(times) * 0.95)])}, max {ms(max(times))}"
        )

        # Repeated first/middle/last with tokens kept from the walk above.
        tokens: list[str] = [""]
        token = ""
        while True:
            resp = await stub.ListMyTickets(
                T.ListMyTicketsRequest(
                    caller=mine, page=common_pb2.PageRequest(page_size=page_size, page_token=token)
                )
            )
            token = resp.next_page_token
            if not token:
                break
            tokens.append(token)
        for label, tok in (
            ("first", tokens[0]),
            ("middle", tokens[len(tokens) // 2]),
            ("last", tokens[-1]),
        ):
            samples = []
            for _ in range(50):
                t, _ = await timed(
                    stub.ListMyTickets(
                        T.ListMyTicketsRequest(
                            caller=mine,
                            page=common_pb2.PageRequest(page_size=page_size, page_token=tok),
                        )
                    )
                )
                samples.append(t)
            print(
                f"  {label:<6} page x50: median {ms(statistics.median(samples))}, max {ms(max(samples))}"
            )

        for label, req in (
            (
                "status filter (new)",
                T.ListMyTicketsRequest(caller=mine, statuses=[T.TICKET_STATUS_NEW]),
            ),
            ("text search 'printer 42'", T.ListMyTicketsRequest(caller=mine, query="printer 42")),
            ("number search 'INC-5000'", T.ListMyTicketsRequest(caller=mine, query="INC-5000")),
        ):
            samples = []
            for _ in range(20):
                t, _ = await timed(stub.ListMyTickets(req))
                samples.append(t)
            print(f"  {label:<26} median {ms(statistics.median(samples))}")

        plan = await conn.fetch(
            """
            explain (analyze, buffers) select id from tickets
            where workspace_id = $1 and requester_id = $2 and (created_at, id) < (
                select created_at, id from tickets where workspace_id = $1 and requester_id = $2
                order by created_at desc, id desc offset $3 limit 1)
            order by created_at desc, id desc limit 26
            """,
            uuid.UUID(ws),
            uuid.UUID(me),
            n - page_size,
        )
        print("plan of the last page's keyset query:")
        for row in plan:
            print("   ", row[0])
        await conn.close()

        # Assignments: each new assignee is checked with the directory (GetEffectivePermissions).
        agents = [await people.person("Ticket:manage") for _ in range(2)]
        boss = common_pb2.Caller(
            workspace_id=ws, person_id=agents[0], permissions=["Ticket:manage"]
        )
        listed = await stub.ListMyTickets(
            T.ListMyTicketsRequest(caller=mine, page=common_pb2.PageRequest(page_size=100))
        )
        lat = []
        for i, ticket in enumerate(listed.tickets):
            took, _ = await timed(
                stub.UpdateTicket(
                    T.UpdateTicketRequest(
                        caller=boss, ticket_id=ticket.id, assignee_id=agents[i % 2]
                    )
                )
            )
            lat.append(took)
        lat.sort()
        print(
            f"assign {len(lat)} tickets (directory check each): "
            f"p50 {ms(lat[len(lat) // 2])}, p99 {ms(lat[int(len(lat) * 0.99)])}"
        )
        await ch.close()
    finally:
        await stack.close()
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(main(args.tickets, args.page_size))
