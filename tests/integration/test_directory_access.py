"""Roles, groups, grants and memberships over the real directory service, and the access-change
events each one publishes on JetStream naming the affected persons."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from frontdesk.v1 import directory_pb2

from tests.integration.test_directory_core import (
    CATALOG,
    Directory,
    collect_events,
    expect_code,
    named,
    open_directory,
)
from tests.stack import Stack


@pytest.fixture
async def directory(stack: Stack) -> AsyncIterator[Directory]:
    async with open_directory(stack) as client:
        yield client


async def _perms(directory: Directory, ws: str, person_id: str) -> list[str]:
    resp = await directory.stub.GetEffectivePermissions(
        directory_pb2.GetEffectivePermissionsRequest(
            caller=directory.caller(ws), person_id=person_id
        )
    )
    return sorted(resp.permissions)


async def test_roles_crud_catalog_and_unknown_permissions(directory: Directory) -> None:
    ws = (await directory.workspace()).workspace.id
    sys = directory.caller(ws)
    catalog = await directory.stub.ListPermissionCatalog(
        directory_pb2.ListPermissionCatalogRequest(caller=sys)
    )
    assert list(catalog.permissions) == CATALOG
    role = await directory.stub.CreateRole(
        directory_pb2.CreateRoleRequest(
            caller=sys,
            name="Agents",
            description="Desk",
            permissions=["Ticket:manage", "Ticket:read"],
        )
    )
    assert list(role.permissions) == ["Ticket:read", "Ticket:manage"] and not role.builtin
    msg = await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        directory.stub.CreateRole(
            directory_pb2.CreateRoleRequest(
                caller=sys, name="Bad", permissions=["Ticket:read", "Ticket:fly", "Nope:x"]
            )
        ),
    )
    assert msg.startswith("permissions:") and "Ticket:fly" in msg and "Nope:x" in msg
    await expect_code(
        grpc.StatusCode.ALREADY_EXISTS,
        directory.stub.CreateRole(directory_pb2.CreateRoleRequest(caller=sys, name="agents")),
    )
    updated = await directory.stub.UpdateRole(
        directory_pb2.UpdateRoleRequest(
            caller=sys,
            role_id=role.id,
            name="Service Desk",
            set_permissions=True,
            permissions=["Ticket:manage"],
        )
    )
    assert updated.name == "Service Desk" and list(updated.permissions) == ["Ticket:manage"]
    msg = await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        directory.stub.UpdateRole(
            directory_pb2.UpdateRoleRequest(
                caller=sys, role_id=role.id, set_permissions=True, permissions=["Root:all"]
            )
        ),
    )
    assert "Root:all" in msg
    # Built-ins can be edited but not deleted.
    roles = {
        r.name: r
        for r in (await directory.stub.ListRoles(directory_pb2.ListRolesRequest(caller=sys))).roles
    }
    portal = roles["Portal User"]
    edited = await directory.stub.UpdateRole(
        directory_pb2.UpdateRoleRequest(caller=sys, role_id=portal.id, description="Edited")
    )
    assert edited.description == "Edited" and edited.builtin
    for builtin in ("Portal User", "Workspace Admin"):
        await expect_code(
            grpc.StatusCode.FAILED_PRECONDITION,
            directory.stub.DeleteRole(
                directory_pb2.DeleteRoleRequest(caller=sys, role_id=roles[builtin].id, force=True)
            ),
        )
    await directory.stub.DeleteRole(directory_pb2.DeleteRoleRequest(caller=sys, role_id=role.id))
    names = [
        r.name
        for r in (await directory.stub.ListRoles(directory_pb2.ListRolesRequest(caller=sys))).roles
    ]
    assert "Service Desk" not in names
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.CreateRole(
            directory_pb2.CreateRoleRequest(
                caller=directory.caller(ws, role.id, ["Person:manage"]), name="X"
            )
        ),
    )


async def test_delete_role_refused_while_assigned_unless_forced(
    directory: Directory, nats_url: str
) -> None:
    ws = (await directory.workspace()).workspace.id
    sys = directory.caller(ws)
    role = await directory.stub.CreateRole(
        directory_pb2.CreateRoleRequest(caller=sys, name="Auditors", permissions=["Audit:read"])
    )
    direct = await directory.person(ws, "direct@acme.com", "Direct")
    via = await directory.person(ws, "via@acme.com", "Via")
    group = await directory.stub.CreateGroup(
        directory_pb2.CreateGroupRequest(caller=sys, name="Audit team", role_ids=[role.id])
    )
    await directory.stub.AddGroupMember(
        directory_pb2.GroupMemberRequest(caller=sys, group_id=group.id, person_id=via.id)
    )
    await directory.stub.GrantRole(
        directory_pb2.PersonRoleRequest(caller=sys, person_id=direct.id, role_id=role.id)
    )
    listed = {
        r.name: r
        for r in (await directory.stub.ListRoles(directory_pb2.ListRolesRequest(caller=sys))).roles
    }
    assert listed["Auditors"].assigned_count == 2
    msg = await expect_code(
        grpc.StatusCode.FAILED_PRECONDITION,
        directory.stub.DeleteRole(directory_pb2.DeleteRoleRequest(caller=sys, role_id=role.id)),
    )
    assert "1 person(s) and 1 group(s)" in msg
    assert await _perms(directory, ws, via.id) == ["Audit:read"]
    await directory.stub.DeleteRole(
        directory_pb2.DeleteRoleRequest(caller=sys, role_id=role.id, force=True)
    )
    assert await _perms(directory, ws, via.id) == []
    assert await _perms(directory, ws, direct.id) == []
    events = await collect_events(nats_url, ws, {"role_deleted"})
    (deleted,) = named(events, "role_deleted")
    assert sorted(deleted.affected_person_ids) == sorted([direct.id, via.id])  # type: ignore[attr-defined]


async def test_role_permission_change_names_direct_and_group_holders(
    directory: Directory, nats_url: str
) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    sys = directory.caller(ws)
    role = await directory.stub.CreateRole(
        directory_pb2.CreateRoleRequest(caller=sys, name="Agents", permissions=["Ticket:read"])
    )
    a = await directory.person(ws, "a@acme.com", "A", role_ids=[role.id])
    b = await directory.person(ws, "b@acme.com", "B")
    outsider = await directory.person(ws, "c@acme.com", "C")
    group = await directory.stub.CreateGroup(
        directory_pb2.CreateGroupRequest(caller=sys, name="Desk", role_ids=[role.id])
    )
    await directory.stub.AddGroupMember(
        directory_pb2.GroupMemberRequest(caller=sys, group_id=group.id, person_id=b.id)
    )
    await directory.stub.UpdateRole(
        directory_pb2.UpdateRoleRequest(
            caller=sys,
            role_id=role.id,
            set_permissions=True,
            permissions=["Ticket:read", "Ticket:manage"],
        )
    )
    assert await _perms(directory, ws, a.id) == ["Ticket:manage", "Ticket:read"]
    assert await _perms(directory, ws, b.id) == ["Ticket:manage", "Ticket:read"]
    assert await _perms(directory, ws, outsider.id) == []
    events = await collect_events(nats_url, ws, {"role_permissions_changed"})
    (changed,) = named(events, "role_permissions_changed")
    assert sorted(changed.affected_person_ids) == sorted([a.id, b.id])  # type: ignore[attr-defined]
    assert list(changed.permissions) == ["Ticket:read", "Ticket:manage"]  # type: ignore[attr-defined]
    persons = await directory.stub.ListPersonsWithPermission(
        directory_pb2.ListPersonsWithPermissionRequest(caller=sys, permission="Ticket:manage")
    )
    assert [p.email for p in persons.persons] == ["a@acme.com", "admin@acme.com", "b@acme.com"]
    await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        directory.stub.ListPersonsWithPermission(
            directory_pb2.ListPersonsWithPermissionRequest(caller=sys, permission="Foo:bar")
        ),
    )


async def test_grant_and_revoke_role_publish_events(directory: Directory, nats_url: str) -> None:
    ws = (await directory.workspace()).workspace.id
    sys = directory.caller(ws)
    role = await directory.stub.CreateRole(
        directory_pb2.CreateRoleRequest(caller=sys, name="Readers", permissions=["Person:read"])
    )
    p = await directory.person(ws, "r@acme.com", "R")
    await directory.stub.GrantRole(
        directory_pb2.PersonRoleRequest(caller=sys, person_id=p.id, role_id=role.id)
    )
    got = await directory.stub.GetPerson(directory_pb2.GetPersonRequest(caller=sys, person_id=p.id))
    assert list(got.role_ids) == [role.id]
    assert await _perms(directory, ws, p.id) == ["Person:read"]
    await directory.stub.RevokeRole(
        directory_pb2.PersonRoleRequest(caller=sys, person_id=p.id, role_id=role.id)
    )
    assert await _perms(directory, ws, p.id) == []
    events = await collect_events(nats_url, ws, {"role_granted", "role_revoked"})
    (granted,) = named(events, "role_granted")
    (revoked,) = named(events, "role_revoked")
    for e in (granted, revoked):
        assert (
            e.person_id == p.id and e.role_id == role.id and list(e.affected_person_ids) == [p.id]
        )  # type: ignore[attr-defined]


async def test_groups_crud_members_roles_and_builtins(directory: Directory, nats_url: str) -> None:
    ws = (await directory.workspace()).workspace.id
    sys = directory.caller(ws)
    role = await directory.stub.CreateRole(
        directory_pb2.CreateRoleRequest(
            caller=sys, name="Testers", permissions=["ControlTest:update"]
        )
    )
    group = await directory.stub.CreateGroup(
        directory_pb2.CreateGroupRequest(caller=sys, name="QA", description="Quality")
    )
    p = await directory.person(ws, "qa@acme.com", "Q")
    await directory.stub.AddGroupMember(
        directory_pb2.GroupMemberRequest(caller=sys, group_id=group.id, person_id=p.id)
    )
    assert (
        await directory.stub.GetGroup(directory_pb2.GetGroupRequest(caller=sys, group_id=group.id))
    ).member_count == 1
    assert await _perms(directory, ws, p.id) == []
    updated = await directory.stub.UpdateGroup(
        directory_pb2.UpdateGroupRequest(
            caller=sys, group_id=group.id, name="Quality", set_role_ids=True, role_ids=[role.id]
        )
    )
    assert updated.name == "Quality" and list(updated.role_ids) == [role.id]
    assert await _perms(directory, ws, p.id) == ["ControlTest:update"]
    await directory.stub.RemoveGroupMember(
        directory_pb2.GroupMemberRequest(caller=sys, group_id=group.id, person_id=p.id)
    )
    assert await _perms(directory, ws, p.id) == []
    await directory.stub.AddGroupMember(
        directory_pb2.GroupMemberRequest(caller=sys, group_id=group.id, person_id=p.id)
    )
    await expect_code(
        grpc.StatusCode.ALREADY_EXISTS,
        directory.stub.CreateGroup(directory_pb2.CreateGroupRequest(caller=sys, name="quality")),
    )
    groups = {
        g.name: g
        for g in (
            await directory.stub.ListGroups(directory_pb2.ListGroupsRequest(caller=sys))
        ).groups
    }
    for builtin in ("Portal Users", "Administrators"):
        await expect_code(
            grpc.StatusCode.FAILED_PRECONDITION,
            directory.stub.DeleteGroup(
                directory_pb2.DeleteGroupRequest(caller=sys, group_id=groups[builtin].id)
            ),
        )
    renamed = await directory.stub.UpdateGroup(
        directory_pb2.UpdateGroupRequest(
            caller=sys, group_id=groups["Portal Users"].id, description="Everyone"
        )
    )
    assert renamed.builtin and renamed.description == "Everyone"
    await directory.stub.DeleteGroup(
        directory_pb2.DeleteGroupRequest(caller=sys, group_id=group.id)
    )
    assert await _perms(directory, ws, p.id) == []
    await expect_code(
        grpc.StatusCode.NOT_FOUND,
        directory.stub.GetGroup(directory_pb2.GetGroupRequest(caller=sys, group_id=group.id)),
    )
    wanted = {
        "group_created",
        "group_member_added",
        "group_member_removed",
        "group_roles_changed",
        "group_deleted",
    }
    events = await collect_events(
        nats_url,
        ws,
        lambda seen: (
            wanted <= {e.directory.WhichOneof("kind") for e in seen}
            and len(named(seen, "group_member_added")) >= 2
        ),
    )
    (roles_changed,) = named(events, "group_roles_changed")
    assert list(roles_changed.affected_person_ids) == [p.id] and list(roles_changed.role_ids) == [
        role.id
    ]  # type: ignore[attr-defined]
    (removed,) = named(events, "group_member_removed")
    assert removed.person_id == p.id and removed.group_id == group.id  # type: ignore[attr-defined]
    (deleted,) = named(events, "group_deleted")
    assert list(deleted.affected_person_ids) == [p.id]  # type: ignore[attr-defined]


async def test_the_last_active_administrator_stays(directory: Directory) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    sys = directory.caller(ws)
    admins = next(
        g
        for g in (
            await directory.stub.ListGroups(directory_pb2.ListGroupsRequest(caller=sys))
        ).groups
        if g.name == "Administrators"
    )
    first = created.admin.id
    remove = directory_pb2.GroupMemberRequest(caller=sys, group_id=admins.id, person_id=first)
    msg = await expect_code(
        grpc.StatusCode.FAILED_PRECONDITION, directory.stub.RemoveGroupMember(remove)
    )
    assert "last active administrator" in msg
    await expect_code(
        grpc.StatusCode.FAILED_PRECONDITION,
        directory.stub.UpdatePerson(
            directory_pb2.UpdatePersonRequest(caller=sys, person_id=first, active=False)
        ),
    )
    second = await directory.person(ws, "second@acme.com", "Second", group_ids=[admins.id])
    await directory.stub.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=sys, person_id=first, active=False)
    )
    await expect_code(
        grpc.StatusCode.FAILED_PRECONDITION,
        directory.stub.RemoveGroupMember(
            directory_pb2.GroupMemberRequest(caller=sys, group_id=admins.id, person_id=second.id)
        ),
    )
    # The deactivated one may leave the group: it changes nobody's access to the console.
    await directory.stub.RemoveGroupMember(remove)
