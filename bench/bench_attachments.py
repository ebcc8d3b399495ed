"""Attachments: upload and download throughput of 1 MB and 25 MB files through the gateway,
next to direct S3 put/get against the same SeaweedFS in the same run, and the gateway's peak
resident memory during 8 parallel 25 MB uploads. With --scan, a second tickets service with the
malware scan on (FRONTDESK_CLAMD, a real clamd from tests/clamd.py) behind its own gateway takes
the same uploads, and the upload throughput scan-on / scan-off is reported for both sizes.

The gateway and the tickets service run in their own processes (as deployed); the bench
process drives HTTP and the direct S3 calls (aiobotocore, as the service uses it).

    .venv/bin/python bench/bench_attachments.py [--small 20] [--large 4] [--scan]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
from frontdesk.v1 import auth_pb2, auth_pb2_grpc, common_pb2, directory_pb2, directory_pb2_grpc
from yarl import URL

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, EmbeddedS3, free_port
from services.chassis.grpcio import check_health
from services.chassis.objectstore import ObjectStore, S3Settings
from tests.clamd import EmbeddedClamd
from tests.gateway_client import GatewayClient
from tests.gateway_process import ROOT, GatewayProcess
from tests.signing import channel, keys
from tests.stack import Stack

MB = 1024 * 1024
CHUNK = 256 * 1024
PASSWORD = "correct horse battery staple 42"


def payload(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * (MB // 32)
    data = (block * (size // MB + 1))[:size]
    return b"PK\x03\x04" + data[4:]


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


async def timed(n_bytes: int, work: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await work()
    return n_bytes / MB / (time.perf_counter() - started)


def spawn_tickets(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    full.update(env, FRONTDESK_GRPC_LISTEN=f"127.0.0.1:{port}", FRONTDESK_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.tickets"],
        cwd=ROOT,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, f"127.0.0.1:{port}"


async def start_tickets(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    tickets, addr = spawn_tickets(env)
    deadline = time.monotonic() + 60
    while not await check_health(addr, timeout=0.5):
        if time.monotonic() > deadline or tickets.poll() is not None:
            raise RuntimeError("the tickets service did not start")
        await asyncio.sleep(0.2)
    return tickets, addr


async def main(small: int, large: int, scan: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-attachments-"))
    pg = EmbeddedPostgres(work / "pg", free_port(), fast=True)
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    s3 = EmbeddedS3(work / "s3", free_port(), [free_port() for _ in range(9)])
    s3.start()
    access, secret = s3.credentials()
    stack = Stack(pg_url=pg.url, nats_url=ns.url)
    stack.extra_env.update(
        FRONTDESK_S3_ENDPOINT=s3.endpoint,
        FRONTDESK_S3_ACCESS_KEY=access,
        FRONTDESK_S3_SECRET_KEY=secret,
        FRONTDESK_S3_BUCKET="bench",
    )
    tickets: subprocess.Popen[bytes] | None = None
    gateway: GatewayProcess | None = None
    scanning: subprocess.Popen[bytes] | None = None  # the tickets service with the scan on
    scan_gateway: GatewayProcess | None = None
    clamd = EmbeddedClamd(work / "clamd", free_port()) if scan else None
    store = ObjectStore(S3Settings(s3.endpoint, "bench", "us-east-1", access, secret))
    await store.start()
    client: GatewayClient | None = None
    try:
        await stack.start("directory")
        await stack.start("auth")
        tickets_env = stack.env(FRONTDESK_IDENTITY_KEY_FILE=keys().key_file("tickets"))
        tickets, tickets_addr = await start_tickets(tickets_env)
        env = stack.env()
        env["FRONTDESK_IDENTITY_KEY_FILE"] = keys().key_file("gateway")  # the gateway's signing key
        env.update(FRONTDESK_TICKETS_ADDR=tickets_addr, FRONTDESK_COMPLIANCE_ADDR="127.0.0.1:1")
        gateway = await GatewayProcess.start(env)
        if clamd is not None:
            clamd.start()
            scanning, scanning_addr = await start_tickets(
                {**tickets_env, "FRONTDESK_CLAMD": clamd.address}
            )
            scan_gateway = await GatewayProcess.start(
                {**env, "FRONTDESK_TICKETS_ADDR": scanning_addr}
            )
        async with (
            channel(stack.addresses["directory"]) as dch,
            channel(stack.addresses["auth"]) as ach,
        ):
            directory = directory_pb2_grpc.DirectoryServiceStub(dch)
            auth = auth_pb2_grpc.AuthServiceStub(ach)
            created = await directory.CreateWorkspace(
                directory_pb2.CreateWorkspaceRequest(
                    slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada"
                )
            )
            ws = created.workspace.id
            await directory.UpdatePortalSettings(
                directory_pb2.UpdatePortalSettingsRequest(
                    caller=common_pb2.Caller(workspace_id=ws),
                    attachment_max_file_mb=30,
                    attachment_max_item_mb=10240,
                    attachment_max_files=1000,
                )
            )
            await auth.SetPassword(
                auth_pb2.SetPasswordRequest(
                    caller=common_pb2.Caller(workspace_id=ws),
                    person_id=created.admin.id,
                    password=PASSWORD,
                )
            )
            login = await auth.Login(
                auth_pb2.LoginRequest(
                    workspace_id=ws, email="admin@acme.test", password=PASSWORD, surface="portal"
                )
            )
        client = await GatewayClient.open(gateway.base, "acme")
        client.http.cookie_jar.update_cookies(
            {"fd_session": login.session_token}, URL(gateway.base)
        )
        await client.refresh_csrf()
        http = client.http

        async def upload(data: bytes, name: str, base: str = gateway.base) -> str:
            form = aiohttp.FormData()
            form.add_field("file", data, filename=name, content_type="application/zip")
            async with http.post(
                base + "/api/v1/tickets/uploads", data=form, headers=client.headers()
            ) as resp:
                body = await resp.json()
                assert resp.status == 201, body
                return str(body["attachments"][0]["id"])

        async def download(path: str, size: int) -> None:
            got = 0
            async with http.get(gateway.base + path, headers=client.headers()) as resp:
                assert resp.status == 200, await resp.text()
                async for chunk in resp.content.iter_chunked(CHUNK):
                    got += len(chunk)
            assert got == size

        async def direct_get(key: str, size: int) -> None:
            got = 0
            async for chunk in store.get_stream(key):
                got += len(chunk)
            assert got == size

        await upload(payload(1000, 0), "warm.zip")
        if scan_gateway is not None:
            await upload(payload(1000, 0), "warm.zip", scan_gateway.base)
        scan_lines: list[str] = []
        print(f"files: {small} x 1 MB, {large} x 25 MB (each size measured sequentially)")
        for size, count in ((MB, small), (25 * MB, large)):
            data = [payload(size, i) for i in range(count)]
            total = size * count

            async def put_all(data: list[bytes] = data, size: int = size) -> None:
                for i, d in enumerate(data):
                    await store.put_stream(f"direct/{size}/{i}", chunks(d), "application/zip")

            direct_put = await timed(total, put_all)
            ids: list[str] = []

            async def upload_all(data: list[bytes] = data, ids: list[str] = ids) -> None:
                for i, d in enumerate(data):
                    ids.append(await upload(d, f"f{i}.zip"))

            gw_put = await timed(total, upload_all)
            if scan_gateway is not None:

                async def upload_scanned(
                    data: list[bytes] = data, base: str = scan_gateway.base
                ) -> None:
                    for i, d in enumerate(data):
                        await upload(d, f"s{i}.zip", base)

                scan_put = await timed(total, upload_scanned)
                scan_lines.append(
                    f"{size // MB:>2} MB upload, malware scan on: gateway {scan_put:7.1f} MB/s"
                    f"   scan off {gw_put:7.1f} MB/s   ratio on/off {scan_put / gw_put:.2f}"
                )
            status, ticket = await client.post(
                "/api/v1/tickets",
                json={
                    "type": "incident",
                    "title": "bench",
                    "description": "bench",
                    "impact": "low",
                    "urgency": "low",
                    "attachment_ids": ids,
                },
            )
            assert status == 201, ticket

            async def get_all(count: int = count, size: int = size) -> None:
                for i in range(count):
                    await direct_get(f"direct/{size}/{i}", size)

            direct_read = await timed(total, get_all)

            async def download_all(
                ids: list[str] = ids, number: str = ticket["number"], size: int = size
            ) -> None:
                for aid in ids:
                    await download(f"/api/v1/tickets/{number}/attachments/{aid}", size)

            gw_get = await timed(total, download_all)
            label = f"{size // MB:>2} MB"
            print(
                f"{label} upload:   gateway {gw_put:7.1f} MB/s   direct S3 put {direct_put:7.1f} MB/s"
                f"   ratio {gw_put / direct_put:.2f}"
            )
            print(
                f"{label} download: gateway {gw_get:7.1f} MB/s   direct S3 get {direct_read:7.1f} MB/s"
                f"   ratio {gw_get / direct_read:.2f}"
            )

        for line in scan_lines:
            print(line)
        big = [payload(25 * MB, 100 + i) for i in range(8)]
        gateway.reset_peak()
        before = gateway.memory_kib("VmHWM")
        started = time.perf_counter()
        await asyncio.gather(*(upload(d, f"p{i}.zip") for i, d in enumerate(big)))
        elapsed = time.perf_counter() - started
        peak = gateway.memory_kib("VmHWM")
        print(
            f"8 parallel 25 MB uploads: {8 * 25 / elapsed:.1f} MB/s in all; gateway peak RSS "
            f"{peak / 1024:.1f} MiB (was {before / 1024:.1f} MiB before, +{(peak - before) / 1024:.1f})"
        )
    finally:
        if client is not None:
            await client.close()
        await store.close()
        if gateway is not None:
            gateway.stop()
        if scan_gateway is not None:
            scan_gateway.stop()
        if scanning is not None and scanning.poll() is None:
            scanning.send_signal(signal.SIGTERM)
            scanning.wait(15)
        if clamd is not None:
            clamd.stop()
        if tickets is not None and tickets.poll() is None:
            tickets.send_signal(signal.SIGTERM)
            tickets.wait(15)
        await stack.close()
        s3.stop()
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=20, help="1 MB files per direction")
    parser.add_argument("--large", type=int, default=4, help="25 MB files per direction")
    parser.add_argument(
        "--scan",
        action="store_true",
        help="also upload through a tickets service scanning with clamd (Debian clamav-daemon)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.small, args.large, args.scan))
