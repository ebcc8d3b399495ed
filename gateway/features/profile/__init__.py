"""Gateway surface of "my profile" (name, username, notifications, password, two-factor,
sessions) and of the auth settings admins manage (SSO, API tokens, a person's two-factor and
password). The profile exists twice: in the portal (/profile) and in the management console
(/management/profile) for persons without portal access; both call the same handlers.
"""

from __future__ import annotations

from gateway.features.profile import account, admin, sso, tokens
from gateway.routing import Route

ROUTES: list[Route] = [*account.ROUTES, *sso.ROUTES, *tokens.ROUTES, *admin.ROUTES]
