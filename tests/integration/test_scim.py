"""SCIM 2.0 provisioning through a real gateway, directory and auth (real PostgreSQL and NATS):
the scim2-tester suite, the PATCH shapes Entra ID and Okta send, tenant isolation, tokens.

Over 600 lines: the SCIM protocol's cases share one provider fixture and scim2-tester run; split Users/Groups in a later change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest
from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    directory_pb2,
    directory_pb2_grpc,
    scim_pb2,
    scim_pb2_grpc,
)
from yarl import URL

from tests.gateway_client import GatewayClient
from tests.scim_client import (
    ENTERPRISE,
    FRONTDESK,
    GROUP_SCHEMA,
    USER_SCHEMA,
    Scim,
    patch_op,
    sync_client,
)
from tests.signing import channel
from tests.stack import Stack

PASSWORD = "correct horse battery staple 42"


@dataclass
class ScimSuite:
    base: str
    stack: Stack
    directory: directory_pb2_grpc.DirectoryServiceStub
    scim_admin: scim_pb2_grpc.ScimServiceStub
    http: aiohttp.ClientSession

    async def workspace(self, slug: str) -> tuple[directory_pb2.CreateWorkspaceResponse, Scim]:
        created = await self.directory.CreateWorkspace(
            directory_pb2.CreateWorkspaceRequest(
                slug=slug, name=slug.title(), admin_email=f"admin@{slug}.test", admin_name="Ada"
            )
        )
        token = await self.scim_admin.CreateScimToken(
            scim_pb2.CreateScimTokenRequest(
                caller=common_pb2.Caller(workspace_id=created.workspace.id), name="Entra ID"
            )
        )
        return created, Scim(self.base, slug, token.secret, self.http)


@pytest.fixture
async def suite(stack: Stack) -> AsyncIterator[ScimSuite]:
    await stack.start("directory")
    await stack.start("auth")
    base = await stack.start_gateway(FRONTDESK_SCIM_RATE="1000", FRONTDESK_SCIM_BURST="1000")
    ch = channel(stack.addresses["directory"])
    stack.on_close(ch.close)
    http = aiohttp.ClientSession()
    stack.on_close(http.close)
    yield ScimSuite(
        base,
        stack,
        directory_pb2_grpc.DirectoryServiceStub(ch),
        scim_pb2_grpc.ScimServiceStub(ch),
        http,
    )


@pytest.mark.timeout(900)  # ~40 s on an idle 2-core machine; hundreds of requests
async def test_scim2_tester_finds_no_failure(suite: ScimSuite) -> None:
    """The scim2-tester package (discovery, CRUD, PATCH add/remove/replace on every attribute,
    filters) against the real server reports no error."""
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server

    _, scim = await suite.workspace("acme")
    http = sync_client(suite.base, "acme", scim.token)
    try:
        client = SyncSCIMClient(http)
        results = await asyncio.to_thread(check_server, client)
    finally:
        http.close()
    failed = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    report = "\n".join(f"{r.resource_type} {r.title}: {r.reason}" for r in failed)
    assert not failed, f"{len(failed)} of {len(results)} checks failed:\n{report}"
    assert sum(r.status == Status.SUCCESS for r in results) > 50


# -- helpers ----------------------------------------------------------------------------------


def user(user_name: str, email: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": user_name, **extra}
    if email is not None:
        body["emails"] = [{"value": email, "type": "work", "primary": True}]
    return body


async def person(suite: ScimSuite, ws: str, person_id: str) -> directory_pb2.Person:
    return await suite.directory.GetPerson(
        directory_pb2.GetPersonRequest(
            caller=common_pb2.Caller(workspace_id=ws), person_id=person_id
        )
    )


async def group_ids(suite: ScimSuite, ws: str) -> dict[str, str]:
    listed = await suite.directory.ListGroups(
        directory_pb2.ListGroupsRequest(caller=common_pb2.Caller(workspace_id=ws))
    )
    return {g.name: g.id for g in listed.groups}


async def outbox_kinds(suite: ScimSuite) -> list[str]:
    conn = await suite.stack.connect("directory")
    rows = await conn.fetch("select subject from outbox order by id")
    return [r["subject"].rsplit(".", 1)[-1] for r in rows]


# -- users --------------------------------------------------------------------------------------


async def test_provisioned_person_gets_defaults_joins_portal_users_and_needs_no_login_name(
    suite: ScimSuite,
) -> None:
    created, scim = await suite.workspace("acme")
    ws = created.workspace.id
    await suite.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=common_pb2.Caller(workspace_id=ws),
            portal_access_default=False,
            set_portal_access_rules=True,
            portal_access_rules=[directory_pb2.DomainRule(domain="acme.com", portal_access=True)],
        )
    )
    status, bob, headers = await scim.post(
        "/Users", user("bob@acme.com", "bob@acme.com", displayName="Bob")
    )
    assert status == 201, bob
    assert headers["Location"].endswith(f"/scim/v2/Users/{bob['id']}")
    assert headers["Content-Type"].startswith("application/scim+json")
    assert (await person(suite, ws, bob["id"])).portal_access is True  # the acme.com rule
    status, carol, _ = await scim.post("/Users", user("carol", "carol@other.com"))
    assert status == 201
    assert (await person(suite, ws, carol["id"])).portal_access is False  # the default
    # Portal access asked for explicitly, and no login name anywhere: never refused.
    status, dave, _ = await scim.post(
        "/Users",
        user(
            "dave",
            "dave@other.com",
            **{FRONTDESK: {"portalAccess": True}},
            schemas=[USER_SCHEMA, FRONTDESK],
        ),
    )
    assert status == 201, dave
    stored = await person(suite, ws, dave["id"])
    assert stored.portal_access is True and stored.login_name == "" and stored.active
    assert stored.email == "dave@other.com" and stored.name == "dave"
    portal_users = (await group_ids(suite, ws))["Portal Users"]
    assert list(stored.group_ids) == [portal_users]
    assert [g["value"] for g in dave["groups"]] == [portal_users]
    # A userName that is no e-mail address and no emails at all: still provisioned.
    status, erin, _ = await scim.post("/Users", user("erin"))
    assert status == 201, erin
    assert "emails" not in erin
    kinds = await outbox_kinds(suite)
    assert kinds.count("person_created") == 5 and kinds.count("group_member_added") >= 4


async def test_entra_id_patch_shapes(suite: ScimSuite) -> None:
    """What Microsoft Entra ID sends: capitalised ops, "False" as a string, filtered value paths
    for addresses that do not exist yet, the enterprise extension by URN, remove with a value."""
    created, scim = await suite.workspace("acme")
    ws = created.workspace.id
    _, ann, _ = await scim.post(
        "/Users",
        user("ann@contoso.com", "ann@contoso.com", externalId="e-1", displayName="Ann"),
    )
    ops = patch_op(
        {"op": "Replace", "path": "displayName", "value": "Ann Lee"},
        {"op": "Add", "path": 'emails[type eq "home"].value', "value": "ann@home.example.com"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ann.lee@contoso.com"},
        {"op": "Add", "path": "name.givenName", "value": "Ann"},
        {"op": "Add", "path": "name.familyName", "value": "Lee"},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Finance"},
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": {"value": created.admin.id}},
    )
    status, patched, _ = await scim.patch(f"/Users/{ann['id']}", ops)
    assert status == 200, patched
    assert patched["displayName"] == "Ann Lee"
    assert patched["name"] == {"givenName": "Ann", "familyName": "Lee"}
    assert patched[ENTERPRISE]["department"] == "Finance"
    assert {e["type"]: e["value"] for e in patched["emails"]} == {
        "work": "ann.lee@contoso.com",
        "home": "ann@home.example.com",
    }
    stored = await person(suite, ws, ann["id"])
    assert stored.name == "Ann Lee" and stored.email == "ann.lee@contoso.com"

    status, off, _ = await scim.patch(
        f"/Users/{ann['id']}", patch_op({"op": "Replace", "path": "active", "value": "False"})
    )
    assert status == 200 and off["active"] is False
    assert (await person(suite, ws, ann["id"])).active is False
    assert "person_deactivated" in await outbox_kinds(suite)

    # Groups: add members, remove one by a filtered path and one by value (Entra's shape).
    _, bob, _ = await scim.post("/Users", user("bob@contoso.com", "bob@contoso.com"))
    status, team, _ = await scim.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Finance"}
    )
    assert status == 201, team
    status, team, _ = await scim.patch(
        f"/Groups/{team['id']}",
        patch_op(
            {"op": "Add", "path": "members", "value": [{"value": ann["id"]}, {"value": bob["id"]}]}
        ),
    )
    assert status == 200, team
    assert sorted(m["value"] for m in team["members"]) == sorted([ann["id"], bob["id"]])
    assert team["id"] in (await person(suite, ws, bob["id"])).group_ids
    status, team, _ = await scim.patch(
        f"/Groups/{team['id']}",
        patch_op({"op": "Remove", "path": f'members[value eq "{ann["id"]}"]'}),
    )
    assert status == 200 and [m["value"] for m in team["members"]] == [bob["id"]]
    status, team, _ = await scim.patch(
        f"/Groups/{team['id']}",
        patch_op({"op": "Remove", "path": "members", "value": [{"value": bob["id"]}]}),
    )
    assert status == 200 and "members" not in team, team
    assert team["id"] not in (await person(suite, ws, bob["id"])).group_ids
    kinds = await outbox_kinds(suite)
    assert kinds.count("group_member_removed") == 2


async def test_okta_patch_shapes(suite: ScimSuite) -> None:
    """What Okta sends: replace without a path (a value object), a group rename carrying the
    id, members added with a display, removed by a filtered path; and full PUTs."""
    created, scim = await suite.workspace("acme")
    ws = created.workspace.id
    _, joe, _ = await scim.post(
        "/Users",
        user(
            "joe@okta.example.com",
            "joe@okta.example.com",
            name={"givenName": "Joe", "familyName": "Doe"},
            active=True,
        ),
    )
    status, off, _ = await scim.patch(
        f"/Users/{joe['id']}", patch_op({"op": "replace", "value": {"active": False}})
    )
    assert status == 200 and off["active"] is False, off
    assert (await person(suite, ws, joe["id"])).active is False
    status, on, _ = await scim.patch(
        f"/Users/{joe['id']}", patch_op({"op": "replace", "value": {"active": True}})
    )
    assert status == 200 and on["active"] is True
    assert "person_reactivated" in await outbox_kinds(suite)
    # Okta's PUT sends the whole user back with changes.
    full = {**on, "name": {"givenName": "Joseph", "familyName": "Doe"}, "displayName": "Joseph Doe"}
    full.pop("meta")
    status, put, _ = await scim.put(f"/Users/{joe['id']}", full)
    assert status == 200 and put["displayName"] == "Joseph Doe", put
    assert (await person(suite, ws, joe["id"])).name == "Joseph Doe"

    _, grp, _ = await scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Okta Team"})
    status, grp, _ = await scim.patch(
        f"/Groups/{grp['id']}",
        patch_op({"op": "replace", "value": {"id": grp["id"], "displayName": "Okta Crew"}}),
    )
    assert status == 200 and grp["displayName"] == "Okta Crew", grp
    assert "Okta Crew" in await group_ids(suite, ws)
    status, grp, _ = await scim.patch(
        f"/Groups/{grp['id']}",
        patch_op(
            {"op": "add", "path": "members", "value": [{"value": joe["id"], "display": "Joe"}]}
        ),
    )
    assert status == 200 and [m["value"] for m in grp["members"]] == [joe["id"]], grp
    status, grp, _ = await scim.patch(
        f"/Groups/{grp['id']}",
        patch_op({"op": "remove", "path": f'members[value eq "{joe["id"]}"]'}),
    )
    assert status == 200 and "members" not in grp


async def eventually(check: Any, what: str, timeout: float = 10.0) -> None:
    """Poll `check` (async, returns bool) until true or the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_deactivation_ends_sessions_at_once_and_delete_keeps_the_person(
    suite: ScimSuite,
) -> None:
    created, scim = await suite.workspace("acme")
    ws = created.workspace.id
    _, kim, _ = await scim.post("/Users", user("kim@acme.example.com", "kim@acme.example.com"))
    auth = auth_pb2_grpc.AuthServiceStub(channel(suite.stack.addresses["auth"]))
    system = common_pb2.Caller(workspace_id=ws)
    await auth.SetPassword(
        auth_pb2.SetPasswordRequest(caller=system, person_id=kim["id"], password=PASSWORD)
    )
    client = await GatewayClient.open(suite.base, "acme")
    suite.stack.on_close(client.close)
    status, body = await client.login("kim@acme.example.com", PASSWORD)
    assert status == 200, body
    assert (await client.get("/api/v1/me"))[0] == 200

    status, _, _ = await scim.patch(
        f"/Users/{kim['id']}", patch_op({"op": "replace", "path": "active", "value": False})
    )
    assert status == 200

    async def signed_out() -> bool:
        return (await client.get("/api/v1/me"))[0] == 401

    await eventually(signed_out, "the session to end")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth.Login(
            auth_pb2.LoginRequest(
                workspace_id=ws, email="kim@acme.example.com", password=PASSWORD, surface="portal"
            )
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # DELETE: the resource is gone for SCIM (404), the person stays, deactivated.
    status, _, _ = await scim.delete(f"/Users/{kim['id']}")
    assert status == 204
    assert (await scim.get(f"/Users/{kim['id']}"))[0] == 404
    assert (await scim.delete(f"/Users/{kim['id']}"))[0] == 404
    _, listed, _ = await scim.get('/Users?filter=userName eq "kim@acme.example.com"')
    assert listed["totalResults"] == 0
    kept = await person(suite, ws, kim["id"])
    assert kept.active is False and kept.email == "kim@acme.example.com"
    # Provisioned again (a re-hire): the same person comes back, with its history.
    status, again, _ = await scim.post(
        "/Users", user("kim@acme.example.com", "kim@acme.example.com")
    )
    assert status == 201 and again["id"] == kim["id"]
    assert (await person(suite, ws, kim["id"])).active is True


async def test_tenant_isolation_and_token_scope(suite: ScimSuite) -> None:
    acme, acme_scim = await suite.workspace("acme")
    _, beta_scim = await suite.workspace("beta")
    _, ann, _ = await acme_scim.post("/Users", user("ann@acme.example.com", "ann@acme.example.com"))
    _, grp, _ = await acme_scim.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Acme only"}
    )

    # Beta's token at acme's host: refused. Acme's objects from beta's host: not found.
    status, body, headers = await acme_scim.get("/Users", token=beta_scim.token)
    assert status == 401 and body["status"] == "401", body
    assert "Bearer" in headers["WWW-Authenticate"]
    assert (await beta_scim.get(f"/Users/{ann['id']}"))[0] == 404
    assert (await beta_scim.get(f"/Groups/{grp['id']}"))[0] == 404
    status, _, _ = await beta_scim.patch(
        f"/Groups/{grp['id']}", patch_op({"op": "replace", "path": "displayName", "value": "x"})
    )
    assert status == 404
    _, listed, _ = await beta_scim.get("/Users?count=1000")
    assert [u["userName"] for u in listed["Resources"]] == ["admin@beta.test"]
    _, groups, _ = await beta_scim.get("/Groups")
    assert "Acme only" not in [g["displayName"] for g in groups["Resources"]]
    # A beta group cannot take an acme person as a member.
    status, body, _ = await beta_scim.post(
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Sneaky", "members": [{"value": ann["id"]}]},
    )
    assert status == 400 and body["scimType"] == "invalidValue", body

    # An unknown workspace host: 404 in the SCIM format, whatever the token.
    nowhere = Scim(suite.base, "nowhere", acme_scim.token, suite.http)
    status, body, _ = await nowhere.get("/Users")
    assert status == 404 and body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    # No token, a wrong one, an API token: 401. A SCIM token on the management API: 401.
    assert (await acme_scim.get("/Users", token=""))[0] == 401
    assert (await acme_scim.get("/Users", token="fdscim_not-a-token"))[0] == 401
    auth = auth_pb2_grpc.AuthServiceStub(channel(suite.stack.addresses["auth"]))
    await auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=acme.workspace.id),
            person_id=acme.admin.id,
            password=PASSWORD,
        )
    )
    session = await auth.Login(
        auth_pb2.LoginRequest(
            workspace_id=acme.workspace.id,
            email="admin@acme.test",
            password=PASSWORD,
            surface="management",
        )
    )
    api_token = await auth.CreateApiToken(
        auth_pb2.CreateApiTokenRequest(
            caller=common_pb2.Caller(
                workspace_id=acme.workspace.id,
                person_id=acme.admin.id,
                permissions=["Person:read", "Person:manage"],
            ),
            name="script",
            expires_in_days=30,
            session_token=session.session_token,
        )
    )
    assert (await acme_scim.get("/Users", token=api_token.secret))[0] == 401
    async with suite.http.get(
        f"{suite.base}/management/api/v1/persons",
        headers={"Host": acme_scim.host, "Authorization": f"Bearer {acme_scim.token}"},
    ) as resp:
        assert resp.status == 401
    # Revoked: the next call is refused.
    tokens = await suite.scim_admin.ListScimTokens(
        scim_pb2.ListScimTokensRequest(caller=common_pb2.Caller(workspace_id=acme.workspace.id))
    )
    await suite.scim_admin.RevokeScimToken(
        scim_pb2.RevokeScimTokenRequest(
            caller=common_pb2.Caller(workspace_id=acme.workspace.id), token_id=tokens.tokens[0].id
        )
    )
    assert (await acme_scim.get("/Users"))[0] == 401


async def test_filters_sorting_and_paging(suite: ScimSuite) -> None:
    _, scim = await suite.workspace("acme")
    ids = {}
    for i, (name, active) in enumerate(
        [("amy", True), ("ben", False), ("cat", True), ("dan", True), ("eve", False)]
    ):
        _, made, _ = await scim.post(
            "/Users",
            user(
                f"{name}@acme.example.com",
                f"{name}@acme.example.com",
                externalId=f"ext-{i}",
                displayName=name.title(),
                active=active,
            ),
        )
        ids[name] = made["id"]
    _, amy, _ = await scim.get(f"/Users/{ids['amy']}")
    since = amy["meta"]["lastModified"]

    async def names(query: str) -> list[str]:
        status, body, _ = await scim.get(f"/Users?{query}")
        assert status == 200, body
        return [u["userName"].split("@")[0] for u in body["Resources"]]

    assert await names('filter=userName eq "BEN@acme.example.com"') == ["ben"]
    assert await names('filter=emails co "cat@"') == ["cat"]
    assert await names('filter=emails.value sw "da"') == ["dan"]
    assert await names('filter=externalId eq "ext-4"') == ["eve"]
    assert await names('filter=externalId eq "EXT-4"') == []  # caseExact
    assert await names('filter=displayName sw "Am" and active eq true&sortBy=userName') == ["amy"]
    assert await names(
        'filter=active eq false or displayName eq "Dan"&sortBy=userName&sortOrder=descending'
    ) == ["eve", "dan", "ben"]
    assert await names(
        f'filter=externalId pr and meta.lastModified ge "{since}"&sortBy=userName'
    ) == ["amy", "ben", "cat", "dan", "eve"]
    assert await names("filter=not (externalId pr)") == ["admin"]
    assert await names(
        'filter=emails[type eq "work" and value ew "n@acme.example.com"]&sortBy=userName'
    ) == ["ben", "dan"]
    # Paging: 1-based startIndex, count, totalResults over the whole filter.
    status, page, _ = await scim.get(
        "/Users?filter=externalId pr&sortBy=userName&startIndex=2&count=2"
    )
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [u["userName"][:3] for u in page["Resources"]] == ["ben", "cat"]
    status, none, _ = await scim.get("/Users?count=0")
    assert none["totalResults"] == 6 and none["Resources"] == [] if "Resources" in none else True
    # attributes / excludedAttributes.
    _, slim, _ = await scim.get(f"/Users/{ids['amy']}?attributes=userName")
    assert set(slim) - {"schemas", "id", "meta"} == {"userName"}, slim
    _, slim, _ = await scim.get(f"/Users/{ids['amy']}?excludedAttributes=emails,groups")
    assert "emails" not in slim and "groups" not in slim and slim["displayName"] == "Amy"
    # Bad filters are the client's error, in the SCIM error format.
    for bad in ("userName eq", 'nickName eq "x"', 'active gt "x"', 'meta.lastModified gt "soon"'):
        status, body, _ = await scim.get(f"/Users?filter={bad}")
        assert status == 400 and body["scimType"] == "invalidFilter", (bad, body)
    status, body, _ = await scim.get("/Users?sortBy=nickName")
    assert status == 400
    # POST /.search.
    status, found, _ = await scim.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName sw "c"',
            "attributes": ["userName"],
        },
    )
    assert status == 200 and [u["userName"] for u in found["Resources"]] == ["cat@acme.example.com"]
    # Groups filter on displayName and members.
    _, g, _ = await scim.post(
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Ops", "members": [{"value": ids["amy"]}]},
    )
    _, gl, _ = await scim.get(
        f'/Groups?filter=members[value eq "{ids["amy"]}"] and displayName eq "ops"'
    )
    assert [x["id"] for x in gl["Resources"]] == [g["id"]]
    _, gl, _ = await scim.get(
        '/Groups?filter=displayName eq "Portal Users"&excludedAttributes=members'
    )
    assert gl["totalResults"] == 1 and "members" not in gl["Resources"][0]


async def test_etags_conflicts_and_bad_input(suite: ScimSuite) -> None:
    _, scim = await suite.workspace("acme")
    status, ann, headers = await scim.post(
        "/Users", user("ann@acme.example.com", "ann@acme.example.com")
    )
    assert status == 201, (ann, headers)
    etag = headers["ETag"]
    assert etag.startswith('W/"') and ann["meta"]["version"] == etag
    status, _, _ = await scim.get(f"/Users/{ann['id']}", headers={"If-None-Match": etag})
    assert status == 304
    change = patch_op({"op": "replace", "path": "displayName", "value": "Ann"})
    status, body, _ = await scim.patch(
        f"/Users/{ann['id']}", change, headers={"If-Match": 'W/"stale"'}
    )
    assert status == 412, body
    status, body, h2 = await scim.patch(f"/Users/{ann['id']}", change, headers={"If-Match": etag})
    assert status == 200 and h2["ETag"] != etag
    status, body, _ = await scim.put(
        f"/Users/{ann['id']}", user("ann@acme.example.com"), headers={"If-Match": etag}
    )
    assert status == 412
    status, body, _ = await scim.delete(f"/Users/{ann['id']}", headers={"If-Match": etag})
    assert status == 412

    status, body, _ = await scim.post(
        "/Users", user("ANN@acme.example.com", "other@acme.example.com")
    )
    assert status == 409 and body["scimType"] == "uniqueness", body
    status, body, _ = await scim.post("/Users", user("another", "ann@acme.example.com"))
    assert status == 409 and body["scimType"] == "uniqueness", body
    status, body, _ = await scim.post("/Users", None, raw=b'{"userName": ')
    assert status == 400 and body["scimType"] == "invalidSyntax"
    status, body, _ = await scim.post("/Users", None, raw=b"\xff\xfe")
    assert status == 400
    status, body, _ = await scim.post("/Users", {"schemas": [USER_SCHEMA]})
    assert status == 400 and body["scimType"] == "invalidValue", body
    status, body, _ = await scim.post("/Users", {**user("x@acme.example.com"), "bogus": 1})
    assert status == 400 and body["scimType"] == "invalidSyntax", body
    status, body, _ = await scim.patch(
        f"/Users/{ann['id']}", patch_op({"op": "replace", "path": "id", "value": "new"})
    )
    assert status == 400 and body["scimType"] == "mutability", body
    status, body, _ = await scim.patch(f"/Users/{ann['id']}", {"Operations": "nope"})
    assert status == 400
    assert (await scim.get("/Users/not-a-uuid"))[0] == 404
    assert (await scim.get("/Bogus"))[0] == 404
    status, body, headers = await scim.request("POST", "/ServiceProviderConfig", {})
    assert status == 405 and "GET" in headers["Allow"]
    status, body, _ = await scim.post("/Users", None, raw=b"x" * (2 * 1024 * 1024))
    assert status == 413
    # The last administrator is never deactivated by an IdP.
    _, admins, _ = await scim.get('/Users?filter=userName eq "admin@acme.test"')
    admin_id = admins["Resources"][0]["id"]
    status, body, _ = await scim.patch(
        f"/Users/{admin_id}", patch_op({"op": "replace", "path": "active", "value": False})
    )
    assert status == 409, body


async def test_throttled_per_token_and_audited(suite: ScimSuite) -> None:
    created, scim = await suite.workspace("acme")
    slow = await suite.stack.start_gateway(FRONTDESK_SCIM_RATE="0.5", FRONTDESK_SCIM_BURST="3")
    slow_scim = Scim(slow, "acme", scim.token, suite.http)
    statuses = [(await slow_scim.get("/ServiceProviderConfig"))[0] for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    status, body, headers = await slow_scim.get("/ServiceProviderConfig")
    assert status == 429 and int(headers["Retry-After"]) >= 1, body
    # Guessing tokens from one address is cut off after a while.
    for _ in range(20):
        await slow_scim.get("/Users", token="fdscim_guess")
    assert (await slow_scim.get("/Users", token="fdscim_guess"))[0] == 429

    _, ann, _ = await scim.post("/Users", user("ann@acme.example.com", "ann@acme.example.com"))
    audit = await suite.directory.ListAudit(
        directory_pb2.ListAuditRequest(caller=common_pb2.Caller(workspace_id=created.workspace.id))
    )
    actions = {(e.action, e.actor_id.split(":")[0]) for e in audit.entries}
    assert ("person.provisioned", "scim") in actions and ("scim_token.created", "") in actions
    provisioned = next(e for e in audit.entries if e.action == "person.provisioned")
    assert provisioned.object_id == ann["id"]


async def test_console_creates_shows_once_and_revokes_tokens(suite: ScimSuite) -> None:
    created, _ = await suite.workspace("acme")
    auth = auth_pb2_grpc.AuthServiceStub(channel(suite.stack.addresses["auth"]))
    await auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=created.workspace.id),
            person_id=created.admin.id,
            password=PASSWORD,
        )
    )
    admin = await GatewayClient.open(suite.base, "acme")
    suite.stack.on_close(admin.close)
    status, body = await admin.login("admin@acme.test", PASSWORD, surface="management")
    assert status == 200, body
    status, page = await admin.get("/management/scim")
    assert status == 200 and "/scim/v2" in page and "SCIM provisioning" in page
    status, made = await admin.post("/management/api/v1/scim-tokens", json={"name": "Okta"})
    assert status == 201 and made["secret"].startswith("fdscim_"), made
    assert made["endpoint"].endswith("acme.localhost:" + str(URL(suite.base).port) + "/scim/v2")
    status, listed = await admin.get("/management/api/v1/scim-tokens")
    assert [t["name"] for t in listed["items"]].count("Okta") == 1
    assert made["secret"] not in str(listed)  # shown once, never listed
    okta = Scim(suite.base, "acme", made["secret"], suite.http)
    assert (await okta.get("/Users"))[0] == 200
    # The page form creates one too and shows its secret once.
    status, html = await admin.post(
        "/management/scim", data={"csrf_token": admin.csrf, "name": "Entra"}
    )
    assert status == 201 and "fdscim_" in html
    status, _ = await admin.delete(f"/management/api/v1/scim-tokens/{made['token']['id']}")
    assert status == 200
    assert (await okta.get("/Users"))[0] == 401
    # Without Settings:manage the API refuses.
    status, _ = await admin.get(
        "/management/api/v1/scim-tokens", headers={"Host": "beta.localhost"}
    )
    assert status == 404
