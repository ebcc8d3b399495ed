"""A running suite for the notifications tests: directory, auth, tickets, compliance and
notifications on port 0, a real SMTP catcher (aiosmtpd) it sends to, and a workspace."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from frontdesk.v1 import (
    auth_pb2_grpc,
    common_pb2,
    compliance_pb2_grpc,
    directory_pb2,
    notifications_pb2,
    notifications_pb2_grpc,
    tickets_pb2,
    tickets_pb2_grpc,
)

from deploy.mailcatcher import Caught, MailCatcher, reply_to, send_reply
from services.notifications.inbound import Inbound
from tests.people import People, workspace
from tests.signing import channel
from tests.stack import Stack

T = tickets_pb2
PORTAL = ("Ticket:read", "Ticket:create")
AGENT = ("Ticket:manage", "Ticket:read")
SECRET = base64.b64encode(b"n" * 32).decode()


def notification_env(catcher: MailCatcher, **overrides: str) -> dict[str, str]:
    return {
        "FRONTDESK_SMTP_HOST": "127.0.0.1",
        "FRONTDESK_SMTP_PORT": str(catcher.port),
        "FRONTDESK_SMTP_FROM": "desk@acme.test",
        "FRONTDESK_NOTIFICATIONS_SECRET_KEY": SECRET,
        "FRONTDESK_PUBLIC_URL": "http://{slug}.localhost:8080",
        "FRONTDESK_MAIL_DOMAIN": "acme.test",
        "FRONTDESK_NOTIFICATIONS_RETRY_BASE": "0.2",
        "FRONTDESK_NOTIFICATIONS_RETRY_MAX": "0.5",
        "FRONTDESK_NOTIFICATIONS_INBOUND_LISTEN": "127.0.0.1:0",
        **overrides,
    }


@dataclass
class Suite:
    stack: Stack
    catcher: MailCatcher
    people: People
    tickets: tickets_pb2_grpc.TicketServiceStub
    compliance: compliance_pb2_grpc.ComplianceServiceStub
    notifications: notifications_pb2_grpc.NotificationServiceStub
    auth: auth_pb2_grpc.AuthServiceStub

    @property
    def ws(self) -> str:
        return self.people.ws

    def caller(self, person: str, perms: tuple[str, ...]) -> common_pb2.Caller:
        return common_pb2.Caller(workspace_id=self.ws, person_id=person, permissions=list(perms))

    async def person(self, *perms: str, portal_access: bool = True) -> tuple[str, str]:
        """A new person (id, e-mail) with `perms` and portal access as asked."""
        pid = await self.people.person(*perms)
        p = await self.people.directory.UpdatePerson(
            directory_pb2.UpdatePersonRequest(
                caller=self.people.system, person_id=pid, portal_access=portal_access
            )
        )
        return pid, p.email

    async def update_person(self, pid: str, **fields: Any) -> directory_pb2.Person:
        return await self.people.directory.UpdatePerson(
            directory_pb2.UpdatePersonRequest(caller=self.people.system, person_id=pid, **fields)
        )

    async def ticket(self, requester: str, title: str = "VPN drops every hour") -> T.Ticket:
        return await self.tickets.CreateTicket(
            T.CreateTicketRequest(
                caller=self.caller(requester, PORTAL),
                type=T.TICKET_TYPE_INCIDENT,
                title=title,
                description="Since Monday the VPN disconnects.",
                impact=T.TICKET_LEVEL_MEDIUM,
                urgency=T.TICKET_LEVEL_MEDIUM,
            )
        )

    async def comment(
        self, who: str, perms: tuple[str, ...], ticket: str, body: str, internal: bool = False
    ) -> None:
        await self.tickets.AddComment(
            T.AddCommentRequest(
                caller=self.caller(who, perms), ticket_id=ticket, body=body, internal=internal
            )
        )

    async def inbox(self, person: str) -> notifications_pb2.ListNotificationsResponse:
        return await self.notifications.ListNotifications(
            notifications_pb2.ListNotificationsRequest(caller=self.caller(person, ()))
        )

    async def deliveries(self, person: str) -> list[notifications_pb2.Delivery]:
        resp = await self.notifications.ListDeliveries(
            notifications_pb2.ListDeliveriesRequest(
                caller=self.caller(self.people.admin, ("Person:manage",)), person_id=person
            )
        )
        return list(resp.deliveries)

    async def mails_to(self, email: str, count: int = 1, timeout: float = 10.0) -> list[Caught]:
        return await self.catcher.wait_for(lambda m: email in m.recipients, count, timeout)

    @property
    def inbound_port(self) -> int:
        """The port of the notifications service's inbound listener (replies by e-mail)."""
        running = self.stack.services["notifications"]
        return next(b.port for b in running.background if isinstance(b, Inbound))

    async def reply(
        self, mail: Caught | EmailMessage, text: str, sender: str = ""
    ) -> tuple[int, str]:
        """Answer `mail` as a mail client would, through the real inbound listener."""
        message = mail.message if isinstance(mail, Caught) else mail
        return await self.send(reply_to(message, text, sender))

    async def send(self, message: EmailMessage) -> tuple[int, str]:
        return await send_reply(message, "127.0.0.1", self.inbound_port)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.1
) -> Any:
    """The first truthy result of `check` (AssertionError after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        await asyncio.sleep(interval)


async def start_suite(stack: Stack, catcher: MailCatcher, **env: str) -> Suite:
    await catcher.start()
    stack.on_close(catcher.stop)
    await stack.start("directory")
    await stack.start("auth")
    await stack.start("tickets")
    await stack.start("compliance", FRONTDESK_COMPLIANCE_SWEEP_INTERVAL="3600")
    await stack.start("notifications", **notification_env(catcher, **env))
    people = await workspace(stack)
    stubs: dict[str, Any] = {}
    for name, make in (
        ("tickets", tickets_pb2_grpc.TicketServiceStub),
        ("compliance", compliance_pb2_grpc.ComplianceServiceStub),
        ("notifications", notifications_pb2_grpc.NotificationServiceStub),
        ("auth", auth_pb2_grpc.AuthServiceStub),
    ):
        ch = channel(stack.addresses[name])
        stack.on_close(ch.close)
        stubs[name] = make(ch)
    return Suite(stack, catcher, people, **stubs)


def new_id() -> str:
    return str(uuid.uuid4())
