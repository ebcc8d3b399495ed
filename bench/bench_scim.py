"""SCIM provisioning rate: POST /scim/v2/Users through a real gateway and directory, each its own
process (as deployed), against embedded PostgreSQL and NATS.

    .venv/bin/python bench/bench_scim.py [--users 10000] [--concurrency 16]

Each user is one transaction: token check, person, SCIM attributes, Portal Users membership,
audit row and two outbox events (published to JetStream by the relay as it goes). Then a full
listing of the users in pages of 1000, and a filter by userName. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc, scim_pb2, scim_pb2_grpc

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from services.chassis.grpcio import check_health
from tests.signing import channel, keys
from tests.stack import Stack

MEDIA = "application/scim+json"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _wait(check, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        await asyncio.sleep(0.1)


async def main(users: int, concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-scim-"))
    pg = EmbeddedPostgres(work / "pg", free_port())
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    stack = Stack(pg_url=pg.url, nats_url=ns.url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        grpc_port, http_port = free_port(), free_port()
        env = {
            **os.environ,
            **stack.env(),
            "FRONTDESK_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
            "FRONTDESK_LOG_LEVEL": "WARNING",
        }
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.directory",
                env={**env, "FRONTDESK_IDENTITY_KEY_FILE": keys().key_file("directory")},
            )
        )
        addr = f"127.0.0.1:{grpc_port}"
        await _wait(lambda: check_health(addr), "the directory")
        gw_env = {
            **env,
            "FRONTDESK_DIRECTORY_ADDR": addr,
            "FRONTDESK_AUTH_ADDR": "127.0.0.1:1",
            "FRONTDESK_TICKETS_ADDR": "127.0.0.1:1",
            "FRONTDESK_COMPLIANCE_ADDR": "127.0.0.1:1",
            "FRONTDESK_GATEWAY_HOST": "127.0.0.1",
            "FRONTDESK_GATEWAY_PORT": str(http_port),
            "FRONTDESK_SCIM_RATE": "100000",
            "FRONTDESK_SCIM_BURST": "100000",
            "FRONTDESK_IDENTITY_KEY_FILE": keys().key_file("gateway"),  # its signing key
        }
        procs.append(
            await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", env=gw_env)
        )
        base = f"http://127.0.0.1:{http_port}"

        async def gateway_up() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{base}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await _wait(gateway_up, "the gateway")
        ch = channel(addr)
        directory = directory_pb2_grpc.DirectoryServiceStub(ch)
        created = await directory.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug="bench", name="Bench", admin_email="admin@bench.example.com", admin_name="A"
            )
        )
        token = await scim_pb2_grpc.ScimServiceStub(ch).CreateScimToken(
            scim_pb2.CreateScimTokenRequest(
                caller=common_pb2.Caller(workspace_id=created.workspace.id), name="bench"
            )
        )
        headers = {
            "Host": f"bench.localhost:{http_port}",
            "Authorization": f"Bearer {token.secret}",
            "Content-Type": MEDIA,
        }
        latencies: list[float] = []
        failures = 0
        sem = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def provision(i: int) -> None:
                nonlocal failures
                body = {
                    "schemas": [
                        "urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    ],
                    "userName": f"user{i}@bench.example.com",
                    "externalId": f"ext-{i}",
                    "name": {"givenName": "User", "familyName": str(i)},
                    "displayName": f"User {i}",
                    "emails": [
                        {"value": f"user{i}@bench.example.com", "type": "work", "primary": True}
                    ],
                    "active": True,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                        "department": f"Dept {i % 20}"
                    },
                }
                async with sem:
                    started = time.perf_counter()
                    async with http.post(f"{base}/scim/v2/Users", json=body, headers=headers) as r:
                        await r.read()
                        if r.status != 201:
                            failures += 1
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(provision(i) for i in range(users)))
            elapsed = time.perf_counter() - started
            print(
                f"SCIM POST /Users: {users} users in {elapsed:.1f}s = {users / elapsed:.0f} users/s "
                f"(concurrency {concurrency}); p50 {_pct(latencies, 0.5):.1f} ms, "
                f"p95 {_pct(latencies, 0.95):.1f} ms; {failures} failed; load average "
                + " ".join(f"{x:.1f}" for x in os.getloadavg())
            )

            started = time.perf_counter()
            seen = 0
            start = 1
            while True:
                async with http.get(
                    f"{base}/scim/v2/Users?startIndex={start}&count=1000&excludedAttributes=groups",
                    headers=headers,
                ) as r:
                    page = await r.json(content_type=None)
                got = len(page.get("Resources", []))
                seen += got
                start += got
                if got == 0 or start > page["totalResults"]:
                    break
            print(
                f"SCIM GET /Users (pages of 1000): {seen} users in {time.perf_counter() - started:.1f}s"
            )

            started = time.perf_counter()
            for i in range(0, users, max(users // 100, 1)):
                async with http.get(
                    f'{base}/scim/v2/Users?filter=userName eq "user{i}@bench.example.com"',
                    headers=headers,
                ) as r:
                    found = await r.json(content_type=None)
                    assert found["totalResults"] == 1, found
            n = len(range(0, users, max(users // 100, 1)))
            print(
                f"SCIM filter userName eq: {n} lookups, {(time.perf_counter() - started) / n * 1000:.1f} ms each"
            )
        conn = await stack.connect("directory")
        unsent = await conn.fetchval("select count(*) from outbox where sent_at is null")
        print(f"outbox rows still unsent at the end: {unsent}")
        await ch.close()
    finally:
        # Stop everything even when a process already exited (it did when it could not start).
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
        await stack.close()
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.concurrency))
