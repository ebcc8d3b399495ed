"""A service acting for a person: the person's own Caller, built from what the directory says now.

The notifications service adds a reply by e-mail as its sender's comment. It does not sign a
principal for that person (only auth may); it calls with its own service principal, holding a
narrow right (`Ticket:comment-as-person`, `Issue:comment-as-person`), and names the person. The
owning service then acts with that person's effective permissions as the directory gives them,
so the person's own checks apply as if they had commented in the portal: an inactive person,
or a person without portal access who does not manage such items, is refused.
"""

from __future__ import annotations

import uuid

from services.chassis.caller import Caller
from services.chassis.directory_client import DirectoryClient
from services.chassis.errors import InvalidArgument, PermissionDenied

# The longest idempotency key of a comment added for a person (a Message-ID fits).
MAX_KEY = 200


async def acting_person(
    directory: DirectoryClient, actor: Caller, person_ref: str, *, right: str, manage: str
) -> Caller:
    """The Caller of the person `person_ref` that the service `actor` (holding `right`) acts
    for; agents (holding `manage`) act in the console, the others need portal access."""
    if not (actor.is_service and actor.has(right)):
        raise PermissionDenied(f"{right} is needed to act for a person")
    try:
        person_id = uuid.UUID(person_ref)
    except ValueError:
        raise InvalidArgument(["on_behalf_of: must be a person id"]) from None
    access = await directory.effective_permissions(str(actor.workspace_id), person_id)
    if access is None or not access.active:
        raise PermissionDenied("the person is not an active person of this workspace")
    agent = manage in access.permissions
    if not agent and not access.portal_access:
        raise PermissionDenied("the person has no portal access")
    return Caller.person(
        actor.workspace_id,
        person_id,
        access.permissions,
        "management" if agent else "portal",
        session_id=f"service:{actor.service}",
    )
