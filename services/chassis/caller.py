"""Who is calling a service: the one `Caller`, built only from a verified signed principal.

A Caller is a person (signed in through the portal or the management console, the principal
minted by auth) or a service acting on its own behalf (signed with that service's own key).
There is no "system" caller allowed everything: a service holds the rights listed for it in
SERVICE_RIGHTS and nothing more. The chassis' server interceptor (principals.py) verifies the
principal of every call and puts the Caller here (`current_caller()`); servicers take it from
there, never from the request body.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Surface = Literal["portal", "management", "service"]
SURFACES: tuple[Surface, ...] = ("portal", "management", "service")

# The workspace of a service principal that names none (the launcher creating a workspace, the
# gateway resolving a host name): no workspace has this id, so every lookup by it finds nothing.
NO_WORKSPACE = uuid.UUID(int=0)

# What each component may do on its own behalf; a service principal claiming more is refused.
# Rights use the permission vocabulary of the design ("Resource:action") plus a few that only
# components hold (creating workspaces, registering persons, minting principals, ...).
SERVICE_RIGHTS: dict[str, frozenset[str]] = {
    # the local launcher / an operator's job: create workspaces and set the first password
    # (and `./dev deadletters`: every service's OperationsService)
    "launcher": frozenset(
        {"Workspace:create", "Workspace:read", "Credential:set", "Operations:manage"}
    ),
    # the gateway: host -> workspace, names shown on pages, sign-in flows and asking auth for
    # the principal of a session or API token (portal settings are readable by any verified
    # caller of the workspace)
    "gateway": frozenset({"Workspace:read", "Person:read", "Auth:sign-in", "Principal:issue"}),
    # auth: the persons it signs in, registers or creates at first SSO sign-in, recording portal
    # sign-ins, the effective permissions of the principals it signs
    "auth": frozenset({"Person:read", "Person:register", "Person:provision", "PortalLogin:record"}),
    # tickets and compliance: requesters, assignees and their permissions
    "tickets": frozenset({"Person:read"}),
    "compliance": frozenset({"Person:read"}),
    # the directory does its own work in process (import worker); it calls nobody
    "directory": frozenset(),
    # notifications: who the recipients are and what they may see (persons, permissions, the
    # workspace's slug for links), a ticket's public comments for the mail's text, turning
    # off one notification preference of a person (one-click unsubscribe), and adding a
    # person's reply by e-mail as their comment (checked with that person's own access)
    "notifications": frozenset(
        {
            "Person:read",
            "Workspace:read",
            "Ticket:read-public",
            "Person:notifications",
            "Ticket:comment-as-person",
            "Issue:comment-as-person",
        }
    ),
}


@dataclass(frozen=True)
class Caller:
    """The verified caller of one request."""

    workspace_id: uuid.UUID
    person_id: uuid.UUID | None
    permissions: frozenset[str]
    surface: Surface = "service"
    service: str = ""  # the component, for a service principal
    session_id: str = ""  # the session ("api:<id>" for an API token) of a person's principal

    @classmethod
    def person(
        cls,
        workspace_id: uuid.UUID,
        person_id: uuid.UUID,
        permissions: Iterable[str],
        surface: Surface = "portal",
        session_id: str = "",
    ) -> Caller:
        return cls(workspace_id, person_id, frozenset(permissions), surface, "", session_id)

    @classmethod
    def of_service(
        cls,
        service: str,
        workspace_id: uuid.UUID = NO_WORKSPACE,
        rights: Iterable[str] | None = None,
    ) -> Caller:
        """A service acting on its own behalf, in process (a consumer, a sweeper)."""
        granted = SERVICE_RIGHTS.get(service, frozenset()) if rights is None else rights
        return cls(workspace_id, None, frozenset(granted), "service", service)

    @property
    def is_service(self) -> bool:
        return self.person_id is None

    @property
    def via_api_token(self) -> bool:
        return self.session_id.startswith("api:")

    @property
    def ws(self) -> str:
        """The workspace id as text ("" for a service principal that names none)."""
        return "" if self.workspace_id == NO_WORKSPACE else str(self.workspace_id)

    @property
    def actor(self) -> str:
        """The actor id of events: the person, "" for a service."""
        return "" if self.person_id is None else str(self.person_id)

    def has(self, *permissions: str) -> bool:
        """True when the caller holds every one of `permissions`."""
        return all(p in self.permissions for p in permissions)

    def has_any(self, *permissions: str) -> bool:
        return any(p in self.permissions for p in permissions)

    def missing(self, *permissions: str) -> list[str]:
        return [p for p in permissions if p not in self.permissions]

    def is_self(self, person_id: uuid.UUID | str | None) -> bool:
        """True when the caller is that person (never for a service)."""
        if self.person_id is None or person_id is None:
            return False
        return str(self.person_id) == str(person_id)


caller_var: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "frontdesk_caller", default=None
)


class NoCaller(RuntimeError):
    """A servicer ran without a verified caller (the principal interceptor is not installed)."""


def current_caller() -> Caller:
    """The verified caller of the request being served."""
    caller = caller_var.get()
    if caller is None:
        raise NoCaller("no verified caller for this call; is the principal interceptor installed?")
    return caller
