"""A 50 MB file through a gateway running in its own process: uploaded and downloaded whole
(the bytes compared by SHA-256), while the gateway's peak resident memory grows by far less
than the file (it streams; it never holds the file). A memory bound, not a timing."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import aiohttp
from frontdesk.v1 import auth_pb2, auth_pb2_grpc, common_pb2, directory_pb2, directory_pb2_grpc
from yarl import URL

from tests.gateway_client import GatewayClient
from tests.gateway_process import GatewayProcess
from tests.signing import channel, keys
from tests.stack import Stack

SIZE = 50 * 1024 * 1024
CHUNK = 1024 * 1024
# The gateway may grow by at most this much while passing a 50 MB file either way.
BOUND_KIB = 20 * 1024
PASSWORD = "correct horse battery staple 42"


def block(i: int) -> bytes:
    """The file's i-th MiB: a ZIP header first (an accepted type), then bytes that do not compress."""
    data = hashlib.sha256(str(i).encode()).digest() * (CHUNK // 32)
    return b"PK\x03\x04" + data[4:] if i == 0 else data


async def body() -> AsyncIterator[bytes]:
    for i in range(SIZE // CHUNK):
        yield block(i)


async def test_a_50_mb_file_passes_the_gateway_with_flat_memory(stack: Stack) -> None:
    for name in ("directory", "auth"):
        await stack.start(name)
    await stack.start("tickets")
    env = stack.env()
    env["FRONTDESK_IDENTITY_KEY_FILE"] = keys().key_file("gateway")  # the gateway's signing key
    env["FRONTDESK_COMPLIANCE_ADDR"] = "127.0.0.1:1"
    gateway = await GatewayProcess.start(env)
    client = await GatewayClient.open(gateway.base, "acme")
    try:
        async with (
            channel(stack.addresses["directory"]) as dch,
            channel(stack.addresses["auth"]) as ach,
        ):
            directory = directory_pb2_grpc.DirectoryServiceStub(dch)
            auth = auth_pb2_grpc.AuthServiceStub(ach)
            created = await directory.CreateWorkspace(
                directory_pb2.CreateWorkspaceRequest(
                    slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada"
                )
            )
            ws = created.workspace.id
            system = common_pb2.Caller(workspace_id=ws)
            await directory.UpdatePortalSettings(
                directory_pb2.UpdatePortalSettingsRequest(
                    caller=system, attachment_max_file_mb=60, attachment_max_item_mb=120
                )
            )
            await auth.SetPassword(
                auth_pb2.SetPasswordRequest(
                    caller=common_pb2.Caller(workspace_id=ws),
                    person_id=created.admin.id,
                    password=PASSWORD,
                )
            )
            login = await auth.Login(
                auth_pb2.LoginRequest(
                    workspace_id=ws, email="admin@acme.test", password=PASSWORD, surface="portal"
                )
            )
        client.http.cookie_jar.update_cookies(
            {"fd_session": login.session_token}, URL(gateway.base)
        )
        await client.refresh_csrf()
        # Warm up (templates, channels, caches) with a small file, then measure from there.
        small = aiohttp.FormData()
        small.add_field("file", b"warm up\n", filename="w.txt", content_type="text/plain")
        status, _ = await client.post("/api/v1/tickets/uploads", data=small)
        assert status == 201
        gateway.reset_peak()
        before = gateway.memory_kib("VmHWM")

        writer = aiohttp.MultipartWriter("form-data")
        part = writer.append(body(), {"Content-Type": "application/zip"})
        part.set_content_disposition("form-data", name="file", filename="export.zip")
        async with client.http.post(
            gateway.base + "/api/v1/tickets/uploads", data=writer, headers=client.headers()
        ) as resp:
            staged = await resp.json()
            assert resp.status == 201, staged
        file = staged["attachments"][0]
        expected = hashlib.sha256(b"".join(block(i) for i in range(SIZE // CHUNK))).hexdigest()
        assert (file["size"], file["sha256"]) == (SIZE, expected)
        after_upload = gateway.memory_kib("VmHWM")

        status, ticket = await client.post(
            "/api/v1/tickets",
            json={
                "type": "incident",
                "title": "Export",
                "description": "the access review export",
                "impact": "low",
                "urgency": "low",
                "attachment_ids": [file["id"]],
            },
        )
        assert status == 201, ticket
        digest = hashlib.sha256()
        url = f"/api/v1/tickets/{ticket['number']}/attachments/{file['id']}"
        async with client.http.get(gateway.base + url, headers=client.headers()) as resp:
            assert resp.status == 200
            async for chunk in resp.content.iter_chunked(CHUNK):
                digest.update(chunk)
        assert digest.hexdigest() == expected
        after_download = gateway.memory_kib("VmHWM")
        print(
            f"gateway peak RSS: {before} KiB before, {after_upload} after a 50 MB upload, "
            f"{after_download} after its download"
        )
        assert after_upload - before < BOUND_KIB
        assert after_download - before < BOUND_KIB
    finally:
        await client.close()
        gateway.stop()
