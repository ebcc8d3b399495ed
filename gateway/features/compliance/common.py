"""What the compliance pages and JSON share: permissions, enums and their labels, filters, persons' names, route builders."""

from __future__ import annotations

from typing import Any, Literal

from frontdesk.v1 import common_pb2, compliance_pb2, directory_pb2

from gateway.present import (
    enum_value,
    remember_names,
    split_list,
    system_caller,
)
from gateway.routing import Ctx, Route

C = compliance_pb2
PORTAL_PERMISSIONS = ("Issue:read", "Control:read", "ControlTest:read", "ControlTest:update")
TEST_READ = ("Control:read", "ControlTest:read")
TEST_COMPLETE = (*TEST_READ, "ControlTest:update")

Frequency = Literal["ad_hoc", "daily", "weekly", "monthly", "quarterly", "yearly"]

FREQUENCIES = {
    "ad_hoc": "Ad hoc",
    "daily": "Daily",
    "weekly": "Weekly",
    "monthly": "Monthly",
    "quarterly": "Quarterly",
    "yearly": "Yearly",
}
STATUSES = {
    "open": "Open",
    "investigating": "Investigating",
    "remediation": "Remediation",
    "resolved": "Resolved",
    "closed": "Closed",
    "accepted": "Accepted",
}


def freq_value(name: str | None) -> Any:
    return enum_value(C.ControlFrequency, "CONTROL_FREQUENCY_", name)


def choices(raw: str, allowed: dict[str, str], field: str, fields: dict[str, str]) -> list[str]:
    out = []
    for name in split_list(raw):
        if name not in allowed:
            fields[field] = f"unknown value {name!r}; use {', '.join(allowed)}"
        else:
            out.append(name)
    return out


def one_of(raw: str, allowed: dict[str, str], field: str, fields: dict[str, str]) -> str | None:
    values = choices(raw, allowed, field, fields)
    if len(values) > 1:
        fields[field] = "choose one value"
    return values[0] if values else None


async def person_choices(ctx: Ctx) -> list[tuple[str, str]]:
    """(id, name) of active persons for the owner and assignee menus; [] when unknown."""
    try:
        resp = await ctx.call(
            ctx.backends.directory.ListPersons,
            directory_pb2.ListPersonsRequest(
                caller=system_caller(ctx),
                active=True,
                page=common_pb2.PageRequest(page_size=200),
            ),
            safe=True,
        )
    except Exception:
        return []
    remember_names(ctx, resp.persons)
    return sorted(((p.id, p.name or p.email) for p in resp.persons), key=lambda x: x[1].lower())


NOTICES = {
    "created": "Created.",
    "updated": "Saved.",
    "status": "Status changed.",
    "commented": "Comment added.",
    "reviewed": "Review recorded.",
    "removed": "File removed.",
}


def issues_route(method: str, path: str, handler: Any, **kw: Any) -> Route:
    kw.setdefault("permissions", ("Issue:read",))
    return Route(method, path, handler, surface="portal", section="issues", **kw)


def tests_route(method: str, path: str, handler: Any, **kw: Any) -> Route:
    kw.setdefault("permissions", TEST_READ)
    return Route(method, path, handler, surface="portal", section="control_tests", **kw)


def management_route(method: str, path: str, handler: Any, perm: str, **kw: Any) -> Route:
    return Route(method, path, handler, surface="management", permissions=(perm,), **kw)


CM, IM = "Control:manage", "Issue:manage"
