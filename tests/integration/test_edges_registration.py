"""Self-registration: throttled per address and per e-mail, never half done, and limited to
domains only when the address is proven by a confirmation link (issue 12)."""

from __future__ import annotations

from typing import Any

import grpc
from aiosmtpd.controller import Controller
from frontdesk.v1 import auth_pb2, directory_pb2

from deploy.embedded import free_port
from tests.gateway_client import GatewayClient
from tests.integration.test_auth import _Inbox
from tests.integration.test_auth_support import PASSWORD, AuthWorld, make_world, rpc_error
from tests.stack import Stack


def _register(w: AuthWorld, address: str, client_ip: str = "198.51.100.1") -> object:
    return w.auth.Register(
        auth_pb2.RegisterRequest(
            workspace_id=w.ws,
            email=address,
            name="Someone",
            password=PASSWORD,
            confirm_url_base="http://acme.localhost/register/confirm",
            client_ip=client_ip,
        )
    )


async def _mode(w: AuthWorld, mode: str, *domains: str) -> None:
    await w.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=w.system(),
            self_registration=mode,
            set_registration_domains=bool(domains),
            registration_domains=list(domains),
        )
    )


async def _person_exists(w: AuthWorld, address: str) -> bool:
    try:
        await w.directory.FindPersonByEmail(
            directory_pb2.FindPersonByEmailRequest(caller=w.system(), email=address)
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


async def test_registration_is_throttled_per_email_and_per_address(stack: Stack) -> None:
    w = await make_world(
        stack,
        FRONTDESK_THROTTLE_FREE_FAILURES="2",
        FRONTDESK_THROTTLE_IP_FREE_FAILURES="3",
        FRONTDESK_THROTTLE_WAIT_SECONDS="60",
    )
    await _mode(w, "open")
    # One e-mail from ever new addresses: the free attempts, then a wait.
    await _register(w, "eve@example.com", "198.51.100.10")
    for n in (11, 12):
        dup = await rpc_error(_register(w, "eve@example.com", f"198.51.100.{n}"))
        assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
    blocked = await rpc_error(_register(w, "eve@example.com", "198.51.100.13"))
    assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(blocked.trailing_metadata() or ())["retry-after"]) >= 1

    # One address trying many e-mails.
    for n in range(4):
        await _register(w, f"bot{n}@example.com", "203.0.113.99")
    blocked = await rpc_error(_register(w, "bot9@example.com", "203.0.113.99"))
    assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not await _person_exists(w, "bot9@example.com")
    # Someone else is not affected.
    assert (await _register(w, "fay@example.com", "192.0.2.5")).person_id  # type: ignore[attr-defined]


FAIL_INSERT = """
create function edges_fail_insert() returns trigger language plpgsql as $$
begin raise exception 'injected failure'; end $$;
create trigger edges_fail before insert on {table} for each row
execute function edges_fail_insert();
"""
UNFAIL = "drop trigger edges_fail on {table}; drop function edges_fail_insert();"


async def test_a_failed_step_leaves_no_half_registration_behind(stack: Stack) -> None:
    w = await make_world(stack)
    await _mode(w, "open")
    auth_db = await stack.connect("auth")
    directory_db = await stack.connect("directory")

    # The credentials cannot be stored: no person may be left in the directory.
    await auth_db.execute(FAIL_INSERT.format(table="credentials"))
    await rpc_error(_register(w, "gus@example.com"))
    assert not await _person_exists(w, "gus@example.com")
    await auth_db.execute(UNFAIL.format(table="credentials"))

    # The directory cannot store the person: no credentials may be left in auth.
    await directory_db.execute(FAIL_INSERT.format(table="persons"))
    await rpc_error(_register(w, "gus@example.com"))
    assert await auth_db.fetchval("select count(*) from credentials") == 0
    await directory_db.execute(UNFAIL.format(table="persons"))

    # Nothing blocks registering again, and the person signs in.
    reg = await _register(w, "gus@example.com")
    assert (await w.login("gus@example.com")).person_id == reg.person_id  # type: ignore[attr-defined]


async def _register_at_gateway(
    stack: Stack, base: str, slug: str
) -> tuple[GatewayClient, int, Any]:
    visitor = await GatewayClient.open(base, slug)
    stack.on_close(visitor.close)
    await visitor.anonymous_csrf()
    status, body = await visitor.post(
        "/auth/register",
        json={"email": "someone@acme.example", "name": "Someone", "password": PASSWORD},
    )
    return visitor, status, body


async def _admin(stack: Stack, w: AuthWorld, base: str) -> GatewayClient:
    await w.auth.SetPassword(
        auth_pb2.SetPasswordRequest(caller=w.system(), person_id=w.admin_id, password=PASSWORD)
    )
    admin = await GatewayClient.open(base, w.slug)
    stack.on_close(admin.close)
    assert (await admin.login(w.admin_email, PASSWORD, surface="management"))[0] == 200
    return admin


async def test_domain_limited_registration_without_mail_is_refused_and_says_why(
    stack: Stack,
) -> None:
    w = await make_world(stack)
    base = await stack.start_gateway()
    await _mode(w, "domains", "acme.example")
    _visitor, status, body = await _register_at_gateway(stack, base, w.slug)
    assert status == 403, body
    assert body["error"]["code"] == "registration_needs_mail"
    assert not await _person_exists(w, "someone@acme.example")

    admin = await _admin(stack, w, base)
    status, page = await admin.get("/management/portal-settings")
    assert status == 200
    assert "no mail server is configured" in page


async def test_domain_limited_registration_with_mail_needs_the_confirmation_link(
    stack: Stack,
) -> None:
    inbox = _Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        w = await make_world(
            stack, FRONTDESK_SMTP_HOST="127.0.0.1", FRONTDESK_SMTP_PORT=str(smtp.port)
        )
        base = await stack.start_gateway()
        await _mode(w, "domains", "acme.example")
        visitor, status, body = await _register_at_gateway(stack, base, w.slug)
        assert status == 201 and body["status"] == "confirm_email", body
        status, body = await visitor.login("someone@acme.example", PASSWORD)
        assert status == 409 and "confirm" in body["error"]["message"], body

        ((to, text),) = inbox.messages
        assert to == ["someone@acme.example"]
        link = next(line for line in text.splitlines() if "/register/confirm?token=" in line)
        path = link[link.index("/register/confirm") :].strip()
        status, page = await visitor.get(path)
        assert status == 200, page
        status, body = await visitor.login("someone@acme.example", PASSWORD)
        assert status == 200 and body["status"] == "ok", body

        admin = await _admin(stack, w, base)
        status, page = await admin.get("/management/portal-settings")
        assert status == 200 and "no mail server is configured" not in page
    finally:
        smtp.stop()
