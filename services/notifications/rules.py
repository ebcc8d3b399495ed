"""Who is told what about an event: the rules, from an event to its intents.

- requester: an agent's public comment (with its text); a status change to waiting for you,
  resolved or closed (with the agent's latest public comment);
- assignee (agent): a ticket assigned to me; the requester replied;
- assignee: an issue assigned to me, a control test assigned to me, a control test overdue;
- the person themself: password changed, two-factor turned off (security: always sent).

Nobody is told of their own action, of an internal note, or of an item they may not see now
(domain.link_for); a preference turned off drops the e-mail (and keeps the in-app entry only
for security messages, see service.py).
"""

from __future__ import annotations

import uuid
from datetime import date

from frontdesk.v1 import events_pb2, tickets_pb2

from services.chassis.events import kind as event_kind
from services.notifications.domain import (
    Intent,
    Item,
    Kind,
    Recipient,
    agent_link,
    device_of,
    link_for,
)
from services.notifications.people import People, Tickets

TELL_REQUESTER = {
    tickets_pb2.TICKET_STATUS_WAITING_FOR_REQUESTER: "is waiting for your answer",
    tickets_pb2.TICKET_STATUS_RESOLVED: "was resolved",
    tickets_pb2.TICKET_STATUS_CLOSED: "was closed",
}


class Rules:
    def __init__(self, people: People, tickets: Tickets) -> None:
        self._people = people
        self._tickets = tickets

    async def intents(self, event: events_pb2.Event) -> list[Intent]:
        try:
            service, name = event_kind(event)
        except ValueError:
            return []
        if not event.workspace_id:
            return []
        handler = getattr(self, f"_{service}_{name}", None)
        if handler is None:
            return []
        found: list[Intent] = await handler(event)
        return found

    async def _intent(
        self,
        event: events_pb2.Event,
        person_id: str,
        kind: Kind,
        item: Item,
        title: str,
        text: str,
        *,
        agent: bool = False,
    ) -> Intent | None:
        """The intent for one person, or None when they may not see the item (or caused it)."""
        if not person_id or person_id == event.actor_id:
            return None
        ws = event.workspace_id
        person = await self._people.recipient(ws, person_id)
        if person is None:
            return None
        link = agent_link(person, item) if agent else None
        if link is None and not agent:
            link = link_for(person, item, await self._people.sections(ws))
        if link is None:
            return None
        actor = ""
        if event.actor_id:
            actor = (await self._people.names(ws, [event.actor_id])).get(event.actor_id, "")
        return Intent(
            event_id=uuid.UUID(event.event_id),
            workspace_id=uuid.UUID(ws),
            person=person,
            kind=kind,
            item=item,
            link=link,
            title=title,
            text=text,
            actor_name=actor,
        )

    # -- tickets ----------------------------------------------------------------------------
    async def _tickets_ticket_commented(self, event: events_pb2.Event) -> list[Intent]:
        c = event.tickets.ticket_commented
        if c.internal:
            return []  # an internal note is never told to anyone through us
        view = await self._tickets.ticket(event.workspace_id, c.ticket_id)
        if view is None:
            return []
        body = next((x.body for x in view.comments if x.id == c.comment_id), "")
        item = Item("ticket", view.id, view.number, view.title)
        out: list[Intent] = []
        if c.author_id and c.author_id == view.requester_id:
            found = await self._intent(
                event,
                view.assignee_id,
                Kind.TICKET_REPLY,
                item,
                f"[{view.number}] {view.title}: the requester replied",
                body,
                agent=True,
            )
        else:
            found = await self._intent(
                event,
                view.requester_id,
                Kind.TICKET_COMMENT,
                item,
                f"[{view.number}] {view.title}: new comment",
                body,
            )
        if found is not None:
            out.append(found)
        return out

    async def _tickets_ticket_status_changed(self, event: events_pb2.Event) -> list[Intent]:
        s = event.tickets.ticket_status_changed
        what = TELL_REQUESTER.get(s.to_status)
        if what is None or s.by_requester_comment:
            return []
        view = await self._tickets.ticket(event.workspace_id, s.ticket_id)
        if view is None:
            return []
        latest = next(
            (x.body for x in reversed(view.comments) if x.author_id != view.requester_id), ""
        )
        item = Item("ticket", view.id, view.number, view.title)
        text = f"Your ticket {view.number} {what}." + (f"\n\n{latest}" if latest else "")
        found = await self._intent(
            event,
            view.requester_id,
            Kind.TICKET_STATUS,
            item,
            f"[{view.number}] {view.title}: {what}",
            text,
        )
        return [found] if found else []

    async def _tickets_ticket_assigned(self, event: events_pb2.Event) -> list[Intent]:
        a = event.tickets.ticket_assigned
        if not a.assignee_id:
            return []
        view = await self._tickets.ticket(event.workspace_id, a.ticket_id)
        title = view.title if view else ""
        item = Item("ticket", a.ticket_id, a.number, title)
        found = await self._intent(
            event,
            a.assignee_id,
            Kind.TICKET_ASSIGNED,
            item,
            f"[{a.number}] {title}: assigned to you",
            f"Ticket {a.number} was assigned to you.",
            agent=True,
        )
        return [found] if found else []

    # -- compliance -------------------------------------------------------------------------
    async def _compliance_issue_assigned(self, event: events_pb2.Event) -> list[Intent]:
        i = event.compliance.issue_assigned.issue
        item = Item("issue", i.issue_id, i.number, i.title)
        found = await self._intent(
            event,
            i.assignee_id,
            Kind.ISSUE_ASSIGNED,
            item,
            f"[{i.number}] {i.title}: assigned to you",
            f"Issue {i.number} ({i.severity}) was assigned to you.",
        )
        return [found] if found else []

    async def _compliance_control_test_assigned(self, event: events_pb2.Event) -> list[Intent]:
        return await self._test(event, Kind.CONTROL_TEST_ASSIGNED, "assigned to you")

    async def _compliance_control_test_overdue(self, event: events_pb2.Event) -> list[Intent]:
        return await self._test(event, Kind.CONTROL_TEST_OVERDUE, "overdue")

    async def _test(self, event: events_pb2.Event, kind: Kind, what: str) -> list[Intent]:
        ref = event.compliance.WhichOneof("kind")
        test = getattr(event.compliance, ref or "").test
        title = f"{test.control_number} {test.control_title}".strip()
        item = Item("control_test", test.control_test_id, test.number, title)
        due = f" It is due on {test.due_date}." if test.due_date else ""
        found = await self._intent(
            event,
            test.assignee_id,
            kind,
            item,
            f"[{test.number}] {title}: {what}",
            f"Control test {test.number} of {title} is {what}.{due}",
        )
        return [found] if found else []

    async def due_soon(
        self,
        ws: str,
        reminder: uuid.UUID,
        test: dict[str, object],
        today: date,
    ) -> Intent | None:
        """The reminder of a control test due soon, for its assignee (a notice of our own: no
        event of another service causes it, `reminder` stands for its id)."""
        due = test["due_date"]
        assert isinstance(due, date)
        left = (due - today).days
        when = "today" if left <= 0 else "tomorrow" if left == 1 else f"in {left} days"
        number, title = str(test["number"]), str(test["title"])
        item = Item("control_test", str(test["control_test_id"]), number, title)
        return await self._intent(
            events_pb2.Event(event_id=str(reminder), workspace_id=ws),
            str(test["assignee_id"]),
            Kind.CONTROL_TEST_DUE_SOON,
            item,
            f"[{number}] {title}: due {when}",
            f"Control test {number} of {title} is due {when}, on {due.isoformat()}.",
        )

    async def digest(
        self, ws: str, person_id: str, digest: uuid.UUID, week: str, open_items: list[Item]
    ) -> Intent | None:
        """The weekly digest of what is open for a person, with only the items they may see
        now; None when they do not want it, or nothing is left."""
        person = await self._people.recipient(ws, person_id)
        if person is None or not person.wants(Kind.WEEKLY_DIGEST):
            return None
        sections = await self._people.sections(ws)
        lines = []
        for item in open_items:
            link = link_for(person, item, sections)
            if link is None and item.kind == "ticket":
                link = agent_link(person, item)
            if link is not None:
                lines.append(f"- {item.number} {item.title}: {link}")
        home = link_for(person, Item("digest", person_id), sections)
        if not lines or home is None:
            return None
        return Intent(
            event_id=digest,
            workspace_id=uuid.UUID(ws),
            person=person,
            kind=Kind.WEEKLY_DIGEST,
            item=Item("digest", person_id),
            link=home,
            title=f"Your week ({week}): {len(lines)} open",
            text="Open for you:\n" + "\n".join(lines),
        )

    # -- auth -------------------------------------------------------------------------------
    async def _security(
        self,
        event: events_pb2.Event,
        person_id: str,
        kind: Kind,
        what: str,
        details: str = "",
        extra: dict[str, str] | None = None,
    ) -> list[Intent]:
        if not person_id:
            return []
        person: Recipient | None = await self._people.recipient(event.workspace_id, person_id)
        if person is None:
            return []
        link = link_for(
            person, Item("account", person_id), await self._people.sections(event.workspace_id)
        )
        if link is None:
            return []
        return [
            Intent(
                event_id=uuid.UUID(event.event_id),
                workspace_id=uuid.UUID(event.workspace_id),
                person=person,
                kind=kind,
                item=Item("account", person_id),
                link=link,
                title=f"Security: {what}",
                text=(
                    f"{what[0].upper()}{what[1:]} on your account. If this was not you, "
                    f"contact your administrator at once.{details}"
                ),
                extra=extra or {},
            )
        ]

    async def _auth_password_changed(self, event: events_pb2.Event) -> list[Intent]:
        person = event.auth.password_changed.person_id
        return await self._security(
            event, person, Kind.PASSWORD_CHANGED, "your password was changed"
        )

    async def _auth_two_factor_disabled(self, event: events_pb2.Event) -> list[Intent]:
        person = event.auth.two_factor_disabled.person_id
        return await self._security(
            event, person, Kind.TWO_FACTOR_DISABLED, "two-factor authentication was turned off"
        )

    async def _auth_login_succeeded(self, event: events_pb2.Event) -> list[Intent]:
        """A sign-in: an intent the service keeps only when the device or address is new for
        the person (service.py remembers what each person signed in from)."""
        s = event.auth.login_succeeded
        address = s.client_ip or "an unknown address"
        browser = s.user_agent[:200] or "an unknown browser"
        return await self._security(
            event,
            s.person_id,
            Kind.NEW_SIGN_IN,
            "a sign-in from a new device or address",
            f"\n\nAddress: {address}\nBrowser: {browser}",
            {"address": s.client_ip, "device": device_of(s.user_agent)},
        )
