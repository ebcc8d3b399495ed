"""Exactly one e-mail per (event, recipient, kind) whatever happens: the mail server away for
a while, an event delivered twice, two replicas; and a visible failure when it never comes back."""

from __future__ import annotations

import asyncio
import uuid

import nats
from frontdesk.v1 import events_pb2

from deploy.mailcatcher import MailCatcher
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
