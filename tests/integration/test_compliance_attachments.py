"""Compliance files through the gateway against real services and a real SeaweedFS: control
test evidence from the portal (JSON and the no-JavaScript completion form), locked with the
test; files of issues and their comments; who reaches which file; a section turned off."""

from __future__ import annotations

import os
import re

import aiohttp
from frontdesk.v1 import common_pb2, directory_pb2

from tests.gateway_client import GatewayClient
from tests.integration.test_compliance_gateway import CONTROL, Suite, suite  # noqa: F401
from tests.integration.test_gateway_access import eventually

CSV = b"account,role\nada,admin\nbob,admin\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(2000)


async def stage(client: GatewayClient, path: str, *files: tuple[str, bytes]) -> tuple[int, dict]:  # type: ignore[type-arg]
    form = aiohttp.FormData(quote_fields=False)
    for name, data in files:
        form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return await client.post(path, data=form)


async def raw_get(client: GatewayClient, path: str) -> tuple[int, dict[str, str], bytes]:
    async with client.http.get(client.base_url + path, headers=client.headers()) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_evidence_for_a_test_and_files_on_issues(suite: Suite) -> None:  # noqa: F811
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("bob@acme.test", "Bob Other")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    status, _ = await mia.post(
        "/management/api/v1/controls", json={**CONTROL, "owner_id": alice_id}
    )
    assert status == 201
    alice = await suite.client("alice@acme.test")
    bob = await suite.client("bob@acme.test")

    # The assignee stages the access review export and completes the test with it.
    status, staged = await stage(alice, "/api/v1/control-tests/TST-1/uploads", ("admins.csv", CSV))
    assert status == 201, staged
    assert staged["attachments"][0]["content_type"] == "text/plain"
    status, body = await stage(bob, "/api/v1/control-tests/TST-1/uploads", ("x.csv", CSV))
    assert status == 404, body  # not Bob's test
    status, done = await alice.post(
        "/api/v1/control-tests/TST-1/complete",
        json={
            "result": "fail",
            "notes": "Two leavers",
            "attachment_ids": [staged["attachments"][0]["id"]],
        },
    )
    assert status == 200, done
    evidence = done["control_test"]["evidence_files"]
    assert [f["name"] for f in evidence] == ["admins.csv"]
    status, headers, data = await raw_get(alice, evidence[0]["download_url"])
    assert (
        status == 200 and data == CSV and headers["Content-Disposition"].startswith("attachment;")
    )
    status, _, _ = await raw_get(bob, evidence[0]["download_url"])
    assert status == 404
    # The manager reads it in the console; completed evidence is locked.
    status, managed = await mia.get("/management/api/v1/control-tests/TST-1")
    url = managed["evidence_files"][0]["download_url"]
    assert url.startswith("/management/api/v1/control-tests/TST-1/attachments/")
    status, _, data = await raw_get(mia, url)
    assert status == 200 and data == CSV
    status, _ = await mia.delete(url)
    assert status == 409
    status, _ = await stage(alice, "/api/v1/control-tests/TST-1/uploads", ("late.csv", CSV))
    assert status == 409

    # The failure opened ISS-1 for Alice: she comments with a screenshot; Bob cannot see it.
    status, staged = await stage(alice, "/api/v1/issues/ISS-1/uploads", ("fix.png", PNG))
    assert status == 201, staged
    status, _ = await alice.post(
        "/api/v1/issues/ISS-1/comments",
        json={"body": "", "attachment_ids": [staged["attachments"][0]["id"]]},
    )
    assert status == 201
    status, detail = await alice.get("/api/v1/issues/ISS-1")
    files = detail["attachments"]
    assert [f["name"] for f in files] == ["fix.png"] and files[0]["inline_image"]
    assert files[0]["comment_id"] == detail["comments"][0]["id"]
    status, _, _ = await raw_get(bob, files[0]["download_url"])
    assert status == 404
    status, page = await mia.get("/management/issues/ISS-1")
    assert "fix.png" in page and 'src="/management/issues/ISS-1/attachments/' in page
    assert any(h["field"] == "attachment" for h in detail["history"])

    # A new issue with a file, by the manager.
    status, staged = await stage(
        mia, "/management/api/v1/issues/uploads", ("report.pdf", b"%PDF-1.7\n" + os.urandom(500))
    )
    assert status == 201, staged
    status, issue = await mia.post(
        "/management/api/v1/issues",
        json={
            "title": "Audit finding",
            "severity": "low",
            "attachment_ids": [staged["attachments"][0]["id"]],
        },
    )
    assert status == 201, issue
    status, detail = await mia.get(f"/management/api/v1/issues/{issue['number']}")
    assert [(f["name"], f["content_type"]) for f in detail["attachments"]] == [
        ("report.pdf", "application/pdf")
    ]

    # Issues turned off for the portal: Alice's file goes with the section.
    await suite.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=common_pb2.Caller(workspace_id=suite.ws), issues_enabled=False
        )
    )
    await eventually(
        lambda: raw_get(alice, files[0]["download_url"]), lambda r: r[0] == 404, within=20.0
    )


async def test_completing_from_the_portal_form_with_evidence_files(suite: Suite) -> None:  # noqa: F811
    alice_id = await suite.person("alice@acme.test", "Alice Tester")
    await suite.person("mia@acme.test", "Mia Manager", manager=True)
    mia = await suite.client("mia@acme.test", "management")
    status, _ = await mia.post(
        "/management/api/v1/controls", json={**CONTROL, "owner_id": alice_id}
    )
    assert status == 201
    alice = await suite.client("alice@acme.test")
    status, page = await alice.get("/control-tests/TST-1")
    assert 'enctype="multipart/form-data"' in page and 'type="file"' in page
    csrf, alice.csrf = alice.csrf, ""

    def form(*files: tuple[str, bytes], **fields: str) -> aiohttp.FormData:
        out = aiohttp.FormData(quote_fields=False)
        out.add_field("csrf_token", csrf)
        for k, v in fields.items():
            out.add_field(k, v)
        for name, data in files:
            out.add_field("files", data, filename=name, content_type="application/octet-stream")
        return out

    # No result chosen: the form comes back, the file kept.
    status, page = await alice.post(
        "/control-tests/TST-1/complete", data=form(("admins.csv", CSV), notes="n")
    )
    assert status == 422 and "Already attached" in page
    kept = re.search(r'name="attachment_id" value="([^"]+)"', page)
    assert kept
    status, _ = await alice.post(
        "/control-tests/TST-1/complete",
        data=form(
            ("screen.png", PNG), result="pass", notes="all good", attachment_id=kept.group(1)
        ),
    )
    assert status == 303
    status, page = await alice.get("/control-tests/TST-1")
    assert "admins.csv" in page and "screen.png" in page and "Evidence files" in page
    status, test = await alice.get("/api/v1/control-tests/TST-1")
    assert sorted(f["name"] for f in test["evidence_files"]) == ["admins.csv", "screen.png"]
    # A renamed executable is refused on the form, next to the file field.
    status, page = await alice.post(
        "/control-tests/TST-2/complete",
        data=form(("report.pdf", b"MZ\x90\x00" + os.urandom(100)), result="pass"),
    )
    assert status == 415 and "not accepted" in page
