"""Client-side load balancing: one channel spreads calls over every replica of a service, and a
replica that stops is no longer served within a second. Each replica is its own process; the
counts come from each replica's own Prometheus counter of handled calls."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from frontdesk.v1 import directory_pb2, directory_pb2_grpc

from deploy.embedded import free_port
from deploy.replicas import Layout, Replica
from services.chassis.grpcio import target
from tests.signing import channel
from tests.stack import Stack

CALLS = 300
COUNTER = re.compile(
    r'^frontdesk_grpc_requests_total\{code="OK",method="GetWorkspace",service="directory"\} '
    r"([0-9.e+]+)$",
    re.MULTILINE,
)


async def handled(http: aiohttp.ClientSession, replica: Replica) -> int:
    """GetWorkspace calls this replica answered, from its own /metrics."""
    async with http.get(f"http://127.0.0.1:{replica.metrics_port}/metrics") as resp:
        text = await resp.text()
    found = COUNTER.search(text)
    return int(float(found.group(1))) if found else 0


@pytest.fixture
async def directory_replicas(stack: Stack) -> AsyncIterator[list[Replica]]:
    logs = Path(tempfile.mkdtemp(prefix="lb-logs-"))
    replicas = []
    for k in range(3):
        port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            **stack.env_of("directory", FRONTDESK_GRPC_LISTEN=f"127.0.0.1:{port}"),
            "FRONTDESK_METRICS_PORT": str(metrics_port),
        }
        replicas.append(
            Replica("directory", k, port, metrics_port, env, logs / f"directory-{k + 1}.log")
        )
    try:
        for replica in replicas:
            replica.spawn()
        await asyncio.gather(*(r.wait_ready() for r in replicas))
        yield replicas
    finally:
        for replica in replicas:
            replica.terminate()
        for replica in replicas:
            await replica.wait_exit(10)


def test_targets_name_every_replica() -> None:
    assert target("tickets:50051") == "dns:///tickets:50051"
    assert target("dns:///tickets.frontdesk.svc:50051") == "dns:///tickets.frontdesk.svc:50051"
    assert target("127.0.0.1:1, 127.0.0.1:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert Layout.target(["127.0.0.1:1", "127.0.0.1:2"]) == "ipv4:127.0.0.1:1,127.0.0.1:2"


async def test_calls_spread_evenly_and_a_stopped_replica_stops_being_served(
    directory_replicas: list[Replica],
) -> None:
    replicas = directory_replicas
    addresses = ",".join(r.address for r in replicas)
    async with channel(addresses) as ch, aiohttp.ClientSession() as http:
        stub = directory_pb2_grpc.DirectoryServiceStub(ch)
        created = await stub.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug="lb", name="LB", admin_email="admin@lb.example", admin_name="Admin"
            ),
            timeout=15,
        )
        request = directory_pb2.GetWorkspaceRequest(slug="lb")
        # Round robin picks only READY replicas: wait until the channel holds all three.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await stub.GetWorkspace(request, timeout=5)
            if all([await handled(http, r) > 0 for r in replicas]):
                break
        before = [await handled(http, r) for r in replicas]

        for _ in range(CALLS):
            got = await stub.GetWorkspace(request, timeout=5)
            assert got.id == created.workspace.id
        counts = [await handled(http, r) - b for r, b in zip(replicas, before, strict=True)]
        print(f"per-replica calls of {CALLS}: {counts}")
        assert sum(counts) == CALLS
        fair = CALLS / len(replicas)
        assert all(0.8 * fair <= c <= 1.2 * fair for c in counts), counts

        # Stop one replica the way an orchestrator does (SIGTERM: NOT_SERVING, then drain) and
        # keep calling meanwhile: no call fails, and after a second (the polling deadline) every
        # call lands on the two live replicas (they count all of them), evenly.
        stopped, alive = replicas[0], replicas[1:]
        stopped.terminate()
        failures = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                await stub.GetWorkspace(request, timeout=5)
            except grpc.aio.AioRpcError:
                failures += 1
        assert failures == 0
        before_alive = [await handled(http, r) for r in alive]
        for _ in range(100):
            await stub.GetWorkspace(request, timeout=5)
        served = [await handled(http, r) - b for r, b in zip(alive, before_alive, strict=True)]
        print(f"after the stop, per live replica of 100: {served}")
        assert sum(served) == 100
        assert all(40 <= c <= 60 for c in served), served
