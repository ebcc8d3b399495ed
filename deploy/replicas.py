"""Several processes of each component on one machine: `./dev up --replicas tickets=3,...`.

Each replica is its own process on its own port. The services' replicas of one component are
one name for their clients (the gRPC static `ipv4:` list, balanced with round_robin); the
gateways sit behind HAProxy (deploy/haproxy.py), which health-checks their `/readyz`.
A rolling restart replaces one replica at a time: stop it gracefully (SIGTERM: a service goes
NOT_SERVING, finishes in-flight calls and exits; a gateway is first taken out of HAProxy, then
drains), start its successor on the same port, and wait until it is ready before the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc

from deploy.embedded import port_in_use
from deploy.haproxy import HAProxy
from services.chassis.grpcio import check_health

SERVICES = ("directory", "auth", "tickets", "compliance", "notifications")
COMPONENTS = (*SERVICES, "gateway")
# Port layout from FRONTDESK_PORT_BASE (B): replica k of the i-th service listens on
# B + 200k + i + 1 (metrics B + 200k + 100 + i + 1); gateway replica k on B + 200k + 50
# (metrics B + 200k + 109).
REPLICA_STRIDE = 200
GATEWAY_OFFSET = 50
GATEWAY_METRICS_OFFSET = 109


class ReplicaError(RuntimeError):
    """A replica could not start, or did not become ready in time."""


def parse_counts(spec: str) -> dict[str, int]:
    """'gateway=2,tickets=3' -> {'gateway': 2, 'tickets': 3, every other component: 1}."""
    counts = dict.fromkeys(COMPONENTS, 1)
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or name not in counts:
            raise ValueError(
                f"--replicas: {part!r} is not COMPONENT=COUNT (components: {', '.join(COMPONENTS)})"
            )
        try:
            count = int(raw)
        except ValueError:
            raise ValueError(
                f"--replicas: count for {name} must be a number, got {raw!r}"
            ) from None
        if not 1 <= count <= 50:
            raise ValueError(f"--replicas: count for {name} must be between 1 and 50")
        counts[name] = count
    return counts


@dataclass
class Replica:
    """One process of a component: its module, port, environment and log file."""

    component: str
    index: int
    port: int
    metrics_port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    # TLS for the readiness check of a service replica (the launcher's client certificate)
    health_credentials: grpc.ChannelCredentials | None = None

    @property
    def name(self) -> str:
        return f"{self.component}-{self.index + 1}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def module(self) -> str:
        return "gateway" if self.component == "gateway" else f"services.{self.component}"

    def spawn(self) -> subprocess.Popen[bytes]:
        log = open(self.log_path, "ab")  # the child keeps its own copy of the descriptor
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        return self.proc

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join("      " + line for line in text[-lines:])
        return ""

    async def wait_ready(self, timeout: float = 90.0) -> None:
        """Poll until the replica is ready: gRPC health SERVING, or the gateway's /readyz 200."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise ReplicaError(
                        f"{self.name} exited with code {code} while starting; "
                        f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                    )
                if await self._ready(http):
                    return
                await asyncio.sleep(0.2)
        raise ReplicaError(f"{self.name} was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    async def _ready(self, http: aiohttp.ClientSession) -> bool:
        if self.component != "gateway":
            return await check_health(
                self.address, timeout=0.5, credentials=self.health_credentials
            )
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            url = f"http://{self.address}/readyz"
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return resp.status == 200
        return False

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to exit; kill it after `timeout`. Returns its exit code."""
        proc = self.proc
        if proc is None:
            return None
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        return proc.returncode


@dataclass
class Layout:
    """Every replica of every component, with ports from the port base."""

    replicas: dict[str, list[Replica]] = field(default_factory=dict)

    @classmethod
    def plan(
        cls,
        counts: Mapping[str, int],
        port_base: int,
        logs: Path,
        env_for: Callable[[str, int, int, int], dict[str, str]],
    ) -> Layout:
        """`env_for(component, index, port, metrics_port)` builds each replica's environment."""
        layout = cls()
        for component in COMPONENTS:
            items = []
            for k in range(counts.get(component, 1)):
                if component == "gateway":
                    port = port_base + REPLICA_STRIDE * k + GATEWAY_OFFSET
                    metrics_port = port_base + REPLICA_STRIDE * k + GATEWAY_METRICS_OFFSET
                else:
                    i = SERVICES.index(component)
                    port = port_base + REPLICA_STRIDE * k + i + 1
                    metrics_port = port_base + REPLICA_STRIDE * k + 100 + i + 1
                name = f"{component}-{k + 1}"
                items.append(
                    Replica(
                        component,
                        k,
                        port,
                        metrics_port,
                        env_for(component, k, port, metrics_port),
                        logs / f"{name}.log",
                    )
                )
            layout.replicas[component] = items
        return layout

    @staticmethod
    def target(addresses: list[str]) -> str:
        """One gRPC name for a component's replicas: the static list, balanced round_robin."""
        return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)

    def all(self) -> list[Replica]:
        return [r for component in COMPONENTS for r in self.replicas.get(component, [])]

    def ports(self) -> list[int]:
        return [r.port for r in self.all()] + [r.metrics_port for r in self.all() if r.metrics_port]


# Pause after a service replica is back before the next one stops: the clients' channels
# reconnect to it within their 1 s maximum reconnect backoff (plus jitter and a health check),
# and this leaves a margin for a busy machine.
SETTLE_SECONDS = 3.0


class Cluster:
    """Every replica of every component for the launcher, plus HAProxy before the gateways."""

    @classmethod
    def create(
        cls,
        counts: Mapping[str, int],
        *,
        port_base: int,
        lb_port: int,
        data_dir: Path,
        logs: Path,
        base_env: Mapping[str, str],
        say: Callable[[str, str], None],
        grace: float = 10.0,
        component_env: Mapping[str, Mapping[str, str | None]] | None = None,
        health_credentials: grpc.ChannelCredentials | None = None,
    ) -> Cluster:
        """Lay out the replicas: each service's clients get the list of all its replicas.

        `component_env` adds (or, with None, removes) variables for one component's replicas,
        e.g. a service's own database URL.
        """
        addresses: dict[str, list[str]] = {}
        for component in SERVICES:
            i = SERVICES.index(component)
            ports = [port_base + REPLICA_STRIDE * k + i + 1 for k in range(counts[component])]
            addresses[component] = [f"127.0.0.1:{p}" for p in ports]

        def env_for(component: str, index: int, port: int, metrics_port: int) -> dict[str, str]:
            env = dict(base_env)
            for name, items in addresses.items():
                env[f"FRONTDESK_{name.upper()}_ADDR"] = Layout.target(items)
            env["FRONTDESK_SHUTDOWN_GRACE"] = str(grace)
            for name, value in (component_env or {}).get(component, {}).items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
            if component == "gateway":
                env["FRONTDESK_GATEWAY_HOST"] = "127.0.0.1"
                env["FRONTDESK_GATEWAY_PORT"] = str(port)
                env["FRONTDESK_GATEWAY_METRICS_PORT"] = str(metrics_port)
                # HAProxy adds X-Forwarded-For; trust it from loopback only.
                env.setdefault("FRONTDESK_TRUSTED_PROXIES", "127.0.0.1/32")
            else:
                env["FRONTDESK_GRPC_LISTEN"] = f"127.0.0.1:{port}"
                env["FRONTDESK_METRICS_PORT"] = str(metrics_port)
            return env

        layout = Layout.plan(counts, port_base, logs, env_for)
        for replica in layout.all():
            replica.health_credentials = health_credentials
        for port in [*layout.ports(), lb_port]:
            if port_in_use(port):
                raise ReplicaError(
                    f"port {port} is already in use (another Frontdesk running? "
                    f"set FRONTDESK_PORT_BASE / FRONTDESK_GATEWAY_PORT)"
                )
        gateways = [(r.name, r.port) for r in layout.replicas["gateway"]]
        return cls(layout, HAProxy(data_dir, lb_port, gateways), say, grace)

    def __init__(
        self,
        layout: Layout,
        haproxy: HAProxy,
        say: Callable[[str, str], None],
        grace: float,
    ) -> None:
        self.layout = layout
        self.haproxy = haproxy
        self.say = say
        self.grace = grace
        self.restarting: set[str] = set()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        services = [r for c in SERVICES for r in self.layout.replicas[c]]
        for replica in services:
            replica.spawn()
        await self._wait_all(services)
        gateways = self.layout.replicas["gateway"]
        for replica in gateways:
            replica.spawn()
        await self._wait_all(gateways)
        self.haproxy.start()
        for replica in gateways:
            await self.haproxy.wait_status(replica.name, "UP")
        self.say("haproxy", f"ready on http://127.0.0.1:{self.haproxy.port} (health: /readyz)")

    async def _wait_all(self, replicas: list[Replica]) -> None:
        started = time.monotonic()
        await asyncio.gather(*(r.wait_ready() for r in replicas))
        for r in replicas:
            extra = f", metrics :{r.metrics_port}" if r.metrics_port else ""
            self.say(r.name, f"ready on {r.address} ({time.monotonic() - started:.1f}s{extra})")

    def exited(self) -> list[Replica]:
        """Replicas that ended on their own (not while being restarted)."""
        return [
            r
            for r in self.layout.all()
            if r.name not in self.restarting and r.proc is not None and r.proc.poll() is not None
        ]

    async def restart(self, components: list[str]) -> None:
        """Replace the replicas of `components` (all when empty) one at a time."""
        async with self._lock:
            for component in [c for c in COMPONENTS if c in components or not components]:
                for replica in self.layout.replicas[component]:
                    await self._replace(replica)

    async def _replace(self, replica: Replica) -> None:
        self.restarting.add(replica.name)
        started = time.monotonic()
        try:
            gateway = replica.component == "gateway"
            if gateway:
                await self.haproxy.drain(replica.name, timeout=self.grace)
            replica.terminate()
            code = await replica.wait_exit(self.grace + 10)
            replica.spawn()
            replica.restarts += 1
            await replica.wait_ready()
            if gateway:
                await self.haproxy.enable(replica.name)
            else:
                await asyncio.sleep(SETTLE_SECONDS)
        finally:
            self.restarting.discard(replica.name)
        self.say(
            replica.name,
            f"restarted on {replica.address} (old one exited {code}, "
            f"{time.monotonic() - started:.1f}s)",
        )

    def banner(self) -> str:
        lines = [f"  Load balancer: http://127.0.0.1:{self.haproxy.port} (HAProxy, health /readyz)"]
        for component in COMPONENTS:
            addresses = ", ".join(r.address for r in self.layout.replicas[component])
            lines.append(f"  {component + ':':<14} {addresses}")
        return "\n".join(lines)

    def stop(self) -> None:
        pid_file(self.haproxy.dir.parent).unlink(missing_ok=True)
        self.haproxy.stop()
        self.say("haproxy", "stopped")
        order = [
            *self.layout.replicas["gateway"],
            *(r for c in reversed(SERVICES) for r in self.layout.replicas[c]),
        ]
        for replica in order:
            replica.terminate()
        for replica in order:
            if replica.proc is None:
                continue
            try:
                replica.proc.wait(self.grace + 10)
            except subprocess.TimeoutExpired:
                self.say(replica.name, "did not stop in time; killing it")
                replica.proc.kill()
                replica.proc.wait(5)
            self.say(replica.name, "stopped")


# -- `./dev restart COMPONENT...`: a request file and SIGHUP to the running launcher -----------


def pid_file(data_dir: Path) -> Path:
    return data_dir / "launcher.pid"


def read_restart_request(data_dir: Path) -> tuple[str, list[str]]:
    """(request id, components) of the pending request; all components without one."""
    path = data_dir / "restart-request.json"
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        path.unlink()
        return str(data["id"]), [c for c in data["components"] if c in COMPONENTS]
    return "", []


def write_restart_result(data_dir: Path, request_id: str, error: str) -> None:
    result = {"id": request_id, "error": error}
    (data_dir / "restart-result.json").write_text(json.dumps(result))


def request_restart(data_dir: Path, components: list[str], timeout: float = 900.0) -> str:
    """Ask the running launcher for a rolling restart and wait for it; returns an error or ''."""
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        return f"unknown component(s) {', '.join(unknown)} (components: {', '.join(COMPONENTS)})"
    try:
        pid = int(pid_file(data_dir).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return (
            f"no `./dev up --replicas ...` launcher is running with data in {data_dir} "
            f"(set FRONTDESK_DATA_DIR to the one it uses)"
        )
    request_id = uuid.uuid4().hex
    (data_dir / "restart-request.json").write_text(
        json.dumps({"id": request_id, "components": components})
    )
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    result_path = data_dir / "restart-result.json"
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            result = json.loads(result_path.read_text())
            if result.get("id") == request_id:
                return str(result.get("error") or "")
        time.sleep(0.2)
    return "the launcher did not finish the restart in time"


def watch_restart_requests(cluster: Cluster, data_dir: Path) -> None:
    """In the launcher: SIGHUP runs the requested rolling restart (one at a time)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def run() -> None:
        request_id, components = read_restart_request(data_dir)
        cluster.say("restart", f"rolling restart of {', '.join(components) or 'everything'}")
        error = ""
        try:
            await cluster.restart(components)
        except Exception as exc:  # reported to `./dev restart` and on the console
            error = str(exc)
            cluster.say("restart", f"failed: {error}")
        else:
            cluster.say("restart", "done")
        write_restart_result(data_dir, request_id, error)

    def on_hup() -> None:
        task = loop.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    pid_file(data_dir).write_text(str(os.getpid()))
    loop.add_signal_handler(signal.SIGHUP, on_hup)
