"""The local all-in-one launcher: `./dev up` runs the whole suite on one machine.

Over 600 lines on purpose: the start order, the port plan and the environment each component
gets are read together; the workspace CLI (`./dev workspace`) is the next to move out.

Starts embedded PostgreSQL and NATS (data under .frontdesk/ in the working directory, kept
across restarts) unless FRONTDESK_DATABASE_URL / FRONTDESK_NATS_URL name external servers, and
a mail catcher (deploy/mailcatcher.py, mail kept in .frontdesk/mail, `./dev mail` lists it) that
the notifications service sends to unless FRONTDESK_SMTP_HOST names a real mail server;
starts every service and the gateway as separate processes, waits until each is ready, creates
the demo workspace "acme" with its admin on first run, prints the portal URL and credentials,
and stops everything on Ctrl-C.

    python -m deploy.launcher [up] [--replicas gateway=2,tickets=3,...]
    python -m deploy.launcher restart [COMPONENT...]   (rolling restart of a running suite)
    python -m deploy.launcher workspace create SLUG --name NAME --admin-email EMAIL [--admin-password PW]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import grpc
from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    directory_pb2,
    directory_pb2_grpc,
)

from deploy import replicas
from deploy.databases import provision_service_database
from deploy.embedded import EmbeddedError, EmbeddedNats, EmbeddedPostgres, EmbeddedS3, port_in_use
from deploy.haproxy import HAProxyError
from deploy.identities import Identities
from services.chassis import tls
from services.chassis.grpcio import check_health
from services.chassis.identity import Identity

SERVICES = ("directory", "auth", "tickets", "compliance", "notifications")
# Ports from FRONTDESK_PORT_BASE (B): service i on B + i + 1, its metrics on B + 100 + i + 1,
# the gateway's metrics on B + 109, S3 on B + 110..119, the mail catcher's SMTP on B + 120,
# the notifications service's inbound listener (replies by e-mail) on B + 121.
GATEWAY_METRICS_OFFSET = 109
MAIL_CATCHER_OFFSET = 120
INBOUND_OFFSET = 121


def say(component: str, message: str) -> None:
    print(f"  {component:<11} {message}", flush=True)


@dataclass
class Plan:
    data_dir: Path
    gateway_port: int
    service_ports: dict[str, int]
    metrics_ports: dict[str, int]
    pg_port: int
    nats_port: int
    base_domain: str
    s3_port: int = 50170
    mail_port: int = 50180
    inbound_port: int = 50181
    gateway_metrics_port: int = 50169

    @classmethod
    def from_env(cls) -> Plan:
        env = os.environ
        base = int(env.get("FRONTDESK_PORT_BASE", "50060"))
        return cls(
            data_dir=Path(env.get("FRONTDESK_DATA_DIR", ".frontdesk")).resolve(),
            gateway_port=int(env.get("FRONTDESK_GATEWAY_PORT", "8080")),
            service_ports={name: base + i + 1 for i, name in enumerate(SERVICES)},
            metrics_ports={name: base + 100 + i + 1 for i, name in enumerate(SERVICES)},
            pg_port=int(env.get("FRONTDESK_PG_PORT", "54329")),
            nats_port=int(env.get("FRONTDESK_NATS_PORT", "42229")),
            base_domain=env.get("FRONTDESK_BASE_DOMAIN", "localhost"),
            s3_port=base + 110,
            mail_port=base + MAIL_CATCHER_OFFSET,
            inbound_port=base + INBOUND_OFFSET,
            gateway_metrics_port=base + GATEWAY_METRICS_OFFSET,
        )


class LaunchError(RuntimeError):
    pass


class Launcher:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.pg: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = plan.data_dir / "logs"
        self.database_url = os.environ.get("FRONTDESK_DATABASE_URL", "")
        self.nats_url = os.environ.get("FRONTDESK_NATS_URL", "")
        self.s3: EmbeddedS3 | None = None
        self.s3_env: dict[str, str] = {}
        self.mail_catcher: subprocess.Popen[bytes] | None = None
        # Signing keys and mutual TLS between components, under the data folder.
        self.identities = Identities(plan.data_dir)

    # -- infrastructure -----------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.plan.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.identities.ensure()
        say("identity", f"keys and mutual TLS (local CA) in {self.identities.tls_dir.parent}")
        if self.database_url:
            say("postgresql", "external (FRONTDESK_DATABASE_URL)")
        else:
            self.pg = EmbeddedPostgres(self.plan.data_dir / "pg", self.plan.pg_port)
            started = time.monotonic()
            self.pg.start()
            self.database_url = self.pg.url
            say(
                "postgresql",
                f"embedded, 127.0.0.1:{self.plan.pg_port} "
                f"({time.monotonic() - started:.1f}s, data in {self.pg.data_dir})",
            )
        if self.nats_url:
            say("nats", "external (FRONTDESK_NATS_URL)")
        else:
            self.nats = EmbeddedNats(self.plan.data_dir / "nats", self.plan.nats_port)
            self.nats.start()
            self.nats_url = self.nats.url
            say("nats", f"embedded with JetStream, 127.0.0.1:{self.plan.nats_port}")
        self.start_object_store()
        self.start_mail_catcher()
        if os.environ.get("FRONTDESK_CLAMD"):
            say("clamd", f"uploads scanned for malware by {os.environ['FRONTDESK_CLAMD']}")

    def start_mail_catcher(self) -> None:
        """The local mail catcher, unless FRONTDESK_SMTP_HOST names a real mail server."""
        if os.environ.get("FRONTDESK_SMTP_HOST"):
            say("mail", f"real SMTP server {os.environ['FRONTDESK_SMTP_HOST']}")
            return
        folder = self.plan.data_dir / "mail"
        log = open(self.logs / "mailcatcher.log", "ab")
        self.mail_catcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploy.mailcatcher",
                "serve",
                "--port",
                str(self.plan.mail_port),
                "--dir",
                str(folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not port_in_use(self.plan.mail_port):
            if self.mail_catcher.poll() is not None or time.monotonic() > deadline:
                raise LaunchError(
                    f"the mail catcher did not start:\n{self.log_tail('mailcatcher')}"
                )
            time.sleep(0.05)
        say("mail", f"catcher on 127.0.0.1:{self.plan.mail_port}, mail in {folder} (./dev mail)")

    def mail_env(self) -> dict[str, str]:
        """The SMTP settings of notifications and auth: the catcher's unless a real server is set."""
        if os.environ.get("FRONTDESK_SMTP_HOST") or self.mail_catcher is None:
            return {}
        return {"FRONTDESK_SMTP_HOST": "127.0.0.1", "FRONTDESK_SMTP_PORT": str(self.plan.mail_port)}

    def start_object_store(self) -> None:
        """SeaweedFS for attachments, unless FRONTDESK_S3_ENDPOINT names another S3."""
        if os.environ.get("FRONTDESK_S3_ENDPOINT"):
            say("s3", f"external ({os.environ['FRONTDESK_S3_ENDPOINT']})")
            return
        # S3 on base+110, its helper ports (master, volume, filer) on base+111..119.
        port = int(os.environ.get("FRONTDESK_S3_PORT", str(self.plan.s3_port)))
        self.s3 = EmbeddedS3(self.plan.data_dir / "s3", port)
        started = time.monotonic()
        self.s3.start()
        access, secret = self.s3.credentials()
        self.s3_env = {
            "FRONTDESK_S3_ENDPOINT": self.s3.endpoint,
            "FRONTDESK_S3_ACCESS_KEY": access,
            "FRONTDESK_S3_SECRET_KEY": secret,
        }
        say("s3", f"embedded SeaweedFS, {self.s3.endpoint} ({time.monotonic() - started:.1f}s)")

    def secret_key(self) -> str:
        """Auth's encryption key for TOTP and SSO secrets: made on first run, kept with the data."""
        path = self.plan.data_dir / "auth-secret-key"
        if not path.exists():
            path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
            path.chmod(0o600)
        return path.read_text().strip()

    def notifications_key(self) -> str:
        """The notifications service's token key (unsubscribe links, reply addresses)."""
        path = self.plan.data_dir / "notifications-secret-key"
        if not path.exists():
            path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
            path.chmod(0o600)
        return path.read_text().strip()

    def service_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("FRONTDESK_AUTH_SECRET_KEY", self.secret_key())
        env.setdefault("FRONTDESK_NOTIFICATIONS_SECRET_KEY", self.notifications_key())
        env.setdefault(
            "FRONTDESK_PUBLIC_URL",
            f"http://{{slug}}.{self.plan.base_domain}:{self.plan.gateway_port}",
        )
        env.update(self.s3_env)
        env.update(
            FRONTDESK_DATABASE_URL=self.database_url,
            FRONTDESK_NATS_URL=self.nats_url,
            FRONTDESK_BASE_DOMAIN=self.plan.base_domain,
            PYTHONUNBUFFERED="1",
        )
        for name, port in self.plan.service_ports.items():
            env[f"FRONTDESK_{name.upper()}_ADDR"] = f"127.0.0.1:{port}"
        return env

    async def own_database_env(self) -> dict[str, dict[str, str | None]]:
        """Per service: its own database URL, and no shared superuser URL (None removes it)."""
        return {
            name: {f"FRONTDESK_{name.upper()}_DATABASE_URL": url, "FRONTDESK_DATABASE_URL": None}
            for name, url in (await self.provision_databases()).items()
        }

    async def provision_databases(self) -> dict[str, str]:
        """As the superuser: each service's own role and database (passwords kept with the
        data); the services then connect with FRONTDESK_<SERVICE>_DATABASE_URL. A server URL
        without the rights to do so keeps the single shared URL (with a warning)."""
        path = self.plan.data_dir / "db-roles.json"
        passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        prefix = os.environ.get("FRONTDESK_DB_PREFIX", "frontdesk_")
        urls: dict[str, str] = {}
        for name in SERVICES:
            passwords.setdefault(name, secrets.token_urlsafe(24))
            database = os.environ.get(f"FRONTDESK_{name.upper()}_DATABASE", f"{prefix}{name}")
            try:
                urls[name] = await provision_service_database(
                    self.database_url,
                    database=database,
                    role=f"{prefix}{name}",
                    password=passwords[name],
                )
            except asyncpg.InsufficientPrivilegeError as exc:
                say("postgresql", f"cannot create per-service roles ({exc}); one shared URL")
                return {}
        path.write_text(json.dumps(passwords))
        path.chmod(0o600)
        say("postgresql", "one role per service, each owning only its database")
        return urls

    # -- processes ------------------------------------------------------------------------
    def spawn(self, name: str, module: str, env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, name: str, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
            return "\n".join("      " + line for line in text[-lines:])
        return ""

    async def wait_grpc(self, name: str, address: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise LaunchError(
                    f"{name} exited with code {proc.returncode} while starting; "
                    f"its log ({self.logs / (name + '.log')}) ends with:\n{self.log_tail(name)}"
                )
            creds = tls.channel_credentials(self.identities.tls_settings("launcher"))
            if await check_health(address, timeout=0.5, credentials=creds):
                return
            await asyncio.sleep(0.2)
        raise LaunchError(
            f"{name} did not become healthy within {timeout:.0f}s; log:\n{self.log_tail(name)}"
        )

    async def start_services(self) -> None:
        for name, port in {**self.plan.service_ports, "gateway": self.plan.gateway_port}.items():
            if port_in_use(port):
                raise LaunchError(
                    f"port {port} for {name} is already in use "
                    f"(another Frontdesk running? set FRONTDESK_PORT_BASE / FRONTDESK_GATEWAY_PORT)"
                )
        base_env = self.service_env()
        own_urls = await self.provision_databases()
        for name in SERVICES:
            env = dict(base_env)
            if name in own_urls:
                env[f"FRONTDESK_{name.upper()}_DATABASE_URL"] = own_urls[name]
                env.pop("FRONTDESK_DATABASE_URL", None)  # services never see the superuser
            env["FRONTDESK_GRPC_LISTEN"] = f"127.0.0.1:{self.plan.service_ports[name]}"
            env["FRONTDESK_METRICS_PORT"] = str(self.plan.metrics_ports[name])
            env.update(self.identities.env(name))
            if name in ("notifications", "auth"):  # auth: registration confirmations
                env.update(self.mail_env())
            if name == "notifications":
                env.setdefault(
                    "FRONTDESK_NOTIFICATIONS_INBOUND_LISTEN", f"127.0.0.1:{self.plan.inbound_port}"
                )
            self.spawn(name, f"services.{name}", env)
        for name in SERVICES:
            started = time.monotonic()
            await self.wait_grpc(name, f"127.0.0.1:{self.plan.service_ports[name]}")
            say(
                name,
                f"ready on 127.0.0.1:{self.plan.service_ports[name]} "
                f"(metrics :{self.plan.metrics_ports[name]}, {time.monotonic() - started:.1f}s)",
            )
        env = dict(base_env)
        env["FRONTDESK_GATEWAY_HOST"] = "127.0.0.1"
        env["FRONTDESK_GATEWAY_PORT"] = str(self.plan.gateway_port)
        env.update(self.identities.env("gateway"))
        # Metrics on their own port, next to the services' (never on the public listener).
        env["FRONTDESK_GATEWAY_METRICS_PORT"] = str(self.plan.gateway_metrics_port)
        self.spawn("gateway", "gateway", env)
        await self.wait_gateway()
        say("gateway", f"ready on http://127.0.0.1:{self.plan.gateway_port}/readyz")

    async def wait_gateway(self, timeout: float = 60.0) -> None:
        url = f"http://127.0.0.1:{self.plan.gateway_port}/readyz"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                proc = self.procs["gateway"]
                if proc.poll() is not None:
                    raise LaunchError(
                        f"gateway exited with code {proc.returncode} while starting:\n"
                        f"{self.log_tail('gateway')}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise LaunchError(
            f"gateway did not become ready within {timeout:.0f}s:\n{self.log_tail('gateway')}"
        )

    def stop(self) -> None:
        for name in ["gateway", *reversed(SERVICES)]:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                say(name, "did not stop in 15s; killing it")
                proc.kill()
                proc.wait(5)
            say(name, "stopped")
        if self.mail_catcher is not None and self.mail_catcher.poll() is None:
            self.mail_catcher.send_signal(signal.SIGTERM)
            try:
                self.mail_catcher.wait(5)
            except subprocess.TimeoutExpired:
                self.mail_catcher.kill()
            say("mail", "catcher stopped")
        if self.s3 is not None:
            self.s3.stop()
            say("s3", "stopped")
        if self.nats is not None:
            self.nats.stop()
            say("nats", "stopped")
        if self.pg is not None:
            self.pg.stop()
            say("postgresql", "stopped")


def launcher_identity(data_dir: Path) -> Identity:
    """The launcher's own identity (its key and certificate under the data folder): its calls
    carry a service principal with the launcher's rights (create workspaces, first password)."""
    identities = Identities(data_dir)
    if not identities.key_file("launcher").exists():
        raise LaunchError(f"no launcher key in {identities.keys_dir}: run ./dev up once first")
    return Identity.from_settings("launcher", identities.settings("launcher"))


async def create_workspace(
    identity: Identity,
    directory_addr: str,
    auth_addr: str,
    slug: str,
    name: str,
    admin_email: str,
    admin_name: str,
    admin_password: str,
) -> directory_pb2.CreateWorkspaceResponse:
    dch = identity.channel(directory_addr, "directory")
    ach = identity.channel(auth_addr, "auth")
    async with dch, ach:
        directory = directory_pb2_grpc.DirectoryServiceStub(dch)
        auth = auth_pb2_grpc.AuthServiceStub(ach)
        created: directory_pb2.CreateWorkspaceResponse = await directory.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug=slug, name=name, admin_email=admin_email, admin_name=admin_name
            ),
            timeout=15,
        )
        await auth.SetPassword(
            auth_pb2.SetPasswordRequest(
                caller=common_pb2.Caller(workspace_id=created.workspace.id),
                person_id=created.admin.id,
                password=admin_password,
            ),
            timeout=15,
        )
        return created


async def ensure_demo(launcher: Launcher) -> tuple[str, str, bool]:
    """Create workspace 'acme' on first run; returns (email, password, created_now)."""
    creds_file = launcher.plan.data_dir / "demo-admin.json"
    directory_addr = f"127.0.0.1:{launcher.plan.service_ports['directory']}"
    auth_addr = f"127.0.0.1:{launcher.plan.service_ports['auth']}"
    identity = launcher_identity(launcher.plan.data_dir)
    async with identity.channel(directory_addr, "directory") as ch:
        stub = directory_pb2_grpc.DirectoryServiceStub(ch)
        try:
            await stub.GetWorkspace(directory_pb2.GetWorkspaceRequest(slug="acme"), timeout=10)
            exists = True
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            exists = False
    if exists and creds_file.exists():
        creds = json.loads(creds_file.read_text())
        return creds["email"], creds["password"], False
    if exists:
        return "admin@acme.example", "(set when the workspace was created)", False
    email, password = "admin@acme.example", secrets.token_urlsafe(12)
    await create_workspace(
        identity, directory_addr, auth_addr, "acme", "Acme", email, "Acme Admin", password
    )
    creds_file.write_text(json.dumps({"email": email, "password": password}))
    creds_file.chmod(0o600)
    return email, password, True


async def up(plan: Plan, replica_counts: dict[str, int] | None = None) -> int:
    launcher = Launcher(plan)
    cluster: replicas.Cluster | None = None
    print("Starting Frontdesk", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        launcher.start_infrastructure()
        if replica_counts:
            cluster = replicas.Cluster.create(
                replica_counts,
                port_base=plan.service_ports["directory"] - 1,
                lb_port=plan.gateway_port,
                data_dir=plan.data_dir,
                logs=launcher.logs,
                base_env=launcher.service_env(),
                say=say,
                component_env=launcher.identities.merged_env(
                    {
                        **(own := await launcher.own_database_env()),
                        "notifications": {**own.get("notifications", {}), **launcher.mail_env()},
                        "auth": {**own.get("auth", {}), **launcher.mail_env()},
                    }
                ),
                health_credentials=tls.channel_credentials(
                    launcher.identities.tls_settings("launcher")
                ),
            )
            await cluster.start()
            replicas.watch_restart_requests(cluster, plan.data_dir)
        else:
            await launcher.start_services()
        email, password, created = await ensure_demo(launcher)
        say("workspace", "acme created" if created else "acme (existing data kept)")
        port = plan.gateway_port
        print(
            f"\nFrontdesk is running.\n"
            f"  Portal:      http://acme.{plan.base_domain}:{port}/\n"
            f"  Management:  http://acme.{plan.base_domain}:{port}/management\n"
            f"  Admin:       {email}\n"
            f"  Password:    {password}\n"
            f"  Logs:        {launcher.logs}\n"
            + (
                f"  Mail:        ./dev mail (kept in {plan.data_dir / 'mail'}); "
                f'./dev mail reply N "text" answers one (replies on :{plan.inbound_port})\n'
                if launcher.mail_catcher
                else ""
            )
            + (
                f"{cluster.banner()}\n  Restart:     ./dev restart [COMPONENT...]\n"
                if cluster
                else ""
            )
            + "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stop.is_set():
            for name, proc in launcher.procs.items():
                if proc.poll() is not None:
                    print(
                        f"\n{name} exited unexpectedly (code {proc.returncode}):\n"
                        f"{launcher.log_tail(name)}",
                        flush=True,
                    )
                    stop.set()
                    code = 1
            for replica in cluster.exited() if cluster else []:
                print(
                    f"\n{replica.name} exited unexpectedly (code {replica.proc.returncode if replica.proc else None}):\n"
                    f"{replica.log_tail()}",
                    flush=True,
                )
                stop.set()
                code = 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    except (LaunchError, EmbeddedError, replicas.ReplicaError, HAProxyError) as exc:
        print(f"\nFrontdesk could not start: {exc}", file=sys.stderr, flush=True)
        code = 1
    except grpc.aio.AioRpcError as exc:
        print(
            f"\nFrontdesk could not create the demo workspace: {exc.code().name}: {exc.details()}",
            file=sys.stderr,
            flush=True,
        )
        code = 1
    finally:
        print("\nStopping Frontdesk", flush=True)
        if cluster is not None:
            cluster.stop()
        launcher.stop()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="frontdesk")
    sub = parser.add_subparsers(dest="command")
    up_cmd = sub.add_parser("up", help="run the whole suite (default)")
    up_cmd.add_argument(
        "--replicas",
        default="",
        metavar="COMPONENT=N,...",
        help="run N processes of a component (e.g. gateway=2,tickets=3) behind HAProxy",
    )
    restart = sub.add_parser("restart", help="rolling restart of a running suite's replicas")
    restart.add_argument("components", nargs="*", help="components (default: all)")
    ws = sub.add_parser("workspace", help="manage workspaces of a running suite")
    ws_sub = ws.add_subparsers(dest="action", required=True)
    create = ws_sub.add_parser("create", help="create a workspace and its first admin")
    create.add_argument("slug")
    create.add_argument("--name", required=True)
    create.add_argument("--admin-email", required=True)
    create.add_argument("--admin-name", default="Administrator")
    create.add_argument("--admin-password", default="")
    args = parser.parse_args(argv)
    plan = Plan.from_env()
    if args.command == "restart":
        error = replicas.request_restart(plan.data_dir, args.components)
        print(f"restart failed: {error}" if error else "restart done", file=sys.stderr)
        return 1 if error else 0
    counts = None
    if args.command == "up" and args.replicas:
        try:
            counts = replicas.parse_counts(args.replicas)
        except ValueError as exc:
            parser.error(str(exc))
    if args.command == "workspace":
        password = args.admin_password or secrets.token_urlsafe(12)
        directory_addr = os.environ.get(
            "FRONTDESK_DIRECTORY_ADDR", f"127.0.0.1:{plan.service_ports['directory']}"
        )
        auth_addr = os.environ.get("FRONTDESK_AUTH_ADDR", f"127.0.0.1:{plan.service_ports['auth']}")
        try:
            created = asyncio.run(
                create_workspace(
                    launcher_identity(plan.data_dir),
                    directory_addr,
                    auth_addr,
                    args.slug,
                    args.name,
                    args.admin_email,
                    args.admin_name,
                    password,
                )
            )
        except grpc.aio.AioRpcError as exc:
            print(f"could not create the workspace: {exc.details()}", file=sys.stderr)
            return 1
        except LaunchError as exc:
            print(f"could not create the workspace: {exc}", file=sys.stderr)
            return 1
        print(
            f"created workspace {created.workspace.slug} ({created.workspace.id})\n"
            f"  portal: http://{created.workspace.slug}.{plan.base_domain}:{plan.gateway_port}/\n"
            f"  admin:  {args.admin_email}\n  password: {password}"
        )
        return 0
    return asyncio.run(up(plan, counts))


if __name__ == "__main__":
    raise SystemExit(main())
