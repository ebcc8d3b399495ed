"""Inputs the fuzzer (test_gateway_fuzz.py) found to break the gateway, each sent as it was found.

Each answer is a 4xx in the one error shape naming the bad field, never a 500, and nothing
is lost: the same session keeps working afterwards.
"""

from __future__ import annotations

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
