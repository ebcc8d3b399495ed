"""THE route table: every HTTP route of the gateway, each declared once in its feature module.

The gateway enforces what each row says (surface, permissions, portal section, schema) before
routing, and the OpenAPI document is built from the same rows.
"""

from __future__ import annotations

from gateway.features import auth, compliance, core, directory, profile, tickets
from gateway.routing import Route

ROUTES: list[Route] = [
    *core.ROUTES,
    *auth.ROUTES,
    *profile.ROUTES,
    *directory.ROUTES,
    *tickets.ROUTES,
    *compliance.ROUTES,
]
