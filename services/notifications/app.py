"""Wiring of the notifications service: servicer, the event consumers and the mail sender."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from frontdesk.v1 import notifications_pb2, notifications_pb2_grpc

from services.chassis.runner import Resources, RunningService, Wiring, start_service
from services.chassis.smtp import Mailer
from services.notifications.compose import Composer
from services.notifications.consumers import consumers
from services.notifications.digest import Digests
from services.notifications.due import Reminders
from services.notifications.inbound import Inbound
from services.notifications.jobs import Sender
from services.notifications.people import Issues, People, Tickets
from services.notifications.replies import Replies
from services.notifications.rules import Rules
from services.notifications.service import NotificationService
from services.notifications.servicer import NotificationServicer
from services.notifications.settings import Settings
from services.notifications.tokens import Tokens

MIGRATIONS = Path(__file__).parent / "migrations"


async def wire(resources: Resources) -> Wiring:
    settings = resources.settings
    assert isinstance(settings, Settings)
    people = People(settings.directory_addr, resources.channel)
    tickets = Tickets(settings.tickets_addr, resources.channel)
    tokens = Tokens(settings.secret_key)
    composer = Composer(tokens, settings.public_url, settings.mail_domain, settings.smtp.sender)
    service = NotificationService(
        resources.pool,
        people,
        Rules(people, tickets),
        composer,
        tokens,
        sender_name=settings.smtp.sender_name,
    )
    servicer = NotificationServicer(service)

    def register(server: grpc.aio.Server) -> Sequence[str]:
        notifications_pb2_grpc.add_NotificationServiceServicer_to_server(servicer, server)
        return [notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name]

    background: list[object] = [*consumers(resources.pool, resources.js, service)]
    for i in range(settings.senders if settings.send else 0):
        background.append(
            Sender(
                resources.pool,
                Mailer(settings.smtp),
                name=f"notifications-sender-{i}",
                dsn=settings.database_url,
                retry_base=settings.retry_base,
                retry_max=settings.retry_max,
                give_up_after=settings.give_up_after,
            )
        )
    if settings.due_soon_days:
        background.append(
            Reminders(
                resources.pool,
                service.remind_due,
                settings.due_soon_days,
                settings.reminder_interval,
            )
        )
    if settings.digest_weekday:
        background.append(
            Digests(
                resources.pool,
                service.make_digest,
                settings.digest_weekday,
                settings.reminder_interval,
            )
        )
    if settings.inbound_listen:
        replies = Replies(
            tokens,
            people,
            tickets,
            Issues(settings.compliance_addr, resources.channel),
            settings.mail_domain,
            settings.reply_days,
        )
        background.append(Inbound(replies, settings.inbound_listen, settings.inbound_protocol))
    return Wiring(register=register, background=background)  # type: ignore[arg-type]


async def create_server(settings: Settings) -> RunningService:
    """Start the service (port 0 allowed); the caller stops it with `await running.stop()`."""
    return await start_service(settings, MIGRATIONS, wire)
