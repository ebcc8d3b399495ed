"""Gateway surface of the tickets capability: portal pages and JSON for one's own tickets, and
the management queue. The tickets service checks ownership itself; the portal always calls it
with a Caller stripped down to the portal permissions, so a portal response can never contain
another person's ticket or an internal note, whatever management roles the person also holds.
"""

from __future__ import annotations

from gateway.features.tickets import attachments, portal, queue
from gateway.routing import Route

ROUTES: list[Route] = [*attachments.ROUTES, *portal.ROUTES, *queue.ROUTES]
