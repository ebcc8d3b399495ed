"""Exactly one e-mail per (event, recipient, kind) whatever happens: the mail server away for
a while, an event delivered twice, two replicas; and a visible failure when it never comes back.
The one exception, a sender killed after the mail server took a mail and before it was marked
sent, is at-least-once: the mail is sent again with the same Message-ID (receivers drop the
copy), which the last test shows with a real SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import nats
from frontdesk.v1 import events_pb2

from deploy.embedded import free_port
from deploy.mailcatcher import Caught, MailCatcher
from services.chassis.grpcio import check_health
from services.notifications.app import create_server
from services.notifications.settings import Settings
from tests.notifications_suite import AGENT, PORTAL, eventually, notification_env, start_suite
from tests.stack import Stack


async def test_mail_server_down_then_up_delivers_once(stack: Stack) -> None:
    catcher = MailCatcher()
    suite = await start_suite(stack, catcher)
    requester, email = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    await catcher.stop()
    await suite.comment(agent, AGENT, ticket.id, "Sent while the mail server is down")

    async def retried() -> bool:
        log = await suite.deliveries(requester)
        return bool(log) and log[0].attempts >= 2 and log[0].status == "pending"

    await eventually(retried)
    assert "connect" in (await suite.deliveries(requester))[0].last_error.lower()
    await catcher.start()  # the same port
    (mail,) = await suite.mails_to(email, timeout=15)
    assert "Sent while the mail server is down" in mail.part("plain")
    await asyncio.sleep(1.5)  # longer than the retry interval: nothing comes twice
    assert len(catcher.to(email)) == 1
    (delivery,) = await suite.deliveries(requester)
    assert delivery.status == "sent" and delivery.HasField("sent_at")


async def test_an_event_delivered_twice_gives_one_mail(stack: Stack, nats_url: str) -> None:
    catcher = MailCatcher()
    suite = await start_suite(stack, catcher)
    requester, email = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    await suite.comment(agent, AGENT, ticket.id, "Only once, please")
    await suite.mails_to(email)
    # publish the very same envelope again under another message id, so that JetStream's
    # duplicate window does not drop it and the consumer really receives it a second time
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        found = None
        info = await js.stream_info("FD_TICKETS")
        for seq in range(1, info.state.last_seq + 1):
            raw = await js.get_msg("FD_TICKETS", seq)
            event = events_pb2.Event.FromString(raw.data or b"")
            if event.tickets.WhichOneof("kind") == "ticket_commented":
                found = (raw.subject, raw.data)
        assert found is not None
        await js.publish(found[0], found[1], headers={"Nats-Msg-Id": str(uuid.uuid4())})
    finally:
        await nc.close()
    # a barrier on the same stream: a later comment's mail arrives after the copy was handled
    await suite.comment(agent, AGENT, ticket.id, "A later answer")
    await suite.mails_to(email, 2)
    await asyncio.sleep(0.5)
    bodies = [m.part("plain") for m in catcher.to(email)]
    assert sum("Only once, please" in b for b in bodies) == 1
    assert len(await suite.deliveries(requester)) == 2


async def test_two_replicas_send_each_mail_once(stack: Stack) -> None:
    catcher = MailCatcher()
    suite = await start_suite(stack, catcher)
    env = stack.env_of("notifications", **notification_env(catcher))
    second = await create_server(Settings.from_env(env))
    stack.on_close(second.stop)
    requester, email = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    for i in range(12):
        await suite.comment(agent, AGENT, ticket.id, f"Answer number {i}")
    mails = await suite.mails_to(email, 12, timeout=20)
    await asyncio.sleep(1.0)
    assert len(catcher.to(email)) == 12
    assert len({m.message["Message-ID"] for m in mails}) == 12


async def test_a_mail_never_handed_over_is_marked_failed(stack: Stack) -> None:
    catcher = MailCatcher()
    suite = await start_suite(stack, catcher, FRONTDESK_NOTIFICATIONS_GIVE_UP_AFTER="1")
    requester, _ = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    await catcher.stop()
    await suite.comment(agent, AGENT, ticket.id, "Nobody will ever read this")

    async def failed() -> bool:
        log = await suite.deliveries(requester)
        return bool(log) and log[0].status == "failed"

    await eventually(failed, timeout=15)
    (delivery,) = await suite.deliveries(requester)
    assert delivery.attempts >= 2 and delivery.last_error


async def test_a_sender_killed_after_the_server_took_a_mail_resends_it_with_its_message_id(
    stack: Stack, tmp_path: Path
) -> None:
    """SMTP cannot make this exactly-once: the server's 250 and our commit are two acts, and a
    crash between them leaves no trace on our side. The mail goes again, as the same mail."""
    catcher = MailCatcher()
    # the in-process replica only records intents; the one that sends is its own process
    suite = await start_suite(stack, catcher, FRONTDESK_NOTIFICATIONS_SEND="false")
    port = free_port()
    env = stack.env_of(
        "notifications",
        **notification_env(catcher, FRONTDESK_NOTIFICATIONS_INBOUND_LISTEN=""),
        FRONTDESK_GRPC_LISTEN=f"127.0.0.1:{port}",
    )

    def spawn() -> subprocess.Popen[bytes]:
        with open(tmp_path / "sender.log", "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "services.notifications"],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def started(proc: subprocess.Popen[bytes]) -> bool:
        assert proc.poll() is None, (tmp_path / "sender.log").read_text()[-2000:]
        return await check_health(f"127.0.0.1:{port}")

    sender = spawn()
    try:
        await eventually(lambda: started(sender), timeout=30)

        def freeze_then_kill(caught: Caught) -> None:
            # The sender is stopped before it reads the server's 250 and killed after the 250
            # went out: the server has the mail, the sender never marked it sent.
            catcher.on_mail = None
            os.kill(sender.pid, signal.SIGSTOP)
            asyncio.get_running_loop().call_later(0.3, os.kill, sender.pid, signal.SIGKILL)

        catcher.on_mail = freeze_then_kill
        requester, email = await suite.person(*PORTAL)
        agent, _ = await suite.person(*AGENT)
        ticket = await suite.ticket(requester)
        await suite.comment(agent, AGENT, ticket.id, "Sent just before the crash")
        (first,) = await suite.mails_to(email)
        assert await asyncio.to_thread(sender.wait, 10) == -signal.SIGKILL
        (delivery,) = await suite.deliveries(requester)
        assert delivery.status == "pending" and delivery.attempts == 0  # no trace of the send

        sender = spawn()  # the restart sends it again, as the same mail
        await eventually(lambda: started(sender), timeout=30)
        copies = await suite.mails_to(email, 2, timeout=15)
        assert [m.message["Message-ID"] for m in copies] == [first.message["Message-ID"]] * 2
        assert copies[1].part("plain") == first.part("plain")

        async def sent_once() -> bool:
            log = await suite.deliveries(requester)
            return len(log) == 1 and log[0].status == "sent" and log[0].attempts == 1

        await eventually(sent_once)
        await asyncio.sleep(1.0)
        assert len(catcher.to(email)) == 2  # and no third copy
    finally:
        if sender.poll() is None:
            sender.send_signal(signal.SIGCONT)
            sender.terminate()
            await asyncio.to_thread(sender.wait, 20)
