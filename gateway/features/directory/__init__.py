"""Gateway surface of the directory capability: management of persons, import, roles, groups,
portal settings, portal usage and the audit trail (pages and /management/api/v1 JSON).

The directory service checks every object against the Caller itself (workspace, permission);
an id of another workspace is NOT_FOUND there, so it is a 404 here. Portal access never depends
on a login name: creating or editing a person with portal access on and no login name works.
"""

from __future__ import annotations

from gateway.features.directory import (
    audit,
    groups,
    imports,
    memberships,
    persons,
    roles,
    settings,
    usage,
)
from gateway.routing import Route

ROUTES: list[Route] = [
    *imports.ROUTES,  # before persons: "/persons/import" is not a person id
    *persons.ROUTES,
    *memberships.ROUTES,
    *usage.ROUTES,
    *roles.ROUTES,
    *groups.ROUTES,
    *settings.ROUTES,
    *audit.ROUTES,
]
