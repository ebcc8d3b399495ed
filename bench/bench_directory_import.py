"""Bulk import at scale: 100,000 generated persons imported as CSV through the real directory
service (embedded PostgreSQL with durable settings, embedded NATS), as a dry run and as a
background job; then a second run of the same file (all unchanged), the time until the outbox
has published every event, and how fast ListPersons pages and searches over 100,000 persons.

    .venv/bin/python bench/bench_directory_import.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from services.directory.app import create_server
from services.directory.settings import Settings
from tests.signing import channel, keys

D = directory_pb2


def csv_rows(n: int) -> bytes:
    lines = ["email,name,login_name,portal_access,active,groups"]
    for i in range(n):
        domain = "acme.com" if i % 4 else "supplier.org"
        login = f"user{i}" if i % 2 else ""
        access = "" if i % 3 else "true"
        groups = "Portal Users" if i % 5 == 0 else ""
        lines.append(f"user{i}@{domain},User {i},{login},{access},,{groups}")
    return ("\n".join(lines) + "\n").encode()


async def wait_done(
    stub: directory_pb2_grpc.DirectoryServiceStub, caller: common_pb2.Caller, job_id: str
) -> D.ImportJob:
    last = -1
    while True:
        job = await stub.GetImport(D.GetImportRequest(caller=caller, import_id=job_id))
        if job.rows_done != last:
            last = job.rows_done
            print(f"    progress {job.rows_done}/{job.total_rows}", flush=True)
        if job.status in ("done", "failed"):
            return job
        await asyncio.sleep(0.25)


async def timed_page(
    stub: directory_pb2_grpc.DirectoryServiceStub, request: D.ListPersonsRequest
) -> tuple[float, D.ListPersonsResponse]:
    started = time.perf_counter()
    resp = await stub.ListPersons(request)
    return time.perf_counter() - started, resp


async def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-directory-"))
    pg = EmbeddedPostgres(work / "pg", free_port())  # durable settings, like production
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    try:
        settings = Settings.from_env(
            {
                "FRONTDESK_DATABASE_URL": pg.url,
                "FRONTDESK_DB_PREFIX": "bench_",
                "FRONTDESK_NATS_URL": ns.url,
                "FRONTDESK_GRPC_LISTEN": "127.0.0.1:0",
                "FRONTDESK_SHUTDOWN_GRACE": "1",
                **keys().env(),
                "FRONTDESK_IDENTITY_KEY_FILE": keys().key_file("directory"),
            }
        )
        running = await create_server(settings)
        ch = channel(f"127.0.0.1:{running.port}")
        stub = directory_pb2_grpc.DirectoryServiceStub(ch)
        created = await stub.CreateWorkspace(
            D.CreateWorkspaceRequest(slug="bench", name="Bench", admin_email="admin@acme.com")
        )
        caller = common_pb2.Caller(workspace_id=created.workspace.id)
        await stub.UpdatePortalSettings(
            D.UpdatePortalSettingsRequest(
                caller=caller,
                set_portal_access_rules=True,
                portal_access_rules=[D.DomainRule(domain="supplier.org", portal_access=False)],
            )
        )
        content = csv_rows(n)
        print(f"file: {n} rows, {len(content) / 1024 / 1024:.1f} MB")

        started = time.perf_counter()
        dry = await stub.StartImport(
            D.StartImportRequest(caller=caller, format="csv", content=content, dry_run=True),
            timeout=600,
        )
        dry_s = time.perf_counter() - started
        print(f"dry run: {dry_s:.2f} s ({dry.message})")

        started = time.perf_counter()
        job = await stub.StartImport(
            D.StartImportRequest(caller=caller, format="csv", content=content), timeout=600
        )
        job = await wait_done(stub, caller, job.id)
        real_s = time.perf_counter() - started
        print(f"import: {real_s:.2f} s, {n / real_s:,.0f} rows/s ({job.status}: {job.message})")

        conn = await asyncpg.connect(settings.database_url)
        try:
            started = time.perf_counter()
            while await conn.fetchval("select count(*) from outbox where sent_at is null"):
                await asyncio.sleep(0.25)
            events = await conn.fetchval("select count(*) from outbox")
            print(
                f"outbox drained {time.perf_counter() - started:.2f} s after the import finished ({events} events in all)"
            )
        finally:
            await conn.close()

        started = time.perf_counter()
        again = await stub.StartImport(
            D.StartImportRequest(caller=caller, format="csv", content=content), timeout=600
        )
        again = await wait_done(stub, caller, again.id)
        print(
            f"second import of the same file: {time.perf_counter() - started:.2f} s ({again.message})"
        )

        page_size = 50
        first_s, first = await timed_page(
            stub,
            D.ListPersonsRequest(caller=caller, page=common_pb2.PageRequest(page_size=page_size)),
        )
        token = first.next_page_token
        deep_times = []
        for _ in range(20):
            t, resp = await timed_page(
                stub,
                D.ListPersonsRequest(
                    caller=caller,
                    page=common_pb2.PageRequest(page_size=page_size, page_token=token),
                ),
            )
            deep_times.append(t)
            token = resp.next_page_token
        search_s, found = await timed_page(
            stub,
            D.ListPersonsRequest(
                caller=caller, query="user7777", page=common_pb2.PageRequest(page_size=page_size)
            ),
        )
        filt_s, filt = await timed_page(
            stub,
            D.ListPersonsRequest(
                caller=caller, portal_access=False, page=common_pb2.PageRequest(page_size=page_size)
            ),
        )
        usage_started = time.perf_counter()
        usage = await stub.PortalUsage(
            D.PortalUsageRequest(
                caller=caller, filter="never", page=common_pb2.PageRequest(page_size=page_size)
            )
        )
        usage_s = time.perf_counter() - usage_started
        print(f"ListPersons over {first.total} persons, {page_size} a page (with total count):")
        print(
            f"    first page {first_s * 1000:.1f} ms; next 20 pages median {sorted(deep_times)[10] * 1000:.1f} ms"
        )
        print(f"    search 'user7777': {search_s * 1000:.1f} ms, {found.total} matches")
        print(f"    filter portal_access=false: {filt_s * 1000:.1f} ms, {filt.total} persons")
        print(f"    PortalUsage never signed in: {usage_s * 1000:.1f} ms, {usage.total} persons")
        await ch.close()
        await running.stop()
    finally:
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.rows))
