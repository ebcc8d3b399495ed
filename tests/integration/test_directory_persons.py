"""Persons over the real directory service: edits and their events, search and paging, portal usage,
portal settings, and the audit trail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from frontdesk.v1 import common_pb2, directory_pb2

from tests.integration.test_directory_core import (
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


async def test_update_person_deactivate_reactivate_portal_access_and_notifications(
    directory: Directory, nats_url: str
) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    admin = directory.caller(ws, created.admin.id, ["Person:read", "Person:manage"])
    p = await directory.person(ws, "sam@acme.com", "Sam")

    def update(**kw: object) -> object:
        return directory.stub.UpdatePerson(
            directory_pb2.UpdatePersonRequest(caller=admin, person_id=p.id, **kw)  # type: ignore[arg-type]
        )

    off = await update(active=False)
    assert off.active is False  # type: ignore[attr-defined]
    perms = await directory.stub.GetEffectivePermissions(
        directory_pb2.GetEffectivePermissionsRequest(caller=admin, person_id=p.id)
    )
    assert perms.active is False
    on = await update(active=True)
    assert on.active is True  # type: ignore[attr-defined]
    no_portal = await update(portal_access=False)
    assert no_portal.portal_access is False  # type: ignore[attr-defined]
    prefs = await update(
        set_notifications=True,
        notifications=directory_pb2.NotificationPreferences(
            ticket_updates=False, weekly_digest=True
        ),
    )
    n = prefs.notifications  # type: ignore[attr-defined]
    assert (n.ticket_updates, n.issue_assigned, n.weekly_digest) == (False, False, True)
    # Switching portal access back on with an empty login name is fine.
    back = await update(portal_access=True, email="Sam.Smith@acme.com")
    assert back.portal_access and back.login_name == "" and back.email == "Sam.Smith@acme.com"  # type: ignore[attr-defined]
    # Nobody deactivates themselves.
    await expect_code(
        grpc.StatusCode.FAILED_PRECONDITION,
        directory.stub.UpdatePerson(
            directory_pb2.UpdatePersonRequest(
                caller=admin, person_id=created.admin.id, active=False
            )
        ),
    )

    wanted = {
        "person_deactivated",
        "person_reactivated",
        "portal_access_changed",
        "person_updated",
    }

    def complete(seen: list[object]) -> bool:
        return len(named(seen, "portal_access_changed")) >= 2 and wanted <= {  # type: ignore[arg-type]
            e.directory.WhichOneof("kind")
            for e in seen  # type: ignore[attr-defined]
        }

    events = await collect_events(nats_url, ws, complete)  # type: ignore[arg-type]
    (deactivated,) = named(events, "person_deactivated")
    assert deactivated.person_id == p.id and deactivated.active is False  # type: ignore[attr-defined]
    assert list(deactivated.affected_person_ids) == [p.id]  # type: ignore[attr-defined]
    (reactivated,) = named(events, "person_reactivated")
    assert reactivated.active is True  # type: ignore[attr-defined]
    access = named(events, "portal_access_changed")
    assert [a.portal_access for a in access] == [False, True]  # type: ignore[attr-defined]
    actors = {e.actor_id for e in events if e.directory.WhichOneof("kind") == "person_deactivated"}
    assert actors == {created.admin.id}


async def test_list_persons_search_filters_and_keyset_paging(directory: Directory) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    sys = directory.caller(ws)
    for i in range(25):
        await directory.person(
            ws,
            f"user{i:02d}@acme.com",
            f"User {i:02d}",
            login_name=f"login{i:02d}" if i % 2 else "",
            portal_access=i % 3 != 0,
        )
    await directory.person(ws, "100%_odd@acme.com", "Percent Person")
    seen: list[str] = []
    token = ""
    while True:
        page = await directory.stub.ListPersons(
            directory_pb2.ListPersonsRequest(
                caller=sys,
                query="user",
                page=common_pb2.PageRequest(page_size=10, page_token=token),
            )
        )
        assert page.total == 25
        seen += [p.email for p in page.persons]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == 25 == len(set(seen))

    by_name = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=sys, query="USER 07")
    )
    assert [p.email for p in by_name.persons] == ["user07@acme.com"]
    by_login = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=sys, query="login13")
    )
    assert [p.email for p in by_login.persons] == ["user13@acme.com"]
    # LIKE wildcards in the query are taken literally.
    literal = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=sys, query="0%_")
    )
    assert [p.email for p in literal.persons] == ["100%_odd@acme.com"]
    no_access = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=sys, query="user", portal_access=False)
    )
    assert no_access.total == 9
    admins = next(
        g
        for g in (
            await directory.stub.ListGroups(directory_pb2.ListGroupsRequest(caller=sys))
        ).groups
        if g.name == "Administrators"
    )
    in_group = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=sys, group_id=admins.id)
    )
    assert [p.email for p in in_group.persons] == ["admin@acme.com"]
    admin_role = admins.role_ids[0]
    with_role = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=sys, role_id=admin_role)
    )
    assert [p.email for p in with_role.persons] == ["admin@acme.com"]
    await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        directory.stub.ListPersons(
            directory_pb2.ListPersonsRequest(
                caller=sys, page=common_pb2.PageRequest(page_token="garbage!")
            )
        ),
    )


async def test_portal_usage_report_all_never_and_stale(directory: Directory) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    sys = directory.caller(ws)
    recent = await directory.person(ws, "recent@acme.com", "Recent")
    old = await directory.person(ws, "old@acme.com", "Old")
    await directory.person(ws, "never@acme.com", "Never")
    await directory.person(ws, "nope@acme.com", "No Access", portal_access=False)
    for p in (recent, old):
        await directory.stub.RecordPortalLogin(
            directory_pb2.RecordPortalLoginRequest(caller=sys, person_id=p.id)
        )
    conn = await directory.stack.connect("directory")
    await conn.execute(
        "update persons set last_portal_login_at = $1 where id = $2::uuid",
        datetime.now(UTC) - timedelta(days=120),
        old.id,
    )

    async def usage(filter_: str, days: int = 0) -> list[str]:
        resp = await directory.stub.PortalUsage(
            directory_pb2.PortalUsageRequest(caller=sys, filter=filter_, stale_days=days)
        )
        return [p.email for p in resp.persons]

    assert await usage("all") == [
        "admin@acme.com",
        "never@acme.com",
        "old@acme.com",
        "recent@acme.com",
    ]
    assert await usage("never") == ["admin@acme.com", "never@acme.com"]
    assert await usage("stale", 90) == ["admin@acme.com", "never@acme.com", "old@acme.com"]
    resp = await directory.stub.PortalUsage(
        directory_pb2.PortalUsageRequest(caller=sys, filter="all")
    )
    last = {p.email: p.HasField("last_portal_login_at") for p in resp.persons}
    assert last == {
        "admin@acme.com": False,
        "never@acme.com": False,
        "old@acme.com": True,
        "recent@acme.com": True,
    }
    msg = await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        directory.stub.PortalUsage(directory_pb2.PortalUsageRequest(caller=sys, filter="stale")),
    )
    assert msg.startswith("stale_days:")


async def test_update_portal_settings_validates_and_publishes(
    directory: Directory, nats_url: str
) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    admin = directory.caller(ws, created.admin.id, ["Settings:manage"])
    s = await directory.stub.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=admin,
            issues_enabled=False,
            self_registration="domains",
            set_registration_domains=True,
            registration_domains=["@Acme.com", "partner.org"],
            portal_access_default=False,
            set_portal_access_rules=True,
            portal_access_rules=[directory_pb2.DomainRule(domain="acme.com", portal_access=True)],
            require_two_factor=True,
        )
    )
    assert (s.tickets_enabled, s.issues_enabled, s.control_tests_enabled) == (True, False, True)
    assert list(s.registration_domains) == ["acme.com", "partner.org"]
    assert [(r.domain, r.portal_access) for r in s.portal_access_rules] == [("acme.com", True)]
    assert s.require_two_factor and not s.portal_access_default
    bad = [
        directory_pb2.UpdatePortalSettingsRequest(caller=admin, self_registration="sometimes"),
        directory_pb2.UpdatePortalSettingsRequest(
            caller=admin, set_registration_domains=True, registration_domains=["not a domain"]
        ),
        directory_pb2.UpdatePortalSettingsRequest(caller=admin, set_registration_domains=True),
    ]
    for request in bad:
        await expect_code(
            grpc.StatusCode.INVALID_ARGUMENT, directory.stub.UpdatePortalSettings(request)
        )
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.UpdatePortalSettings(
            directory_pb2.UpdatePortalSettingsRequest(
                caller=directory.caller(ws, created.admin.id, ["Person:manage"]),
                tickets_enabled=False,
            )
        ),
    )
    events = await collect_events(nats_url, ws, {"portal_settings_changed"})
    (changed,) = named(events, "portal_settings_changed")
    assert changed.affects_everyone is True  # type: ignore[attr-defined]
    assert {"issues_enabled", "self_registration", "portal_access_rules"} <= set(
        changed.changed_fields
    )  # type: ignore[attr-defined]


async def test_audit_trail_records_before_after_actor_and_time(directory: Directory) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    admin = directory.caller(ws, created.admin.id, ["Person:manage", "Audit:read"])
    p = await directory.stub.CreatePerson(
        directory_pb2.CreatePersonRequest(caller=admin, email="aud@acme.com", name="Aud")
    )
    await directory.stub.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=admin, person_id=p.id, portal_access=False)
    )
    trail = await directory.stub.ListAudit(
        directory_pb2.ListAuditRequest(caller=admin, object_type="person", object_id=p.id)
    )
    assert [e.action for e in trail.entries] == ["person.updated", "person.created"]
    update = trail.entries[0]
    assert update.actor_id == created.admin.id and update.at.seconds > 0
    assert json.loads(update.before_json)["portal_access"] is True
    assert json.loads(update.after_json)["portal_access"] is False
    assert trail.entries[1].before_json == ""
    # Paging through everything, newest first.
    first = await directory.stub.ListAudit(
        directory_pb2.ListAuditRequest(caller=admin, page=common_pb2.PageRequest(page_size=1))
    )
    second = await directory.stub.ListAudit(
        directory_pb2.ListAuditRequest(
            caller=admin, page=common_pb2.PageRequest(page_size=1, page_token=first.next_page_token)
        )
    )
    assert (
        first.entries[0].action == "person.updated" and second.entries[0].action == "person.created"
    )
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.ListAudit(
            directory_pb2.ListAuditRequest(
                caller=directory.caller(ws, created.admin.id, ["Person:manage"])
            )
        ),
    )


async def test_list_persons_by_ids_names_only_this_workspaces_persons(stack: Stack) -> None:
    """The gateway names the persons a page shows in one call; other workspaces' ids stay unnamed."""
    from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc

    from tests.signing import channel

    await stack.start("directory")
    async with channel(stack.addresses["directory"]) as ch:
        d = directory_pb2_grpc.DirectoryServiceStub(ch)
        a = await d.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug="ids-a", name="A", admin_email="admin@a.example", admin_name="Ann Admin"
            )
        )
        b = await d.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug="ids-b", name="B", admin_email="admin@b.example", admin_name="Bob Admin"
            )
        )
        caller = common_pb2.Caller(workspace_id=a.workspace.id)
        extra = await d.CreatePerson(
            directory_pb2.CreatePersonRequest(caller=caller, email="carol@a.example", name="Carol")
        )
        await d.CreatePerson(
            directory_pb2.CreatePersonRequest(caller=caller, email="dave@a.example", name="Dave")
        )
        found = await d.ListPersons(
            directory_pb2.ListPersonsRequest(
                caller=caller,
                ids=[a.admin.id, extra.id, b.admin.id, "not-an-id"],
                page=common_pb2.PageRequest(page_size=10),
            )
        )
        assert sorted(p.name for p in found.persons) == ["Ann Admin", "Carol"]
        assert found.total == 2
