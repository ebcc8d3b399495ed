"""A launched suite and a real headless Chromium for the end-to-end tests.

`suite` runs the real launcher (`python -m deploy.launcher up`) on free ports with its data in a
temporary folder, waits for its "Frontdesk is running" banner, reads the admin's credentials
from it and stops it with SIGTERM at the end, checking that no process of it is left.
`browser` is Debian's Chromium driven by Playwright through its executable_path (Playwright's
own browser downloads are never used). Without /usr/bin/chromium these tests are skipped, and
with CI=true they fail.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    compliance_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
)

from deploy.embedded import port_in_use
from deploy.identities import Identities
from services.chassis import tls
from tests.requirements import in_ci, missing
from tests.signing import channel, keys

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FRONTDESK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple 42"
SERVICES = ("directory", "auth", "tickets", "compliance")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists() or in_ci():
        return  # in CI the fixtures fail instead (tests.requirements.missing)
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: install Debian's chromium (./dev test does) to run "
        "the browser tests"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@dataclass
class Suite:
    """A running Frontdesk: its portal URL, admin credentials and the services' addresses."""

    base_url: str  # http://acme.localhost:<port>
    gateway_port: int
    admin_email: str
    admin_password: str
    addresses: dict[str, str]
    workspace_id: str = ""
    # TLS to the services (the launcher's client certificate; the suite runs mutual TLS)
    credentials: grpc.ChannelCredentials | None = None
    # the local mail catcher's folder, and the notifications service's inbound listener
    mail_dir: Path = Path()
    inbound: str = ""

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def system(self) -> common_pb2.Caller:
        assert self.workspace_id, "call await suite.ready() first"
        return common_pb2.Caller(workspace_id=self.workspace_id)

    async def ready(self) -> Suite:
        """Look up the demo workspace's id (once) for the system Caller."""
        if not self.workspace_id:
            async with channel(self.addresses["directory"], self.credentials) as ch:
                ws = await self.directory(ch).GetWorkspace(
                    directory_pb2.GetWorkspaceRequest(slug="acme")
                )
            self.workspace_id = ws.id
        return self

    def directory(self, ch: grpc.aio.Channel) -> directory_pb2_grpc.DirectoryServiceStub:
        return directory_pb2_grpc.DirectoryServiceStub(ch)

    def compliance(self, ch: grpc.aio.Channel) -> compliance_pb2_grpc.ComplianceServiceStub:
        return compliance_pb2_grpc.ComplianceServiceStub(ch)

    async def person(
        self, email: str, name: str, *, groups: tuple[str, ...] = (), roles: tuple[str, ...] = ()
    ) -> str:
        """A person with a password (set up as an admin script would, through gRPC)."""
        async with (
            channel(self.addresses["directory"], self.credentials) as dch,
            channel(self.addresses["auth"], self.credentials) as ach,
        ):
            directory = self.directory(dch)
            listed_groups = await directory.ListGroups(
                directory_pb2.ListGroupsRequest(caller=self.system)
            )
            listed_roles = await directory.ListRoles(
                directory_pb2.ListRolesRequest(caller=self.system)
            )
            group_ids = {g.name: g.id for g in listed_groups.groups}
            role_ids = {r.name: r.id for r in listed_roles.roles}
            person = await directory.CreatePerson(
                directory_pb2.CreatePersonRequest(
                    caller=self.system,
                    email=email,
                    name=name,
                    portal_access=True,
                    group_ids=[group_ids[g] for g in groups],
                    role_ids=[role_ids[r] for r in roles],
                )
            )
            await auth_pb2_grpc.AuthServiceStub(ach).SetPassword(
                auth_pb2.SetPasswordRequest(
                    caller=self.system, person_id=person.id, password=PASSWORD
                )
            )
            return str(person.id)

    async def role(self, name: str, *permissions: str) -> str:
        async with channel(self.addresses["directory"], self.credentials) as ch:
            role = await self.directory(ch).CreateRole(
                directory_pb2.CreateRoleRequest(
                    caller=self.system, name=name, permissions=list(permissions)
                )
            )
            return str(role.id)


def _ports() -> dict[str, int]:
    """Free ports for the launcher, below the kernel's ephemeral range: a port picked inside
    it can be taken by any outgoing connection before the service binds it."""
    offsets = {"gateway": 200, "pg": 201, "nats": 202}
    needed = (1, 2, 3, 4, 5, 101, 102, 103, 104, 105, *range(110, 122), *offsets.values())
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000 - 300, 10)
        if not any(port_in_use(base + d) for d in needed):
            return {"base": base, **{name: base + d for name, d in offsets.items()}}
    raise RuntimeError("no free block of ports between 20000 and 32000")


def _descendants(root: int) -> set[int]:
    """Every process below `root` (the launcher starts each child in its own session)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier}
        children -= found
        found |= children
        frontier = children
    return found


def _mentioning(text: str) -> set[int]:
    """Processes whose command line names `text` (PostgreSQL and NATS name their data folder;
    they are not the launcher's descendants once their own starters have exited)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _read_banner(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    running = False
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        running = running or "Frontdesk is running" in line
        if running and "Press Ctrl-C" in line:
            return "".join(lines)
    raise RuntimeError(f"the launcher did not come up:\n{''.join(lines)}")


@pytest.fixture(scope="session")
def suite() -> Iterator[Suite]:
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing")
    data_dir = Path(tempfile.mkdtemp(prefix="frontdesk-e2e-"))
    ports = _ports()
    base, gateway_port = ports["base"], ports["gateway"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update(
        FRONTDESK_DATA_DIR=str(data_dir / "data"),
        FRONTDESK_PORT_BASE=str(base),
        FRONTDESK_GATEWAY_PORT=str(gateway_port),
        FRONTDESK_PG_PORT=str(ports["pg"]),
        FRONTDESK_NATS_PORT=str(ports["nats"]),
        PYTHONUNBUFFERED="1",
        # The suite's services also trust this test run's test key, so the tests can set up
        # persons and roles directly (tests/signing.py); a real deployment never does.
        FRONTDESK_TRUSTED_KEYS_FILE=str(keys().trusted),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.launcher", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    children: set[int] = set()
    try:
        banner = _read_banner(proc)
        children = _descendants(proc.pid)
        portal = re.search(r"Portal:\s+(\S+)", banner)
        email = re.search(r"Admin:\s+(\S+)", banner)
        password = re.search(r"Password:\s+(\S+)", banner)
        assert portal and email and password, banner
        assert portal.group(1) == f"http://acme.localhost:{gateway_port}/", banner
        s = Suite(
            base_url=portal.group(1).rstrip("/"),
            gateway_port=gateway_port,
            admin_email=email.group(1),
            admin_password=password.group(1),
            addresses={name: f"127.0.0.1:{base + i + 1}" for i, name in enumerate(SERVICES)},
            credentials=tls.channel_credentials(
                Identities(data_dir / "data").tls_settings("launcher")
            ),
            mail_dir=data_dir / "data" / "mail",
            inbound=f"127.0.0.1:{base + 121}",
        )
        children |= _mentioning(str(data_dir))
        # Four services and the gateway, plus the embedded PostgreSQL and NATS servers.
        assert len(children) >= 7, children
        yield s
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            tail, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            tail, _ = proc.communicate()
        left = sorted(pid for pid in children if _alive(pid))
        shutil.rmtree(data_dir, ignore_errors=True)
        assert proc.returncode == 0, tail
        assert left == [], f"processes left behind by the launcher: {left}"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
