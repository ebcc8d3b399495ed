"""A gateway in its own process (python -m gateway), for measuring its memory from outside."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from deploy.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    base: str

    @classmethod
    async def start(cls, env: dict[str, str]) -> GatewayProcess:
        port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
        full.update(env)
        full.update(
            FRONTDESK_GATEWAY_HOST="127.0.0.1",
            FRONTDESK_GATEWAY_PORT=str(port),
            FRONTDESK_LOG_LEVEL="WARNING",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        gateway = cls(proc, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited with {proc.returncode}")
                try:
                    async with http.get(gateway.base + "/healthz") as resp:
                        if resp.status == 200:
                            return gateway
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        gateway.stop()
        raise RuntimeError("the gateway did not answer /healthz within 60 s")

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak resident set since start) of the process, in KiB."""
        for line in (Path("/proc") / str(self.proc.pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def reset_peak(self) -> None:
        """Start a new peak (Linux >= 4.0: writing 5 to clear_refs resets VmHWM)."""
        (Path("/proc") / str(self.proc.pid) / "clear_refs").write_text("5")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
