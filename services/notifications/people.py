"""What the notifications service asks the others: recipients (directory), comments (tickets),
and, for a reply by e-mail, adding a comment for its sender (tickets, compliance issues).

Each call carries this service's own signed principal (its rights in SERVICE_RIGHTS). An outage
of a backend surfaces as the gRPC error itself (UNAVAILABLE, DEADLINE_EXCEEDED), which the
chassis inbox treats as our infrastructure being away: the event is retried, nothing counted.
A workspace's slug and name are cached; persons, permissions and the section toggles never, so
a revoked access, a section turned off or a preference turned off takes effect for the next
event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from frontdesk.v1 import (
    common_pb2,
    compliance_pb2,
    compliance_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    tickets_pb2,
    tickets_pb2_grpc,
)

from services.chassis.directory_client import MAX_IDS, on_own_behalf
from services.chassis.grpcio import call
from services.notifications.domain import PREFERENCES, Recipient, Sections

Connect = Callable[[str, str], grpc.aio.Channel]
_WORKSPACE_SECONDS = 300.0


@dataclass(frozen=True)
class WorkspaceInfo:
    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class TicketComment:
    id: str
    author_id: str
    body: str


@dataclass(frozen=True)
class TicketView:
    """A ticket as its requester sees it (public comments only)."""

    id: str
    number: str
    title: str
    requester_id: str
    assignee_id: str
    comments: list[TicketComment]


def _not_found(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


class People:
    """The directory, as the notifications service reads it."""

    def __init__(self, address: str, connect: Connect, timeout: float = 5.0) -> None:
        self._address = address
        self._connect = connect
        self._stub: directory_pb2_grpc.DirectoryServiceStub | None = None
        self._timeout = timeout
        self._workspaces: dict[str, tuple[WorkspaceInfo, float]] = {}

    @property
    def stub(self) -> directory_pb2_grpc.DirectoryServiceStub:
        if self._stub is None:
            self._stub = directory_pb2_grpc.DirectoryServiceStub(
                self._connect(self._address, "directory")
            )
        return self._stub

    async def recipients(self, ws: str, ids: Iterable[str]) -> dict[str, Recipient]:
        """The persons of `ws` among `ids` with their preferences and effective permissions;
        unknown ids are absent."""
        wanted = [i for i in dict.fromkeys(ids) if i]
        found: dict[str, Recipient] = {}
        for start in range(0, len(wanted), MAX_IDS):
            chunk = wanted[start : start + MAX_IDS]
            req = directory_pb2.ListPersonsRequest(
                caller=on_own_behalf(ws),
                ids=chunk,
                page=common_pb2.PageRequest(page_size=len(chunk)),
            )
            resp = await call(self.stub.ListPersons, req, timeout=self._timeout, safe=True)
            for p in resp.persons:
                if p.workspace_id != ws:
                    continue
                permissions = await self._permissions(ws, p.id) if p.active else frozenset()
                found[p.id] = Recipient(
                    id=p.id,
                    workspace_id=p.workspace_id,
                    email=p.email,
                    name=p.name,
                    active=p.active,
                    portal_access=p.portal_access,
                    preferences={k: bool(getattr(p.notifications, k)) for k in PREFERENCES},
                    permissions=permissions,
                )
        return found

    async def recipient(self, ws: str, person_id: str) -> Recipient | None:
        return (await self.recipients(ws, [person_id])).get(person_id)

    async def _permissions(self, ws: str, person_id: str) -> frozenset[str]:
        req = directory_pb2.GetEffectivePermissionsRequest(
            caller=on_own_behalf(ws), person_id=person_id
        )
        try:
            e = await call(self.stub.GetEffectivePermissions, req, timeout=self._timeout, safe=True)
        except grpc.aio.AioRpcError as exc:
            if _not_found(exc):
                return frozenset()
            raise
        return frozenset(e.permissions) if e.active else frozenset()

    async def names(self, ws: str, ids: Iterable[str]) -> dict[str, str]:
        wanted = [i for i in dict.fromkeys(ids) if i]
        if not wanted:
            return {}
        req = directory_pb2.ListPersonsRequest(
            caller=on_own_behalf(ws),
            ids=wanted[:MAX_IDS],
            page=common_pb2.PageRequest(page_size=min(len(wanted), MAX_IDS)),
        )
        resp = await call(self.stub.ListPersons, req, timeout=self._timeout, safe=True)
        return {p.id: p.name or p.email for p in resp.persons if p.workspace_id == ws}

    async def sections(self, ws: str) -> Sections:
        req = directory_pb2.GetPortalSettingsRequest(caller=on_own_behalf(ws))
        s = await call(self.stub.GetPortalSettings, req, timeout=self._timeout, safe=True)
        return Sections(s.tickets_enabled, s.issues_enabled, s.control_tests_enabled)

    async def workspace(self, ws: str) -> WorkspaceInfo:
        hit = self._workspaces.get(ws)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        req = directory_pb2.GetWorkspaceRequest(id=ws)
        w = await call(self.stub.GetWorkspace, req, timeout=self._timeout, safe=True)
        info = WorkspaceInfo(w.id, w.slug, w.name)
        self._workspaces[ws] = (info, time.monotonic() + _WORKSPACE_SECONDS)
        return info

    async def turn_off(self, ws: str, person_id: str, preference: str) -> None:
        """Turn one notification preference of a person off (one-click unsubscribe)."""
        person = await call(
            self.stub.GetPerson,
            directory_pb2.GetPersonRequest(caller=on_own_behalf(ws), person_id=person_id),
            timeout=self._timeout,
            safe=True,
        )
        prefs = directory_pb2.NotificationPreferences()
        prefs.CopyFrom(person.notifications)
        setattr(prefs, preference, False)
        await call(
            self.stub.UpdatePerson,
            directory_pb2.UpdatePersonRequest(
                caller=on_own_behalf(ws),
                person_id=person_id,
                notifications=prefs,
                set_notifications=True,
            ),
            timeout=self._timeout,
        )


class Tickets:
    """The tickets service, read with Ticket:read-public (public comments only)."""

    def __init__(self, address: str, connect: Connect, timeout: float = 5.0) -> None:
        self._address = address
        self._connect = connect
        self._stub: tickets_pb2_grpc.TicketServiceStub | None = None
        self._timeout = timeout

    @property
    def stub(self) -> tickets_pb2_grpc.TicketServiceStub:
        if self._stub is None:
            self._stub = tickets_pb2_grpc.TicketServiceStub(self._connect(self._address, "tickets"))
        return self._stub

    async def add_comment(
        self, ws: str, ticket_id: str, person_id: str, body: str, key: str
    ) -> str:
        """Add `body` as the comment of `person_id` (Ticket:comment-as-person; tickets checks
        the person's own access); the same `key` again adds nothing. Returns the comment id."""
        req = tickets_pb2.AddCommentRequest(
            caller=on_own_behalf(ws),
            ticket_id=ticket_id,
            body=body,
            on_behalf_of=person_id,
            idempotency_key=key,
        )
        resp = await call(self.stub.AddComment, req, timeout=self._timeout)
        return str(resp.comment.id)

    async def ticket(self, ws: str, ticket_id: str) -> TicketView | None:
        if not self._address:
            return None
        req = tickets_pb2.GetTicketRequest(caller=on_own_behalf(ws), ticket_id=ticket_id)
        try:
            d = await call(self.stub.GetTicket, req, timeout=self._timeout, safe=True)
        except grpc.aio.AioRpcError as exc:
            if _not_found(exc):
                return None
            raise
        t = d.ticket
        return TicketView(
            id=t.id,
            number=t.number,
            title=t.title,
            requester_id=t.requester_id,
            assignee_id=t.assignee_id,
            comments=[
                TicketComment(c.id, c.author_id, c.body) for c in d.comments if not c.internal
            ],
        )


class Issues:
    """The compliance service's issues, for a reply by e-mail (Issue:comment-as-person)."""

    def __init__(self, address: str, connect: Connect, timeout: float = 5.0) -> None:
        self._address = address
        self._connect = connect
        self._stub: compliance_pb2_grpc.ComplianceServiceStub | None = None
        self._timeout = timeout

    @property
    def configured(self) -> bool:
        return bool(self._address)

    async def add_comment(self, ws: str, issue_id: str, person_id: str, body: str, key: str) -> str:
        if self._stub is None:
            self._stub = compliance_pb2_grpc.ComplianceServiceStub(
                self._connect(self._address, "compliance")
            )
        req = compliance_pb2.AddIssueCommentRequest(
            caller=on_own_behalf(ws),
            issue_id=issue_id,
            body=body,
            on_behalf_of=person_id,
            idempotency_key=key,
        )
        resp = await call(self._stub.AddIssueComment, req, timeout=self._timeout)
        return str(resp.id)
