"""Ticket files through the gateway against real services and a real SeaweedFS: the JSON
staging flow, the no-JavaScript forms, downloads that cannot hurt, who reaches which file, the
section toggle, limits and type by content, and the object store going down."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from frontdesk.v1 import common_pb2, directory_pb2

from deploy.embedded import EmbeddedS3, free_port
from tests.gateway_client import GatewayClient
from tests.integration.test_gateway_access import eventually

# The running suite of the tickets gateway tests (the fixture is imported by name).
from tests.integration.test_tickets_gateway import INCIDENT, Suite, suite  # noqa: F401
from tests.stack import Stack

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(5000)
EXE = b"MZ\x90\x00" + os.urandom(4000)


def files_form(
    csrf: str | None, files: list[tuple[str, bytes, str]], **fields: str
) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)  # names as a browser sends them
    if csrf is not None:
        form.add_field("csrf_token", csrf)
    for name, value in fields.items():
        form.add_field(name, value)
    for filename, data, ctype in files:
        form.add_field("files", data, filename=filename, content_type=ctype)
    return form


async def stage(
    client: GatewayClient, path: str, *files: tuple[str, bytes, str]
) -> tuple[int, dict]:  # type: ignore[type-arg]
    form = aiohttp.FormData(quote_fields=False)
    for filename, data, ctype in files:
        form.add_field("file", data, filename=filename, content_type=ctype)
    return await client.post(path, data=form)


async def raw_get(client: GatewayClient, path: str) -> tuple[int, dict[str, str], bytes]:
    async with client.http.get(client.base_url + path, headers=client.headers()) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_json_stage_create_download_and_remove(suite: Suite) -> None:  # noqa: F811
    await suite.person("alice@acme.test", "Alice")
    alice = await suite.client("alice@acme.test")
    agent = await suite.client(suite.agent_email, surface="management")

    status, staged = await stage(
        alice,
        "/api/v1/tickets/uploads",
        ("screen.png", PNG, "image/png"),
        ("log.txt", b"boot failed\n", "text/plain"),
    )
    assert status == 201, staged
    ids = [a["id"] for a in staged["attachments"]]
    assert [a["content_type"] for a in staged["attachments"]] == ["image/png", "text/plain"]
    status, ticket = await alice.post("/api/v1/tickets", json={**INCIDENT, "attachment_ids": ids})
    assert status == 201, ticket
    status, detail = await alice.get(f"/api/v1/tickets/{ticket['number']}")
    assert [a["name"] for a in detail["attachments"]] == ["screen.png", "log.txt"]
    png_url = detail["attachments"][0]["download_url"]
    assert png_url == f"/api/v1/tickets/{ticket['number']}/attachments/{ids[0]}"

    status, headers, body = await raw_get(alice, png_url)
    assert status == 200 and body == PNG
    assert (
        headers["Content-Disposition"]
        == "attachment; filename=\"screen.png\"; filename*=UTF-8''screen.png"
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]
    # A raster image may be shown inline (thumbnails); text never is.
    status, headers, _ = await raw_get(alice, png_url + "?inline=1")
    assert (
        headers["Content-Disposition"].startswith("inline;")
        and headers["Content-Type"] == "image/png"
    )
    status, headers, body = await raw_get(
        alice, detail["attachments"][1]["download_url"] + "?inline=1"
    )
    assert headers["Content-Disposition"].startswith("attachment;") and body == b"boot failed\n"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"

    # The agent sees them in the console and may remove one; history and listing follow.
    status, managed = await agent.get(f"/management/api/v1/tickets/{ticket['number']}")
    assert [a["id"] for a in managed["attachments"]] == ids
    status, headers, body = await raw_get(agent, managed["attachments"][0]["download_url"])
    assert status == 200 and body == PNG
    status, _ = await agent.delete(managed["attachments"][1]["download_url"])
    assert status == 204
    status, managed = await agent.get(f"/management/api/v1/tickets/{ticket['number']}")
    assert [a["id"] for a in managed["attachments"]] == ids[:1]
    assert any(
        h["field"] == "attachment" and h["old_value"] == "log.txt" for h in managed["field_history"]
    )
    status, _, _ = await raw_get(alice, detail["attachments"][1]["download_url"])
    assert status == 404


async def test_forms_without_javascript_attach_on_new_ticket_and_comments(suite: Suite) -> None:  # noqa: F811
    await suite.person("bob@acme.test", "Bob")
    bob = await suite.client("bob@acme.test")
    agent = await suite.client(suite.agent_email, surface="management")
    csrf = bob.csrf
    bob.csrf = ""  # a browser form sends the token as its first field, not a header
    form = files_form(
        csrf,
        [("Screenshot 1.png", PNG, "image/png")],
        type="incident",
        title="Printer jam",
        description="Paper stuck",
        impact="low",
        urgency="low",
    )
    status, page = await bob.post("/tickets/new", data=form)
    assert status == 303, page
    status, page = await bob.get("/tickets/INC-1")
    assert "Screenshot 1.png" in page and 'src="/tickets/INC-1/attachments/' in page

    # A form with an error comes back with the file kept, and a second try attaches it.
    form = files_form(
        csrf,
        [("notes.txt", b"first try\n", "text/plain")],
        type="incident",
        title="",
        description="x",
    )
    status, page = await bob.post("/tickets/new", data=form)
    assert status == 422 and "Already attached" in page and "notes.txt" in page
    kept = re.search(r'name="attachment_id" value="([^"]+)"', page)
    assert kept
    retry = files_form(
        csrf,
        [],
        type="incident",
        title="Second",
        description="x",
        impact="low",
        urgency="low",
        attachment_id=kept.group(1),
    )
    status, _ = await bob.post("/tickets/new", data=retry)
    assert status == 303
    status, page = await bob.get("/tickets/INC-2")
    assert "notes.txt" in page

    # A comment with a file, then an agent's internal note with one: Bob never sees the latter.
    status, _ = await bob.post(
        "/tickets/INC-1/comments",
        data=files_form(csrf, [("more.txt", b"more\n", "text/plain")], body="more info"),
    )
    assert status == 303
    agent_csrf = agent.csrf
    agent.csrf = ""
    status, _ = await agent.post(
        "/management/tickets/INC-1/comments",
        data=files_form(
            agent_csrf, [("secret.txt", b"internal\n", "text/plain")], body="note", internal="1"
        ),
    )
    assert status == 303
    status, page = await agent.get("/management/tickets/INC-1")
    assert "secret.txt" in page and "more.txt" in page
    secret_link = re.search(
        r'href="/management/tickets/INC-1/attachments/([0-9a-f-]+)" download>secret.txt', page
    )
    assert secret_link
    status, page = await bob.get("/tickets/INC-1")
    assert "more.txt" in page and "secret.txt" not in page
    for path in (
        f"/tickets/INC-1/attachments/{secret_link.group(1)}",
        f"/api/v1/tickets/INC-1/attachments/{secret_link.group(1)}",
    ):
        status, _, body = await raw_get(bob, path)
        assert status == 404 and b"internal" not in body

    # Without the CSRF token first, the streamed form is refused before any file is read.
    status, _ = await bob.post(
        "/tickets/INC-1/comments",
        data=files_form(None, [("x.txt", b"x\n", "text/plain")], body="hi"),
    )
    assert status == 403


async def test_other_people_and_a_section_turned_off(suite: Suite) -> None:  # noqa: F811
    await suite.person("carol@acme.test", "Carol")
    await suite.person("dave@acme.test", "Dave")
    carol = await suite.client("carol@acme.test")
    dave = await suite.client("dave@acme.test")
    status, staged = await stage(carol, "/api/v1/tickets/uploads", ("c.png", PNG, "image/png"))
    aid = staged["attachments"][0]["id"]
    # Dave cannot attach Carol's staged file, nor read it once attached.
    status, body = await dave.post("/api/v1/tickets", json={**INCIDENT, "attachment_ids": [aid]})
    assert status == 422, body
    status, ticket = await carol.post("/api/v1/tickets", json={**INCIDENT, "attachment_ids": [aid]})
    assert status == 201
    path = f"/api/v1/tickets/{ticket['number']}/attachments/{aid}"
    status, _, _ = await raw_get(dave, path)
    assert status == 404
    status, _ = await dave.delete(path)
    assert status == 404
    status, _, body = await raw_get(carol, path)
    assert status == 200 and body == PNG

    # Tickets turned off for the portal: the file is gone with the section.
    system = common_pb2.Caller(workspace_id=suite.ws)
    await suite.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=system, tickets_enabled=False)
    )
    # The gateway learns of the change from the directory's event (within its freshness bound).
    await eventually(lambda: raw_get(carol, path), lambda r: r[0] == 404, within=20.0)
    status, _ = await stage(carol, "/api/v1/tickets/uploads", ("c.png", PNG, "image/png"))
    assert status == 404


async def test_refusals_by_content_and_size(suite: Suite) -> None:  # noqa: F811
    await suite.person("erin@acme.test", "Erin")
    erin = await suite.client("erin@acme.test")
    status, body = await stage(erin, "/api/v1/tickets/uploads", ("cat.png", EXE, "image/png"))
    assert status == 415 and body["error"]["code"] == "unsupported_type", body
    status, body = await stage(
        erin, "/api/v1/tickets/uploads", ("big.txt", b"a" * (25 * 1024 * 1024 + 1), "text/plain")
    )
    assert status == 413 and body["error"]["code"] == "too_large", body
    status, body = await erin.post("/api/v1/tickets/uploads", json={"file": "x"})
    assert status == 415
    status, body = await erin.post(
        "/api/v1/tickets/uploads",
        data=b"--x\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert status in (400, 422), body
    # The page shows the refusal next to the file field, keeping what was typed.
    csrf = erin.csrf
    erin.csrf = ""
    form = files_form(
        csrf,
        [("setup.jpg", EXE, "image/jpeg")],
        type="incident",
        title="Kept title",
        description="d",
    )
    status, page = await erin.post("/tickets/new", data=form)
    assert status == 415 and "Kept title" in page and "not accepted" in page


@pytest.fixture
def own_s3(stack: Stack) -> Iterator[EmbeddedS3]:
    """A SeaweedFS of this test alone (it is stopped midway), used by the suite's services."""
    server = EmbeddedS3(
        Path(tempfile.mkdtemp(prefix="s3-gw-")), free_port(), [free_port() for _ in range(9)]
    )
    server.start()
    access, secret = server.credentials()
    stack.extra_env.update(
        FRONTDESK_S3_ENDPOINT=server.endpoint,
        FRONTDESK_S3_ACCESS_KEY=access,
        FRONTDESK_S3_SECRET_KEY=secret,
    )
    try:
        yield server
    finally:
        server.stop()


async def test_the_store_down_is_503_and_the_ticket_still_opens(
    own_s3: EmbeddedS3,
    suite: Suite,  # noqa: F811
) -> None:
    await suite.person("fay@acme.test", "Fay")
    fay = await suite.client("fay@acme.test")
    status, staged = await stage(fay, "/api/v1/tickets/uploads", ("s.png", PNG, "image/png"))
    assert status == 201
    status, ticket = await fay.post(
        "/api/v1/tickets", json={**INCIDENT, "attachment_ids": [staged["attachments"][0]["id"]]}
    )
    assert status == 201
    path = f"/api/v1/tickets/{ticket['number']}/attachments/{staged['attachments'][0]['id']}"
    own_s3.stop()
    status, body = await stage(fay, "/api/v1/tickets/uploads", ("t.png", PNG, "image/png"))
    assert status == 503 and body["error"]["code"] == "unavailable", body
    status, _, raw = await raw_get(fay, path)
    assert status == 503 and b'"unavailable"' in raw
    status, page = await fay.get(f"/tickets/{ticket['number']}")
    assert status == 200 and "s.png" in page  # the ticket and its file list do not need the store
    own_s3.start()
    status, _, raw = await raw_get(fay, path)
    assert status == 200 and raw == PNG
