"""Notifications end to end: agents' comments through the real tickets service, its outbox and
JetStream, the notifications consumer (rules asking the directory and tickets) and sender, into
the real SMTP catcher (aiosmtpd). Reports events/s and the delay from the comment's commit to
the mail's arrival (p50, p99), paced at --rate and then as fast as it goes; and, in the same
run against the same catcher, raw aiosmtplib sends of the same mails on one connection, as a
ratio. Directory, tickets and notifications each run as their own process (the fault suite's
harness, with the launcher's environment); the catcher and the client run in this one.

    .venv/bin/python bench/bench_notifications.py [--events 1000] [--rate 200]
    .venv/bin/python bench/bench_notifications.py --events 10000   # the issue's figure
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import tempfile
import time
from pathlib import Path

import aiosmtplib
import asyncpg
from frontdesk.v1 import common_pb2, directory_pb2, tickets_pb2, tickets_pb2_grpc

from deploy.mailcatcher import Caught, MailCatcher
from tests.faults.harness import Suite
from tests.people import workspace_on
from tests.signing import channel

T = tickets_pb2
PORTAL = ("Ticket:read", "Ticket:create")
AGENT = ("Ticket:manage", "Ticket:read")
MARK = re.compile(r"bench-(\d+)-end")
PER_TICKET = 50  # comments per ticket (a mail quotes its ticket's comment list)
REQUESTERS = 20


def pct(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000:.0f} ms"


async def main(n: int, rate: float, concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    suite = Suite(work)
    catcher = MailCatcher()
    try:
        suite.start_infrastructure()
        await catcher.start()
        procs = [suite.add(name) for name in ("directory", "tickets", "notifications")]
        for proc in procs[:2]:
            await suite.start(proc)
        await suite.start(
            procs[2],
            FRONTDESK_SMTP_HOST="127.0.0.1",
            FRONTDESK_SMTP_PORT=str(catcher.port),
            FRONTDESK_NOTIFICATIONS_SECRET_KEY=base64.b64encode(b"b" * 32).decode(),
            FRONTDESK_MAIL_DOMAIN="bench.test",
            FRONTDESK_LOG_LEVEL="WARNING",
        )
        dch = channel(procs[0].address)
        people = await workspace_on(dch)
        ws = people.ws
        ch = channel(procs[1].address)
        tickets = tickets_pb2_grpc.TicketServiceStub(ch)
        requesters = [await people.person(*PORTAL) for _ in range(REQUESTERS)]
        for r in requesters:
            await people.directory.UpdatePerson(
                directory_pb2.UpdatePersonRequest(
                    caller=people.system, person_id=r, portal_access=True
                )
            )
        agent = common_pb2.Caller(
            workspace_id=ws, person_id=await people.person(*AGENT), permissions=list(AGENT)
        )

        async def new_ticket(i: int) -> str:
            requester = requesters[i % REQUESTERS]
            t = await tickets.CreateTicket(
                T.CreateTicketRequest(
                    caller=common_pb2.Caller(
                        workspace_id=ws, person_id=requester, permissions=list(PORTAL)
                    ),
                    type=T.TICKET_TYPE_INCIDENT,
                    title=f"Bench ticket {i}",
                    description="Benchmark ticket.",
                    impact=T.TICKET_LEVEL_LOW,
                    urgency=T.TICKET_LEVEL_LOW,
                )
            )
            return str(t.id)

        ids = [await new_ticket(i) for i in range(max(1, -(-2 * n // PER_TICKET)))]
        committed: dict[int, float] = {}
        committed_wall: dict[int, float] = {}
        arrived: dict[int, float] = {}
        all_in = asyncio.Event()
        wanted = 0

        def on_mail(mail: Caught) -> None:
            found = MARK.search(mail.part("plain"))
            if found:
                arrived[int(found.group(1))] = time.perf_counter()
                if len(arrived) >= wanted:
                    all_in.set()

        catcher.on_mail = on_mail
        sem = asyncio.Semaphore(concurrency)

        async def comment(i: int) -> None:
            async with sem:
                await tickets.AddComment(
                    T.AddCommentRequest(
                        caller=agent,
                        ticket_id=ids[i % len(ids)],  # many tickets in flight
                        body=f"We are on it (bench-{i}-end).",
                    )
                )
                committed[i] = time.perf_counter()
                committed_wall[i] = time.time()

        async def phase(first: int, count: int, pace: float | None) -> tuple[float, list[float]]:
            nonlocal wanted
            wanted = first + count
            all_in.clear()
            started = time.perf_counter()
            tasks = []
            for k in range(count):
                if pace:
                    delay = started + k / pace - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(comment(first + k)))
            await asyncio.gather(*tasks)
            await asyncio.wait_for(all_in.wait(), 120 + count / 20)
            took = max(arrived[i] for i in range(first, first + count)) - started
            delays = [arrived[i] - committed[i] for i in range(first, first + count)]
            return count / took, delays

        paced_rate, paced = await phase(0, n, rate)
        fast_rate, fast = await phase(n, n, None)
        print(f"{n} comments paced at {rate:.0f}/s: {paced_rate:.0f} mails/s arrived")
        print(f"  commit -> mail arrival: p50 {pct(paced, 0.5)}, p99 {pct(paced, 0.99)}")
        print(
            f"{n} comments as fast as they go (concurrency {concurrency}): {fast_rate:.0f} mails/s"
        )
        print(f"  commit -> mail arrival: p50 {pct(fast, 0.5)}, p99 {pct(fast, 0.99)}")
        # Where the time goes: commit -> intent recorded (outbox, JetStream, the consumer and
        # its rules) and intent -> handed to the catcher (the sender).
        db = await asyncpg.connect(suite.database_url("notifications"))
        rows = await db.fetch("select body_text, created_at, sent_at from deliveries")
        await db.close()
        consumed, sending = [], []
        for row in rows:
            found = MARK.search(row["body_text"])
            if found and row["sent_at"] is not None and int(found.group(1)) in committed_wall:
                consumed.append(row["created_at"].timestamp() - committed_wall[int(found.group(1))])
                sending.append((row["sent_at"] - row["created_at"]).total_seconds())
        print(
            f"  of which commit -> intent: p50 {pct(consumed, 0.5)}, p99 {pct(consumed, 0.99)}; "
            f"intent -> the sender took it: p50 {pct(sending, 0.5)}, p99 {pct(sending, 0.99)}"
        )

        # Baseline: the same mails, raw aiosmtplib on one connection, to the same catcher.
        catcher.on_mail = None
        samples = [m.message for m in catcher.mails[-n:]]
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=catcher.port)
        await smtp.connect()
        sends: list[float] = []
        started = time.perf_counter()
        for message in samples:
            t0 = time.perf_counter()
            await smtp.send_message(message)
            sends.append(time.perf_counter() - t0)
        raw_rate = len(samples) / (time.perf_counter() - started)
        await smtp.quit()
        print(f"raw aiosmtplib, {len(samples)} sends on one connection: {raw_rate:.0f} mails/s")
        print(f"  per send: p50 {pct(sends, 0.5)}, p99 {pct(sends, 0.99)}")
        print(f"pipeline / raw SMTP = {fast_rate / raw_rate:.2f}")
        await ch.close()
        await dch.close()
    finally:
        await catcher.stop()
        suite.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000, help="10000 for the issue's figure")
    parser.add_argument("--rate", type=float, default=200.0, help="comments a second, paced")
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rate, args.concurrency))
