"""The directory service as other services see it: who the persons are and what they may do.

One long-lived channel; each call carries the calling service's own signed principal (its
channel comes from `Resources.channel`, which signs it; the request's Caller only names the
workspace), with a deadline, and is retried while the directory is briefly unavailable. Protobuf
stays in here: callers get plain dataclasses, None for an unknown person, and
DirectoryUnavailable when the directory cannot answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc

from services.chassis.errors import Unavailable
from services.chassis.grpcio import call, channel

# ListPersons answers at most this many ids per call (the directory's page limit).
MAX_IDS = 500


class DirectoryUnavailable(Unavailable):
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


def on_own_behalf(ws: str) -> common_pb2.Caller:
    """The Caller of a call a service makes on its own behalf in `ws`: no person. The directory
    does not believe it; it goes by the service principal the channel signs (with only the
    service's rights, SERVICE_RIGHTS)."""
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

    def __init__(
        self,
        address: str,
        timeout: float = 5.0,
        connect: Callable[[str], grpc.aio.Channel] | None = None,
    ) -> None:
        self._address = address
        self._connect = connect or channel
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
            self._channel = self._connect(self._address)
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
                caller=on_own_behalf(ws),
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
            caller=on_own_behalf(ws), person_id=str(person_id)
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

    async def portal_settings(self, ws: str) -> directory_pb2.PortalSettings:
        """Workspace `ws`'s portal settings (section toggles, attachment limits, ...)."""
        req = directory_pb2.GetPortalSettingsRequest(caller=on_own_behalf(ws))
        try:
            settings: directory_pb2.PortalSettings = await call(
                self.stub.GetPortalSettings, req, timeout=self.timeout, safe=True
            )
        except grpc.aio.AioRpcError as exc:
            raise unavailable(exc) from None
        return settings
