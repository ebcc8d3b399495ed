"""`./dev up --replicas`: two processes of every component, HAProxy in front of the gateways,
and a rolling restart of every component while a load runs through the load balancer, with
not one failed request."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from deploy.embedded import port_in_use
from deploy.haproxy import HAProxy
from deploy.replicas import COMPONENTS, GATEWAY_OFFSET, REPLICA_STRIDE, SERVICES, parse_counts
from tests.gateway_client import GatewayClient

ROOT = Path(__file__).resolve().parents[2]
CALLS = re.compile(r"^frontdesk_grpc_requests_total\{[^}]*\} ([0-9.e+]+)$", re.M)
REPLICAS = "gateway=2,directory=2,auth=2,tickets=2,compliance=2,notifications=2"
INCIDENT = {
    "type": "incident",
    "title": "Printer on fire",
    "description": "Smoke from tray 2",
    "impact": "low",
    "urgency": "low",
}


def test_replica_counts_parse_and_bad_ones_are_named() -> None:
    counts = parse_counts("gateway=2, tickets=3")
    assert counts == {
        "directory": 1,
        "auth": 1,
        "tickets": 3,
        "compliance": 1,
        "notifications": 1,
        "gateway": 2,
    }
    for bad, message in (
        ("tickets", "is not COMPONENT=COUNT"),
        ("billing=2", "is not COMPONENT=COUNT"),
        ("tickets=two", "must be a number"),
        ("tickets=0", "between 1 and 50"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_counts(bad)


def _free_port() -> int:
    while True:
        port = random.randint(20000, 30000)
        if not port_in_use(port):
            return port


# Every port the launcher derives from the base: each replica's service and metrics ports and
# the gateways' (two replicas), and the gateway metrics, S3 (+110..119), the mail catcher (+120)
# and the inbound mail listener (+121) once. NATS and PostgreSQL take ports outside these.
OFFSETS = [
    d + REPLICA_STRIDE * k
    for k in range(2)
    for d in (*range(1, len(SERVICES) + 1), *range(101, 101 + len(SERVICES)), GATEWAY_OFFSET, 109)
]
OFFSETS += list(range(110, 122))


def _free_ports() -> tuple[int, list[int]]:
    """A port base whose replica ports are free, and three more free ports apart from them."""
    while True:
        base = random.randint(20000, 29000)
        if not any(port_in_use(base + d) for d in OFFSETS):
            break
    taken = {base + d for d in OFFSETS}
    others: list[int] = []
    while len(others) < 3:
        port = _free_port()
        if port not in taken and port not in others:
            others.append(port)
    return base, others


class Output:
    """The launcher's output, read continuously (so its pipe never fills)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.timed: list[str] = []  # the same lines with the time they were read
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line)
            self.timed.append(f"{time.monotonic():.2f} {line}")

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, marker: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text:
                return self.text
            if self._proc.poll() is not None:
                break
            await asyncio.sleep(0.2)
        raise AssertionError(f"launcher never printed {marker!r}:\n{self.text}")


@dataclass
class Load:
    """Users working through the load balancer; every answer that is not the expected one counts."""

    base_url: str
    email: str
    password: str
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self, what: str, status: int, expected: int, body: object) -> None:
        self.requests += 1
        if status != expected:
            self.failures.append(f"{time.monotonic():.2f} {what}: {status} {str(body)[:200]}")

    async def user(self, number: int) -> None:
        client = await GatewayClient.open(self.base_url, "acme")
        try:
            i = 0
            while not self.stop.is_set():
                if i % 25 == 0:  # sign in again now and then: a write through auth
                    status, body = await client.login(self.email, self.password, "management")
                    self.check("login", status, 200, body)
                i += 1
                try:
                    status, body = await client.get("/api/v1/me")
                    self.check("me", status, 200, body)
                    status, body = await client.get("/management/api/v1/tickets")
                    self.check("tickets", status, 200, body)
                    status, body = await client.get("/management/api/v1/issues")
                    self.check("issues", status, 200, body)
                    if i % 5 == number % 5:
                        status, body = await client.post("/api/v1/tickets", json=INCIDENT)
                        self.check("create ticket", status, 201, body)
                except Exception as exc:  # a dropped connection is a failed request too
                    self.requests += 1
                    self.failures.append(f"{time.monotonic():.2f} {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.005)  # pacing: leave the two cores to the suite
        finally:
            await client.close()


async def _calls_per_replica(base: int) -> dict[str, int]:
    """Calls each service replica answered so far, from its own /metrics."""
    counts = {}
    async with aiohttp.ClientSession() as http:
        for i, service in enumerate(SERVICES):
            for k in range(2):
                port = base + REPLICA_STRIDE * k + 100 + i + 1
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
                counts[f"{service}-{k + 1}"] = sum(int(float(v)) for v in CALLS.findall(text))
    return counts


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.launcher", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(600)
async def test_rolling_restart_of_every_component_under_load_fails_no_request(
    workdir: Path,
) -> None:
    # Not under pytest's tmp_path: the embedded PostgreSQL runs as its own user and needs to
    # traverse the path, which pytest keeps private (0700).
    data_dir = workdir / f"replicas-{uuid.uuid4().hex[:8]}"
    base, (lb_port, pg_port, nats_port) = _free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update(
        FRONTDESK_DATA_DIR=str(data_dir),
        FRONTDESK_PORT_BASE=str(base),
        FRONTDESK_GATEWAY_PORT=str(lb_port),
        FRONTDESK_PG_PORT=str(pg_port),
        FRONTDESK_NATS_PORT=str(nats_port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.launcher", "up", "--replicas", REPLICAS],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(proc)
    try:
        banner = await output.wait_for("Press Ctrl-C")
        for component in COMPONENTS:
            for k in (1, 2):
                assert re.search(rf"^\s+{component}-{k}\s+ready on 127\.0\.0\.1:\d+", banner, re.M)
        assert f"Load balancer: http://127.0.0.1:{lb_port}" in banner
        password = re.search(r"Password:\s+(\S+)", banner)
        assert password is not None

        load = Load(f"http://127.0.0.1:{lb_port}", "admin@acme.example", password.group(1))
        users = [asyncio.create_task(load.user(n)) for n in range(4)]
        # The load spreads: every replica of every service answers calls.
        deadline = time.monotonic() + 60
        while load.requests < 400:
            assert time.monotonic() < deadline and not load.failures, load.failures
            await asyncio.sleep(0.1)
        handled = await _calls_per_replica(int(env["FRONTDESK_PORT_BASE"]))
        print(f"gRPC calls per service replica under load: {handled}")
        assert all(count > 0 for count in handled.values()), handled

        restart = await asyncio.to_thread(_run, ["restart"], env, 480)
        load.stop.set()
        await asyncio.gather(*users)

        print(f"rolling restart: {load.requests} requests, {len(load.failures)} failed")
        assert restart.returncode == 0, restart.stdout + restart.stderr + output.text
        for component in COMPONENTS:
            for k in (1, 2):
                assert f"{component}-{k}" in output.text.split("rolling restart of")[1]
        restarted = re.findall(r"^\s+(\S+)\s+restarted on", output.text, re.M)
        assert sorted(restarted) == sorted(f"{c}-{k}" for c in COMPONENTS for k in (1, 2))
        # On failure: the failed requests and the launcher's lines, both with their times.
        assert load.failures == [], "\n".join([*load.failures, *output.timed[-40:]])
        assert load.requests > 100
        # Both gateways took requests through HAProxy, and both are back in rotation.
        servers = HAProxy(data_dir, lb_port, []).servers()
        assert {s.status for s in servers.values()} == {"UP"}, servers
        assert all(s.total_sessions > 0 for s in servers.values()), servers
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output.text[-3000:]
    assert "haproxy     stopped" in output.text
    # Ctrl-C stopped every replica and the load balancer: nothing listens any more.
    listening = [
        int(p) for p in re.findall(r"ready on (?:http://)?127\.0\.0\.1:(\d+)", output.text)
    ]
    assert len(listening) >= 11
    assert [p for p in listening if port_in_use(p)] == []
