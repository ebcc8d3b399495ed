"""Gateway: request rate with warm caches, the gRPC calls a request saves, and how fast an
access change reaches two replicas.

    .venv/bin/python bench/bench_gateway.py [--requests 3000] [--concurrency 16] [--changes 30]

Against embedded PostgreSQL and NATS, the real directory, auth and tickets services and two
gateway replicas in this process. "me" is GET /api/v1/me (guard + caches, no backend call);
"tickets" is GET /api/v1/tickets (guard + one TicketService call). Freshness: a role is granted
or revoked through the directory, and the time until BOTH replicas answer accordingly is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from frontdesk.v1 import directory_pb2
from yarl import URL

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from gateway.routing import STATE_KEY
from tests.gateway_client import GatewayClient
from tests.integration.test_gateway_access import make_world
from tests.stack import Stack


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _rate(client: GatewayClient, path: str, n: int, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one() -> None:
        async with sem:
            started = time.perf_counter()
            status, _ = await client.get(path)
            assert status == 200, status
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - started
    print(
        f"  GET {path:<18} {n / elapsed:8.0f} req/s  p50 {_pct(latencies, 0.5):6.2f} ms  "
        f"p95 {_pct(latencies, 0.95):6.2f} ms  (concurrency {concurrency})"
    )


async def main(requests: int, concurrency: int, changes: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    pg = EmbeddedPostgres(work / "pg", free_port())
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    stack = Stack(pg_url=pg.url, nats_url=ns.url)
    try:
        world = await make_world(stack)
        second = await stack.start_gateway()
        await world.role("Reporter", "Ticket:read", "Ticket:create")
        pid = await world.person("pat@acme.test", groups=(), roles=("Reporter",))
        first = await world.client("pat@acme.test")
        other = await GatewayClient.open(second, "acme")
        stack.on_close(other.close)
        other.http.cookie_jar.update_cookies(
            {"fd_session": first.cookie("fd_session") or ""}, URL(other.base_url)
        )

        print("Warm-cache request rate (one replica, one client session):")
        for path in ("/api/v1/me", "/api/v1/tickets"):
            await _rate(first, path, requests, concurrency)
        caches = [r.app[STATE_KEY].caches for r in stack._gateways]
        print(
            f"  cached per replica: {len(caches[0].sessions._data)} session(s), "
            f"{len(caches[0].permissions._data)} permission set(s), "
            f"{len(caches[0].settings._data)} settings"
        )

        print(f"Access change -> both replicas ({changes} changes, alternating revoke/grant):")
        took: list[float] = []
        request = directory_pb2.PersonRoleRequest(
            caller=world.system, person_id=pid, role_id=world.roles["Reporter"]
        )
        for i in range(changes):
            revoke = i % 2 == 0
            expected = 403 if revoke else 200
            for client in (first, other):  # warm both
                await client.get("/api/v1/tickets")
            started = time.perf_counter()
            if revoke:
                await world.directory.RevokeRole(request)
            else:
                await world.directory.GrantRole(request)

            async def seen(
                client: GatewayClient, expected: int = expected, started: float = started
            ) -> float:
                while True:
                    status, _ = await client.get("/api/v1/tickets")
                    if status == expected:
                        return time.perf_counter() - started
                    await asyncio.sleep(0.002)

            both = await asyncio.gather(seen(first), seen(other))
            took.append(max(both))
        print(
            f"  p50 {_pct(took, 0.5):6.1f} ms  p95 {_pct(took, 0.95):6.1f} ms  "
            f"max {max(took) * 1000:6.1f} ms  mean {statistics.mean(took) * 1000:6.1f} ms"
        )
    finally:
        await stack.close()
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.changes))
