"""A Frontdesk whose every part is its own OS process, for fault tests to kill, stop and restart.

PostgreSQL (durable settings: a crash must not lose a commit) and NATS come from
deploy/embedded.py; each service replica and gateway replica is `python -m ...` with the same
environment the launcher gives it, on a port of its own that it keeps across restarts, logging
into the suite's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from deploy.launcher import SERVICES, Launcher, Plan
from services.chassis.grpcio import check_health
from tests.signing import keys

ROOT = Path(__file__).resolve().parents[2]


async def eventually(check: object, within: float = 30.0, what: str = "the condition") -> None:
    """Poll the async predicate `check` until it holds; fail after `within` seconds."""
    assert callable(check)
    deadline = time.monotonic() + within
    while True:
        try:
            if await check():
                return
        except (OSError, aiohttp.ClientError, asyncpg.PostgresError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within:.0f}s")
        await asyncio.sleep(0.1)


@dataclass
class Proc:
    """One replica: its module, port and environment are kept, so a restart is the same one."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def spawn(self) -> None:
        out = open(self.log, "ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        out.close()

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.popen is not None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)

    def stop(self) -> None:
        if self.running:
            self.signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.signal(signal.SIGTERM)
            self.wait_exit()


@dataclass
class Suite:
    workdir: Path
    pg: EmbeddedPostgres = field(init=False)
    nats: EmbeddedNats = field(init=False)
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pg = EmbeddedPostgres(self.workdir / "pg", free_port())
        self.nats = EmbeddedNats(self.workdir / "nats", free_port())
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)

    # -- infrastructure ------------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.pg.start()
        self.nats.start()

    def kill_nats(self) -> None:
        assert self.nats._proc is not None
        self.nats._proc.kill()
        self.nats._proc.wait(10)

    def start_nats(self) -> None:
        self.nats.start()

    def database_url(self, service: str) -> str:
        return self.pg.url.rsplit("/", 1)[0] + f"/frontdesk_{service}"

    async def connect(self, service: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url(service))

    # -- components ----------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        # The launcher's environment (secrets and whatever else every component needs), with
        # this suite's servers and addresses.
        plan = Plan(
            data_dir=self.workdir,
            gateway_port=0,
            service_ports={name: 1 for name in SERVICES},
            metrics_ports={name: 0 for name in SERVICES},
            pg_port=self.pg.port,
            nats_port=self.nats.port,
            base_domain="localhost",
        )
        launcher = Launcher(plan)
        launcher.database_url, launcher.nats_url = self.pg.url, self.nats.url
        env = launcher.service_env()
        for key in os.environ:
            if key.startswith("FRONTDESK_") and key != "FRONTDESK_AUTH_SECRET_KEY":
                # The caller's settings are not the suite's.
                env.pop(key, None)
        env.update(
            FRONTDESK_DATABASE_URL=self.pg.url,
            FRONTDESK_NATS_URL=self.nats.url,
            FRONTDESK_SHUTDOWN_GRACE="3",
            FRONTDESK_BACKEND_TIMEOUT="3",
            FRONTDESK_LOG_LEVEL="INFO",
            FRONTDESK_HOUSEKEEPING_INTERVAL="2",
            PYTHONUNBUFFERED="1",
        )
        replicas: dict[str, list[str]] = {}
        for name, proc in self.procs.items():
            service = name.rsplit("-", 1)[0]
            if service != "gateway":
                replicas.setdefault(service, []).append(proc.address)
        for service, addresses in replicas.items():
            # Every replica behind one static name: clients spread calls and fail over.
            env[f"FRONTDESK_{service.upper()}_ADDR"] = "ipv4:" + ",".join(addresses)
        for service in SERVICES:
            if service not in replicas:
                # A service this suite does not run (notifications): no address, so nobody
                # waits for it (the gateway's optional backends stay off).
                env.pop(f"FRONTDESK_{service.upper()}_ADDR", None)
        return env

    def replicas(self, service: str) -> list[Proc]:
        return [p for n, p in self.procs.items() if n.rsplit("-", 1)[0] == service]

    def add(self, service: str, replica: int = 0) -> Proc:
        """Plan (not start) a replica of a service ("directory", ...) or of "gateway"."""
        name = f"{service}-{replica}"
        port = free_port()
        module = "gateway" if service == "gateway" else f"services.{service}"
        proc = Proc(name, module, port, {}, self.workdir / "logs" / f"{name}.log")
        self.procs[name] = proc
        return proc

    async def start(self, proc: Proc, **extra: str) -> None:
        """Start `proc` with the current addresses (and `extra` variables) until it is ready."""
        env = self.base_env()
        if proc.module == "gateway":
            env.update(FRONTDESK_GATEWAY_HOST="127.0.0.1", FRONTDESK_GATEWAY_PORT=str(proc.port))
        else:
            env["FRONTDESK_GRPC_LISTEN"] = proc.address
        # its identity (tests/signing.py): the run's trusted keys and the component's own key
        env.update(keys().env())
        env["FRONTDESK_IDENTITY_KEY_FILE"] = keys().key_file(proc.name.rsplit("-", 1)[0])
        env.update(extra)
        proc.env = env
        proc.spawn()
        await self.wait_ready(proc)

    async def restart(self, proc: Proc) -> None:
        proc.spawn()
        await self.wait_ready(proc)

    async def wait_ready(self, proc: Proc, within: float = 60.0) -> None:
        async def ready() -> bool:
            if not proc.running:
                raise AssertionError(f"{proc.name} exited:\n{self.log_tail(proc)}")
            if proc.module == "gateway":
                return await self.readyz(proc) == 200
            return await check_health(proc.address, timeout=1.0)

        await eventually(ready, within, f"{proc.name} ready")

    async def readyz(self, gateway: Proc) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://{gateway.address}/readyz", timeout=aiohttp.ClientTimeout(total=3)
            ) as resp,
        ):
            return resp.status

    def log_tail(self, proc: Proc, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(proc.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def gateways(self) -> list[Proc]:
        return [p for n, p in self.procs.items() if n.startswith("gateway")]

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        self.nats.stop()
        self.pg.stop()
