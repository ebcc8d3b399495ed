"""Inputs the fuzzer (test_gateway_fuzz.py) found to break the gateway, each sent as it was found.

Each answer is a 4xx in the one error shape naming the bad field, never a 500, and nothing
is lost: the same session keeps working afterwards.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.integration.test_gateway_access import make_world
from tests.stack import Stack

SERVICES = ("directory", "auth", "tickets", "compliance")


def _invalid(status: int, body: Any, field: str) -> None:
    assert status == 422, body
    assert set(body) == {"error"} and body["error"]["code"] == "invalid", body
    assert field in body["error"].get("fields", {}), body


async def test_a_page_size_out_of_the_protobuf_range_is_422_on_every_list(stack: Stack) -> None:
    # Found: "ValueError: Value out of range" building the PageRequest (int32) -> 500.
    world = await make_world(stack, services=SERVICES)
    await world.set_sections(tickets=True, issues=True, control_tests=True)
    admin = await world.client(world.admin_email)
    for path in (
        "/management/api/v1/persons?page_size=114149293328534646237954048",
        "/management/api/v1/persons?permission=Ticket:read&page_size=114149293328534646237954048",
        "/management/api/v1/portal-usage?page_size=-2199023255552&filter=&stale_days=590",
        "/management/api/v1/audit?page_size=41216879348195239043006464",
        "/api/v1/issues?page_size=-660408022601",
        "/api/v1/control-tests?page_size=-660408022601",
        "/api/v1/tickets?page_size=24454079560020541440",
        "/management/api/v1/tickets?page_size=24454079560020541440",
        "/management/api/v1/controls?active=&page_size=6015852015845",
        "/management/api/v1/control-tests?page_size=41216879348195239043006464",
        "/management/api/v1/issues?page_size=-92343696627468736",
    ):
        status, body = await admin.get(path)
        _invalid(status, body, "page_size")
    status, me = await admin.get("/api/v1/me")
    assert status == 200, me


async def _raw(client: Any, method: str, path: str, raw: bytes) -> tuple[int, Any]:
    """Send JSON bytes as they are (escapes like \\u0000 and surrogate pairs kept)."""
    return await client.request(
        method, path, data=raw, headers={"Content-Type": "application/json"}
    )


async def test_nul_characters_are_refused_by_name_not_a_backend_failure(stack: Stack) -> None:
    # Found: PostgreSQL cannot store NUL in text; the services passed it on and failed (502).
    world = await make_world(stack, services=SERVICES)
    admin = await world.client(world.admin_email)
    admin_id = world.people[world.admin_email]

    anon = await world.client()
    await anon.anonymous_csrf()
    status, body = await _raw(
        anon,
        "POST",
        "/auth/login",
        b'{"email": "H\\u0000\\udacf\\udf74\\u00e1\\u00bd\\uda1c\\uddf0", "password": "x y z"}',
    )
    _invalid(status, body, "email")

    status, control = await admin.post(
        "/management/api/v1/controls",
        json={"title": "Backups", "frequency": "monthly", "owner_id": admin_id},
    )
    assert status == 201, control
    status, body = await _raw(
        admin,
        "PATCH",
        f"/management/api/v1/controls/{control['id']}",
        b'{"title": null, "frequency": "weekly", "active": false, "description": null, '
        b'"owner_id": null, "framework_ref": "\\u009c]\\u0000^\\ud8e0\\udf36yn", '
        b'"test_procedure": "y"}',
    )
    _invalid(status, body, "framework_ref")
    status, after = await admin.get(f"/management/api/v1/controls/{control['id']}")
    assert status == 200 and after["frequency"] == "monthly" and after["framework_ref"] == ""

    # The same for the directory and the rest of auth.
    for method, path, raw, field in (
        ("POST", "/management/api/v1/groups", b'{"name": "a\\u0000b"}', "name"),
        (
            "POST",
            "/management/api/v1/roles",
            b'{"name": "r", "description": "\\u0000"}',
            "description",
        ),
        (
            "POST",
            "/management/api/v1/persons",
            b'{"email": "a\\u0000b@acme.test", "name": "A"}',
            "email",
        ),
        ("PATCH", "/api/v1/profile", b'{"name": "Ada\\u0000"}', "name"),
        ("POST", "/management/api/v1/api-tokens", b'{"name": "t\\u0000"}', "name"),
    ):
        status, body = await _raw(admin, method, path, raw)
        _invalid(status, body, field)
    status, body = await admin.get("/management/api/v1/persons?q=%00")
    assert status == 422 and body["error"]["code"] == "invalid", body
    status, body = await admin.delete("/api/v1/profile/sessions/%00")
    assert status == 404 and body["error"]["code"] == "not_found", body

    status, me = await admin.get("/api/v1/me")
    assert status == 200, me


def _token(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


async def test_a_crafted_page_token_is_422_not_a_backend_failure(stack: Stack) -> None:
    # Found: the directory trusted what a page token decoded to: ["\u0000", "\u0000"] reached
    # PostgreSQL, ["x"] reached int() for the audit log (502 both).
    world = await make_world(stack, services=SERVICES)
    admin = await world.client(world.admin_email)
    await world.person("pat@acme.test")
    crafted = [
        _token(["\u0000", "\u0000"]),
        _token(["\u0000"]),
        _token(["2020-01-01T00:00:00Z", "not-a-uuid"]),
        _token([None, None]),
        _token([[], {}]),
        _token([1e308, -1]),
        _token(["2020-01-01", 99999999999999999999]),
        _token([2**63]),
        _token({"a": 1}),
        _token([]),
    ]
    for path in (
        "/management/api/v1/persons?page_size=1",
        "/management/api/v1/persons?permission=Ticket:read&page_size=1",
        "/management/api/v1/portal-usage?page_size=1",
        "/management/api/v1/audit?page_size=1",
    ):
        # A person list pages by e-mail (["x"] is a fine place to start), the log by number.
        for token in crafted + ([_token(["x"])] if "audit" in path else []):
            status, body = await admin.get(f"{path}&page_token={token}")
            _invalid(status, body, "page_token")
        # The tokens the directory does issue still page.
        status, first = await admin.get(path)
        assert status == 200 and first["next_page_token"], first
        status, second = await admin.get(f"{path}&page_token={first['next_page_token']}")
        assert status == 200 and second["items"] and second["items"] != first["items"], second


async def test_an_issuer_that_is_no_url_and_an_audit_filter_with_nul_are_422(
    stack: Stack,
) -> None:
    # Found: urlsplit("http://[::1") raised ValueError in auth (502); the audit log's
    # object_type/object_id went to PostgreSQL with NUL (502).
    world = await make_world(stack, services=SERVICES)
    admin = await world.client(world.admin_email)
    status, body = await admin.put(
        "/management/api/v1/sso",
        json={"enabled": False, "issuer": "http://[::1", "client_id": "c"},
    )
    _invalid(status, body, "issuer")
    status, sso = await admin.get("/management/api/v1/sso")
    assert status == 200 and sso["configured"] is False, sso
    status, body = await admin.get("/management/api/v1/audit?object_id=%00&object_type=%00")
    _invalid(status, body, "object_type")
    status, body = await admin.get("/management/api/v1/audit?object_id=%00")
    _invalid(status, body, "object_id")


async def test_a_malformed_form_body_is_400_on_the_api_and_on_pages(stack: Stack) -> None:
    # Found: a multipart part header with control characters (aiohttp's InvalidHeader) and an
    # unknown charset (LookupError) escaped request.post() as 500s.
    world = await make_world(stack, services=SERVICES)
    admin = await world.client(world.admin_email)
    csrf = admin.csrf
    bad_part = (
        b'--xx\r\nContent-Disposition: form-data; name="c\x0e\xf4\x80\x89\x87"\r\n\r\n{}\r\n'
        b"--xx--\r\n"
    )
    for content_type, raw in (
        ("multipart/form-data; boundary=xx", bad_part),
        ("multipart/form-data", b"garbage"),
        ("application/x-www-form-urlencoded; charset=nonexistent", b"a=b"),
    ):
        for path, accept in (
            ("/management/api/v1/persons/import?format=csv", "application/json"),
            ("/management/persons/import", "text/html"),
            ("/auth/login", "application/json"),
        ):
            admin.csrf = ""  # as a browser form would: the token inside the body
            status, body = await admin.request(
                "POST", path, data=raw, headers={"Content-Type": content_type, "Accept": accept}
            )
            admin.csrf = csrf
            assert status == 400, (content_type, path, body)
            if accept == "application/json":
                assert body["error"]["code"] == "bad_form", body
    status, me = await admin.get("/api/v1/me")
    assert status == 200, me
