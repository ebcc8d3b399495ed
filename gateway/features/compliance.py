"""Gateway surface of the compliance capability (routes, handlers, schemas)."""

from __future__ import annotations

from gateway.routing import Route

ROUTES: list[Route] = []
