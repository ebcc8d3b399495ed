"""Directory core, against the real service, PostgreSQL and NATS: workspaces, persons, self-registration,
effective permissions and portal sign-ins. Also holds the helpers the other directory tests use."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc
import nats
import pytest
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc, events_pb2

from services.chassis.events import kind, payload_of
from tests.signing import channel
from tests.stack import Stack

CATALOG = [
    "Ticket:read",
    "Ticket:create",
    "Issue:read",
    "Control:read",
    "ControlTest:read",
    "ControlTest:update",
    "Ticket:manage",
    "Issue:manage",
    "Control:manage",
    "Person:read",
    "Person:manage",
    "Role:manage",
    "Group:manage",
    "Settings:manage",
    "Audit:read",
]
PORTAL = CATALOG[:6]


@dataclass
class Directory:
    stub: directory_pb2_grpc.DirectoryServiceStub
    stack: Stack

    def caller(
        self, workspace_id: str, person_id: str = "", permissions: Sequence[str] = ()
    ) -> common_pb2.Caller:
        return common_pb2.Caller(
            workspace_id=workspace_id, person_id=person_id, permissions=list(permissions)
        )

    async def workspace(
        self, slug: str | None = None, admin_email: str = "admin@acme.com"
    ) -> directory_pb2.CreateWorkspaceResponse:
        return await self.stub.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug=f"ws-{uuid.uuid4().hex[:8]}" if slug is None else slug,
                name="Acme",
                admin_email=admin_email,
                admin_name="Ada Admin",
            )
        )

    async def person(
        self, ws: str, email: str, name: str = "Pat", **kw: object
    ) -> directory_pb2.Person:
        return await self.stub.CreatePerson(
            directory_pb2.CreatePersonRequest(caller=self.caller(ws), email=email, name=name, **kw)  # type: ignore[arg-type]
        )


@contextlib.asynccontextmanager
async def open_directory(stack: Stack) -> AsyncIterator[Directory]:
    """Start the directory service in `stack` and yield a client of it."""
    await stack.start("directory")
    ch = channel(stack.addresses["directory"])
    try:
        yield Directory(directory_pb2_grpc.DirectoryServiceStub(ch), stack)
    finally:
        await ch.close()


@pytest.fixture
async def directory(stack: Stack) -> AsyncIterator[Directory]:
    async with open_directory(stack) as client:
        yield client


async def collect_events(
    nats_url: str,
    workspace_id: str,
    until: set[str] | Callable[[list[events_pb2.Event]], bool],
    wait: float = 10.0,
) -> list[events_pb2.Event]:
    """The workspace's directory events on JetStream, from the start, read until `until` holds
    (a set of event names all seen, or a predicate on the events so far)."""
    done = until if callable(until) else (lambda seen: until <= {kind(e)[1] for e in seen})
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"fd.directory.{workspace_id}.>", ordered_consumer=True)
        seen: list[events_pb2.Event] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline:
            if done(seen):
                break
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            event = events_pb2.Event.FromString(msg.data)
            assert msg.subject == f"fd.directory.{workspace_id}.{kind(event)[1]}"
            assert msg.headers and msg.headers.get("Nats-Msg-Id") == event.event_id
            seen.append(event)
        return seen
    finally:
        await nc.close()


def named(events: Sequence[events_pb2.Event], name: str) -> list[object]:
    return [payload_of(e) for e in events if kind(e)[1] == name]


async def expect_code(code: grpc.StatusCode, call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


# ---- workspaces ----


async def test_create_workspace_builds_roles_groups_settings_and_first_admin(
    directory: Directory, nats_url: str
) -> None:
    created = await directory.workspace(slug="acme")
    ws = created.workspace.id
    assert created.workspace.slug == "acme"
    sys = directory.caller(ws)

    roles = {
        r.name: r
        for r in (await directory.stub.ListRoles(directory_pb2.ListRolesRequest(caller=sys))).roles
    }
    assert sorted(roles) == ["Portal User", "Workspace Admin"]
    assert list(roles["Portal User"].permissions) == PORTAL
    assert sorted(roles["Workspace Admin"].permissions) == sorted(CATALOG)
    assert roles["Portal User"].builtin and roles["Workspace Admin"].builtin

    groups = {
        g.name: g
        for g in (
            await directory.stub.ListGroups(directory_pb2.ListGroupsRequest(caller=sys))
        ).groups
    }
    assert list(groups["Portal Users"].role_ids) == [roles["Portal User"].id]
    assert list(groups["Administrators"].role_ids) == [roles["Workspace Admin"].id]
    assert groups["Administrators"].member_count == 1

    settings = await directory.stub.GetPortalSettings(
        directory_pb2.GetPortalSettingsRequest(caller=sys)
    )
    assert (settings.tickets_enabled, settings.issues_enabled, settings.control_tests_enabled) == (
        True,
        True,
        True,
    )
    assert settings.self_registration == "off"
    assert settings.portal_access_default is True

    admin = created.admin
    assert admin.email == "admin@acme.com" and admin.active and admin.portal_access
    assert list(admin.group_ids) == [groups["Administrators"].id]
    perms = await directory.stub.GetEffectivePermissions(
        directory_pb2.GetEffectivePermissionsRequest(caller=sys, person_id=admin.id)
    )
    assert sorted(perms.permissions) == sorted(CATALOG)
    assert perms.active and perms.portal_access

    events = await collect_events(
        nats_url, ws, {"workspace_created", "person_created", "group_created"}
    )
    (wc,) = named(events, "workspace_created")
    assert wc.slug == "acme" and wc.admin_person_id == admin.id  # type: ignore[attr-defined]


async def test_get_workspace_by_id_or_slug_and_bad_slugs(directory: Directory) -> None:
    created = await directory.workspace(slug="globex-2")
    by_slug = await directory.stub.GetWorkspace(directory_pb2.GetWorkspaceRequest(slug="globex-2"))
    by_id = await directory.stub.GetWorkspace(
        directory_pb2.GetWorkspaceRequest(id=created.workspace.id)
    )
    assert by_slug.id == by_id.id == created.workspace.id
    await expect_code(
        grpc.StatusCode.NOT_FOUND,
        directory.stub.GetWorkspace(directory_pb2.GetWorkspaceRequest(slug="nope")),
    )
    await expect_code(
        grpc.StatusCode.NOT_FOUND,
        directory.stub.GetWorkspace(directory_pb2.GetWorkspaceRequest(id="not-a-uuid")),
    )
    for bad in ("Acme", "-acme", "acme_corp", "a" * 64, ""):
        msg = await expect_code(grpc.StatusCode.INVALID_ARGUMENT, directory.workspace(slug=bad))
        assert msg.startswith("slug:")
    msg = await expect_code(grpc.StatusCode.ALREADY_EXISTS, directory.workspace(slug="globex-2"))
    assert "slug" in msg


# ---- persons ----


async def test_portal_access_on_with_empty_login_name_is_created(directory: Directory) -> None:
    ws = (await directory.workspace()).workspace.id
    person = await directory.person(ws, "jan@acme.com", "Jan", portal_access=True, login_name="")
    assert person.portal_access is True and person.login_name == ""
    again = await directory.stub.GetPerson(
        directory_pb2.GetPersonRequest(caller=directory.caller(ws), person_id=person.id)
    )
    assert again.portal_access and again.login_name == "" and again.active
    # Editing such a person (without touching the flag or the login name) works too.
    edited = await directory.stub.UpdatePerson(
        directory_pb2.UpdatePersonRequest(
            caller=directory.caller(ws), person_id=person.id, name="Jan Jansen"
        )
    )
    assert edited.name == "Jan Jansen" and edited.portal_access and edited.login_name == ""


async def test_create_person_validation_and_unique_email(directory: Directory) -> None:
    ws = (await directory.workspace()).workspace.id
    await directory.person(ws, "Kim@Acme.com", "Kim")
    msg = await expect_code(
        grpc.StatusCode.ALREADY_EXISTS, directory.person(ws, "kim@acme.COM", "Kim 2")
    )
    assert msg.startswith("email:")
    msg = await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT, directory.person(ws, "not-an-email", "X")
    )
    assert msg.startswith("email:")
    msg = await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT, directory.person(ws, "x@acme.com", " ")
    )
    assert msg.startswith("name:")
    await directory.person(ws, "lee@acme.com", "Lee", login_name="lee")
    msg = await expect_code(
        grpc.StatusCode.ALREADY_EXISTS,
        directory.person(ws, "lee2@acme.com", "Lee", login_name="LEE"),
    )
    assert msg.startswith("login_name:")


async def test_find_person_by_email_is_case_insensitive(directory: Directory) -> None:
    ws = (await directory.workspace()).workspace.id
    created = await directory.person(ws, "Mixed.Case@Acme.com", "Mix")
    found = await directory.stub.FindPersonByEmail(
        directory_pb2.FindPersonByEmailRequest(
            caller=directory.caller(ws), email="mixed.case@ACME.COM"
        )
    )
    assert found.id == created.id and found.email == "Mixed.Case@Acme.com"
    await expect_code(
        grpc.StatusCode.NOT_FOUND,
        directory.stub.FindPersonByEmail(
            directory_pb2.FindPersonByEmailRequest(caller=directory.caller(ws), email="no@acme.com")
        ),
    )


async def test_portal_access_default_and_domain_rules_apply_to_new_persons(
    directory: Directory,
) -> None:
    ws = (await directory.workspace()).workspace.id
    sys = directory.caller(ws)
    await directory.stub.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=sys,
            portal_access_default=False,
            set_portal_access_rules=True,
            portal_access_rules=[
                directory_pb2.DomainRule(domain="contractor.acme.com", portal_access=False),
                directory_pb2.DomainRule(domain="@acme.com", portal_access=True),
            ],
        )
    )
    assert (await directory.person(ws, "a@acme.com", "A")).portal_access is True
    assert (await directory.person(ws, "b@eu.acme.com", "B")).portal_access is True
    assert (await directory.person(ws, "c@contractor.acme.com", "C")).portal_access is False
    assert (await directory.person(ws, "d@supplier.org", "D")).portal_access is False
    # An explicit value wins over the default.
    assert (
        await directory.person(ws, "e@supplier.org", "E", portal_access=True)
    ).portal_access is True


async def test_other_workspace_ids_are_not_found(directory: Directory) -> None:
    a = (await directory.workspace()).workspace.id
    b_created = await directory.workspace()
    b = b_created.workspace.id
    b_person = await directory.person(b, "bob@globex.com", "Bob")
    b_roles = (
        await directory.stub.ListRoles(directory_pb2.ListRolesRequest(caller=directory.caller(b)))
    ).roles
    b_groups = (
        await directory.stub.ListGroups(directory_pb2.ListGroupsRequest(caller=directory.caller(b)))
    ).groups
    a_person = await directory.person(a, "al@acme.com", "Al")
    in_a = directory.caller(a)
    calls = [
        directory.stub.GetPerson(
            directory_pb2.GetPersonRequest(caller=in_a, person_id=b_person.id)
        ),
        directory.stub.UpdatePerson(
            directory_pb2.UpdatePersonRequest(caller=in_a, person_id=b_person.id, name="x")
        ),
        directory.stub.GetEffectivePermissions(
            directory_pb2.GetEffectivePermissionsRequest(caller=in_a, person_id=b_person.id)
        ),
        directory.stub.RecordPortalLogin(
            directory_pb2.RecordPortalLoginRequest(caller=in_a, person_id=b_person.id)
        ),
        directory.stub.FindPersonByEmail(
            directory_pb2.FindPersonByEmailRequest(caller=in_a, email="bob@globex.com")
        ),
        directory.stub.GetGroup(
            directory_pb2.GetGroupRequest(caller=in_a, group_id=b_groups[0].id)
        ),
        directory.stub.UpdateRole(
            directory_pb2.UpdateRoleRequest(caller=in_a, role_id=b_roles[0].id, name="x")
        ),
        directory.stub.DeleteRole(
            directory_pb2.DeleteRoleRequest(caller=in_a, role_id=b_roles[0].id, force=True)
        ),
        directory.stub.DeleteGroup(
            directory_pb2.DeleteGroupRequest(caller=in_a, group_id=b_groups[0].id)
        ),
        directory.stub.GrantRole(
            directory_pb2.PersonRoleRequest(
                caller=in_a, person_id=a_person.id, role_id=b_roles[0].id
            )
        ),
        directory.stub.GrantRole(
            directory_pb2.PersonRoleRequest(
                caller=in_a, person_id=b_person.id, role_id=b_roles[0].id
            )
        ),
        directory.stub.AddGroupMember(
            directory_pb2.GroupMemberRequest(
                caller=in_a, group_id=b_groups[0].id, person_id=a_person.id
            )
        ),
        directory.stub.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=in_a, email="n@acme.com", name="N", group_ids=[b_groups[0].id]
            )
        ),
        directory.stub.GetPerson(
            directory_pb2.GetPersonRequest(
                caller=directory.caller(str(uuid.uuid4())), person_id=b_person.id
            )
        ),
    ]
    for call in calls:
        await expect_code(grpc.StatusCode.NOT_FOUND, call)
    # Nothing in B changed.
    still = await directory.stub.GetPerson(
        directory_pb2.GetPersonRequest(caller=directory.caller(b), person_id=b_person.id)
    )
    assert still.name == "Bob" and list(still.role_ids) == []
    listing = await directory.stub.ListPersons(directory_pb2.ListPersonsRequest(caller=in_a))
    assert "bob@globex.com" not in {p.email for p in listing.persons}


async def test_permissions_are_checked_by_the_service(directory: Directory) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    user = await directory.person(ws, "u@acme.com", "U")
    portal_user = directory.caller(ws, user.id, PORTAL)
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.ListPersons(directory_pb2.ListPersonsRequest(caller=portal_user)),
    )
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.CreatePerson(
            directory_pb2.CreatePersonRequest(caller=portal_user, email="x@acme.com", name="X")
        ),
    )
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.GetPerson(
            directory_pb2.GetPersonRequest(caller=portal_user, person_id=created.admin.id)
        ),
    )
    # A person may read and edit their own profile, but not their own access.
    me = await directory.stub.GetPerson(
        directory_pb2.GetPersonRequest(caller=portal_user, person_id=user.id)
    )
    assert me.email == "u@acme.com"
    renamed = await directory.stub.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=portal_user, person_id=user.id, login_name="uu")
    )
    assert renamed.login_name == "uu"
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.UpdatePerson(
            directory_pb2.UpdatePersonRequest(
                caller=portal_user, person_id=user.id, portal_access=False
            )
        ),
    )
    # A person manager cannot hand out permissions they do not hold.
    manager = directory.caller(ws, created.admin.id, ["Person:read", "Person:manage"])
    admin_role = next(
        r
        for r in (
            await directory.stub.ListRoles(
                directory_pb2.ListRolesRequest(caller=directory.caller(ws))
            )
        ).roles
        if r.name == "Workspace Admin"
    )
    msg = await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.GrantRole(
            directory_pb2.PersonRoleRequest(
                caller=manager, person_id=user.id, role_id=admin_role.id
            )
        ),
    )
    assert "Settings:manage" in msg


# ---- self-registration ----


async def test_register_person_follows_the_self_registration_mode(
    directory: Directory, nats_url: str
) -> None:
    ws = (await directory.workspace()).workspace.id
    sys = directory.caller(ws)

    async def register(email: str) -> directory_pb2.Person:
        return await directory.stub.RegisterPerson(
            directory_pb2.RegisterPersonRequest(workspace_id=ws, email=email, name="New Person")
        )

    await expect_code(grpc.StatusCode.PERMISSION_DENIED, register("a@anywhere.org"))
    await directory.stub.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=sys,
            self_registration="domains",
            set_registration_domains=True,
            registration_domains=["acme.com"],
            portal_access_default=False,
            set_portal_access_rules=True,
            portal_access_rules=[directory_pb2.DomainRule(domain="acme.com", portal_access=True)],
        )
    )
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, register("a@anywhere.org"))
    person = await register("new@sub.acme.com")
    assert person.portal_access is True and person.login_name == ""
    groups = {
        g.id: g.name
        for g in (
            await directory.stub.ListGroups(directory_pb2.ListGroupsRequest(caller=sys))
        ).groups
    }
    assert [groups[g] for g in person.group_ids] == ["Portal Users"]
    perms = await directory.stub.GetEffectivePermissions(
        directory_pb2.GetEffectivePermissionsRequest(caller=sys, person_id=person.id)
    )
    assert sorted(perms.permissions) == sorted(PORTAL)
    await expect_code(grpc.StatusCode.ALREADY_EXISTS, register("NEW@sub.acme.com"))

    await directory.stub.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=sys, self_registration="open")
    )
    outsider = await register("someone@elsewhere.net")
    assert outsider.portal_access is False  # default off, no rule matches
    events = await collect_events(
        nats_url,
        ws,
        lambda seen: outsider.id in {p.person_id for p in named(seen, "person_created")},  # type: ignore[attr-defined]
    )
    assert outsider.id in {p.person_id for p in named(events, "person_created")}  # type: ignore[attr-defined]


# ---- portal sign-ins ----


async def test_record_portal_login_sets_last_login_and_publishes(
    directory: Directory, nats_url: str
) -> None:
    ws = (await directory.workspace()).workspace.id
    person = await directory.person(ws, "p@acme.com", "P")
    assert not person.HasField("last_portal_login_at")
    await directory.stub.RecordPortalLogin(
        directory_pb2.RecordPortalLoginRequest(caller=directory.caller(ws), person_id=person.id)
    )
    again = await directory.stub.GetPerson(
        directory_pb2.GetPersonRequest(caller=directory.caller(ws), person_id=person.id)
    )
    assert again.HasField("last_portal_login_at")
    events = await collect_events(nats_url, ws, {"portal_login_recorded"})
    assert [e.person_id for e in named(events, "portal_login_recorded")] == [person.id]  # type: ignore[attr-defined]
