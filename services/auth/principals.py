"""Persons' signed principals (IssuePrincipal) and the public keys that verify them.

The gateway, having a session cookie or an API token, asks auth for the principal of that
session: auth checks the session or token itself, asks the directory what the person may do,
and signs (with its own key) the permissions asked for that the person holds, one principal per
audience, valid about a minute. Services verify them against GetPublicKeys.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.auth.directory import Directory
from services.auth.service import AuthService
from services.chassis.caller import Surface
from services.chassis.errors import InvalidField, Unauthenticated
from services.chassis.principals import Signer, TrustedKey

MAX_AUDIENCES = 16


@dataclass(frozen=True)
class Issued:
    tokens: dict[str, str]
    person_id: str
    permissions: list[str]
    expires_at: int


class PrincipalIssuer:
    def __init__(
        self,
        service: AuthService,
        directory: Directory,
        signer: Signer,
        published: Sequence[TrustedKey],
    ) -> None:
        self._service = service
        self._directory = directory
        self._signer = signer
        self._published = list(published)

    def public_keys(self) -> list[TrustedKey]:
        return list(self._published)

    async def issue(
        self,
        *,
        workspace_id: str,
        session_token: str,
        api_token: str,
        surface: str,
        permissions: Sequence[str],
        audiences: Sequence[str],
    ) -> Issued:
        """Checks the session (not touching it) or API token; signs for an active person only."""
        if surface not in ("portal", "management"):
            raise InvalidField("surface", "must be portal or management")
        wanted = [a for a in dict.fromkeys(audiences) if a]
        if not wanted or len(wanted) > MAX_AUDIENCES:
            raise InvalidField("audiences", f"name between 1 and {MAX_AUDIENCES} services")
        sfc: Surface = "portal" if surface == "portal" else "management"
        if session_token:
            session = await self._service.resolve_session(
                workspace_id=workspace_id, token=session_token, touch=False
            )
            person, sid = session.person_id, session.id
        elif api_token:
            if sfc != "management":
                raise InvalidField("surface", "an API token works on the management API only")
            token = await self._service.resolve_api_token(
                workspace_id=workspace_id, token=api_token
            )
            person, sid = token.person_id, f"api:{token.id}"
        else:
            raise Unauthenticated("give a session or an API token")
        access = await self._directory.access(workspace_id, person)
        if access is None or not access.active:
            raise Unauthenticated("the person is not active")
        granted = sorted(set(permissions) & access.permissions)
        tokens = {
            aud: self._signer.person_token(aud, workspace_id, person, granted, sfc, sid)
            for aud in wanted
        }
        return Issued(tokens, person, granted, int(time.time()) + self._signer.lifetime)
