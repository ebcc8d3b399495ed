"""Real persons for tests: a workspace and its persons created through the directory service.

Services check the persons a caller names (assignees, owners, requesters) with the directory,
so tests name persons that exist instead of random UUIDs. Start "directory" before using it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import grpc
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc

from tests.signing import channel
from tests.stack import Stack


@dataclass
class People:
    """One workspace of the running directory; `person()` adds someone to it."""

    ws: str
    admin: str
    directory: directory_pb2_grpc.DirectoryServiceStub
    _roles: dict[frozenset[str], str] = field(default_factory=dict)

    @property
    def system(self) -> common_pb2.Caller:
        return common_pb2.Caller(workspace_id=self.ws)

    async def person(self, *permissions: str, active: bool = True, name: str = "") -> str:
        """A new person holding `permissions` (through a role made for that set); its id."""
        tag = uuid.uuid4().hex[:10]
        role_ids = [await self._role(frozenset(permissions))] if permissions else []
        p = await self.directory.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=self.system,
                email=f"p{tag}@people.test",
                name=name or f"Person {tag}",
                role_ids=role_ids,
            )
        )
        if not active:
            await self.deactivate(p.id)
        return str(p.id)

    async def deactivate(self, person_id: str) -> None:
        await self.directory.UpdatePerson(
            directory_pb2.UpdatePersonRequest(caller=self.system, person_id=person_id, active=False)
        )

    async def _role(self, permissions: frozenset[str]) -> str:
        if permissions not in self._roles:
            role = await self.directory.CreateRole(
                directory_pb2.CreateRoleRequest(
                    caller=self.system,
                    name=f"Test role {uuid.uuid4().hex[:8]}",
                    permissions=sorted(permissions),
                )
            )
            self._roles[permissions] = role.id
        return self._roles[permissions]


async def workspace(stack: Stack) -> People:
    """A new workspace in the stack's directory (which must be started); the channel closes
    with the stack."""
    ch = channel(stack.addresses["directory"])
    stack.on_close(ch.close)
    return await workspace_on(ch)


async def workspace_on(ch: grpc.aio.Channel) -> People:
    """A new workspace in the directory behind `ch` (a signed channel, tests/signing.py)."""
    directory = directory_pb2_grpc.DirectoryServiceStub(ch)
    tag = uuid.uuid4().hex[:10]
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug=f"w{tag}",
            name=f"Workspace {tag}",
            admin_email=f"admin{tag}@people.test",
            admin_name="Ada Admin",
        )
    )
    return People(ws=created.workspace.id, admin=created.admin.id, directory=directory)
