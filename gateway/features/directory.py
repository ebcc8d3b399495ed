"""Gateway surface of the directory capability: management of persons, import, roles, groups,
portal settings, portal usage and the audit trail (pages and /management/api/v1 JSON).

Owned by the directory-gateway engineer (see gateway/FEATURES.md).
"""

from __future__ import annotations

from gateway.routing import Route

ROUTES: list[Route] = []
