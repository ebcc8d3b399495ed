"""What people hear about and who may be told: kinds, preferences, visibility. No I/O.

A notification is never sent to a person who may no longer see its item: an inactive person
gets nothing; a portal item (a requester's ticket, an assigned issue or control test) reaches a
person through the portal only while their portal access is on, the section is on and they hold
the portal permission, else through the console only when they hold the management permission.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    TICKET_COMMENT = "ticket_comment"  # requester: an agent's public comment
    TICKET_STATUS = "ticket_status"  # requester: waiting for you, resolved, closed
    TICKET_ASSIGNED = "ticket_assigned"  # agent: a ticket assigned to me
    TICKET_REPLY = "ticket_reply"  # agent (assignee): the requester replied
    ISSUE_ASSIGNED = "issue_assigned"
    CONTROL_TEST_ASSIGNED = "control_test_assigned"
    CONTROL_TEST_OVERDUE = "control_test_overdue"
    CONTROL_TEST_DUE_SOON = "control_test_due_soon"  # due in N days (a reminder)
    PASSWORD_CHANGED = "password_changed"  # security: always sent
    TWO_FACTOR_DISABLED = "two_factor_disabled"  # security: always sent
    WEEKLY_DIGEST = "weekly_digest"  # what is open for me, once a week (opt-in)
    NEW_SIGN_IN = "new_sign_in"  # security: a sign-in from a new device or address


# The person's preference (directory NotificationPreferences) that governs each kind; None: a
# security message, always sent and never unsubscribable.
PREFERENCE: dict[Kind, str | None] = {
    Kind.TICKET_COMMENT: "ticket_updates",
    Kind.TICKET_STATUS: "ticket_updates",
    Kind.TICKET_ASSIGNED: "ticket_updates",
    Kind.TICKET_REPLY: "ticket_updates",
    Kind.ISSUE_ASSIGNED: "issue_assigned",
    Kind.CONTROL_TEST_ASSIGNED: "control_test_assigned",
    Kind.CONTROL_TEST_OVERDUE: "control_test_assigned",
    Kind.CONTROL_TEST_DUE_SOON: "control_test_assigned",
    Kind.PASSWORD_CHANGED: None,
    Kind.TWO_FACTOR_DISABLED: None,
    Kind.WEEKLY_DIGEST: "weekly_digest",
    Kind.NEW_SIGN_IN: None,
}

PREFERENCES = ("ticket_updates", "issue_assigned", "control_test_assigned", "weekly_digest")


@dataclass(frozen=True)
class Recipient:
    """A person as the directory says now: who they are, what they chose and may do."""

    id: str
    workspace_id: str
    email: str
    name: str
    active: bool
    portal_access: bool
    preferences: dict[str, bool]
    permissions: frozenset[str]

    def wants(self, kind: Kind) -> bool:
        preference = PREFERENCE[kind]
        return preference is None or self.preferences.get(preference, False)


@dataclass(frozen=True)
class Sections:
    """The workspace's portal section toggles."""

    tickets: bool = True
    issues: bool = True
    control_tests: bool = True


@dataclass(frozen=True)
class Item:
    """What a notification is about: a ticket, issue, control test, or the person's account."""

    kind: str  # "ticket", "issue", "control_test", "account"
    id: str
    number: str = ""  # "INC-3", "ISS-4", "TST-12"
    title: str = ""


def link_for(person: Recipient, item: Item, sections: Sections) -> str | None:
    """The path where `person` sees `item` now, or None when they may not see it at all."""
    if not person.active:
        return None
    perms = person.permissions
    portal = person.portal_access
    ref = item.number or item.id
    if item.kind == "ticket":
        if portal and sections.tickets and ({"Ticket:read", "Ticket:manage"} & perms):
            return f"/tickets/{ref}"
        if "Ticket:manage" in perms:
            return f"/management/tickets/{ref}"
        return None
    if item.kind == "issue":
        if portal and sections.issues and "Issue:read" in perms:
            return f"/issues/{item.id}"
        if "Issue:manage" in perms:
            return f"/management/issues/{item.id}"
        return None
    if item.kind == "control_test":
        if portal and sections.control_tests and {"Control:read", "ControlTest:read"} <= perms:
            return f"/control-tests/{item.id}"
        if "Control:manage" in perms:
            return f"/management/control-tests/{item.id}"
        return None
    if item.kind == "account":
        return "/profile" if portal else "/management/profile"
    if item.kind == "digest":
        return "/" if portal else "/management"
    return None


def agent_link(person: Recipient, item: Item) -> str | None:
    """The console path of a ticket for an agent (who sees it there, not in the portal)."""
    if not person.active or "Ticket:manage" not in person.permissions:
        return None
    return f"/management/tickets/{item.number or item.id}"


_VERSIONS = re.compile(r"[\d._]+")


def device_of(user_agent: str) -> str:
    """A browser as a sign-in's device: its user agent without version numbers, so that a
    browser's update is not a new device."""
    return " ".join(_VERSIONS.sub(" ", user_agent).split()).lower()


@dataclass(frozen=True)
class Intent:
    """One message for one person about one event: in-app always, e-mail when they want it."""

    event_id: uuid.UUID
    workspace_id: uuid.UUID
    person: Recipient
    kind: Kind
    item: Item
    link: str
    title: str  # one line, the in-app title and the mail's subject
    text: str  # what happened, a few lines (the comment text when there is one)
    actor_name: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    workspace_id: uuid.UUID
    event_id: uuid.UUID
    person_id: uuid.UUID
    kind: str
    email: str
    subject: str
    body_text: str
    body_html: str
    headers: dict[str, str]
    message_id: str
    status: str
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class Notification:
    id: uuid.UUID
    workspace_id: uuid.UUID
    person_id: uuid.UUID
    kind: str
    title: str
    body: str
    link: str
    item_kind: str
    item_id: str
    read: bool
    created_at: datetime
