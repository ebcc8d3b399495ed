"""The directory service as auth sees it: persons, portal settings, portal-login records.

Protobuf stays here; the use cases get domain Persons. Calls carry auth's own service
principal (signed by the channel `connect` gives; the request's Caller only names the workspace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from frontdesk.v1 import directory_pb2, directory_pb2_grpc

from services.auth.domain import Person, Refused
from services.chassis.directory_client import Access, DirectoryClient, DirectoryUnavailable
from services.chassis.directory_client import on_own_behalf as _system
from services.chassis.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidField,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from services.chassis.grpcio import call


@dataclass(frozen=True)
class PortalRules:
    require_two_factor: bool
    self_registration: str
    api_token_max_days: int = 90
    registration_domains: tuple[str, ...] = ()


def _person(p: directory_pb2.Person) -> Person:
    return Person(
        id=p.id,
        workspace_id=p.workspace_id,
        email=p.email,
        name=p.name,
        active=p.active,
        portal_access=p.portal_access,
    )


def _translate(exc: grpc.aio.AioRpcError) -> DomainError:
    """A directory error as the auth service's own (the message is the directory's)."""
    code = exc.code()
    message = exc.details() or "directory error"
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(message)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return AlreadyExists(message)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        reason = dict(exc.trailing_metadata() or ()).get("error-code", "")
        return Refused(message, str(reason)) if reason else PermissionDenied(message)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(message)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field, _, problem = message.partition(": ")
        return InvalidField(field, problem) if problem else InvalidField("request", message)
    return Unavailable(f"directory unavailable: {code.name if code else 'unknown'}")


class Directory:
    """Auth's calls to DirectoryService, on the shared client (one long-lived channel)."""

    def __init__(
        self,
        address: str,
        timeout: float = 5.0,
        connect: Callable[[str], grpc.aio.Channel] | None = None,
    ) -> None:
        self._directory = DirectoryClient(address, timeout, connect)
        self._timeout = timeout

    async def access(self, ws: str, person_id: str) -> Access | None:
        """The person's effective permissions (None: no such person), for signing principals."""
        try:
            return await self._directory.effective_permissions(ws, person_id)
        except DirectoryUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def _client(self) -> directory_pb2_grpc.DirectoryServiceStub:
        try:
            return self._directory.stub
        except DirectoryUnavailable as exc:
            raise Unavailable(str(exc)) from None

    async def close(self) -> None:
        await self._directory.close()

    async def find_by_email(
        self, ws: str, email: str, *, or_login_name: bool = False
    ) -> Person | None:
        req = directory_pb2.FindPersonByEmailRequest(
            caller=_system(ws), email=email, or_login_name=or_login_name
        )
        try:
            p = await call(self._client().FindPersonByEmail, req, timeout=self._timeout, safe=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise _translate(exc) from None
        return _person(p)

    async def get_person(self, ws: str, person_id: str) -> Person | None:
        try:
            found = next(iter((await self._directory.persons(ws, [person_id])).values()), None)
        except DirectoryUnavailable as exc:
            raise Unavailable(str(exc)) from None
        if found is None:
            return None
        return Person(
            id=found.id,
            workspace_id=found.workspace_id,
            email=found.email,
            name=found.name,
            active=found.active,
            portal_access=found.portal_access,
        )

    async def portal_rules(self, ws: str) -> PortalRules:
        req = directory_pb2.GetPortalSettingsRequest(caller=_system(ws))
        try:
            s = await call(self._client().GetPortalSettings, req, timeout=self._timeout, safe=True)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None
        return PortalRules(
            require_two_factor=s.require_two_factor,
            self_registration=s.self_registration,
            api_token_max_days=s.api_token_max_days or 90,
            registration_domains=tuple(s.registration_domains),
        )

    async def record_portal_login(self, ws: str, person_id: str) -> None:
        req = directory_pb2.RecordPortalLoginRequest(caller=_system(ws), person_id=person_id)
        try:
            await call(self._client().RecordPortalLogin, req, timeout=self._timeout, safe=True)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None

    async def register_person(self, ws: str, email: str, name: str, person_id: str) -> Person:
        """Self-registration: the directory checks the workspace's mode and applies defaults."""
        req = directory_pb2.RegisterPersonRequest(
            workspace_id=ws, email=email, name=name, person_id=person_id
        )
        try:
            p = await call(self._client().RegisterPerson, req, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None
        return _person(p)

    async def create_sso_person(self, ws: str, email: str, name: str) -> Person:
        """A person first seen through SSO: portal-access defaults apply (portal_access unset)
        and they join the built-in Portal Users group, as self-registered persons do."""
        client = self._client()
        try:
            groups = await call(
                client.ListGroups,
                directory_pb2.ListGroupsRequest(caller=_system(ws)),
                timeout=self._timeout,
                safe=True,
            )
            group_ids = [g.id for g in groups.groups if g.builtin and g.name == "Portal Users"]
            p = await call(
                client.CreatePerson,
                directory_pb2.CreatePersonRequest(
                    caller=_system(ws), email=email, name=name or email, group_ids=group_ids
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None
        return _person(p)
