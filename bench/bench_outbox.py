"""Outbox relay: throughput and commit -> JetStream delivery latency, against embedded servers.

.venv/bin/python bench/bench_outbox.py [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import nats
from frontdesk.v1 import directory_events_pb2, events_pb2

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from services.chassis import db, natsconn, outbox
from services.chassis.events import new_event
from services.chassis.outbox import OutboxRelay

MIGRATIONS = Path(tempfile.mkdtemp())


async def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    pg = EmbeddedPostgres(work / "pg", free_port())  # durable settings, like production
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port())
    ns.start()
    try:
        url = pg.url.rsplit("/", 1)[0] + "/bench"
        await db.ensure_database(url)
        pool = await db.create_pool(url)
        await db.migrate(pool, "bench", MIGRATIONS)
        nc = await nats.connect(ns.url)
        js = nc.jetstream()
        await natsconn.ensure_streams(js)
        ws = str(uuid.uuid4())
        latencies: list[float] = []
        sent_at: dict[str, float] = {}
        done = asyncio.Event()

        async def on_msg(msg: nats.aio.msg.Msg) -> None:
            event = events_pb2.Event.FromString(msg.data)
            latencies.append(time.perf_counter() - sent_at[event.event_id])
            if len(latencies) == n:
                done.set()

        await nc.subscribe(f"fd.directory.{ws}.>", cb=on_msg)
        relay = OutboxRelay(pool, js)
        await relay.start()
        await asyncio.sleep(0.3)

        # Latency: one event per transaction, spaced out.
        for i in range(200):
            e = new_event(
                ws,
                "",
                "directory",
                "portal_login_recorded",
                directory_events_pb2.PortalLoginRecorded(person_id=str(i)),
            )
            sent_at[e.event_id] = time.perf_counter()  # just before the commit
            async with pool.acquire() as conn, conn.transaction():
                await outbox.add(conn, e)
            await asyncio.sleep(0.005)
        while len(latencies) < 200:
            await asyncio.sleep(0.01)
        single = sorted(latencies)
        latencies.clear()

        # Throughput: n events committed in transactions of 50, relayed as fast as possible.
        started = time.perf_counter()
        for start in range(0, n, 50):
            async with pool.acquire() as conn, conn.transaction():
                for i in range(start, min(start + 50, n)):
                    e = new_event(
                        ws,
                        "",
                        "directory",
                        "portal_login_recorded",
                        directory_events_pb2.PortalLoginRecorded(person_id=str(i)),
                    )
                    sent_at[e.event_id] = time.perf_counter()
                    await outbox.add(conn, e)
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - started
        print(
            f"commit -> delivery latency, 200 single events: p50 {statistics.median(single) * 1000:.1f} ms, "
            f"p95 {single[int(len(single) * 0.95)] * 1000:.1f} ms, max {single[-1] * 1000:.1f} ms"
        )
        print(
            f"throughput: {n} events written and relayed in {elapsed:.2f} s = {n / elapsed:.0f} events/s"
        )
        await relay.stop()
        await nc.close()
        await pool.close()
    finally:
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    asyncio.run(main(parser.parse_args().events))
