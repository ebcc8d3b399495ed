"""Who may do what, enforced by the gateway from the route table: sign-in redirects, the
management console, permissions, section toggles, portal access, CSRF and API tokens.

A running suite (real directory, auth and tickets services, PostgreSQL, NATS, and the gateway
on port 0); people are set up with the services' gRPC APIs and a system Caller, then act
through the gateway as a browser or a script would.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    directory_pb2,
    directory_pb2_grpc,
)

from tests.gateway_client import GatewayClient
from tests.signing import channel
from tests.stack import Stack

T = TypeVar("T")
PASSWORD = "correct horse battery staple 42"
HTML = {"Accept": "text/html"}
INCIDENT = {
    "type": "incident",
    "title": "Printer on fire",
    "description": "Third floor",
    "impact": "low",
    "urgency": "low",
}


@dataclass
class World:
    """Workspace 'acme' with its built-in roles and groups, and helpers to add people."""

    stack: Stack
    base: str
    ws: str
    directory: directory_pb2_grpc.DirectoryServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    groups: dict[str, str]
    roles: dict[str, str]
    admin_email: str = "admin@acme.test"
    people: dict[str, str] = field(default_factory=dict)

    @property
    def system(self) -> common_pb2.Caller:
        return common_pb2.Caller(workspace_id=self.ws)

    async def person(
        self,
        email: str,
        *,
        groups: tuple[str, ...] = ("Portal Users",),
        roles: tuple[str, ...] = (),
        portal_access: bool = True,
    ) -> str:
        person = await self.directory.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=self.system,
                email=email,
                name=email.split("@")[0].title(),
                portal_access=portal_access,
                group_ids=[self.groups[g] for g in groups],
                role_ids=[self.roles[r] for r in roles],
            )
        )
        await self.auth.SetPassword(
            auth_pb2.SetPasswordRequest(caller=self.system, person_id=person.id, password=PASSWORD)
        )
        self.people[email] = person.id
        return str(person.id)

    async def role(self, name: str, *permissions: str) -> str:
        role = await self.directory.CreateRole(
            directory_pb2.CreateRoleRequest(
                caller=self.system, name=name, permissions=list(permissions)
            )
        )
        self.roles[name] = role.id
        return str(role.id)

    async def client(
        self, email: str | None = None, *, base: str | None = None, surface: str = "portal"
    ) -> GatewayClient:
        """A browser on this workspace's host; signed in through /auth/login when `email`."""
        client = await GatewayClient.open(base or self.base, "acme")
        self.stack.on_close(client.close)
        if email is not None:
            status, body = await client.login(email, PASSWORD, surface=surface)
            assert status == 200 and body["status"] == "ok", body
        return client

    async def set_sections(self, **toggles: bool) -> None:
        await self.directory.UpdatePortalSettings(
            directory_pb2.UpdatePortalSettingsRequest(
                caller=self.system, **{f"{k}_enabled": v for k, v in toggles.items()}
            )
        )


async def make_world(
    stack: Stack, services: tuple[str, ...] = ("directory", "auth", "tickets")
) -> World:
    for name in services:
        if name not in stack.services:
            await stack.start(name)
    base = await stack.start_gateway()
    dch = channel(stack.addresses["directory"])
    ach = channel(stack.addresses["auth"])
    stack.on_close(dch.close)
    stack.on_close(ach.close)
    directory = directory_pb2_grpc.DirectoryServiceStub(dch)
    auth = auth_pb2_grpc.AuthServiceStub(ach)
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada Admin"
        )
    )
    ws = created.workspace.id
    system = common_pb2.Caller(workspace_id=ws)
    await auth.SetPassword(
        auth_pb2.SetPasswordRequest(caller=system, person_id=created.admin.id, password=PASSWORD)
    )
    groups = await directory.ListGroups(directory_pb2.ListGroupsRequest(caller=system))
    roles = await directory.ListRoles(directory_pb2.ListRolesRequest(caller=system))
    world = World(
        stack=stack,
        base=base,
        ws=ws,
        directory=directory,
        auth=auth,
        groups={g.name: g.id for g in groups.groups},
        roles={r.name: r.id for r in roles.roles},
    )
    world.people["admin@acme.test"] = created.admin.id
    return world


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = 1.0
) -> T:
    """Poll `probe` until `done` holds, for at most `within` seconds (the freshness bound)."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if done(result) or time.monotonic() >= deadline:
            assert done(result), f"not within {within}s: {result!r}"
            return result
        await asyncio.sleep(0.01)


def _nav_links(page: str) -> list[str]:
    """The hrefs of the main navigation of a rendered page."""
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S)
    assert nav is not None, page[:500]
    return re.findall(r'href="([^"]+)"', nav.group(1))


def _next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/login", location
    return parse_qs(parts.query)["next"][0]


# -- not signed in ---------------------------------------------------------------------------


async def test_anonymous_pages_redirect_to_login_with_next_and_json_gets_401(
    stack: Stack,
) -> None:
    world = await make_world(stack)
    anon = await world.client()
    for path in ("/", "/tickets", "/tickets/new?type=change_request", "/management/persons"):
        async with anon.http.get(
            anon.base_url + path, headers={"Host": anon.host, **HTML}, allow_redirects=False
        ) as resp:
            assert resp.status == 303, path
            assert _next_of(resp.headers["Location"]) == path
            assert not resp.headers["Location"].startswith("//")
    for path in ("/api/v1/me", "/api/v1/tickets", "/management/api/v1/persons"):
        status, body = await anon.get(path)
        assert status == 401, path
        assert body["error"]["code"] == "unauthenticated"
    await anon.anonymous_csrf()
    status, body = await anon.post("/api/v1/tickets", json=INCIDENT)
    assert status == 401


async def test_sign_in_goes_to_next_only_when_it_is_same_site(stack: Stack) -> None:
    world = await make_world(stack)
    await world.person("pat@acme.test")
    for next_value, expected in (
        ("/tickets?status=open", "/tickets?status=open"),
        ("https://evil.example/phish", "/"),
        ("//evil.example/phish", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),  # a path on this site
        # Control characters: sent home; never a header of ours.
        ("/tickets\r\nSet-Cookie: fd_session=stolen", "/"),
    ):
        client = await world.client()
        status, page = await client.get("/login?next=" + _quote(next_value), headers=HTML)
        assert status == 200
        hidden = re.search(r'name="next" value="([^"]*)"', page)
        assert hidden is not None
        if expected is not None:
            assert hidden.group(1) == expected, next_value
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        async with client.http.post(
            client.base_url + "/login",
            data={
                "email": "pat@acme.test",
                "password": PASSWORD,
                "next": next_value,
                "csrf_token": csrf.group(1),
            },
            headers={"Host": client.host},
            allow_redirects=False,
        ) as resp:
            assert "stolen" not in str(resp.headers)
            assert resp.status == 303, (next_value, await resp.text())
            location = resp.headers["Location"]
            assert location == (expected or "/"), (next_value, location)
            assert not urlsplit(location).netloc and not urlsplit(location).scheme
        status, me = await client.get("/api/v1/me")
        assert status == 200 and me["person_id"] == world.people["pat@acme.test"]


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


# -- the management console -----------------------------------------------------------------


async def test_management_console_needs_a_management_permission_and_each_page_its_own(
    stack: Stack,
) -> None:
    world = await make_world(stack)
    await world.person("pat@acme.test")
    await world.role("Auditor", "Audit:read")
    await world.person("aud@acme.test", groups=(), roles=("Auditor",), portal_access=False)

    pat = await world.client("pat@acme.test")
    status, page = await pat.get("/management", headers=HTML)
    assert status == 403 and "Not allowed" in page
    status, body = await pat.get("/management/api/v1/persons")
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, page = await pat.get("/", headers=HTML)
    assert status == 200 and "/management" not in _nav_links(page)

    aud = await world.client("aud@acme.test", surface="management")
    status, page = await aud.get("/management", headers=HTML)
    assert status == 200
    assert _nav_links(page) == ["/management/audit"]
    status, _ = await aud.get("/management/audit", headers=HTML)
    assert status == 200
    status, _ = await aud.get("/management/api/v1/audit")
    assert status == 200
    for path in ("/management/persons", "/management/roles", "/management/tickets"):
        status, page = await aud.get(path, headers=HTML)
        assert status == 403, path
    status, body = await aud.get("/management/api/v1/persons")
    assert status == 403 and "Person:read" in body["error"]["message"]
    # Portal access is off for the auditor: the portal refuses, the console does not.
    status, body = await aud.get("/api/v1/tickets")
    assert status == 403 and body["error"]["code"] == "portal_access_disabled"

    admin = await world.client(world.admin_email, surface="management")
    status, page = await admin.get("/management", headers=HTML)
    assert status == 200
    links = _nav_links(page)
    assert {"/management/persons", "/management/roles", "/management/audit"} <= set(links)
    status, body = await admin.get("/management/api/v1/persons")
    assert status == 200 and len(body["items"]) == 3


# -- portal permissions and sections ----------------------------------------------------------


async def test_portal_user_without_a_permission_gets_403_and_no_link(stack: Stack) -> None:
    world = await make_world(stack)
    await world.role("Reader", "Ticket:read")
    await world.person("rita@acme.test", groups=(), roles=("Reader",))
    rita = await world.client("rita@acme.test")

    status, _ = await rita.get("/api/v1/tickets")
    assert status == 200
    status, body = await rita.post("/api/v1/tickets", json=INCIDENT)
    assert status == 403
    assert body["error"] == {
        "code": "forbidden",
        "message": "this needs the permission Ticket:create",
    }
    status, page = await rita.get("/tickets/new", headers=HTML)
    assert status == 403 and "Not allowed" in page
    status, body = await rita.get("/api/v1/issues")
    assert status == 403
    status, page = await rita.get("/", headers=HTML)
    assert status == 200
    assert _nav_links(page) == ["/", "/tickets"]
    assert 'href="/tickets/new"' not in page
    status, me = await rita.get("/api/v1/me")
    assert me["sections"] == ["tickets"] and me["permissions"] == ["Ticket:read"]


async def test_a_section_turned_off_is_404_everywhere_in_the_portal_and_gone_from_navigation(
    stack: Stack,
) -> None:
    world = await make_world(stack)
    await world.person("pat@acme.test")
    pat = await world.client("pat@acme.test")
    admin = await world.client(world.admin_email)  # portal user and admin at once

    status, created = await pat.post("/api/v1/tickets", json=INCIDENT)
    assert status == 201
    number = created["number"]
    status, page = await pat.get("/", headers=HTML)
    assert "/tickets" in _nav_links(page)

    await world.set_sections(tickets=False)
    await eventually(lambda: pat.get("/api/v1/tickets"), lambda r: r[0] == 404)

    for client in (pat, admin):
        for path in ("/tickets", "/tickets/new", f"/tickets/{number}"):
            status, page = await client.get(path, headers=HTML)
            assert status == 404, path
            # A bookmark says why it leads nowhere, and shows nothing of the ticket.
            assert "turned off in this portal by its administrator" in page, path
            assert created["title"] not in page
        for path in ("/api/v1/tickets", f"/api/v1/tickets/{number}"):
            status, body = await client.get(path)
            assert status == 404 and body["error"]["code"] == "not_found", path
            assert body["error"]["message"] == (
                "Tickets are turned off in this portal by its administrator"
            )
        status, body = await client.post("/api/v1/tickets", json=INCIDENT)
        assert status == 404
        status, body = await client.post(
            f"/api/v1/tickets/{number}/comments", json={"body": "hello?"}
        )
        assert status == 404
        status, page = await client.get("/", headers=HTML)
        assert status == 200
        assert "/tickets" not in _nav_links(page) and 'href="/tickets' not in page
        status, me = await client.get("/api/v1/me")
        assert "tickets" not in me["sections"]
        assert {"issues", "control_tests"} <= set(me["sections"])

    # The management console is not affected by portal sections.
    status, _ = await admin.get("/management/tickets", headers=HTML)
    assert status == 200
    status, body = await admin.get("/management/api/v1/tickets")
    assert status == 200 and [t["number"] for t in body["items"]] == [number]

    await world.set_sections(tickets=True)
    status, body = await eventually(
        lambda: pat.get(f"/api/v1/tickets/{number}"), lambda r: r[0] == 200
    )
    assert body["ticket"]["number"] == number


async def test_portal_access_off_or_deactivated_person_loses_the_portal(stack: Stack) -> None:
    world = await make_world(stack)
    pat_id = await world.person("pat@acme.test")
    pat = await world.client("pat@acme.test")
    status, _ = await pat.get("/api/v1/me")
    assert status == 200

    await world.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(
            caller=world.system, person_id=pat_id, portal_access=False
        )
    )
    fresh = await world.client()
    await fresh.anonymous_csrf()
    status, body = await fresh.post(
        "/auth/login", json={"email": "pat@acme.test", "password": PASSWORD}
    )
    assert status in (403, 409) and "portal access" in body["error"]["message"]
    assert fresh.cookie("fd_session") is None

    await world.directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=world.system, person_id=pat_id, active=False)
    )
    status, body = await fresh.post(
        "/auth/login", json={"email": "pat@acme.test", "password": PASSWORD}
    )
    assert status in (401, 403, 409) and fresh.cookie("fd_session") is None


# -- CSRF -----------------------------------------------------------------------------------


async def test_state_changing_requests_with_a_cookie_session_need_the_csrf_token(
    stack: Stack,
) -> None:
    world = await make_world(stack)
    await world.person("pat@acme.test")
    await world.person("sam@acme.test")
    pat = await world.client("pat@acme.test")
    sam = await world.client("sam@acme.test")
    token = pat.csrf

    for headers in ({"X-CSRF-Token": ""}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": sam.csrf}):
        status, body = await pat.post("/api/v1/tickets", json=INCIDENT, headers=headers)
        assert status == 403 and body["error"]["code"] == "csrf", headers
    pat.csrf = ""
    status, body = await pat.post("/api/v1/tickets", json=INCIDENT)
    assert status == 403 and body["error"]["code"] == "csrf"
    # The anonymous double-submit cookie is not a session's token.
    anonymous = pat.cookie("fd_csrf")
    assert anonymous
    status, body = await pat.post(
        "/api/v1/tickets", json=INCIDENT, headers={"X-CSRF-Token": anonymous}
    )
    assert status == 403

    # Forms: the hidden field; without it the page is refused and nothing changes.
    status, page = await pat.post(
        "/tickets/new",
        data={"type": "incident", "title": "No token", "description": "x"},
        headers=HTML,
    )
    assert status == 403 and "Not allowed" in page
    pat.csrf = token
    status, body = await pat.get("/api/v1/tickets")
    assert status == 200 and body["items"] == []

    status, created = await pat.post("/api/v1/tickets", json=INCIDENT)
    assert status == 201, created
    status, page = await pat.get("/tickets/new", headers=HTML)
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert form_token is not None and form_token.group(1) == token

    # Sign-out is state-changing too: a forged cross-site POST does not sign anyone out.
    pat.csrf = ""
    status, _ = await pat.post("/logout", data={}, headers=HTML)
    assert status == 403
    pat.csrf = token
    status, _ = await pat.get("/api/v1/me")
    assert status == 200


# -- personal API tokens ----------------------------------------------------------------------


async def test_a_personal_api_token_works_only_on_the_management_api(stack: Stack) -> None:
    world = await make_world(stack)
    admin = await world.client(world.admin_email, surface="management")
    status, created = await admin.post("/management/api/v1/api-tokens", json={"name": "script"})
    assert status == 201, created
    secret = created["secret"]
    bearer = {"Authorization": f"Bearer {secret}"}

    script = await world.client()  # no cookies, no CSRF token: a script
    status, body = await script.get("/management/api/v1/persons", headers=bearer)
    assert status == 200 and len(body["items"]) == 1
    status, person = await script.post(
        "/management/api/v1/persons",
        json={"email": "new@acme.test", "name": "New Person"},
        headers=bearer,
    )
    assert status == 201, person

    for path in ("/api/v1/me", "/api/v1/tickets"):
        status, body = await script.get(path, headers=bearer)
        assert status == 401, path
    async with script.http.get(
        script.base_url + "/management",
        headers={"Host": script.host, **bearer, **HTML},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    assert script.cookie("fd_session") is None

    status, _ = await script.get(
        "/management/api/v1/persons", headers={"Authorization": "Bearer fd_wrong"}
    )
    assert status == 401

    # Another workspace's host does not know the token.
    await world.directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="globex", name="Globex", admin_email="a@globex.test", admin_name="G"
        )
    )
    other = await GatewayClient.open(world.base, "globex")
    stack.on_close(other.close)
    status, _ = await other.get("/management/api/v1/persons", headers=bearer)
    assert status == 401

    status, _ = await admin.delete(f"/management/api/v1/api-tokens/{created['token']['id']}")
    assert status == 200
    status, _ = await script.get("/management/api/v1/persons", headers=bearer)
    assert status == 401


async def test_an_api_token_carries_its_owners_permissions_only(stack: Stack) -> None:
    world = await make_world(stack)
    await world.role("Auditor", "Audit:read")
    await world.person("aud@acme.test", groups=(), roles=("Auditor",))
    aud = await world.client("aud@acme.test", surface="management")
    status, created = await aud.post("/management/api/v1/api-tokens", json={"name": "audit"})
    assert status == 201
    bearer = {"Authorization": f"Bearer {created['secret']}"}
    script = await world.client()
    status, _ = await script.get("/management/api/v1/audit", headers=bearer)
    assert status == 200
    status, body = await script.get("/management/api/v1/persons", headers=bearer)
    assert status == 403 and body["error"]["code"] == "forbidden"

    # Once its owner holds no management permission, the token opens nothing at all.
    await world.directory.RevokeRole(
        directory_pb2.PersonRoleRequest(
            caller=world.system,
            person_id=world.people["aud@acme.test"],
            role_id=world.roles["Auditor"],
        )
    )
    for path in ("/management/api/v1/api-tokens", "/management/api/v1/profile"):
        status, body = await eventually(
            lambda path=path: script.get(path, headers=bearer), lambda r: r[0] == 403
        )
        assert body["error"]["message"] == "the management console needs a management permission"
