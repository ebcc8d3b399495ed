"""The local launcher (`./dev up`): brings the suite up, is ready, stops cleanly, keeps data."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest
from frontdesk.v1 import directory_pb2, directory_pb2_grpc

from deploy.embedded import port_in_use
from services.chassis.grpcio import check_health
from tests.gateway_client import GatewayClient

ROOT = Path(__file__).resolve().parents[2]


def _launch(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update(
        FRONTDESK_DATA_DIR=str(data_dir),
        FRONTDESK_PORT_BASE=str(ports["base"]),
        FRONTDESK_GATEWAY_PORT=str(ports["gateway"]),
        FRONTDESK_PG_PORT=str(ports["pg"]),
        FRONTDESK_NATS_PORT=str(ports["nats"]),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.launcher", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    assert proc.stdout is not None
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        out.append(line)
        if marker in line:
            return "".join(out)
    raise AssertionError(f"launcher never printed {marker!r}:\n{''.join(out)}")


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate()
    return rest or ""


def _children_alive(data_dir: Path) -> list[str]:
    """Processes still running that belong to this launch (by data folder or module names)."""
    out = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if str(data_dir) in line]


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768-60999): a port picked inside it can
    be taken by an outgoing connection before the launched server binds it."""
    while True:
        port = random.randint(20000, 31000)
        if not port_in_use(port):
            return port


BASE_OFFSETS = (1, 2, 3, 4, 5, 101, 102, 103, 104, 105, *range(109, 122))


def _free_base() -> int:
    # The five service ports, their metrics ports, the gateway's metrics, S3's, the mail
    # catcher's and the notifications service's inbound listener's must be free.
    while True:
        base = free_port()
        if not any(port_in_use(base + d) for d in BASE_OFFSETS):
            return base


def _ports() -> dict[str, int]:
    """The base and three more free ports, none of them one the base's plan will take."""
    base = _free_base()
    planned = {base + d for d in BASE_OFFSETS}
    others: list[int] = []
    while len(others) < 3:
        port = free_port()
        if port not in planned and port not in others:
            others.append(port)
    return {"base": base, "gateway": others[0], "pg": others[1], "nats": others[2]}


async def _readyz(port: int) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
        return resp.status, await resp.json()


@pytest.mark.timeout(400)
async def test_launcher_runs_the_suite_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = _ports()
    proc = _launch(data_dir, ports)
    try:
        banner = await asyncio.to_thread(_read_until, proc, "Press Ctrl-C")
        assert f"http://acme.localhost:{ports['gateway']}/" in banner
        for component in (
            "postgresql",
            "nats",
            "directory",
            "auth",
            "tickets",
            "compliance",
            "gateway",
        ):
            assert re.search(rf"^\s+{component}\s", banner, re.M), banner
        password = re.search(r"Password:\s+(\S+)", banner)
        assert password is not None
        status, body = await _readyz(ports["gateway"])
        assert status == 200
        assert body["backends"] == {
            n: "serving" for n in ("directory", "auth", "tickets", "compliance", "notifications")
        }
        await _components_talk_mutual_tls_only(data_dir, ports["base"])

        # Each service has its own role owning only its database (issue 12).
        assert "one role per service" in banner
        pg = f"postgresql://frontdesk_tickets@127.0.0.1:{ports['pg']}"
        own = await asyncpg.connect(f"{pg}/frontdesk_tickets")
        try:
            assert await own.fetchval("select count(*) from tickets") == 0
        finally:
            await own.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(f"{pg}/frontdesk_directory")

        # The CLI creates another workspace in the running suite; its admin can sign in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
        env.update(
            FRONTDESK_PORT_BASE=str(ports["base"]),
            FRONTDESK_GATEWAY_PORT=str(ports["gateway"]),
            # where the launcher's signing key and certificate are
            FRONTDESK_DATA_DIR=str(data_dir),
        )
        created = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "deploy.launcher",
                "workspace",
                "create",
                "beta",
                "--name",
                "Beta",
                "--admin-email",
                "admin@beta.example",
                "--admin-password",
                "a long enough pass",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        assert f"http://beta.localhost:{ports['gateway']}/" in created.stdout
        client = await GatewayClient.open(f"http://127.0.0.1:{ports['gateway']}", "beta")
        try:
            status, answer = await client.login(
                "admin@beta.example", "a long enough pass", "management"
            )
            assert status == 200 and answer["status"] == "ok", answer
            status, me = await client.get("/api/v1/me")
            assert status == 200 and "Person:manage" in me["permissions"]
        finally:
            await client.close()
    finally:
        tail = await asyncio.to_thread(_stop, proc)
    assert proc.returncode == 0, tail
    assert "postgresql  stopped" in tail
    assert _children_alive(data_dir) == []
    for port in (ports["gateway"], ports["pg"], ports["nats"], ports["base"] + 1):
        assert not port_in_use(port)

    # A second run keeps the workspace and the admin's password.
    proc = _launch(data_dir, ports)
    try:
        banner = await asyncio.to_thread(_read_until, proc, "Press Ctrl-C")
        assert "existing data kept" in banner
        assert f"Password:    {password.group(1)}" in banner
    finally:
        await asyncio.to_thread(_stop, proc)
    assert _children_alive(data_dir) == []


async def _components_talk_mutual_tls_only(data_dir: Path, base: int) -> None:
    """Every service port speaks TLS and wants a client certificate from the launcher's CA;
    with one, a call still needs a signed principal."""
    tls_dir = data_dir / "tls"
    ca = (tls_dir / "ca.crt").read_bytes()
    mine = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(tls_dir / "launcher.key").read_bytes(),
        certificate_chain=(tls_dir / "launcher.crt").read_bytes(),
    )
    for offset in range(1, 5):  # directory, auth, tickets, compliance
        address = f"127.0.0.1:{base + offset}"
        assert await check_health(address, timeout=2.0, credentials=mine)
        # Plain text is refused, and so is TLS without a client certificate.
        assert not await check_health(address, timeout=2.0)
        assert not await check_health(
            address, timeout=2.0, credentials=grpc.ssl_channel_credentials(root_certificates=ca)
        )
    async with grpc.aio.secure_channel(f"127.0.0.1:{base + 1}", mine) as ch:
        stub = directory_pb2_grpc.DirectoryServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetWorkspace(directory_pb2.GetWorkspaceRequest(slug="acme"), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with grpc.aio.insecure_channel(f"127.0.0.1:{base + 1}") as ch:
        stub = directory_pb2_grpc.DirectoryServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetWorkspace(directory_pb2.GetWorkspaceRequest(slug="acme"), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_port_in_use_is_named_not_a_hang(tmp_path: Path) -> None:
    ports = _ports()
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", ports["gateway"])
    proc = _launch(tmp_path / "data", ports)
    try:
        out = await asyncio.to_thread(_stop_when_exits, proc)
    finally:
        blocker.close()
        _stop(proc)
    assert f"port {ports['gateway']} for gateway is already in use" in out
    assert proc.returncode == 1
    assert _children_alive(tmp_path / "data") == []


def _stop_when_exits(proc: subprocess.Popen[str]) -> str:
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise AssertionError("launcher hung on a port in use") from None
    return out
