"""HAProxy in front of the local gateway replicas (`./dev up --replicas gateway=N`).

HAProxy comes from Debian's packages (installed with apt-get when missing and we are root).
It health-checks each gateway's `/readyz` every second and takes a failing one out; the
launcher drives it through its admin socket during a rolling restart: a gateway is put in
maintenance (no new requests), its in-flight requests finish, and only then is it stopped.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BACKEND = "gateways"


class HAProxyError(RuntimeError):
    """HAProxy is not installed and cannot be, or did not start."""


def ensure_installed() -> str:
    """The haproxy binary; installs Debian's package first when it is missing (visibly)."""
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)),
        None,
    )
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise HAProxyError(
            "HAProxy is needed in front of the gateway replicas: install it "
            "(Debian/Ubuntu: sudo apt-get install haproxy) and run again"
        )
    print("  haproxy     not installed: installing Debian's package (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "haproxy"]):
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise HAProxyError(
                f"installing HAProxy failed ({' '.join(args)} exited {done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(found, os.X_OK):
        raise HAProxyError("apt-get installed haproxy but no haproxy binary was found")
    return found


def config(port: int, gateways: list[tuple[str, int]], socket_path: Path) -> str:
    """The configuration: one frontend on `port`, round-robin over `gateways` (name, port)."""
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{gw_port} check" for name, gw_port in gateways
    )
    return f"""\
global
    log stderr format short local0 notice
    stats socket {socket_path} mode 600 level admin
    hard-stop-after 30s

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    option redispatch 1
    retries 3
    # A request whose connection failed, or that got no byte back, is tried on another gateway
    # (the latter only for methods that are safe to repeat: see the backend).
    retry-on conn-failure empty-response
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s

frontend portal
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-request disable-l7-retry if !METH_GET !METH_HEAD !METH_OPTIONS
    default-server inter 1s fastinter 500ms downinter 1s rise 2 fall 2
{servers}
"""


@dataclass
class ServerState:
    name: str
    status: str  # UP, DOWN, MAINT, ...
    current_sessions: int
    total_sessions: int


class HAProxy:
    """One HAProxy process and its admin socket."""

    def __init__(self, data_dir: Path, port: int, gateways: list[tuple[str, int]]) -> None:
        self.dir = data_dir / "haproxy"
        self.port = port
        self.gateways = gateways
        self.socket_path = self.dir / "admin.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = ensure_installed()
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "haproxy.cfg"
        cfg.write_text(config(self.port, self.gateways, self.socket_path))
        check = subprocess.run(
            [binary, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise HAProxyError(
                f"HAProxy refused its configuration {cfg}:\n{check.stdout}{check.stderr}"
            )
        log = open(self.dir.parent / "logs" / "haproxy.log", "ab")  # the child keeps a copy
        try:
            # -db: stay in the foreground; -W: master-worker, SIGTERM stops it.
            self.proc = subprocess.Popen(
                [binary, "-W", "-db", "-f", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while not self.socket_path.exists() and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HAProxyError(f"HAProxy exited with code {self.proc.returncode}")
            time.sleep(0.05)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, ServerState]:
        """The backend's servers as HAProxy sees them (from `show stat`)."""
        text = self.command("show stat").lstrip("# ")
        states = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == BACKEND and row.get("svname") not in {"FRONTEND", "BACKEND"}:
                states[row["svname"]] = ServerState(
                    row["svname"], row["status"], int(row["scur"] or 0), int(row["stot"] or 0)
                )
        return states

    async def wait_status(self, name: str, status: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.servers()[name].status.startswith(status):
                return
            await asyncio.sleep(0.1)
        raise HAProxyError(f"gateway {name} did not become {status} in HAProxy")

    async def drain(self, name: str, timeout: float = 30.0) -> None:
        """Send no new request to `name`, then wait until its in-flight requests are done."""
        self.command(f"set server {BACKEND}/{name} state maint")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.servers()[name].current_sessions > 0:
            await asyncio.sleep(0.05)

    async def enable(self, name: str) -> None:
        """Put `name` back in rotation and wait until its health check passes."""
        self.command(f"set server {BACKEND}/{name} state ready")
        await self.wait_status(name, "UP")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
