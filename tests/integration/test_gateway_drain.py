"""A gateway drains on SIGTERM: it stops accepting connections, finishes the request in flight,
and exits within its grace period."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from frontdesk.v1 import directory_pb2, directory_pb2_grpc

from deploy.embedded import free_port, port_in_use
from tests.signing import keys

ROOT = Path(__file__).resolve().parents[2]


class SlowSettings(directory_pb2_grpc.DirectoryServiceServicer):
    """A real directory endpoint whose portal settings take a while (a request in flight)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def GetWorkspace(
        self, request: directory_pb2.GetWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Workspace:
        return directory_pb2.Workspace(id=str(uuid.uuid4()), slug=request.slug, name="Acme")

    async def GetPortalSettings(
        self, request: directory_pb2.GetPortalSettingsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.PortalSettings:
        self.started.set()
        await asyncio.sleep(1.5)
        return directory_pb2.PortalSettings(workspace_id=request.caller.workspace_id)


@pytest.fixture
async def slow_directory() -> AsyncIterator[tuple[str, SlowSettings]]:
    servicer = SlowSettings()
    server = grpc.aio.server()
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(0)


async def test_sigterm_finishes_the_request_in_flight_then_exits(
    slow_directory: tuple[str, SlowSettings], nats_url: str
) -> None:
    address, servicer = slow_directory
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update(
        FRONTDESK_GATEWAY_HOST="127.0.0.1",
        FRONTDESK_GATEWAY_PORT=str(port),
        FRONTDESK_DIRECTORY_ADDR=address,
        FRONTDESK_AUTH_ADDR="127.0.0.1:1",
        FRONTDESK_TICKETS_ADDR="127.0.0.1:1",
        FRONTDESK_COMPLIANCE_ADDR="127.0.0.1:1",
        FRONTDESK_NATS_URL=nats_url,
        FRONTDESK_SHUTDOWN_GRACE="10",
        FRONTDESK_IDENTITY_KEY_FILE=keys().key_file("gateway"),  # tests/signing.py
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_in_use(port):
            assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http:
            in_flight = asyncio.create_task(
                http.get(
                    f"http://127.0.0.1:{port}/auth/csrf",
                    headers={"Host": f"acme.localhost:{port}"},
                )
            )
            await asyncio.wait_for(servicer.started.wait(), 10)
            proc.send_signal(15)  # SIGTERM
            # It stops accepting: new connections are refused while the old request runs.
            deadline = time.monotonic() + 5
            while port_in_use(port) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not port_in_use(port)
            assert not in_flight.done()
            resp = await in_flight
            assert resp.status == 200
            assert "csrf_token" in await resp.json()
            resp.release()
        code = await asyncio.to_thread(proc.wait, 10)
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
