"""Compliance through the gateway, as a tester and as a compliance manager of a running suite
(real directory, auth and compliance services, real PostgreSQL and NATS, HTTP to the gateway)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    directory_pb2,
    directory_pb2_grpc,
)
from yarl import URL

from tests.gateway_client import GatewayClient
from tests.people import workspace
from tests.signing import channel
from tests.stack import Stack

PASSWORD = "correct horse battery staple 42"


@dataclass
class Suite:
    base: str
    ws: str
    directory: directory_pb2_grpc.DirectoryServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    portal_group: str
    admin_group: str
    read_only_role: str
    clients: list[GatewayClient]

    async def person(
        self, email: str, name: str, *, manager: bool = False, read_only: bool = False
    ) -> str:
        system = common_pb2.Caller(workspace_id=self.ws)
        groups = [self.admin_group] if manager else [] if read_only else [self.portal_group]
        person = await self.directory.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=system,
                email=email,
                name=name,
                portal_access=True,
                group_ids=groups,
                role_ids=[self.read_only_role] if read_only else [],
            )
        )
        await self.auth.SetPassword(
            auth_pb2.SetPasswordRequest(caller=system, person_id=person.id, password=PASSWORD)
        )
        return person.id

    async def client(self, email: str, surface: str = "portal") -> GatewayClient:
        """A signed-in browser (sign-in itself is tested with auth)."""
        client = await GatewayClient.open(self.base, "acme")
        self.clients.append(client)
        login = await self.auth.Login(
            auth_pb2.LoginRequest(
                workspace_id=self.ws, email=email, password=PASSWORD, surface=surface
            )
        )
        assert login.status == "ok", login
        client.http.cookie_jar.update_cookies({"fd_session": login.session_token}, URL(self.base))
        await client.refresh_csrf()
        assert client.csrf
        return client


@pytest.fixture
async def suite(stack: Stack) -> AsyncIterator[Suite]:
    for name in ("directory", "auth", "compliance"):
        await stack.start(name)
    base = await stack.start_gateway()
    dch = channel(stack.addresses["directory"])
    ach = channel(stack.addresses["auth"])
    directory = directory_pb2_grpc.DirectoryServiceStub(dch)
    auth = auth_pb2_grpc.AuthServiceStub(ach)
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada Admin"
        )
    )
    ws = created.workspace.id
    system = common_pb2.Caller(workspace_id=ws)
    groups = await directory.ListGroups(directory_pb2.ListGroupsRequest(caller=system))
    portal_group = next(g.id for g in groups.groups if g.name == "Portal Users")
    admin_group = next(g.id for g in groups.groups if g.name == "Administrators")
    role = await directory.CreateRole(
        directory_pb2.CreateRoleRequest(
            caller=system,
            name="Auditor (read only)",
            permissions=["Control:read", "ControlTest:read", "Issue:read"],
        )
    )
    s = Suite(base, ws, directory, auth, portal_group, admin_group, role.id, [])
    try:
        yield s
    finally:
        for c in s.clients:
            await c.close()
        await dch.close()
        await ach.close()


CONTROL = {
    "title": "Access review",
    "description": "Review of privileged access",
    "test_procedure": "Export the admin list and compare it with HR records.",
    "framework_ref": "ISO 27001 A.5.15",
    "frequency": "monthly",
}


async def test_tester_completes_a_failed_test_and_works_the_issue_through_json(
    suite: Suite,
) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("bob@acme.test", "Bob Other")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    status, control = await mia.post(
        "/management/api/v1/controls", json={**CONTROL, "owner_id": alice_id}
    )
    assert status == 201, control
    assert control["number"] == "CTL-1" and control["frequency"] == "monthly"

    alice = await suite.client("alice@acme.test")
    status, mine = await alice.get("/api/v1/control-tests")
    assert status == 200, mine
    assert [t["number"] for t in mine["items"]] == ["TST-1"]
    status, test = await alice.get("/api/v1/control-tests/TST-1")
    assert status == 200
    assert test["test_procedure"] == CONTROL["test_procedure"]
    assert test["state"] == "scheduled" and test["control_title"] == "Access review"

    status, bad = await alice.post("/api/v1/control-tests/TST-1/complete", json={"result": "meh"})
    assert status == 422, bad
    status, done = await alice.post(
        "/api/v1/control-tests/TST-1/complete",
        json={"result": "fail", "notes": "Two leavers still admins", "evidence": "admins.csv"},
    )
    assert status == 200, done
    assert done["control_test"]["state"] == "completed"
    assert done["control_test"]["result"] == "fail"
    assert done["issue"]["title"] == "Control failure: Access review"
    assert done["issue"]["severity"] == "medium" and done["issue"]["status"] == "open"
    assert done["next_test"]["number"] == "TST-2"
    status, again = await alice.post(
        "/api/v1/control-tests/TST-1/complete", json={"result": "pass"}
    )
    assert status == 409, again  # a completed test is locked

    # Alice owns the control, so the issue is hers.
    status, issues = await alice.get("/api/v1/issues")
    assert status == 200 and [i["number"] for i in issues["items"]] == ["ISS-1"]
    status, comment = await alice.post(
        "/api/v1/issues/ISS-1/comments", json={"body": "Removing the two accounts today."}
    )
    assert status == 201, comment
    status, detail = await alice.get("/api/v1/issues/ISS-1")
    assert status == 200
    assert detail["issue"]["control_test_number"] == "TST-1"
    assert [c["body"] for c in detail["comments"]] == ["Removing the two accounts today."]

    # Bob sees none of it, whatever the id.
    bob = await suite.client("bob@acme.test")
    for path in (
        "/api/v1/control-tests/TST-1",
        f"/api/v1/control-tests/{test['id']}",
        "/api/v1/issues/ISS-1",
        "/control-tests/TST-2",
        "/issues/ISS-1",
    ):
        status, body = await bob.get(path)
        assert status == 404, (path, body)
    status, body = await bob.post("/api/v1/issues/ISS-1/comments", json={"body": "hi"})
    assert status == 404
    status, body = await bob.get("/api/v1/issues")
    assert status == 200 and body["items"] == []

    # The manager works the issue in the console; an illegal move is a 409.
    status, moved = await mia.post(
        "/management/api/v1/issues/ISS-1/status", json={"status": "remediation"}
    )
    assert status == 200 and moved["status"] == "remediation", moved
    status, refused = await mia.post(
        "/management/api/v1/issues/ISS-1/status", json={"status": "open"}
    )
    assert status == 409, refused
    status, refused = await mia.post(
        "/management/api/v1/issues/ISS-1/status", json={"status": "accepted"}
    )
    assert status == 422 and "acceptance_deadline" in refused["error"]["fields"], refused
    status, listed = await mia.get("/management/api/v1/issues?status=remediation&severity=medium")
    assert status == 200 and [i["number"] for i in listed["items"]] == ["ISS-1"]
    status, listed = await mia.get("/management/api/v1/control-tests?result=fail")
    assert [t["number"] for t in listed["items"]] == ["TST-1"]
    status, reviewed = await mia.post(
        "/management/api/v1/control-tests/TST-1/review", json={"decision": "approved"}
    )
    assert status == 200 and reviewed["review"] == "approved", reviewed
    # A portal user cannot use the management API.
    status, body = await alice.get("/management/api/v1/issues")
    assert status == 403


async def test_without_control_test_update_the_page_is_read_only_and_the_call_403(
    suite: Suite,
) -> None:
    carol_id = await suite.person("carol@acme.test", "Carol Auditor", read_only=True)
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    status, _ = await mia.post(
        "/management/api/v1/controls", json={**CONTROL, "owner_id": carol_id}
    )
    assert status == 201
    carol = await suite.client("carol@acme.test")
    status, page = await carol.get("/control-tests/TST-1")
    assert status == 200
    assert "Export the admin list" in page
    assert "ControlTest:update" in page and 'action="/control-tests/TST-1/complete"' not in page
    status, body = await carol.post("/api/v1/control-tests/TST-1/complete", json={"result": "pass"})
    assert status == 403, body
    status, test = await carol.get("/api/v1/control-tests/TST-1")
    assert test["state"] == "scheduled"


async def test_portal_pages_list_show_and_complete_my_tests_and_issues(suite: Suite) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    await mia.post("/management/api/v1/controls", json={**CONTROL, "owner_id": alice_id})
    alice = await suite.client("alice@acme.test")

    status, page = await alice.get("/control-tests")
    assert status == 200 and "TST-1" in page and "Access review" in page
    status, page = await alice.get("/control-tests/TST-1")
    assert status == 200 and 'action="/control-tests/TST-1/complete"' in page
    # A form without a result is re-rendered with the error next to the field.
    status, page = await alice.post(
        "/control-tests/TST-1/complete", data={"csrf_token": alice.csrf, "notes": "n"}
    )
    assert status == 422 and "field-error" in page
    status, _ = await alice.post(
        "/control-tests/TST-1/complete",
        data={"csrf_token": alice.csrf, "result": "fail", "notes": "Broken", "evidence": "x"},
    )
    assert status == 303
    status, page = await alice.get("/control-tests/TST-1?done=1")
    assert status == 200 and "ISS-1" in page and "locked" in page

    status, page = await alice.get("/issues")
    assert status == 200 and "Control failure: Access review" in page
    status, _ = await alice.post(
        "/issues/ISS-1/comments", data={"csrf_token": alice.csrf, "body": "On it"}
    )
    assert status == 303
    status, page = await alice.get("/issues/ISS-1")
    assert status == 200 and "On it" in page and "You" in page


async def test_management_pages_create_and_list(suite: Suite) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    status, page = await mia.post(
        "/management/controls",
        data={"csrf_token": mia.csrf, "title": "", "frequency": "weekly", "owner_id": alice_id},
    )
    assert status == 422 and "field-error" in page
    status, _ = await mia.post(
        "/management/controls",
        data={
            "csrf_token": mia.csrf,
            "title": "Backup restore drill",
            "frequency": "quarterly",
            "owner_id": alice_id,
            "test_procedure": "Restore one backup",
        },
    )
    assert status == 303
    status, page = await mia.get("/management/controls")
    assert status == 200 and "Backup restore drill" in page and "Alice Tester" in page
    status, page = await mia.get("/management/controls/CTL-1")
    assert status == 200 and "TST-1" in page
    status, page = await mia.get("/management/control-tests")
    assert status == 200 and "TST-1" in page
    status, page = await mia.get("/management/control-tests/TST-1")
    assert status == 200 and "Restore one backup" in page
    status, _ = await mia.post(
        "/management/issues",
        data={
            "csrf_token": mia.csrf,
            "title": "Offsite copy missing",
            "severity": "high",
            "assignee_id": alice_id,
            "control_id": "CTL-1",
        },
    )
    assert status == 303
    status, page = await mia.get("/management/issues?severity=high")
    assert status == 200 and "Offsite copy missing" in page
    status, page = await mia.post(
        "/management/issues/ISS-1/status",
        data={"csrf_token": mia.csrf, "status": "accepted"},
    )
    assert status == 422 and "required to accept an issue" in page
    status, page = await mia.get("/management/issues/ISS-1")
    assert status == 200 and "/management/controls/CTL-1" in page


async def test_section_off_hides_issues_from_the_portal(suite: Suite) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    await mia.post(
        "/management/api/v1/issues",
        json={"title": "Weak TLS", "severity": "low", "assignee_id": alice_id},
    )
    alice = await suite.client("alice@acme.test")
    status, body = await alice.get("/api/v1/issues")
    assert status == 200 and len(body["items"]) == 1
    await suite.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=common_pb2.Caller(workspace_id=suite.ws), issues_enabled=False
        )
    )
    for _ in range(100):
        status, body = await alice.get("/api/v1/issues")
        if status == 404:
            break
        await asyncio.sleep(0.05)
    assert status == 404
    status, _ = await alice.get("/issues/ISS-1")
    assert status == 404
    # The management console is unaffected.
    status, body = await mia.get("/management/api/v1/issues")
    assert status == 200 and len(body["items"]) == 1


async def test_owners_and_assignees_from_elsewhere_are_a_422_naming_the_field(
    suite: Suite, stack: Stack
) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    elsewhere = await workspace(stack)
    stranger = await elsewhere.person("ControlTest:read")
    no_such = "no such active person in this workspace"

    status, body = await mia.post(
        "/management/api/v1/controls", json={**CONTROL, "owner_id": stranger}
    )
    assert status == 422, body
    assert body["error"]["fields"] == {"owner_id": no_such}
    status, body = await mia.post(
        "/management/api/v1/issues",
        json={"title": "Weak TLS", "severity": "low", "assignee_id": stranger},
    )
    assert status == 422, body
    assert body["error"]["fields"] == {"assignee_id": no_such}

    status, body = await mia.post(
        "/management/api/v1/controls", json={**CONTROL, "owner_id": alice_id}
    )
    assert status == 201, body
    status, body = await mia.get("/management/api/v1/issues")
    assert status == 200 and body["items"] == []


async def test_line_breaks_are_kept_escaped_and_the_opened_issue_is_a_link(suite: Suite) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    procedure = "1. Export the admin list\n2. Compare it with <b>HR</b> records"
    await mia.post(
        "/management/api/v1/controls",
        json={**CONTROL, "owner_id": alice_id, "test_procedure": procedure},
    )
    alice = await suite.client("alice@acme.test")
    status, page = await alice.get("/control-tests/TST-1")
    assert status == 200
    # The text keeps its line break inside an element whose white space every page keeps,
    # and stays text: the tag is escaped, never markup.
    assert (
        '<p class="pre">1. Export the admin list\n2. Compare it with &lt;b&gt;HR&lt;/b&gt; records'
        in page
    )
    for sheet in re.findall(r'<link rel="stylesheet" href="([^"]+)"', page):
        status, css = await alice.get(sheet)
        if ".pre {" in css:
            assert "white-space: pre-wrap" in css.split(".pre {", 1)[1].split("}", 1)[0]
            break
    else:
        raise AssertionError("no stylesheet of the page keeps the line breaks")

    status, _ = await alice.post(
        "/control-tests/TST-1/complete",
        data={"csrf_token": alice.csrf, "result": "fail", "notes": "Broken", "evidence": "x"},
    )
    assert status == 303
    status, page = await alice.get("/control-tests/TST-1?done=1")
    assert 'The failure opened issue <a href="/issues/ISS-1">ISS-1</a>' in page
