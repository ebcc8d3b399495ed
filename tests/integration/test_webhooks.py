"""Webhooks through the real directory, gateway and an HTTPS receiver (a self-signed CA the
directory is told to trust): every access-change event is delivered once with a valid Standard
Webhooks signature, failures are retried with backoff, the log shows it, the console manages it."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    directory_pb2,
    directory_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deploy.embedded import free_port
from tests.gateway_client import GatewayClient
from tests.signing import channel
from tests.stack import Stack

PASSWORD = "correct horse battery staple 42"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Receiver:
    """An HTTPS endpoint that refuses the first `fail_first` requests with 503."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], str, int]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        status = 503 if len(self.requests) < self.fail_first else 200
        self.requests.append((dict(request.headers), body, status))
        return web.Response(status=status)

    def delivered(self) -> Counter[str]:
        return Counter(h["webhook-id"] for h, _, s in self.requests if s == 200)


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[Receiver, str, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    rec = Receiver(fail_first=2)
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield rec, f"https://127.0.0.1:{port}/hook", cert
    finally:
        await runner.cleanup()


async def eventually(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_events_are_delivered_once_signed_and_retried(
    stack: Stack, receiver: tuple[Receiver, str, Path]
) -> None:
    rec, url, cert = receiver
    await stack.start(
        "directory",
        FRONTDESK_WEBHOOK_CA_FILE=str(cert),
        FRONTDESK_WEBHOOK_ALLOW_PRIVATE="true",
        FRONTDESK_WEBHOOK_RETRY_BASE="0.2",
    )
    ch = channel(stack.addresses["directory"])
    stack.on_close(ch.close)
    directory = directory_pb2_grpc.DirectoryServiceStub(ch)
    hooks = webhooks_pb2_grpc.WebhookServiceStub(ch)
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada"
        )
    )
    ws = created.workspace.id
    system = common_pb2.Caller(workspace_id=ws)
    hook = await hooks.CreateWebhook(webhooks_pb2.CreateWebhookRequest(caller=system, url=url))
    assert hook.secret.startswith("whsec_")
    conn = await stack.connect("directory")
    first_new = await conn.fetchval("select coalesce(max(id), 0) from outbox")

    bob = await directory.CreatePerson(
        directory_pb2.CreatePersonRequest(caller=system, email="bob@acme.test", name="Bob")
    )
    await directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=system, person_id=bob.id, active=False)
    )
    groups = await directory.ListGroups(directory_pb2.ListGroupsRequest(caller=system))
    await directory.AddGroupMember(
        directory_pb2.GroupMemberRequest(
            caller=system, group_id=groups.groups[0].id, person_id=bob.id
        )
    )
    expected = {
        str(r["event_id"])
        for r in await conn.fetch("select event_id from outbox where id > $1", first_new)
    }
    assert len(expected) == 3

    async def all_delivered() -> bool:
        return expected <= set(rec.delivered())

    await eventually(all_delivered, "every event to be delivered")
    log = webhooks_pb2.ListWebhookDeliveriesResponse()

    async def log_settled() -> bool:
        nonlocal log
        log = await hooks.ListWebhookDeliveries(
            webhooks_pb2.ListWebhookDeliveriesRequest(caller=system, webhook_id=hook.id)
        )
        return all(d.status == "delivered" for d in log.deliveries)

    # Events from before the webhook may be delivered too (the consumer was catching up); the
    # two refused requests were among them and are retried.
    await eventually(log_settled, "the retries to succeed")
    # Once each: the delivery log's events were answered 2xx exactly once.
    delivered = rec.delivered()
    assert all(delivered[d.event_id] == 1 for d in log.deliveries if d.status == "delivered")
    assert max(delivered.values()) == 1
    retried = [d for d in log.deliveries if d.attempts > 1]
    assert retried and all(
        d.status == "delivered" for d in log.deliveries if d.event_id in expected
    )
    assert sum(1 for _, _, s in rec.requests if s == 503) == 2
    # Every request is signed per Standard Webhooks, with the endpoint's secret only.
    verifier, impostor = Webhook(hook.secret), Webhook("whsec_" + "A" * 43 + "=")
    for headers, body, _ in rec.requests:
        payload = verifier.verify(body, headers)
        assert payload["event_id"] == headers["webhook-id"]
        assert payload["workspace_id"] == ws and payload["type"].startswith("directory.")
        with pytest.raises(WebhookVerificationError):
            impostor.verify(body, headers)
    kinds = {
        payload["type"]
        for headers, body, s in rec.requests
        if s == 200 and headers["webhook-id"] in expected
        for payload in [verifier.verify(body, headers)]
    }
    assert kinds == {
        "directory.person_created",
        "directory.person_deactivated",
        "directory.group_member_added",
    }
    deactivated = next(
        verifier.verify(b, h) for h, b, s in rec.requests if "deactivated" in b and s == 200
    )
    assert deactivated["data"]["person_id"] == bob.id and deactivated["data"]["active"] is False

    # Removed: the next events go nowhere; the log stays.
    await hooks.DeleteWebhook(webhooks_pb2.DeleteWebhookRequest(caller=system, webhook_id=hook.id))
    before = len(rec.requests)
    await directory.UpdatePerson(
        directory_pb2.UpdatePersonRequest(caller=system, person_id=bob.id, active=True)
    )
    await asyncio.sleep(0)  # nothing to wait for: no delivery may be made
    assert len(rec.requests) == before
    log = await hooks.ListWebhookDeliveries(
        webhooks_pb2.ListWebhookDeliveriesRequest(caller=system)
    )
    assert {d.event_id for d in log.deliveries} >= expected


async def test_console_manages_webhooks(stack: Stack) -> None:
    await stack.start("directory")
    await stack.start("auth")
    base = await stack.start_gateway()
    ch = channel(stack.addresses["directory"])
    stack.on_close(ch.close)
    directory = directory_pb2_grpc.DirectoryServiceStub(ch)
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada"
        )
    )
    auth = auth_pb2_grpc.AuthServiceStub(channel(stack.addresses["auth"]))
    await auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=created.workspace.id),
            person_id=created.admin.id,
            password=PASSWORD,
        )
    )
    admin = await GatewayClient.open(base, "acme")
    stack.on_close(admin.close)
    status, body = await admin.login("admin@acme.test", PASSWORD, surface="management")
    assert status == 200, body
    status, body = await admin.post(
        "/management/api/v1/webhooks", json={"url": "http://hooks.example.com/x"}
    )
    assert status == 422 and "https" in body["error"]["message"], body
    status, body = await admin.post(
        "/management/api/v1/webhooks", json={"url": "https://10.0.0.7/hook"}
    )
    assert status == 422, body
    status, body = await admin.post(
        "/management/api/v1/webhooks",
        json={"url": "https://hooks.example.com/x", "event_types": ["nope"]},
    )
    assert status == 422, body
    status, made = await admin.post(
        "/management/api/v1/webhooks",
        json={"url": "https://hooks.example.com/frontdesk", "event_types": ["person_deactivated"]},
    )
    assert status == 201 and made["secret"].startswith("whsec_"), made
    status, page = await admin.get("/management/webhooks")
    assert (
        status == 200 and "https://hooks.example.com/frontdesk" in page and made["secret"] in page
    )
    status, listed = await admin.get("/management/api/v1/webhooks")
    assert [w["id"] for w in listed["items"]] == [made["id"]]
    status, log = await admin.get("/management/api/v1/webhook-deliveries")
    assert status == 200 and log["items"] == []
    status, _ = await admin.delete(f"/management/api/v1/webhooks/{made['id']}")
    assert status == 200
    status, listed = await admin.get("/management/api/v1/webhooks")
    assert listed["items"] == []
