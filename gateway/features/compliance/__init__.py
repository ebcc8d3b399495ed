"""Gateway surface of the compliance capability: the portal's issues and control tests assigned
to me (read, comment, complete), and the management console's controls, control tests and
issues. The compliance service checks every item against the Caller itself; portal calls pass a
Caller stripped down to the portal permissions, so a portal response only ever holds items
assigned to the signed-in person, whatever management roles they also hold.
"""

from __future__ import annotations

from gateway.features.compliance import attachments, controls, issues, my_issues, my_tests, tests
from gateway.routing import Route

ROUTES: list[Route] = [
    *attachments.ROUTES,
    *my_issues.ROUTES,
    *my_tests.ROUTES,
    *controls.ROUTES,
    *tests.ROUTES,
    *issues.ROUTES,
]
