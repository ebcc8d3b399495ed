"""Gateway surface of notifications: the portal list with its unread count, mark read,
one-click unsubscribe, and the delivery log administrators see per person."""

from __future__ import annotations

from gateway.features.notifications import deliveries, inbox, unsubscribe
from gateway.routing import Route

ROUTES: list[Route] = [*inbox.ROUTES, *unsubscribe.ROUTES, *deliveries.ROUTES]
