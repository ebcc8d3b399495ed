"""What the Kubernetes manifests rely on: `--migrate-only` (the migration Job) and streams with
the configured number of replicas on a 3-node JetStream cluster (the StatefulSet)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest
from nats.js.errors import ServiceUnavailableError

from deploy.embedded import free_port, nats_server_binary, port_in_use
from services.chassis import natsconn
from services.chassis.events import STREAMS
from services.chassis.settings import ServiceSettings, SettingsError
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


async def test_migrate_only_applies_migrations_once_under_concurrency_and_exits(
    stack: Stack,
) -> None:
    env = {
        **os.environ,
        **stack.env(FRONTDESK_DIRECTORY_ADDR="127.0.0.1:1", FRONTDESK_GRPC_LISTEN="127.0.0.1:0"),
    }
    # Two at once, as when the Job and a scaled-up replica start together.
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.tickets", "--migrate-only"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    conn = await stack.connect("tickets")
    names = [r["name"] for r in await conn.fetch("select name from schema_migrations")]
    expected = sorted(p.name for p in (ROOT / "services/tickets/migrations").glob("0*.sql"))
    assert sorted(n.split("/", 1)[1] for n in names if n.startswith("tickets/")) == expected
    assert len(names) == len(set(names))
    assert await conn.fetchval("select to_regclass('tickets') is not null")


def test_stream_replicas_setting_is_checked() -> None:
    base = {"FRONTDESK_DATABASE_URL": "postgresql://x@h/db", "FRONTDESK_NATS_URL": "nats://h:4222"}
    assert ServiceSettings.from_env("tickets", base).stream_replicas == 1
    three = {**base, "FRONTDESK_NATS_STREAM_REPLICAS": "3"}
    assert ServiceSettings.from_env("tickets", three).stream_replicas == 3
    with pytest.raises(SettingsError, match="1 to 5"):
        ServiceSettings.from_env("tickets", {**base, "FRONTDESK_NATS_STREAM_REPLICAS": "7"})


async def test_streams_get_three_replicas_on_a_three_node_cluster(tmp_path: Path) -> None:
    ports = [(free_port(), free_port()) for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{c}" for _, c in ports)
    procs = []
    for i, (client, cluster) in enumerate(ports):
        store = tmp_path / f"n{i}"
        store.mkdir()
        conf = store / "nats.conf"
        conf.write_text(
            f'server_name: "n{i}"\nlisten: "127.0.0.1:{client}"\n'
            f'jetstream {{\n  store_dir: "{store}"\n}}\n'
            f'cluster {{\n  name: "fd"\n  listen: "127.0.0.1:{cluster}"\n  routes: [{routes}]\n}}\n'
        )
        log = open(store / "nats.log", "wb")
        procs.append(
            subprocess.Popen([nats_server_binary(), "-c", str(conf)], stdout=log, stderr=log)
        )
        log.close()
    try:
        deadline = time.monotonic() + 20
        while not all(port_in_use(c) for c, _ in ports):
            assert time.monotonic() < deadline, "NATS cluster did not start"
            await asyncio.sleep(0.05)
        nc = await nats.connect(f"nats://127.0.0.1:{ports[0][0]}")
        try:
            js = nc.jetstream()
            while True:  # until the cluster has elected its JetStream meta leader
                try:
                    await natsconn.ensure_streams(js, 3)
                    break
                except (ServiceUnavailableError, TimeoutError, nats.errors.TimeoutError):
                    assert time.monotonic() < deadline, "JetStream cluster never got a leader"
                    await asyncio.sleep(0.2)
            for stream in STREAMS.values():
                info = await js.stream_info(stream)
                assert info.config.num_replicas == 3
                assert info.cluster is not None
                assert len(info.cluster.replicas or []) == 2  # two followers besides the leader
        finally:
            await nc.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
