"""The proof that services trust only verified callers: every service, called directly over gRPC
with a forged, missing, expired, misdirected or over-claiming principal, or with a request body
that lies about who calls, refuses; the same call with an honest principal is served.

Principals here are signed the way production signs them: persons by auth's key, services by
their own key (tests/signing.py made the keys for this run; the stack trusts them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    compliance_pb2,
    compliance_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    tickets_pb2,
    tickets_pb2_grpc,
)
from joserfc import jwt

from services.chassis.grpcio import channel as plain_channel
from services.chassis.principals import ALGORITHM, Signer, generate_key
from tests.people import People, workspace
from tests.signing import channel, keys
from tests.stack import Stack

ALL = [
    "Ticket:read",
    "Ticket:create",
    "Ticket:manage",
    "Person:read",
    "Person:manage",
    "Role:manage",
    "Control:read",
    "Control:manage",
    "Settings:manage",
]
SERVICES = ("directory", "auth", "tickets", "compliance")

Call = Callable[[common_pb2.Caller, tuple[tuple[str, str], ...]], Awaitable[Any]]


@dataclass
class World:
    """Two workspaces; in A an object of each service, a manager and a nobody; in B a manager."""

    a: People
    b: People
    manager_a: str
    nobody_a: str
    manager_b: str
    privileged: dict[str, Call]  # needs a management permission in A
    lookup: dict[str, Call]  # reads an object of workspace A


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def person_token(
    aud: str, ws: str, person: str, perms: list[str], signer: Signer | None = None, **kw: Any
) -> str:
    """A person's principal as auth signs it (or as `signer` would)."""
    s = signer or keys().signer("auth")
    return s.sign(
        audience=aud,
        subject=f"person:{person}",
        workspace=ws,
        surface="management",
        permissions=perms,
        session_id="s",
        **kw,
    )


@pytest.fixture
async def world(stack: Stack) -> World:
    for name in SERVICES:
        await stack.start(name)
    a, b = await workspace(stack), await workspace(stack)
    manager_a = await a.person(*ALL)
    nobody_a = await a.person()
    manager_b = await b.person(*ALL)
    chans = {n: plain_channel(stack.addresses[n]) for n in SERVICES}
    for ch in chans.values():
        stack.on_close(ch.close)
    directory = directory_pb2_grpc.DirectoryServiceStub(chans["directory"])
    auth = auth_pb2_grpc.AuthServiceStub(chans["auth"])
    tickets = tickets_pb2_grpc.TicketServiceStub(chans["tickets"])
    compliance = compliance_pb2_grpc.ComplianceServiceStub(chans["compliance"])

    # Objects of workspace A, made by its manager through the test-signed channels.
    mgr = common_pb2.Caller(workspace_id=a.ws, person_id=manager_a, permissions=ALL)
    tch = channel(stack.addresses["tickets"])
    cch = channel(stack.addresses["compliance"])
    stack.on_close(tch.close)
    stack.on_close(cch.close)
    ticket = await tickets_pb2_grpc.TicketServiceStub(tch).CreateTicket(
        tickets_pb2.CreateTicketRequest(
            caller=mgr,
            type=tickets_pb2.TICKET_TYPE_INCIDENT,
            title="VPN down",
            description="Nobody can connect",
            impact=tickets_pb2.TICKET_LEVEL_HIGH,
            urgency=tickets_pb2.TICKET_LEVEL_HIGH,
        )
    )
    control = await compliance_pb2_grpc.ComplianceServiceStub(cch).CreateControl(
        compliance_pb2.CreateControlRequest(
            caller=mgr,
            title="Access review",
            frequency=compliance_pb2.CONTROL_FREQUENCY_MONTHLY,
            owner_id=manager_a,
        )
    )
    page = common_pb2.PageRequest(page_size=10)
    privileged: dict[str, Call] = {
        "directory": lambda c, md: directory.ListPersons(
            directory_pb2.ListPersonsRequest(caller=c, page=page), metadata=md
        ),
        "auth": lambda c, md: auth.SetPassword(
            auth_pb2.SetPasswordRequest(
                caller=c, person_id=nobody_a, password="a long enough passphrase 42"
            ),
            metadata=md,
        ),
        "tickets": lambda c, md: tickets.ListTickets(
            tickets_pb2.ListTicketsRequest(caller=c), metadata=md
        ),
        "compliance": lambda c, md: compliance.ListControls(
            compliance_pb2.ListControlsRequest(caller=c), metadata=md
        ),
    }
    lookup: dict[str, Call] = {
        "directory": lambda c, md: directory.GetPerson(
            directory_pb2.GetPersonRequest(caller=c, person_id=nobody_a), metadata=md
        ),
        "auth": lambda c, md: auth.GetTwoFactorStatus(
            auth_pb2.GetTwoFactorStatusRequest(caller=c, person_id=nobody_a), metadata=md
        ),
        "tickets": lambda c, md: tickets.GetTicket(
            tickets_pb2.GetTicketRequest(caller=c, ticket_id=ticket.id), metadata=md
        ),
        "compliance": lambda c, md: compliance.GetControl(
            compliance_pb2.GetControlRequest(caller=c, control_id=control.id), metadata=md
        ),
    }
    return World(a, b, manager_a, nobody_a, manager_b, privileged, lookup)


async def refused(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


def claims_everything(ws: str) -> common_pb2.Caller:
    """What an attacker writes in the body: the old "system" (no person), every permission."""
    return common_pb2.Caller(workspace_id=ws, person_id="", permissions=ALL)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_forged_caller_is_refused_by_every_service(service: str, world: World) -> None:
    ws = world.a.ws
    privileged = world.privileged[service]
    body = claims_everything(ws)
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED

    # The honest control: the manager's principal is served (the refusals below are about
    # identity, not about a broken call).
    await privileged(body, bearer(person_token(service, ws, world.manager_a, ALL)))

    # No principal at all: the body's claims count for nothing.
    assert (await refused(privileged(body, ())))[0] == unauthenticated
    # Garbage, and a JWT with no signature.
    assert (await refused(privileged(body, bearer("not-a-jwt"))))[0] == unauthenticated
    # Signed by a key nobody trusts, claiming to be auth.
    rogue = Signer("auth", generate_key())
    code, _ = await refused(
        privileged(body, bearer(person_token(service, ws, world.manager_a, ALL, rogue)))
    )
    assert code == unauthenticated
    # Naming auth's real key (kid) but signed with another key.
    header = {"alg": ALGORITHM, "kid": keys().signer("auth").kid}
    now = int(time.time())
    forged = jwt.encode(
        header,
        {
            "iss": "auth",
            "sub": f"person:{world.manager_a}",
            "aud": service,
            "iat": now,
            "exp": now + 60,
            "ws": ws,
            "sfc": "management",
            "prm": ALL,
            "sid": "s",
        },
        generate_key(),
        algorithms=[ALGORITHM],
    )
    assert (await refused(privileged(body, bearer(forged))))[0] == unauthenticated
    # Expired, issued for a lifetime far longer than allowed, or for another service.
    expired = person_token(service, ws, world.manager_a, ALL, now=now - 300, lifetime=60)
    code, message = await refused(privileged(body, bearer(expired)))
    assert code == unauthenticated and "expired" in message
    forever = person_token(service, ws, world.manager_a, ALL, lifetime=86_400)
    assert (await refused(privileged(body, bearer(forever))))[0] == unauthenticated
    other = next(s for s in SERVICES if s != service)
    code, message = await refused(
        privileged(body, bearer(person_token(other, ws, world.manager_a, ALL)))
    )
    assert code == unauthenticated and f"not for {service}" in message
    # A person's principal signed by a service's key (only auth signs persons).
    code, _ = await refused(
        privileged(
            body, bearer(person_token(service, ws, world.manager_a, ALL, keys().signer("tickets")))
        )
    )
    assert code == unauthenticated
    # A service principal claiming rights its service does not have.
    greedy = keys().signer("tickets").service_token(service, ws, ["Person:read", *ALL])
    code, message = await refused(privileged(body, bearer(greedy)))
    assert code == unauthenticated and "rights it does not have" in message

    # A valid principal of a person without permissions; the body claims the old system
    # (empty person) with every permission: the service goes by the principal and refuses.
    nobody = bearer(person_token(service, ws, world.nobody_a, []))
    code, _ = await refused(privileged(body, nobody))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # The body claiming extra permissions for the person themself changes nothing either.
    boasting = common_pb2.Caller(workspace_id=ws, person_id=world.nobody_a, permissions=ALL)
    assert (await refused(privileged(boasting, nobody)))[0] == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("service", SERVICES)
async def test_a_principal_of_another_workspace_finds_nothing(service: str, world: World) -> None:
    lookup = world.lookup[service]
    # Workspace A's manager sees the object ...
    mine = bearer(person_token(service, world.a.ws, world.manager_a, ALL))
    await lookup(common_pb2.Caller(workspace_id=world.a.ws), mine)
    # ... workspace B's manager, however much the body claims workspace A, does not.
    theirs = bearer(person_token(service, world.b.ws, world.manager_b, ALL))
    lying = common_pb2.Caller(workspace_id=world.a.ws, person_id=world.manager_b, permissions=ALL)
    code, _ = await refused(lookup(lying, theirs))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_a_service_principal_holds_only_its_own_rights(world: World, stack: Stack) -> None:
    """tickets may read persons (requesters, assignees); it may not manage them, and no
    service principal is the "system" that may do everything."""
    directory = directory_pb2_grpc.DirectoryServiceStub(plain_channel(stack.addresses["directory"]))
    tickets_key = keys().signer("tickets")
    own = bearer(tickets_key.service_token("directory", world.a.ws))
    page = common_pb2.PageRequest(page_size=5)
    listed = await directory.ListPersons(
        directory_pb2.ListPersonsRequest(
            caller=common_pb2.Caller(workspace_id=world.a.ws), page=page
        ),
        metadata=own,
    )
    assert world.manager_a in {p.id for p in listed.persons}
    code, _ = await refused(
        directory.CreateRole(
            directory_pb2.CreateRoleRequest(
                caller=claims_everything(world.a.ws), name="Backdoor", permissions=ALL
            ),
            metadata=own,
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # Creating a workspace is the launcher's right alone (it used to need no caller at all).
    create = directory_pb2.CreateWorkspaceRequest(
        slug=f"w{uuid.uuid4().hex[:8]}", name="Evil", admin_email="e@evil.test", admin_name="E"
    )
    assert (await refused(directory.CreateWorkspace(create)))[0] == grpc.StatusCode.UNAUTHENTICATED
    code, _ = await refused(
        directory.CreateWorkspace(create, metadata=bearer(tickets_key.service_token("directory")))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    launcher = bearer(keys().signer("launcher").service_token("directory"))
    created = await directory.CreateWorkspace(create, metadata=launcher)
    assert created.workspace.slug == create.slug
    # Sign-in flows are the gateway's: another service may not try passwords through auth.
    auth = auth_pb2_grpc.AuthServiceStub(plain_channel(stack.addresses["auth"]))
    login = auth_pb2.LoginRequest(
        workspace_id=world.a.ws, email="x@people.test", password="x", surface="portal"
    )
    code, _ = await refused(
        auth.Login(login, metadata=bearer(tickets_key.service_token("auth", world.a.ws)))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # And only the gateway may have auth mint persons' principals.
    issue = auth_pb2.IssuePrincipalRequest(
        workspace_id=world.a.ws, session_token="x", surface="portal", audiences=["tickets"]
    )
    code, _ = await refused(
        auth.IssuePrincipal(issue, metadata=bearer(tickets_key.service_token("auth", world.a.ws)))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_services_take_keys_from_auth_and_keys_rotate_without_downtime(
    stack: Stack, tmp_path: Path
) -> None:
    """The directory trusts nothing locally but the test key: the launcher's and auth's keys it
    knows only from auth's GetPublicKeys. Auth then rotates its key (restart with the new key,
    the old one published as retired): principals of both keys verify, the directory untouched."""
    from services.chassis.principals import key_document, private_pem, public_jwk

    launcher_key = keys().private["launcher"]
    registry = tmp_path / "service-keys.json"
    registry.write_text(key_document([{"issuer": "launcher", "jwk": public_jwk(launcher_key)}]))
    test_only = tmp_path / "trusted.json"
    test_only.write_text(key_document([{"issuer": "test", "jwk": public_jwk(keys().test_key)}]))
    old, new = generate_key(), generate_key()
    (tmp_path / "old.pem").write_bytes(private_pem(old))
    (tmp_path / "new.pem").write_bytes(private_pem(new))
    retired = tmp_path / "retired.json"
    retired.write_text(key_document([{"issuer": "auth", "jwk": public_jwk(old)}]))
    auth_env = {
        "FRONTDESK_TRUSTED_KEYS_FILE": str(test_only),
        "FRONTDESK_SERVICE_KEYS_FILE": str(registry),
        "FRONTDESK_DIRECTORY_ADDR": "127.0.0.1:1",
    }
    auth_service = await stack.start(
        "auth", FRONTDESK_IDENTITY_KEY_FILE=str(tmp_path / "old.pem"), **auth_env
    )
    await stack.start("directory", FRONTDESK_TRUSTED_KEYS_FILE=str(test_only))
    auth = auth_pb2_grpc.AuthServiceStub(plain_channel(stack.addresses["auth"]))
    published = await auth.GetPublicKeys(auth_pb2.GetPublicKeysRequest())  # no principal needed
    assert {k.issuer for k in published.keys} == {"auth", "launcher"}

    directory = directory_pb2_grpc.DirectoryServiceStub(plain_channel(stack.addresses["directory"]))
    slug = f"w{uuid.uuid4().hex[:8]}"
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug=slug, name="Rot", admin_email="a@rot.test", admin_name="A"
        ),
        metadata=bearer(Signer("launcher", launcher_key).service_token("directory")),
    )
    ws, admin = created.workspace.id, created.admin.id

    async def get_admin(signer: Signer) -> Any:
        token = signer.person_token("directory", ws, admin, ["Person:read"], "management", "s")
        return await directory.GetPerson(
            directory_pb2.GetPersonRequest(person_id=admin), metadata=bearer(token)
        )

    assert (await get_admin(Signer("auth", old))).id == admin
    code, _ = await refused(get_admin(Signer("auth", generate_key())))
    assert code == grpc.StatusCode.UNAUTHENTICATED

    # Rotation: auth restarts on its address with the new key, the old one retired.
    port = auth_service.port
    await auth_service.stop()
    await stack.start(
        "auth",
        FRONTDESK_IDENTITY_KEY_FILE=str(tmp_path / "new.pem"),
        FRONTDESK_IDENTITY_PREVIOUS_KEYS_FILE=str(retired),
        FRONTDESK_GRPC_LISTEN=f"127.0.0.1:{port}",
        **auth_env,
    )
    deadline = time.monotonic() + 10
    while True:  # the directory re-fetches an unknown key at most once a second
        try:
            assert (await get_admin(Signer("auth", new))).id == admin
            break
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    assert (await get_admin(Signer("auth", old))).id == admin


async def test_streaming_calls_are_verified_too() -> None:
    """A streaming method (uploads, downloads) gets its Caller the same way; without a
    principal it is refused before the handler runs."""
    from services.chassis.caller import current_caller
    from services.chassis.grpcio import create_server
    from services.chassis.identity import VerifyingInterceptor
    from services.chassis.principals import KeyRing, Verifier

    auth = keys().signer("auth")
    seen: list[str] = []

    async def download(request: bytes, context: grpc.aio.ServicerContext) -> Any:
        seen.append(current_caller().actor)
        for chunk in (b"a", b"b"):
            yield chunk

    async def upload(chunks: Any, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(current_caller().actor)
        return b"".join([c async for c in chunks])

    def register(server: grpc.aio.Server) -> list[str]:
        handlers = {
            "Download": grpc.unary_stream_rpc_method_handler(download),
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Files", handlers)])
        return []

    verifier = Verifier("files", KeyRing([auth.trusted()]))
    server, port, _ = await create_server(
        "127.0.0.1:0", "files", register, interceptors=[VerifyingInterceptor(verifier)]
    )
    person = str(uuid.uuid4())
    token = auth.person_token("files", str(uuid.uuid4()), person, [], "portal", "s")
    try:
        async with plain_channel(f"127.0.0.1:{port}") as ch:
            down = ch.unary_stream("/t.Files/Download")
            up = ch.stream_unary("/t.Files/Upload")

            async def chunks() -> Any:
                yield b"x"
                yield b"y"

            assert [c async for c in down(b"", metadata=bearer(token))] == [b"a", b"b"]
            assert await up(chunks(), metadata=bearer(token)) == b"xy"
            with pytest.raises(grpc.aio.AioRpcError) as info:
                _ = [c async for c in down(b"")]
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await up(chunks())
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(0)
    assert seen == [person, person]


async def test_mutual_tls_between_components(stack: Stack, tmp_path: Path) -> None:
    """A service with FRONTDESK_TLS_* serves only mutually authenticated TLS: a client with a
    certificate of the CA is served, plain text and TLS without a certificate are refused; its
    plain health port answers health and nothing else."""
    from deploy.embedded import free_port
    from services.chassis import tls
    from services.chassis.grpcio import check_health
    from services.chassis.identity import Identity
    from services.chassis.settings import IdentitySettings

    ca = tls.ensure_ca(tmp_path)
    server_tls = tls.issue(tmp_path, "directory", ca)
    client_tls = tls.issue(tmp_path, "launcher", ca)
    other_ca = tls.ensure_ca(tmp_path / "other")
    stranger = tls.issue(tmp_path / "other", "launcher", other_ca)
    health_port = free_port()
    running = await stack.start(
        "directory",
        **tls.env_for(server_tls),
        FRONTDESK_HEALTH_LISTEN=f"127.0.0.1:{health_port}",
    )
    address = f"127.0.0.1:{running.port}"
    assert await check_health(address, timeout=2, credentials=tls.channel_credentials(client_tls))
    assert not await check_health(address, timeout=2)
    ca_only = grpc.ssl_channel_credentials(root_certificates=Path(ca[0]).read_bytes())
    assert not await check_health(address, timeout=2, credentials=ca_only)
    assert not await check_health(address, timeout=2, credentials=tls.channel_credentials(stranger))
    # The launcher's identity over TLS: a real call, signed and encrypted.
    launcher = Identity.from_settings(
        "launcher",
        IdentitySettings(key_pem=Path(keys().key_file("launcher")).read_text(), tls=client_tls),
    )
    stack.on_close(launcher.close)
    directory = directory_pb2_grpc.DirectoryServiceStub(launcher.channel(address, "directory"))
    slug = f"w{uuid.uuid4().hex[:8]}"
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug=slug, name="TLS", admin_email="a@tls.test", admin_name="A"
        )
    )
    assert created.workspace.slug == slug
    # The plain health port: health answers, the directory is not there.
    assert await check_health(f"127.0.0.1:{health_port}", timeout=2)
    async with plain_channel(f"127.0.0.1:{health_port}") as ch:
        code, _ = await refused(
            directory_pb2_grpc.DirectoryServiceStub(ch).GetWorkspace(
                directory_pb2.GetWorkspaceRequest(slug=slug), timeout=2
            )
        )
    assert code == grpc.StatusCode.UNIMPLEMENTED


async def test_auth_signs_only_what_the_session_holds(world: World, stack: Stack) -> None:
    """IssuePrincipal (the gateway's call): auth checks the session or API token itself and
    signs only the permissions the person holds, for the audiences asked; a signed-out
    session, a deactivated person or an API token on the portal get nothing."""
    from services.chassis.principals import KeyRing, Verifier

    ws = world.a.ws
    portal_user = await world.a.person("Ticket:read", "Ticket:create")
    tch = channel(stack.addresses["auth"])
    stack.on_close(tch.close)
    setup = auth_pb2_grpc.AuthServiceStub(tch)
    password = "a long enough passphrase 42"
    await setup.SetPassword(
        auth_pb2.SetPasswordRequest(caller=world.a.system, person_id=portal_user, password=password)
    )
    person = await world.a.directory.GetPerson(
        directory_pb2.GetPersonRequest(caller=world.a.system, person_id=portal_user)
    )
    gateway = keys().signer("gateway")
    auth = auth_pb2_grpc.AuthServiceStub(plain_channel(stack.addresses["auth"]))
    as_gateway = bearer(gateway.service_token("auth", ws))
    login = await auth.Login(
        auth_pb2.LoginRequest(
            workspace_id=ws, email=person.email, password=password, surface="portal"
        ),
        metadata=as_gateway,
    )
    assert login.status == "ok"

    def ask(**kw: Any) -> Any:
        fields: dict[str, Any] = {
            "workspace_id": ws,
            "session_token": login.session_token,
            "surface": "portal",
            "permissions": ["Ticket:read", "Ticket:create", "Ticket:manage", "Person:manage"],
            "audiences": ["tickets", "directory"],
            **kw,
        }
        return auth.IssuePrincipal(auth_pb2.IssuePrincipalRequest(**fields), metadata=as_gateway)

    issued = await ask()
    assert sorted(issued.permissions) == ["Ticket:create", "Ticket:read"]
    assert set(issued.tokens) == {"tickets", "directory"}
    verifier = Verifier("tickets", KeyRing([keys().signer("auth").trusted()]))
    caller = await verifier.verify(issued.tokens["tickets"])
    assert str(caller.person_id) == portal_user and caller.permissions == {
        "Ticket:read",
        "Ticket:create",
    }
    assert caller.surface == "portal" and not caller.via_api_token
    with pytest.raises(Exception, match="not for tickets"):
        await verifier.verify(issued.tokens["directory"])
    # Another workspace's id for the same session: no such session there.
    assert (await refused(ask(workspace_id=world.b.ws)))[0] == grpc.StatusCode.UNAUTHENTICATED
    # An API token works on the management surface only.
    code, _ = await refused(ask(session_token="", api_token="fdt_x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # A deactivated person gets no principal, even with a live session.
    await world.a.deactivate(portal_user)
    assert (await refused(ask()))[0] == grpc.StatusCode.UNAUTHENTICATED


async def test_code_still_reading_the_body_sees_the_verified_caller() -> None:
    """Defence for servicers not yet converted to current_caller(): the interceptor replaces
    the request's `caller` with the verified principal before the handler runs."""
    from services.chassis.grpcio import create_server
    from services.chassis.identity import VerifyingInterceptor
    from services.chassis.principals import KeyRing, Verifier

    auth = keys().signer("auth")
    seen: list[common_pb2.Caller] = []

    async def get(request: tickets_pb2.GetTicketRequest, context: Any) -> bytes:
        seen.append(request.caller)
        return b""

    def register(server: grpc.aio.Server) -> list[str]:
        handler = grpc.unary_unary_rpc_method_handler(
            get, request_deserializer=tickets_pb2.GetTicketRequest.FromString
        )
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("t.T", {"G": handler})]
        )
        return []

    verifier = Verifier("t", KeyRing([auth.trusted()]))
    server, port, _ = await create_server(
        "127.0.0.1:0", "t", register, interceptors=[VerifyingInterceptor(verifier)]
    )
    ws, person = str(uuid.uuid4()), str(uuid.uuid4())
    token = auth.person_token("t", ws, person, ["Ticket:read"], "portal", "s")
    lie = tickets_pb2.GetTicketRequest(caller=claims_everything(str(uuid.uuid4())), ticket_id="1")
    try:
        async with plain_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/t.T/G", request_serializer=lambda m: m.SerializeToString())
            await call(lie, metadata=bearer(token))
    finally:
        await server.stop(0)
    assert seen == [
        common_pb2.Caller(workspace_id=ws, person_id=person, permissions=["Ticket:read"])
    ]
