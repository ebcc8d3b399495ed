"""The directory service as other services see it: who the persons are and what they may do.

One long-lived channel; each call runs as the system (a Caller with the workspace and no
person), with a deadline, and is retried while the directory is briefly unavailable. Protobuf
stays in here: callers get plain dataclasses, None for an unknown person, and
DirectoryUnavailable when the directory cannot answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc

from services.chassis.grpcio import call, channel

# ListPersons answers at most this many ids per call (the directory's page limit).
MAX_IDS = 500


class DirectoryUnavailable(RuntimeError):
    """The directory did not answer (not configured, down, too slow, or failing)."""


@dataclass(frozen=True)
class DirectoryPerson:
    id: str
    workspace_id: str
    email: str
    name: str
    active: bool
    portal_access: bool


@dataclass(frozen=True)
class Access:
    """A person's effective permissions (union over direct roles and groups' roles)."""

    person_id: str
    active: bool
    portal_access: bool
    permissions: frozenset[str]


def system(ws: str) -> common_pb2.Caller:
    """The Caller of a call made by a service itself: allowed everything within `ws`."""
    return common_pb2.Caller(workspace_id=ws)


def to_person(p: directory_pb2.Person) -> DirectoryPerson:
    return DirectoryPerson(
        id=p.id,
        workspace_id=p.workspace_id,
        email=p.email,
        name=p.name,
        active=p.active,
        portal_access=p.portal_access,
    )


def unavailable(exc: grpc.aio.AioRpcError) -> DirectoryUnavailable:
    code = exc.code()
    return DirectoryUnavailable(f"directory unavailable: {code.name if code else 'unknown'}")


class DirectoryClient:
    """A gRPC client of DirectoryService; the channel opens on first use, `close()` at stop."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self._address = address
        self._channel: grpc.aio.Channel | None = None
        self._stub: directory_pb2_grpc.DirectoryServiceStub | None = None
        self.timeout = timeout

    @property
    def stub(self) -> directory_pb2_grpc.DirectoryServiceStub:
        """The stub, for calls a service makes beyond the ones below (auth's, for instance)."""
        if not self._address:
            raise DirectoryUnavailable(
                "the directory address (FRONTDESK_DIRECTORY_ADDR) is not set"
            )
        if self._stub is None:
            self._channel = channel(self._address)
            self._stub = directory_pb2_grpc.DirectoryServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None

    async def persons(self, ws: str, ids: Iterable[str | uuid.UUID]) -> dict[str, DirectoryPerson]:
        """The persons of workspace `ws` among `ids`, by id (active or not); unknown ids, other
        workspaces' and malformed ones are simply absent. One call per MAX_IDS ids."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found: dict[str, DirectoryPerson] = {}
        for start in range(0, len(wanted), MAX_IDS):
            chunk = wanted[start : start + MAX_IDS]
            req = directory_pb2.ListPersonsRequest(
                caller=system(ws),
                ids=chunk,
                page=common_pb2.PageRequest(page_size=len(chunk)),
            )
            try:
                resp = await call(self.stub.ListPersons, req, timeout=self.timeout, safe=True)
            except grpc.aio.AioRpcError as exc:
                raise unavailable(exc) from None
            for p in resp.persons:
                if p.workspace_id == ws:
                    found[p.id] = to_person(p)
        return found

    async def effective_permissions(self, ws: str, person_id: str | uuid.UUID) -> Access | None:
        """What the person of workspace `ws` may do; None when there is no such person."""
        req = directory_pb2.GetEffectivePermissionsRequest(
            caller=system(ws), person_id=str(person_id)
        )
        try:
            e = await call(self.stub.GetEffectivePermissions, req, timeout=self.timeout, safe=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise unavailable(exc) from None
        return Access(
            person_id=e.person_id,
            active=e.active,
            portal_access=e.portal_access,
            permissions=frozenset(e.permissions),
        )
