"""THE route table: every HTTP route of the gateway, each declared once in its feature module.

The gateway enforces what each row says (surface, permissions, portal section, schema) before
routing, and the OpenAPI document is built from the same rows.
"""

from __future__ import annotations

from gateway.features import auth, compliance, core, directory, notifications, profile, tickets
from gateway.features.events import catalogue as events_catalogue
from gateway.features.events import snapshot as events_snapshot
from gateway.features.scim import console as scim_console
from gateway.features.webhooks import console as webhooks_console
from gateway.routing import Route

ROUTES: list[Route] = [
    *core.ROUTES,
    *auth.ROUTES,
    *profile.ROUTES,
    *directory.ROUTES,
    *tickets.ROUTES,
    *compliance.ROUTES,
    *notifications.ROUTES,
    *scim_console.ROUTES,
    *events_catalogue.ROUTES,
    *events_snapshot.ROUTES,
    *webhooks_console.ROUTES,
]
