"""A real ClamAV daemon for tests and benches: Debian's `clamd` (package clamav-daemon) with its
own config and a signature database written here, so it starts in about a second without
freshclam or the network. It knows two signatures (hash-based, `.hdb`): the EICAR test file and
a marker PNG, reported as `Eicar-Test-Signature.UNOFFICIAL` and `Frontdesk.Test.Marker.UNOFFICIAL`
(clamd adds `.UNOFFICIAL` to signatures outside its official databases)."""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# The standard antivirus test file (eicar.org), 68 bytes; harmless, detected by every scanner.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
# A valid-looking PNG whose exact bytes are a signature: an infected file of an allowed type.
MARKER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"frontdesk test marker " * 40
EICAR_SIGNATURE = "Eicar-Test-Signature.UNOFFICIAL"
MARKER_SIGNATURE = "Frontdesk.Test.Marker.UNOFFICIAL"


def clamd_binary() -> str | None:
    return shutil.which("clamd") or next(
        (p for p in ("/usr/sbin/clamd", "/usr/bin/clamd") if Path(p).exists()), None
    )


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
    except OSError:
        return False


@dataclass
class EmbeddedClamd:
    """clamd on 127.0.0.1:`port` (and `unix_socket`), its config, database and log under
    `directory`. `start` again after `stop` brings the same server back."""

    directory: Path
    port: int
    stream_max: str = "1200M"  # clamd's StreamMaxLength: above the services' file ceiling
    unix_socket: Path | None = None  # also listen on this unix socket (LocalSocket)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        """The value of FRONTDESK_CLAMD."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = clamd_binary()
        if binary is None:
            raise RuntimeError("clamd is not installed (Debian package clamav-daemon)")
        db = self.directory / "db"
        db.mkdir(parents=True, exist_ok=True)
        (db / "frontdesk-test.hdb").write_text(
            "".join(
                f"{hashlib.md5(data).hexdigest()}:{len(data)}:{name}\n"
                for data, name in (
                    (EICAR, "Eicar-Test-Signature"),
                    (MARKER, "Frontdesk.Test.Marker"),
                )
            )
        )
        config = self.directory / "clamd.conf"
        config.write_text(
            "Foreground yes\n"
            f"DatabaseDirectory {db}\n"
            f"TCPSocket {self.port}\n"
            "TCPAddr 127.0.0.1\n"
            f"LogFile {self.directory / 'clamd.log'}\n"
            f"TemporaryDirectory {self.directory}\n"
            f"StreamMaxLength {self.stream_max}\n"
            "MaxFileSize 1200M\n"
            "MaxScanSize 1200M\n"
            "SelfCheck 0\n" + (f"LocalSocket {self.unix_socket}\n" if self.unix_socket else "")
        )
        # clamd runs as the user starting it (no User directive): root in CI is accepted.
        self.directory.chmod(0o755)
        output = open(self.directory / "clamd.out", "ab")
        self._proc = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.directory / "clamd.out").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"clamd exited at start:\n{tail}")
            if _ping(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("clamd did not answer PING within 60 s")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
