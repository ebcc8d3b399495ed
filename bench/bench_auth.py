"""Auth: password sign-in and session resolution rates through gRPC, against embedded servers
and the real directory service.

    .venv/bin/python bench/bench_auth.py [--logins 40] [--resolves 2000] [--concurrency 8]

Sign-in is bounded by argon2id (m=19 MiB, t=2, p=1) on purpose; ResolveSession is what every
gateway request costs on a cache miss.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from frontdesk.v1 import auth_pb2, auth_pb2_grpc, common_pb2, directory_pb2, directory_pb2_grpc

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from tests.signing import channel
from tests.stack import Stack

PASSWORD = "bench-violet-umbrella-42"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _timed(calls: list, concurrency: int) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(make) -> None:  # type: ignore[no-untyped-def]
        async with sem:
            started = time.perf_counter()
            await make()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in calls))
    return time.perf_counter() - started, latencies


async def main(logins: int, resolves: int, concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    pg = EmbeddedPostgres(work / "pg", free_port())
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    stack = Stack(pg_url=pg.url, nats_url=ns.url)
    try:
        await stack.start("directory")
        await stack.start("auth")
        dch, ach = channel(stack.addresses["directory"]), channel(stack.addresses["auth"])
        directory = directory_pb2_grpc.DirectoryServiceStub(dch)
        auth = auth_pb2_grpc.AuthServiceStub(ach)
        created = await directory.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug="bench", name="Bench", admin_email="admin@bench.example", admin_name="A"
            )
        )
        ws = created.workspace.id
        system = common_pb2.Caller(workspace_id=ws)
        emails = [f"user{i}@bench.example" for i in range(8)]
        for email in emails:
            p = await directory.CreatePerson(
                directory_pb2.CreatePersonRequest(
                    caller=system, email=email, name=email, portal_access=True
                )
            )
            await auth.SetPassword(
                auth_pb2.SetPasswordRequest(caller=system, person_id=p.id, password=PASSWORD)
            )

        tokens: list[str] = []

        def login(i: int):  # type: ignore[no-untyped-def]
            async def call() -> None:
                r = await auth.Login(
                    auth_pb2.LoginRequest(
                        workspace_id=ws,
                        email=emails[i % len(emails)],
                        password=PASSWORD,
                        surface="portal",
                        client_ip=f"10.0.0.{i % 200}",
                    )
                )
                tokens.append(r.session_token)

            return call

        elapsed, lat = await _timed([login(i) for i in range(logins)], concurrency)
        print(
            f"Login (argon2id verify + session + outbox + RecordPortalLogin): {logins} in {elapsed:.2f}s "
            f"= {logins / elapsed:.1f}/s; p50 {_pct(lat, 0.5):.1f} ms, p95 {_pct(lat, 0.95):.1f} ms"
        )

        def resolve(i: int):  # type: ignore[no-untyped-def]
            async def call() -> None:
                await auth.ResolveSession(
                    auth_pb2.ResolveSessionRequest(
                        workspace_id=ws, token=tokens[i % len(tokens)], touch=True
                    )
                )

            return call

        elapsed, lat = await _timed([resolve(i) for i in range(resolves)], concurrency)
        print(
            f"ResolveSession (touch): {resolves} in {elapsed:.2f}s = {resolves / elapsed:.0f}/s; "
            f"p50 {_pct(lat, 0.5):.2f} ms, p95 {_pct(lat, 0.95):.2f} ms, mean {statistics.mean(lat) * 1000:.2f} ms"
        )
        await dch.close()
        await ach.close()
    finally:
        await stack.close()
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--resolves", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.logins, args.resolves, args.concurrency))
