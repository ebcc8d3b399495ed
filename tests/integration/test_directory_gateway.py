"""The directory's management console and JSON API through a real gateway, as a real admin of a
running suite (real directory, auth and tickets services, real PostgreSQL and NATS).

Over 600 lines: every console page and JSON route of the directory under one real gateway; split by concept in a later change.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from frontdesk.v1 import auth_pb2, auth_pb2_grpc, common_pb2, directory_pb2, directory_pb2_grpc
from multidict import MultiDict
from yarl import URL

from tests.gateway_client import GatewayClient
from tests.signing import channel
from tests.stack import Stack

PASSWORD = "correct horse battery staple 42"
API = "/management/api/v1"
PERSON_LINK = re.compile(r'href="/management/persons/[0-9a-f-]{36}"')


@dataclass
class Suite:
    base: str
    ws: str
    admin_id: str
    directory: directory_pb2_grpc.DirectoryServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    portal_group: str
    admin_group: str
    clients: list[GatewayClient]

    @property
    def system(self) -> common_pb2.Caller:
        return common_pb2.Caller(workspace_id=self.ws)

    async def person(self, email: str, name: str, *, groups: list[str] | None = None) -> str:
        person = await self.directory.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=self.system,
                email=email,
                name=name,
                portal_access=True,
                group_ids=[self.portal_group] if groups is None else groups,
            )
        )
        await self.auth.SetPassword(
            auth_pb2.SetPasswordRequest(caller=self.system, person_id=person.id, password=PASSWORD)
        )
        return str(person.id)

    async def admin(self) -> GatewayClient:
        """The workspace's first admin, signed in through the gateway's sign-in endpoint."""
        client = await GatewayClient.open(self.base, "acme")
        self.clients.append(client)
        status, body = await client.login("admin@acme.test", PASSWORD, surface="management")
        assert status == 200 and body["status"] == "ok", body
        return client

    async def portal_client(self, email: str) -> GatewayClient:
        client = await GatewayClient.open(self.base, "acme")
        self.clients.append(client)
        login = await self.auth.Login(
            auth_pb2.LoginRequest(
                workspace_id=self.ws, email=email, password=PASSWORD, surface="portal"
            )
        )
        assert login.status == "ok", login
        client.http.cookie_jar.update_cookies({"fd_session": login.session_token}, URL(self.base))
        await client.refresh_csrf()
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
    await auth.SetPassword(
        auth_pb2.SetPasswordRequest(caller=system, person_id=created.admin.id, password=PASSWORD)
    )
    groups = await directory.ListGroups(directory_pb2.ListGroupsRequest(caller=system))
    portal_group = next(g.id for g in groups.groups if g.name == "Portal Users")
    admin_group = next(g.id for g in groups.groups if g.name == "Administrators")
    s = Suite(base, ws, created.admin.id, directory, auth, portal_group, admin_group, [])
    try:
        yield s
    finally:
        for c in s.clients:
            await c.close()
        await dch.close()
        await ach.close()


def _form(client: GatewayClient, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": client.csrf, **fields}


async def _post_form(client: GatewayClient, path: str, data: Any) -> tuple[int, str, str]:
    """A browser form post: (status, Location, body); no X-CSRF-Token header, the field only."""
    headers = {"Host": client.host}
    async with client.http.post(
        client.base_url + path, data=data, headers=headers, allow_redirects=False
    ) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


# -- persons --------------------------------------------------------------------------------


async def test_persons_through_json_never_need_a_login_name(suite: Suite) -> None:
    admin = await suite.admin()

    status, created = await admin.post(
        f"{API}/persons",
        json={"email": "Bob@Acme.test", "name": "Bob", "portal_access": True},
    )
    assert status == 201, created
    assert created["portal_access"] is True and created["login_name"] is None
    bob = created["id"]

    # Editing with portal access on and the login name emptied works too.
    status, patched = await admin.patch(
        f"{API}/persons/{bob}",
        json={"login_name": "bobby", "name": "Bob Builder"},
    )
    assert status == 200 and patched["login_name"] == "bobby", patched
    status, patched = await admin.patch(
        f"{API}/persons/{bob}", json={"login_name": "", "portal_access": True}
    )
    assert status == 200, patched
    assert (patched["login_name"], patched["portal_access"]) == (None, True)

    status, bad = await admin.post(f"{API}/persons", json={"email": "x@acme.test", "name": ""})
    assert status == 422 and "name" in bad["error"]["fields"], bad
    status, dup = await admin.post(
        f"{API}/persons", json={"email": "bob@acme.test", "name": "Other Bob"}
    )
    assert status == 409, dup
    status, bad = await admin.post(f"{API}/persons", json={"email": "a@b.c", "nme": "typo"})
    assert status == 422, bad

    # Notifications, deactivate and reactivate.
    status, patched = await admin.patch(
        f"{API}/persons/{bob}",
        json={"notifications": {"ticket_updates": True, "weekly_digest": True}, "active": False},
    )
    assert status == 200 and patched["active"] is False, patched
    assert patched["notifications"]["weekly_digest"] is True
    status, patched = await admin.patch(f"{API}/persons/{bob}", json={"active": True})
    assert status == 200 and patched["active"] is True

    # Direct roles: grant, see in effective permissions, revoke.
    status, roles = await admin.get(f"{API}/roles")
    assert status == 200
    admin_role = next(r for r in roles["items"] if r["name"] == "Workspace Admin")
    status, detail = await admin.post(
        f"{API}/persons/{bob}/roles", json={"role_id": admin_role["id"]}
    )
    assert status == 201, detail
    assert admin_role["id"] in detail["person"]["role_ids"]
    assert "Audit:read" in detail["effective_permissions"]
    status, detail = await admin.delete(f"{API}/persons/{bob}/roles/{admin_role['id']}")
    assert status == 200 and admin_role["id"] not in detail["person"]["role_ids"]
    status, detail = await admin.get(f"{API}/persons/{bob}")
    assert status == 200
    assert detail["person"]["email"] == "Bob@Acme.test"
    assert "Audit:read" not in detail["effective_permissions"]


async def test_person_list_search_filters_and_pagination(suite: Suite) -> None:
    admin = await suite.admin()
    for i in range(5):
        await suite.person(f"user{i}@acme.test", f"User {i}")
    await suite.directory.CreatePerson(
        directory_pb2.CreatePersonRequest(
            caller=suite.system, email="robot@supplier.test", name="Robot", portal_access=False
        )
    )

    status, page1 = await admin.get(f"{API}/persons?page_size=3")
    assert status == 200, page1
    assert len(page1["items"]) == 3 and page1["next_page_token"] and page1["total"] == 7
    seen = [p["email"] for p in page1["items"]]
    token = page1["next_page_token"]
    while token:
        status, page = await admin.get(f"{API}/persons?page_size=3&page_token={token}")
        assert status == 200
        seen += [p["email"] for p in page["items"]]
        token = page["next_page_token"]
    assert len(seen) == len(set(seen)) == 7

    status, found = await admin.get(f"{API}/persons?q=user3")
    assert [p["email"] for p in found["items"]] == ["user3@acme.test"]
    status, off = await admin.get(f"{API}/persons?portal_access=false")
    assert [p["email"] for p in off["items"]] == ["robot@supplier.test"]
    status, members = await admin.get(f"{API}/persons?group={suite.portal_group}&page_size=100")
    assert {p["email"] for p in members["items"]} >= {f"user{i}@acme.test" for i in range(5)}
    assert "robot@supplier.test" not in {p["email"] for p in members["items"]}
    status, holders = await admin.get(f"{API}/persons?permission=Audit:read")
    assert status == 200 and [p["email"] for p in holders["items"]] == ["admin@acme.test"]
    status, bad = await admin.get(f"{API}/persons?active=maybe")
    assert status == 422 and bad["error"]["fields"] == {"active": "use true or false"}

    # The same list as a page, with a next-page link keeping the filters.
    status, html = await admin.get("/management/persons?portal_access=true")
    assert status == 200 and "User 0" in html and "Robot" not in html
    status, html = await admin.get("/management/persons?q=user")
    assert status == 200 and "5 persons" in html
    status, html = await admin.get("/management/persons?q=user&page_size=3")
    assert status == 200 and len(PERSON_LINK.findall(html)) == 3
    nxt = re.search(r'<a href="([^"]+)" rel="next">', html)
    assert nxt is not None
    status, html = await admin.get(nxt.group(1).replace("&amp;", "&"))
    assert status == 200 and len(PERSON_LINK.findall(html)) == 2
    assert 'rel="next"' not in html and "First page" in html
    status, html = await admin.get("/management/persons?page_size=many")
    assert status == 200 and 'class="alert error"' in html


async def test_person_form_pages_default_portal_access_from_domain_rules(suite: Suite) -> None:
    admin = await suite.admin()
    status, settings = await admin.patch(
        f"{API}/portal-settings",
        json={
            "portal_access_default": False,
            "portal_access_rules": [{"domain": "acme.test", "portal_access": True}],
        },
    )
    assert status == 200, settings

    status, html = await admin.get("/management/persons/new")
    assert status == 200
    assert "workspace default: off" in html
    assert 'value="default" checked' in html
    assert "@acme.test → on" in html

    # Portal access left to the rules, no login name: created, access on by the domain rule.
    status, location, body = await _post_form(
        admin,
        "/management/persons/new",
        _form(
            admin,
            email="carol@acme.test",
            name="Carol",
            portal_access="default",
            group_ids=suite.portal_group,
        ),
    )
    assert status == 303, body
    carol = location.rsplit("/", 1)[1].split("?")[0]
    status, detail = await admin.get(f"{API}/persons/{carol}")
    assert detail["person"]["portal_access"] is True
    assert detail["person"]["group_ids"] == [suite.portal_group]

    status, location, body = await _post_form(
        admin,
        "/management/persons/new",
        _form(admin, email="dave@elsewhere.test", name="Dave", portal_access="default"),
    )
    assert status == 303, body
    dave = location.rsplit("/", 1)[1].split("?")[0]
    status, detail = await admin.get(f"{API}/persons/{dave}")
    assert detail["person"]["portal_access"] is False

    # Explicitly on, login name empty: never an error.
    status, location, body = await _post_form(
        admin,
        "/management/persons/new",
        _form(admin, email="erin@elsewhere.test", name="Erin", portal_access="on", login_name=""),
    )
    assert status == 303, body

    # A bad e-mail re-renders the form with the error next to the field and the hint for it.
    status, _, body = await _post_form(
        admin,
        "/management/persons/new",
        _form(admin, email="not-an-email@", name="X", portal_access="default"),
    )
    assert status == 422
    assert 'aria-invalid="true"' in body and 'id="email-error"' in body

    status, html = await admin.get(f"/management/persons/{carol}")
    assert status == 200
    assert "default for @acme.test: on" in html
    assert "Never" in html  # last portal sign-in
    assert "Portal Users" in html and "Ticket:create" in html

    # Edit through the page: portal access on, login name empty.
    status, location, body = await _post_form(
        admin,
        f"/management/persons/{dave}",
        _form(
            admin,
            email="dave@elsewhere.test",
            name="Dave D",
            login_name="",
            portal_access="1",
            active_shown="1",
            active="1",
            weekly_digest="1",
        ),
    )
    assert status == 303, body
    status, detail = await admin.get(f"{API}/persons/{dave}")
    person = detail["person"]
    assert (person["name"], person["portal_access"], person["login_name"]) == ("Dave D", True, None)
    assert person["notifications"]["weekly_digest"] is True

    # Deactivate, reactivate, grant and revoke a role, join a group: all through forms.
    status, _, body = await _post_form(
        admin, f"/management/persons/{dave}/active", _form(admin, active="0")
    )
    assert status == 303, body
    status, detail = await admin.get(f"{API}/persons/{dave}")
    assert detail["person"]["active"] is False
    status, _, _ = await _post_form(
        admin, f"/management/persons/{dave}/active", _form(admin, active="1")
    )
    assert status == 303
    status, roles = await admin.get(f"{API}/roles")
    portal_role = next(r for r in roles["items"] if r["name"] == "Portal User")
    status, _, body = await _post_form(
        admin, f"/management/persons/{dave}/roles", _form(admin, role_id=portal_role["id"])
    )
    assert status == 303, body
    status, html = await admin.get(f"/management/persons/{dave}")
    assert f"/roles/{portal_role['id']}/revoke" in html
    status, _, _ = await _post_form(
        admin, f"/management/persons/{dave}/roles/{portal_role['id']}/revoke", _form(admin)
    )
    assert status == 303
    status, _, _ = await _post_form(
        admin, f"/management/persons/{dave}/groups", _form(admin, group_id=suite.portal_group)
    )
    assert status == 303
    status, detail = await admin.get(f"{API}/persons/{dave}")
    assert detail["person"]["role_ids"] == [] and detail["person"]["group_ids"] == [
        suite.portal_group
    ]

    # Set a password for Dave through the page; he can sign in with it.
    status, _, body = await _post_form(
        admin,
        f"/management/persons/{dave}/password",
        _form(
            admin, password="a brand new passphrase 7", confirm_password="a brand new passphrase 7"
        ),
    )
    assert status == 303, body
    login = await suite.auth.Login(
        auth_pb2.LoginRequest(
            workspace_id=suite.ws,
            email="dave@elsewhere.test",
            password="a brand new passphrase 7",
            surface="portal",
        )
    )
    assert login.status == "ok"


async def test_persons_self_deactivation_is_refused_and_shown(suite: Suite) -> None:
    admin = await suite.admin()
    status, body = await admin.patch(f"{API}/persons/{suite.admin_id}", json={"active": False})
    assert status == 409, body
    status, _, html = await _post_form(
        admin, f"/management/persons/{suite.admin_id}/active", _form(admin, active="0")
    )
    assert status == 409 and "cannot deactivate yourself" in html


# -- portal usage ---------------------------------------------------------------------------


async def test_portal_usage_finds_unused_accounts(suite: Suite) -> None:
    admin = await suite.admin()
    await suite.person("user@acme.test", "Regular User")
    await suite.person("test@acme.test", "Test Account")
    await suite.portal_client("user@acme.test")  # a portal sign-in is recorded

    status, everyone = await admin.get(f"{API}/portal-usage")
    assert status == 200
    emails = {p["email"] for p in everyone["items"]}
    assert {"user@acme.test", "test@acme.test"} <= emails
    signed_in = next(p for p in everyone["items"] if p["email"] == "user@acme.test")
    assert signed_in["last_portal_login_at"]

    status, never = await admin.get(f"{API}/portal-usage?filter=never")
    assert status == 200
    never_emails = {p["email"] for p in never["items"]}
    assert "test@acme.test" in never_emails and "user@acme.test" not in never_emails

    status, stale = await admin.get(f"{API}/portal-usage?filter=stale&stale_days=30")
    assert status == 200
    assert "user@acme.test" not in {p["email"] for p in stale["items"]}
    status, bad = await admin.get(f"{API}/portal-usage?filter=stale&stale_days=0")
    assert status == 422 and "stale_days" in bad["error"]["fields"]

    status, html = await admin.get("/management/portal-usage?filter=never")
    assert status == 200 and "Test Account" in html and "Regular User" not in html
    status, text = await admin.get("/management/portal-usage.csv?filter=never")
    assert status == 200
    assert text.splitlines()[0] == "email,name,login_name,active,created_at,last_portal_login_at"
    assert "test@acme.test,Test Account" in text and "user@acme.test" not in text


# -- roles and groups -----------------------------------------------------------------------


async def test_roles_catalog_unknown_permission_delete_rules(suite: Suite) -> None:
    admin = await suite.admin()
    status, catalog = await admin.get(f"{API}/permissions")
    assert status == 200 and "Person:manage" in catalog["items"]

    status, bad = await admin.post(
        f"{API}/roles", json={"name": "Bad", "permissions": ["Ticket:read", "Ticket:fly"]}
    )
    assert status == 422
    assert "Ticket:fly" in bad["error"]["fields"]["permissions"]

    status, role = await admin.post(
        f"{API}/roles", json={"name": "Helpdesk", "permissions": ["Ticket:manage"]}
    )
    assert status == 201, role
    status, role = await admin.patch(
        f"{API}/roles/{role['id']}",
        json={"permissions": ["Ticket:manage", "Person:read"], "description": "First line"},
    )
    assert status == 200 and set(role["permissions"]) == {"Ticket:manage", "Person:read"}
    status, got = await admin.get(f"{API}/roles/{role['id']}")
    assert status == 200 and got["description"] == "First line"

    bob = await suite.person("bob@acme.test", "Bob")
    await admin.post(f"{API}/persons/{bob}/roles", json={"role_id": role["id"]})
    status, listed = await admin.get(f"{API}/roles")
    assert next(r for r in listed["items"] if r["id"] == role["id"])["assigned_count"] == 1

    status, refused = await admin.delete(f"{API}/roles/{role['id']}")
    assert status == 409, refused
    # The page says so and offers "force".
    status, _, html = await _post_form(
        admin, f"/management/roles/{role['id']}/delete", _form(admin)
    )
    assert status == 409 and 'name="force"' in html
    status, _, _ = await _post_form(
        admin, f"/management/roles/{role['id']}/delete", _form(admin, force="1")
    )
    assert status == 303
    status, _ = await admin.get(f"{API}/roles/{role['id']}")
    assert status == 404

    builtin = next(r for r in listed["items"] if r["builtin"])
    status, refused = await admin.delete(f"{API}/roles/{builtin['id']}?force=true")
    assert status == 409
    status, html = await admin.get(f"/management/roles/{builtin['id']}")
    assert status == 200 and "built-in role: it can be edited but not deleted" in html

    # Create and edit through forms with permission checkboxes.
    status, location, body = await _post_form(
        admin,
        "/management/roles",
        [
            ("csrf_token", admin.csrf),
            ("name", "Auditor"),
            ("permissions", "Audit:read"),
            ("permissions", "Person:read"),
        ],
    )
    assert status == 303, body
    auditor = location.rsplit("/", 1)[1].split("?")[0]
    status, got = await admin.get(f"{API}/roles/{auditor}")
    assert set(got["permissions"]) == {"Audit:read", "Person:read"}
    status, _, body = await _post_form(
        admin,
        f"/management/roles/{auditor}",
        [("csrf_token", admin.csrf), ("name", "Auditor"), ("permissions", "Audit:read")],
    )
    assert status == 303, body
    status, got = await admin.get(f"{API}/roles/{auditor}")
    assert got["permissions"] == ["Audit:read"]


async def test_groups_members_and_builtins(suite: Suite) -> None:
    admin = await suite.admin()
    status, roles = await admin.get(f"{API}/roles")
    portal_role = next(r for r in roles["items"] if r["name"] == "Portal User")
    status, group = await admin.post(
        f"{API}/groups",
        json={"name": "Suppliers", "description": "External", "role_ids": [portal_role["id"]]},
    )
    assert status == 201, group
    zed = await suite.person("zed@supplier.test", "Zed", groups=[])

    status, with_member = await admin.post(
        f"{API}/groups/{group['id']}/members", json={"person_id": zed}
    )
    assert status == 201 and with_member["member_count"] == 1
    status, detail = await admin.get(f"{API}/persons/{zed}")
    assert "Ticket:create" in detail["effective_permissions"]
    status, html = await admin.get(f"/management/groups/{group['id']}")
    assert status == 200 and "zed@supplier.test" in html

    status, without = await admin.delete(f"{API}/groups/{group['id']}/members/{zed}")
    assert status == 200 and without["member_count"] == 0
    status, detail = await admin.get(f"{API}/persons/{zed}")
    assert "Ticket:create" not in detail["effective_permissions"]

    # Members by e-mail through the page.
    status, _, body = await _post_form(
        admin, f"/management/groups/{group['id']}/members", _form(admin, person="zed@supplier.test")
    )
    assert status == 303, body
    status, _, body = await _post_form(
        admin, f"/management/groups/{group['id']}/members", _form(admin, person="nobody@x.test")
    )
    assert status == 422 and "no such person" in body
    status, _, _ = await _post_form(
        admin, f"/management/groups/{group['id']}/members/{zed}/remove", _form(admin)
    )
    assert status == 303

    status, patched = await admin.patch(
        f"{API}/groups/{group['id']}", json={"name": "Vendors", "role_ids": []}
    )
    assert status == 200 and (patched["name"], patched["role_ids"]) == ("Vendors", [])
    status, _ = await admin.delete(f"{API}/groups/{suite.portal_group}")
    assert status == 409
    status, html = await admin.get(f"/management/groups/{suite.portal_group}")
    assert "built-in group: it can be edited but not deleted" in html
    status, _, _ = await _post_form(admin, f"/management/groups/{group['id']}/delete", _form(admin))
    assert status == 303
    status, _ = await admin.get(f"{API}/groups/{group['id']}")
    assert status == 404


# -- isolation, permissions, CSRF, tokens ---------------------------------------------------


async def test_other_workspace_ids_are_404(suite: Suite) -> None:
    other = await suite.directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="globex", name="Globex", admin_email="boss@globex.test", admin_name="Boss"
        )
    )
    gsys = common_pb2.Caller(workspace_id=other.workspace.id)
    role = await suite.directory.CreateRole(
        directory_pb2.CreateRoleRequest(caller=gsys, name="G role", permissions=["Ticket:read"])
    )
    group = await suite.directory.CreateGroup(
        directory_pb2.CreateGroupRequest(caller=gsys, name="G group")
    )
    person = other.admin.id
    admin = await suite.admin()
    status, acme_roles = await admin.get(f"{API}/roles")
    acme_role = acme_roles["items"][0]["id"]

    for method, path, body in [
        ("GET", f"{API}/persons/{person}", None),
        ("PATCH", f"{API}/persons/{person}", {"name": "Hacked"}),
        ("POST", f"{API}/persons/{person}/roles", {"role_id": acme_role}),
        ("POST", f"{API}/persons/{suite.admin_id}/roles", {"role_id": role.id}),
        ("DELETE", f"{API}/persons/{person}/roles/{acme_role}", None),
        ("GET", f"{API}/roles/{role.id}", None),
        ("PATCH", f"{API}/roles/{role.id}", {"name": "Hacked"}),
        ("DELETE", f"{API}/roles/{role.id}?force=true", None),
        ("GET", f"{API}/groups/{group.id}", None),
        ("PATCH", f"{API}/groups/{group.id}", {"name": "Hacked"}),
        ("DELETE", f"{API}/groups/{group.id}", None),
        ("POST", f"{API}/groups/{group.id}/members", {"person_id": suite.admin_id}),
        ("POST", f"{API}/groups/{suite.portal_group}/members", {"person_id": person}),
        ("GET", f"{API}/persons/import/{group.id}", None),
        ("GET", "/management/persons/" + person, None),
        ("GET", "/management/roles/" + role.id, None),
        ("GET", "/management/groups/" + group.id, None),
        ("GET", f"{API}/persons/not-a-uuid", None),
    ]:
        status, answer = await admin.request(method, path, json=body)
        assert status == 404, (method, path, answer)
    status, _, _ = await _post_form(
        admin,
        f"/management/persons/{person}/password",
        _form(admin, password="whatever pass 123", confirm_password="whatever pass 123"),
    )
    assert status == 404
    still = await suite.directory.GetPerson(
        directory_pb2.GetPersonRequest(caller=gsys, person_id=person)
    )
    assert still.name == "Boss"


async def test_portal_user_forbidden_csrf_and_bearer_token(suite: Suite) -> None:
    await suite.person("pat@acme.test", "Pat Portal")
    pat = await suite.portal_client("pat@acme.test")
    status, body = await pat.get(f"{API}/persons")
    assert status == 403, body
    status, _ = await pat.get("/management/persons")
    assert status == 403

    admin = await suite.admin()
    # A form post without the CSRF field (and no header) is refused.
    status, _, body = await _post_form(
        admin, "/management/persons/new", {"email": "x@acme.test", "name": "X"}
    )
    assert status == 403 and "CSRF" in body
    status, body = await admin.post(
        f"{API}/persons", json={"email": "x@acme.test", "name": "X"}, headers={"X-CSRF-Token": "no"}
    )
    assert status == 403 and body["error"]["code"] == "csrf"

    status, token = await admin.post(
        f"{API}/api-tokens", json={"name": "directory sync", "expires_in_days": 7}
    )
    assert status == 201, token
    script = await GatewayClient.open(suite.base, "acme")
    suite.clients.append(script)
    bearer = {"Authorization": f"Bearer {token['secret']}"}
    status, listed = await script.get(f"{API}/persons", headers=bearer)
    assert status == 200 and listed["total"] >= 2
    status, created = await script.post(
        f"{API}/persons", json={"email": "synced@acme.test", "name": "Synced"}, headers=bearer
    )
    assert status == 201, created
    status, _ = await script.get(f"{API}/persons")
    assert status == 401


# -- import ---------------------------------------------------------------------------------


async def test_import_dry_run_real_run_progress_and_errors(suite: Suite) -> None:
    admin = await suite.admin()
    await suite.person("existing@acme.test", "Existing")
    rows = ["email,name,login_name,portal_access,active,groups"]
    rows += [f"new{i}@acme.test,New {i},,true,true,Portal Users" for i in range(30)]
    rows += [
        "existing@acme.test,Existing Renamed,,,,",
        "broken-email,Nobody,,,,",
        "new0@acme.test,Duplicate,,,,",
        "ghost@acme.test,Ghost,,,,No Such Group",
    ]
    content = ("\n".join(rows) + "\n").encode()

    # Dry run through the JSON API (raw body): a report, nothing written.
    status, report = await admin.post(
        f"{API}/persons/import?format=csv&dry_run=true",
        data=content,
        headers={"Content-Type": "text/csv"},
    )
    assert status == 200, report
    assert (report["status"], report["dry_run"]) == ("done", True)
    assert (report["created"], report["updated"], report["failed"]) == (30, 1, 3)
    errors = {(e["line"], e["field"]) for e in report["errors"]}
    assert (33, "email") in errors and (34, "email") in errors and (35, "groups") in errors
    status, none_yet = await admin.get(f"{API}/persons?q=new1")
    assert none_yet["total"] == 0

    # Dry run through the page: the report is shown with line and field.
    form = aiohttp.FormData()
    form.add_field("csrf_token", admin.csrf)
    form.add_field("dry_run", "1")
    form.add_field("file", content, filename="people.csv", content_type="text/csv")
    status, _, html = await _post_form(admin, "/management/persons/import", form)
    assert status == 200, html
    assert "Dry run: nothing was changed" in html and "No Such Group" in html

    # A real run through the page: a job page with a progress bar, then done.
    form = aiohttp.FormData()
    form.add_field("csrf_token", admin.csrf)
    form.add_field("file", content, filename="people.csv", content_type="text/csv")
    status, location, html = await _post_form(admin, "/management/persons/import", form)
    assert status == 303, html
    job_id = location.rsplit("/", 1)[1]
    status, page = await admin.get(location)
    assert status == 200 and "<progress" in page and 'max="34"' in page
    job = await _wait_for_job(admin, job_id)
    assert (job["rows_done"], job["total_rows"]) == (34, 34)
    assert (job["created"], job["updated"], job["failed"]) == (30, 1, 3)
    status, page = await admin.get(location)
    assert 'value="34"' in page and "http-equiv" not in page and "No Such Group" in page
    status, found = await admin.get(f"{API}/persons?q=new1")
    assert found["total"] == 11  # new1, new10..new19
    status, renamed = await admin.get(f"{API}/persons?q=existing")
    assert renamed["items"][0]["name"] == "Existing Renamed"

    # JSON by multipart, a real run via the API, polled to the end.
    form = aiohttp.FormData()
    form.add_field(
        "file",
        json.dumps([{"email": "json1@acme.test", "name": "Json One", "portal_access": False}]),
        filename="people.json",
        content_type="application/json",
    )
    status, started = await admin.post(f"{API}/persons/import", data=form)
    assert status == 202, started
    job = await _wait_for_job(admin, started["id"])
    assert job["created"] == 1

    # A malformed file and a wrong encoding: clear errors, nothing lost.
    status, bad = await admin.post(
        f"{API}/persons/import?format=json",
        data=b"[{",
        headers={"Content-Type": "application/json"},
    )
    assert status == 422 and "content" in bad["error"]["fields"], bad
    status, bad = await admin.post(
        f"{API}/persons/import?format=csv",
        data="email,name\nzoë@acme.test,Zoë\n".encode("latin-1"),
        headers={"Content-Type": "text/csv"},
    )
    assert status == 422 and "UTF-8" in bad["error"]["message"], bad


async def test_an_imported_person_with_portal_access_can_use_the_portal(suite: Suite) -> None:
    """Imported persons join Portal Users like persons made in the form: access that opens
    nothing was the first wave's most reported surprise ("nothing in the portal for you")."""
    admin = await suite.admin()
    csv_text = "email,name,portal_access\nimp@acme.test,Imp Orted,true\n"
    status, started = await admin.post(
        f"{API}/persons/import?format=csv",
        data=csv_text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert status == 202, started
    job = await _wait_for_job(admin, started["id"])
    assert job["created"] == 1, job
    status, found = await admin.get(f"{API}/persons?q=imp@acme.test")
    (person,) = found["items"]
    assert person["group_ids"] == [suite.portal_group], person
    await suite.auth.SetPassword(
        auth_pb2.SetPasswordRequest(caller=suite.system, person_id=person["id"], password=PASSWORD)
    )
    imp = await suite.portal_client("imp@acme.test")
    status, body = await imp.get("/api/v1/tickets")
    assert status == 200, body
    status, made = await imp.post(
        "/api/v1/tickets",
        json={
            "type": "incident",
            "title": "Printer",
            "description": "It jams.",
            "impact": "low",
            "urgency": "low",
        },
    )
    assert status == 201, made


async def test_import_over_50_mb_is_a_clear_413(suite: Suite) -> None:
    admin = await suite.admin()
    big = b"email,name\n" + b"x" * (50 * 1024 * 1024)
    status, body = await admin.post(
        f"{API}/persons/import?format=csv&dry_run=true",
        data=big,
        headers={"Content-Type": "text/csv"},
    )
    assert status == 413, body
    assert body["error"]["code"] == "too_large" and "50 MB" in body["error"]["message"]


async def _wait_for_job(client: GatewayClient, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        status, job = await client.get(f"{API}/persons/import/{job_id}")
        assert status == 200, job
        if job["status"] in ("done", "failed"):
            assert job["status"] == "done", job
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


# -- portal settings and audit --------------------------------------------------------------


async def test_portal_settings_section_off_hides_it_from_the_portal(suite: Suite) -> None:
    await suite.person("pat@acme.test", "Pat Portal")
    pat = await suite.portal_client("pat@acme.test")
    status, _ = await pat.get("/tickets")
    assert status == 200
    status, _ = await pat.get("/api/v1/tickets")
    assert status == 200

    admin = await suite.admin()
    status, html = await admin.get("/management/portal-settings")
    assert status == 200 and 'id="tickets_enabled"' in html
    # Tickets off through the form; the rest as before, with ordered domain rules.
    status, _, body = await _post_form(
        admin,
        "/management/portal-settings",
        _form(
            admin,
            issues_enabled="1",
            control_tests_enabled="1",
            self_registration="domains",
            registration_domains="acme.test\n@partner.test",
            portal_access_default="off",
            **{
                "rule-0-domain": "partner.test",
                "rule-0-access": "off",
                "rule-0-order": "2",
                "rule-1-domain": "acme.test",
                "rule-1-access": "on",
                "rule-1-order": "1",
                "rule-2-domain": "",
                "rule-2-access": "on",
                "rule-2-order": "3",
            },
        ),
    )
    assert status == 303, body
    status, settings = await admin.get(f"{API}/portal-settings")
    assert settings["tickets_enabled"] is False and settings["issues_enabled"] is True
    assert settings["registration_domains"] == ["acme.test", "partner.test"]
    assert settings["portal_access_rules"] == [
        {"domain": "acme.test", "portal_access": True},
        {"domain": "partner.test", "portal_access": False},
    ]
    assert settings["self_registration"] == "domains"

    status, _ = await pat.get("/tickets")
    assert status == 404
    status, _ = await pat.get("/api/v1/tickets")
    assert status == 404

    status, settings = await admin.patch(f"{API}/portal-settings", json={"tickets_enabled": True})
    assert status == 200 and settings["tickets_enabled"] is True
    status, _ = await pat.get("/tickets")
    assert status == 200
    status, bad = await admin.patch(f"{API}/portal-settings", json={"self_registration": "maybe"})
    assert status == 422 and "self_registration" in bad["error"]["fields"]


async def test_audit_trail_lists_changes_with_before_and_after(suite: Suite) -> None:
    admin = await suite.admin()
    status, created = await admin.post(
        f"{API}/persons", json={"email": "audited@acme.test", "name": "Before"}
    )
    await admin.patch(f"{API}/persons/{created['id']}", json={"name": "After"})
    status, trail = await admin.get(f"{API}/audit?object_type=person&object_id={created['id']}")
    assert status == 200, trail
    actions = [e["action"] for e in trail["items"]]
    assert "person.updated" in actions
    updated = next(e for e in trail["items"] if e["action"] == "person.updated")
    assert updated["actor_id"] == suite.admin_id
    assert updated["before"]["name"] == "Before" and updated["after"]["name"] == "After"

    status, page1 = await admin.get(f"{API}/audit?page_size=1")
    assert status == 200 and len(page1["items"]) == 1 and page1["next_page_token"]
    status, html = await admin.get(
        f"/management/audit?object_type=person&object_id={created['id']}"
    )
    assert status == 200 and "person.updated" in html and "Ada Admin" in html
    assert "&#34;After&#34;" in html or '"After"' in html


async def test_every_management_page_renders(suite: Suite) -> None:
    admin = await suite.admin()
    status, role = await admin.post(f"{API}/roles", json={"name": "R", "permissions": []})
    status, group = await admin.post(f"{API}/groups", json={"name": "G"})
    status, job = await admin.post(
        f"{API}/persons/import?format=csv&dry_run=true",
        data=b"email,name\na@acme.test,A\n",
        headers={"Content-Type": "text/csv"},
    )
    assert status == 200, job
    pages = [
        "/management",
        "/management/persons",
        "/management/persons/new",
        f"/management/persons/{suite.admin_id}",
        "/management/persons/import",
        f"/management/persons/import/{job['id']}",
        "/management/portal-usage",
        "/management/roles",
        f"/management/roles/{role['id']}",
        "/management/groups",
        f"/management/groups/{group['id']}",
        "/management/portal-settings",
        "/management/audit",
    ]
    for path in pages:
        status, html = await admin.get(path)
        assert status == 200, (path, html[:500])
        assert "<h1>" in html or "<h1 " in html
        assert "<script>" not in html and " style=" not in html
    status, html = await admin.get("/management")
    for label in ("Persons", "Portal usage", "Import", "Roles", "Groups", "Portal settings"):
        assert label in html
    # Not signed in: pages redirect to the sign-in page.
    anon = await GatewayClient.open(suite.base, "acme")
    suite.clients.append(anon)
    status, _ = await anon.get("/management/persons")
    assert status == 303
    status, _ = await anon.get(f"{API}/persons")
    assert status == 401


async def test_each_route_needs_its_own_permission(suite: Suite) -> None:
    """A reader (Person:read only) may list and view persons, nothing else of the directory."""
    reader_role = await suite.directory.CreateRole(
        directory_pb2.CreateRoleRequest(
            caller=suite.system, name="Person reader", permissions=["Person:read"]
        )
    )
    reader_id = await suite.person("reader@acme.test", "Rita Reader", groups=[])
    await suite.directory.GrantRole(
        directory_pb2.PersonRoleRequest(
            caller=suite.system, person_id=reader_id, role_id=reader_role.id
        )
    )
    rita = await GatewayClient.open(suite.base, "acme")
    suite.clients.append(rita)
    status, body = await rita.login("reader@acme.test", PASSWORD, surface="management")
    assert status == 200, body

    for path in (f"{API}/persons", f"{API}/persons/{reader_id}", f"{API}/portal-usage"):
        status, _ = await rita.get(path)
        assert status == 200, path
    status, html = await rita.get(f"/management/persons/{suite.admin_id}")
    assert status == 200 and "Ada Admin" in html
    assert "Set password" not in html and "Grant role" not in html
    status, html = await rita.get("/management/persons")
    assert status == 200 and "New person" not in html

    for method, path, body in [
        ("POST", f"{API}/persons", {"email": "n@acme.test", "name": "N"}),
        ("PATCH", f"{API}/persons/{suite.admin_id}", {"name": "Hacked"}),
        ("POST", f"{API}/persons/{reader_id}/roles", {"role_id": reader_role.id}),
        ("POST", f"{API}/persons/import?format=csv&dry_run=true", None),
        ("GET", f"{API}/roles", None),
        ("GET", f"{API}/permissions", None),
        ("GET", f"{API}/groups", None),
        ("GET", f"{API}/portal-settings", None),
        ("PATCH", f"{API}/portal-settings", {"tickets_enabled": False}),
        ("GET", f"{API}/audit", None),
        ("GET", "/management/persons/new", None),
        ("GET", "/management/persons/import", None),
        ("GET", "/management/roles", None),
        ("GET", "/management/groups", None),
        ("GET", "/management/portal-settings", None),
        ("GET", "/management/audit", None),
    ]:
        status, answer = await rita.request(method, path, json=body)
        assert status == 403, (method, path, answer)
    status, admin_detail = await rita.get(f"{API}/persons/{suite.admin_id}")
    assert admin_detail["person"]["name"] == "Ada Admin"


async def test_the_navigation_marks_only_the_page_it_is_on(suite: Suite) -> None:
    admin = await suite.admin()
    status, page = await admin.get("/management/persons/import")
    assert status == 200
    current = re.findall(r'<a href="([^"]+)" aria-current="page">', page)
    assert current == ["/management/persons/import"], current
    status, page = await admin.get("/management/persons")
    assert re.findall(r'<a href="([^"]+)" aria-current="page">', page) == ["/management/persons"]


async def test_granting_the_administrators_group_on_the_form_is_confirmed(suite: Suite) -> None:
    admin = await suite.admin()
    status, html = await admin.get("/management/persons/new")
    assert status == 200
    boxes = re.findall(r'name="group_ids" value="([^"]+)"', html)
    assert boxes[-1] == suite.admin_group  # last, and marked
    assert "(full access to the management console)" in html
    fields = dict(email="adam@acme.test", name="Adam", portal_access="on")
    form = MultiDict(_form(admin, **fields).items())
    form.add("group_ids", suite.portal_group)
    form.add("group_ids", suite.admin_group)
    status, _, body = await _post_form(admin, "/management/persons/new", form)
    assert status == 422 and "Yes, make this person an administrator" in body
    status, found = await admin.get(f"{API}/persons?q=adam@acme.test")
    assert found["items"] == []  # nothing created by the stray tick

    form.add("confirm_admin", "1")
    status, location, body = await _post_form(admin, "/management/persons/new", form)
    assert status == 303, body
    adam = location.rsplit("/", 1)[1].split("?")[0]
    status, detail = await admin.get(f"{API}/persons/{adam}")
    assert sorted(detail["person"]["group_ids"]) == sorted([suite.portal_group, suite.admin_group])


async def test_a_checked_import_is_applied_without_choosing_the_file_again(suite: Suite) -> None:
    admin = await suite.admin()
    form = aiohttp.FormData()
    form.add_field("csrf_token", admin.csrf)
    form.add_field("dry_run", "1")
    form.add_field(
        "file",
        b"email,name\nchecked1@acme.test,Checked One\nchecked2@acme.test,Checked Two\nbad,\n",
        filename="people.csv",
        content_type="text/csv",
    )
    status, _, page = await _post_form(admin, "/management/persons/import", form)
    assert status == 200 and "Dry run: nothing was changed" in page
    match = re.search(r'action="/management/persons/import/([0-9a-f-]+)/apply"', page)
    assert match, page
    checked = match.group(1)
    status, found = await admin.get(f"{API}/persons?q=checked")
    assert found["items"] == []  # the dry run changed nothing

    status, location, body = await _post_form(
        admin, f"/management/persons/import/{checked}/apply", _form(admin)
    )
    assert status == 303, body
    job = await _wait_for_job(admin, location.rsplit("/", 1)[1])
    assert (job["created"], job["failed"], job["dry_run"]) == (2, 1, False), job
    status, found = await admin.get(f"{API}/persons?q=checked")
    assert sorted(p["email"] for p in found["items"]) == [
        "checked1@acme.test",
        "checked2@acme.test",
    ]

    # Once only (the SQL is scoped to the caller's workspace); a made-up id finds nothing.
    status, again = await admin.post(f"{API}/persons/import/{checked}/apply")
    assert status == 409 and "check the file again" in again["error"]["message"], again
    status, missing = await admin.post(f"{API}/persons/import/{uuid.uuid4()}/apply")
    assert status == 404, missing
