"""Tickets through the gateway, as a portal user and as an agent of a running suite (real
directory, auth and tickets services, real PostgreSQL and NATS, HTTP to the gateway)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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
    agent_email: str
    directory: directory_pb2_grpc.DirectoryServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    portal_group: str
    admin_group: str
    clients: list[GatewayClient]

    async def person(self, email: str, name: str, *, agent: bool = False) -> str:
        system = common_pb2.Caller(workspace_id=self.ws)
        person = await self.directory.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=system,
                email=email,
                name=name,
                portal_access=True,
                group_ids=[self.portal_group, self.admin_group] if agent else [self.portal_group],
            )
        )
        await self.auth.SetPassword(
            auth_pb2.SetPasswordRequest(caller=system, person_id=person.id, password=PASSWORD)
        )
        return person.id

    async def client(self, email: str, surface: str = "portal") -> GatewayClient:
        """A signed-in browser: the auth service's Login gives the session the gateway's
        sign-in route would set as its cookie (sign-in itself is tested with auth)."""
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
    for name in ("directory", "auth", "tickets"):
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
    s = Suite(base, ws, "agent@acme.test", directory, auth, portal_group, admin_group, [])
    await s.person("agent@acme.test", "Agent Smith", agent=True)
    try:
        yield s
    finally:
        for c in s.clients:
            await c.close()
        await dch.close()
        await ach.close()


INCIDENT = {
    "type": "incident",
    "title": "Laptop will not boot",
    "description": "Black screen since this morning",
    "impact": "medium",
    "urgency": "high",
}


async def test_portal_user_submits_lists_opens_and_comments_through_json(suite: Suite) -> None:
    await suite.person("alice@acme.test", "Alice")
    alice = await suite.client("alice@acme.test")

    status, first = await alice.post(
        "/api/v1/tickets", json=INCIDENT, headers={"Idempotency-Key": "abc-1"}
    )
    assert status == 201, first
    assert (first["number"], first["priority"], first["status"]) == ("INC-1", "high", "new")
    status, again = await alice.post(
        "/api/v1/tickets", json=INCIDENT, headers={"Idempotency-Key": "abc-1"}
    )
    assert status == 201 and again["id"] == first["id"]

    change = {
        "type": "change_request",
        "title": "New VPN profile",
        "description": "For the Berlin office",
        "reason": "Office opening",
        "risk": "low",
        "planned_start": "2030-01-10T20:00:00Z",
        "planned_end": "2030-01-10T22:00:00Z",
    }
    status, chg = await alice.post("/api/v1/tickets", json=change)
    assert status == 201, chg
    assert chg["number"] == "CHG-1" and chg["planned_end"] == "2030-01-10T22:00:00Z"

    status, bad = await alice.post(
        "/api/v1/tickets",
        json={**change, "planned_end": "2030-01-10T19:00:00Z", "title": ""},
    )
    assert status == 422
    assert bad["error"]["fields"] == {
        "title": "required",
        "planned_end": "must be after planned_start",
    }

    status, listed = await alice.get("/api/v1/tickets")
    assert status == 200
    assert [t["number"] for t in listed["items"]] == ["CHG-1", "INC-1"]
    status, listed = await alice.get("/api/v1/tickets?type=incident&q=boot")
    assert [t["number"] for t in listed["items"]] == ["INC-1"]
    status, listed = await alice.get("/api/v1/tickets?page_size=1")
    assert len(listed["items"]) == 1 and listed["next_page_token"]
    status, page2 = await alice.get(
        f"/api/v1/tickets?page_size=1&page_token={listed['next_page_token']}"
    )
    assert [t["number"] for t in page2["items"]] == ["INC-1"] and page2["next_page_token"] == ""
    status, err = await alice.get("/api/v1/tickets?status=bogus")
    assert status == 422 and "status" in err["error"]["fields"]

    status, posted = await alice.post(
        f"/api/v1/tickets/{first['id']}/comments", json={"body": "Tried another charger"}
    )
    assert status == 201 and posted["comment"]["body"] == "Tried another charger"
    status, detail = await alice.get(f"/api/v1/tickets/{first['id']}")
    assert status == 200
    assert [c["body"] for c in detail["comments"]] == ["Tried another charger"]
    assert detail["status_history"][0]["to_status"] == "new"


async def test_other_peoples_and_other_workspaces_tickets_are_404_in_the_portal(
    suite: Suite,
) -> None:
    await suite.person("alice@acme.test", "Alice")
    await suite.person("bob@acme.test", "Bob")
    alice = await suite.client("alice@acme.test")
    bob = await suite.client("bob@acme.test")
    _, ticket = await alice.post("/api/v1/tickets", json=INCIDENT)

    for path in (f"/api/v1/tickets/{ticket['id']}", f"/api/v1/tickets/{ticket['number']}"):
        status, body = await bob.get(path)
        assert status == 404 and body["error"]["code"] == "not_found"
    status, _ = await bob.post(f"/api/v1/tickets/{ticket['id']}/comments", json={"body": "hi"})
    assert status == 404
    status, page = await bob.get(f"/tickets/{ticket['number']}")
    assert status == 404 and "Laptop will not boot" not in page
    status, listed = await bob.get("/api/v1/tickets")
    assert listed["items"] == []

    # Even an agent (Ticket:manage) sees only their own tickets in the portal.
    admin = await suite.client(suite.agent_email)
    status, _ = await admin.get(f"/api/v1/tickets/{ticket['id']}")
    assert status == 404

    # Another workspace's host never reaches this ticket.
    await suite.directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="globex", name="Globex", admin_email="admin@globex.test", admin_name="G"
        )
    )
    other = await GatewayClient.open(suite.base, "globex")
    suite.clients.append(other)
    status, _ = await other.get(f"/api/v1/tickets/{ticket['id']}")
    assert status in (401, 404)


async def test_internal_notes_never_reach_the_portal_and_agents_work_the_queue(
    suite: Suite,
) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice")
    alice = await suite.client("alice@acme.test")
    agent = await suite.client(suite.agent_email, "management")
    _, ticket = await alice.post("/api/v1/tickets", json=INCIDENT)
    tid = ticket["id"]

    status, queue = await agent.get("/management/api/v1/tickets?status=new&sort=priority")
    assert status == 200 and [t["number"] for t in queue["items"]] == ["INC-1"]
    status, queue = await agent.get(f"/management/api/v1/tickets?requester={alice_id}")
    assert [t["id"] for t in queue["items"]] == [tid]
    status, queue = await agent.get("/management/api/v1/tickets?assignee=me")
    assert queue["items"] == []

    status, note = await agent.post(
        f"/management/api/v1/tickets/{tid}/comments",
        json={"body": "INTERNAL: disk firmware recall", "internal": True},
    )
    assert status == 201 and note["comment"]["internal"] is True
    status, patched = await agent.patch(
        f"/management/api/v1/tickets/{tid}", json={"assignee_id": "", "impact": "high"}
    )
    assert status == 200 and patched["priority"] == "critical"
    status, me = await agent.get("/api/v1/me")
    status, patched = await agent.patch(
        f"/management/api/v1/tickets/{tid}", json={"assignee_id": me["person_id"]}
    )
    assert patched["assignee_id"] == me["person_id"]
    status, queue = await agent.get("/management/api/v1/tickets?assignee=me")
    assert [t["id"] for t in queue["items"]] == [tid]

    status, body = await agent.post(
        f"/management/api/v1/tickets/{tid}/status", json={"status": "closed"}
    )
    assert status == 409 and body["error"]["code"] == "conflict"
    status, moved = await agent.post(
        f"/management/api/v1/tickets/{tid}/status",
        json={"status": "resolved", "note": "Reseated RAM"},
    )
    assert status == 200 and moved["status"] == "resolved"

    # The portal never shows the note, in JSON or on the page.
    status, detail = await alice.get(f"/api/v1/tickets/{tid}")
    assert "INTERNAL" not in str(detail)
    status, page = await alice.get(f"/tickets/{ticket['number']}")
    assert status == 200 and "INTERNAL" not in page and "Reseated RAM" in page
    # A requester cannot write one either.
    status, _ = await alice.post(
        f"/api/v1/tickets/{tid}/comments", json={"body": "x", "internal": True}
    )
    assert status == 422  # unknown field in the portal schema

    # The requester's comment reopens the resolved ticket.
    status, posted = await alice.post(f"/api/v1/tickets/{tid}/comments", json={"body": "Again!"})
    assert posted["ticket"]["status"] == "in_progress"
    status, full = await agent.get(f"/management/api/v1/tickets/{tid}")
    assert [c["internal"] for c in full["comments"]] == [True, False]
    assert full["status_history"][-1]["by_requester_comment"] is True
    assert any(f["field"] == "assignee" for f in full["field_history"])

    # Portal users cannot reach the queue.
    status, _ = await alice.get("/management/api/v1/tickets")
    assert status == 403


async def test_ticket_pages_keep_typed_values_on_errors_and_redirect_on_success(
    suite: Suite,
) -> None:
    await suite.person("alice@acme.test", "Alice")
    alice = await suite.client("alice@acme.test")
    status, form = await alice.get("/tickets/new")
    assert status == 200
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form)
    assert key is not None
    fields = {
        "csrf_token": alice.csrf,
        "idempotency_key": key.group(1),
        "type": "incident",
        "title": "Monitor flickers",
        "description": "",
        "impact": "low",
        "urgency": "",
    }
    status, page = await alice.post("/tickets/new", data=fields)
    assert status == 422
    assert 'value="Monitor flickers"' in page
    assert "description-error" in page and "urgency-error" in page

    fields.update(description="Every few seconds", urgency="medium")
    status, _ = await alice.post("/tickets/new", data=fields)
    assert status == 303
    status, _ = await alice.post("/tickets/new", data=fields)  # double submit
    assert status == 303
    status, listed = await alice.get("/api/v1/tickets")
    assert [t["title"] for t in listed["items"]] == ["Monitor flickers"]

    status, page = await alice.get("/tickets")
    assert status == 200 and "INC-1" in page and "Monitor flickers" in page
    status, page = await alice.get("/tickets/INC-1")
    assert status == 200 and "Every few seconds" in page
    status, _ = await alice.post(
        "/tickets/INC-1/comments", data={"csrf_token": alice.csrf, "body": "Still flickering"}
    )
    assert status == 303
    status, page = await alice.get("/tickets/INC-1")
    assert "Still flickering" in page

    agent = await suite.client(suite.agent_email, "management")
    status, page = await agent.get("/management/tickets")
    assert status == 200 and "Monitor flickers" in page
    status, _ = await agent.post(
        "/management/tickets/INC-1/status",
        data={"csrf_token": agent.csrf, "status": "closed", "note": ""},
    )
    assert status == 409
    status, _ = await agent.post(
        "/management/tickets/INC-1/comments",
        data={"csrf_token": agent.csrf, "body": "Vendor ticket 77", "internal": "1"},
    )
    assert status == 303
    status, page = await agent.get("/management/tickets/INC-1")
    assert "Vendor ticket 77" in page and "Internal note" in page
    status, page = await alice.get("/tickets/INC-1")
    assert "Vendor ticket 77" not in page


async def test_ticket_pages_send_anonymous_visitors_to_sign_in(suite: Suite) -> None:
    anonymous = await GatewayClient.open(suite.base, "acme")
    suite.clients.append(anonymous)
    async with anonymous.http.get(
        suite.base + "/tickets/INC-1", headers=anonymous.headers(), allow_redirects=False
    ) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/login?next=/tickets/INC-1"
    status, body = await anonymous.get("/api/v1/tickets")
    assert status == 401 and body["error"]["code"] == "unauthenticated"


async def test_assigning_a_ticket_to_someone_who_is_no_agent_here_is_a_422_naming_the_field(
    suite: Suite, stack: Stack
) -> None:
    alice_id = await suite.person("alice@acme.test", "Alice")
    alice = await suite.client("alice@acme.test")
    agent = await suite.client(suite.agent_email, "management")
    _, ticket = await alice.post("/api/v1/tickets", json=INCIDENT)
    elsewhere = await workspace(stack)
    gone = await suite.person("gone@acme.test", "Gone Agent", agent=True)
    await suite.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(
            caller=common_pb2.Caller(workspace_id=suite.ws), person_id=gone, active=False
        )
    )
    no_such = "no such active person in this workspace"
    for person, problem in (
        (await elsewhere.person("Ticket:manage"), no_such),
        ("0b5f8a3e-6c1d-4f7e-9a2b-3c4d5e6f7a8b", no_such),
        (gone, no_such),
        (alice_id, "must be an agent (hold Ticket:manage)"),
    ):
        status, body = await agent.patch(
            f"/management/api/v1/tickets/{ticket['id']}", json={"assignee_id": person}
        )
        assert status == 422, body
        assert body["error"]["fields"] == {"assignee_id": problem}
    status, body = await agent.get(f"/management/api/v1/tickets/{ticket['id']}")
    assert status == 200 and body["ticket"]["assignee_id"] is None


async def test_portal_home_greets_by_name_and_shows_what_waits_for_an_answer_first(
    suite: Suite,
) -> None:
    await suite.person("wendy@acme.test", "Wendy Waits")
    wendy = await suite.client("wendy@acme.test")
    agent = await suite.client(suite.agent_email, "management")
    _, asked = await wendy.post("/api/v1/tickets", json=INCIDENT)
    _, other = await wendy.post("/api/v1/tickets", json={**INCIDENT, "title": "Other thing"})
    status, page = await wendy.get("/", headers={"Accept": "text/html"})
    assert status == 200 and "Hello, Wendy Waits" in page
    assert "Waiting for you" not in page

    for status_name in ("in_progress", "waiting_for_requester"):
        status, body = await agent.post(
            f"/management/api/v1/tickets/{asked['id']}/status", json={"status": status_name}
        )
        assert status == 200, body
    status, page = await wendy.get("/", headers={"Accept": "text/html"})
    assert "Waiting for you" in page
    waiting = page.split('id="waiting-title"', 1)[1].split("</section>", 1)[0]
    assert asked["number"] in waiting and other["number"] not in waiting


async def test_a_posted_comment_is_confirmed_and_session_times_are_readable(suite: Suite) -> None:
    await suite.person("cora@acme.test", "Cora Comments")
    cora = await suite.client("cora@acme.test")
    _, ticket = await cora.post("/api/v1/tickets", json=INCIDENT)
    status, page = await cora.post(
        f"/tickets/{ticket['number']}/comments",
        data={"csrf_token": cora.csrf, "body": "Still broken"},
        allow_redirects=True,
    )
    assert status == 200
    assert "Your comment was added." in page and "Still broken" in page

    status, page = await cora.get("/profile", headers={"Accept": "text/html"})
    assert status == 200
    sessions = page.split('<thead><tr><th scope="col">Where', 1)[1].split("</table>", 1)[0]
    assert "<th></th>" not in sessions and 'visually-hidden">Action' in sessions
    # "2026-12-07 23:59 UTC", not "2026-12-07T23:59:01Z"
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", sessions), sessions
    assert not re.search(r"\d\dT\d\d:", sessions)


def _example(prop: dict[str, Any], order: int) -> Any:
    """A value for a property, read from its schema alone (as a script writer would)."""
    for option in prop.get("anyOf", [prop]):
        if "const" in option:
            return option["const"]
        if "enum" in option:
            return sorted(option["enum"])[0]
        if option.get("format") == "date-time":
            return f"2030-01-0{order + 1}T09:00:00Z"  # later fields later: start before end
        if option.get("type") == "string":
            return "Written from the OpenAPI document"
    raise AssertionError(f"no example for {prop}")


async def test_a_ticket_built_from_the_openapi_document_is_accepted_for_each_type(
    suite: Suite,
) -> None:
    await suite.person("otto@acme.test", "Otto OpenAPI")
    otto = await suite.client("otto@acme.test")
    status, doc = await otto.get("/api/v1/openapi.json")
    assert status == 200
    schema = doc["components"]["schemas"]["TicketIn"]
    branches = {b["title"]: b for b in schema["oneOf"]}
    assert set(branches) == {"Incident", "Change request"}
    for branch in branches.values():
        required = [*schema["required"], *branch["required"]]
        props = {**schema["properties"], **branch["properties"]}
        body = {name: _example(props[name], n) for n, name in enumerate(dict.fromkeys(required))}
        status, made = await otto.post("/api/v1/tickets", json=body)
        assert status == 201, (branch["title"], body, made)
        # Each field the document calls required for this type really is.
        for name in branch["required"]:
            if name == "type":
                continue
            status, refused = await otto.post(
                "/api/v1/tickets", json={k: v for k, v in body.items() if k != name}
            )
            assert status == 422 and name in refused["error"]["fields"], (name, refused)
