"""Outbox relay: throughput and commit -> JetStream delivery latency, against embedded servers.

Also measures, in the same run and on the same servers, pipelined raw JetStream publishing
(publish_async of the same payloads in batches of the relay's size, all acks awaited) and the
relay draining an outbox already full of committed rows; prints the relay/raw ratio.

.venv/bin/python bench/bench_outbox.py [--events 5000] [--nats-periodic-sync]
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


def _bench_event(ws: str, i: int) -> events_pb2.Event:
    return new_event(
        ws,
        "",
        "directory",
        "portal_login_recorded",
        directory_events_pb2.PortalLoginRecorded(person_id=str(i)),
    )


async def main(n: int, sync_always: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    pg = EmbeddedPostgres(work / "pg", free_port())  # durable settings, like production
    pg.start()
    ns = EmbeddedNats(work / "nats", free_port(), sync_always=sync_always)
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

        watch = await nc.subscribe(f"fd.directory.{ws}.>", cb=on_msg)
        relay = OutboxRelay(pool, js, dsn=url)
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
        await watch.unsubscribe()

        # Drain: n committed rows waiting, the relay started; until every one is marked sent.
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add_many(conn, [_bench_event(ws, i) for i in range(n)])
        drain = OutboxRelay(pool, js, dsn=url)
        started = time.perf_counter()
        await drain.start()
        while True:
            async with pool.acquire() as conn:
                left = await conn.fetchval("select count(*) from outbox where sent_at is null")
            if left == 0:
                break
            await asyncio.sleep(0.02)  # polling more often would slow the relay it measures
        relay_rate = n / (time.perf_counter() - started)
        await drain.stop()

        # Raw JetStream, pipelined: the same number of publishes, batches of the relay's size.
        payloads = [(_bench_event(ws, i)) for i in range(n)]
        started = time.perf_counter()
        for start in range(0, n, 500):
            futures = [
                await js.publish_async(
                    f"fd.directory.{ws}.portal_login_recorded",
                    e.SerializeToString(),
                    headers={"Nats-Msg-Id": e.event_id},
                )
                for e in payloads[start : start + 500]
            ]
            await asyncio.gather(*futures)
        raw_rate = n / (time.perf_counter() - started)
        # For scale: one publish and ack at a time (how the relay published before).
        one_by_one = payloads[: max(n // 5, 1)]
        started = time.perf_counter()
        for e in one_by_one:
            await js.publish(
                f"fd.directory.{ws}.portal_login_recorded",
                e.SerializeToString(),
                headers={"Nats-Msg-Id": e.event_id + "-seq"},
            )
        sequential_rate = len(one_by_one) / (time.perf_counter() - started)
        print(f"relay draining {n} committed rows: {relay_rate:.0f} events/s")
        print(f"raw JetStream publish_async, pipelined by 500: {raw_rate:.0f} events/s")
        print(f"raw JetStream publish, one ack at a time: {sequential_rate:.0f} events/s")
        print(f"relay / raw pipelined = {relay_rate / raw_rate:.2f} (goal >= 0.5)")
        await nc.close()
        await pool.close()
    finally:
        ns.stop()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument(
        "--nats-periodic-sync",
        action="store_true",
        help="JetStream without sync_interval: always (a broker that is not bound by fsync)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, not args.nats_periodic_sync))
