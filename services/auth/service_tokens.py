"""Personal API tokens: create, list, revoke, resolve."""

from __future__ import annotations

import logging

from services.auth import store_sessions, store_tokens, store_two_factor
from services.auth.domain import ApiToken, Refused, new_api_token, no_nul, token_hash
from services.auth.service_base import ServiceBase, checked_workspace, id_or_none, signed_in_person
from services.chassis.caller import Caller
from services.chassis.errors import InvalidField, NotFound, Unauthenticated

log = logging.getLogger(__name__)

# Creating an API token without a new code needs a second-factor sign-in this recent.
RECENT_SECOND_FACTOR_SECONDS = 15 * 60
SECOND_FACTOR_METHODS = ("totp", "recovery_code")


class ApiTokenUseCases(ServiceBase):
    # --- API tokens -------------------------------------------------------------------

    async def create_api_token(
        self, caller: Caller, name: str, expires_in_days: int, session_token: str, code: str
    ) -> tuple[ApiToken, str]:
        """Only from an interactive session of the caller (never from an API token), with a
        recent second factor or a fresh code when enrolled; expiry capped by the workspace."""
        me = signed_in_person(caller)
        ws = caller.ws
        name = name.strip()
        no_nul("name", name)
        if not name:
            raise InvalidField("name", "is required")
        if len(name) > 100:
            raise InvalidField("name", "must be at most 100 characters")
        cap = (await self._directory.portal_rules(ws)).api_token_max_days
        if not 1 <= expires_in_days <= cap:
            raise InvalidField(
                "expires_in_days", f"must be between 1 and {cap} (this workspace's maximum)"
            )
        await self._require_interactive(ws, me, session_token, code)
        secret, prefix = new_api_token()
        async with self._pool.acquire() as conn:
            token = await store_tokens.insert_api_token(
                conn, ws, me, name, prefix, token_hash(secret), expires_in_days
            )
        log.info("API token created: workspace=%s person=%s token=%s", ws, me, token.id)
        return token, secret

    async def _require_interactive(self, ws: str, me: str, session_token: str, code: str) -> None:
        strength = None
        if session_token and not session_token.startswith("fdt_"):
            async with self._pool.acquire() as conn:
                strength = await store_sessions.session_strength(
                    conn, ws, token_hash(session_token)
                )
        if strength is None or strength[0] != me:
            raise Refused(
                "API tokens can only be created from a signed-in session, not with an API token",
                "interactive_session_required",
            )
        async with self._pool.acquire() as conn:
            totp = await store_two_factor.get_totp(conn, ws, me)
        if totp is None or not totp.enabled:
            return
        _, method, age = strength
        if method in SECOND_FACTOR_METHODS and age <= RECENT_SECOND_FACTOR_SECONDS:
            return
        if not code.strip():
            raise Refused(
                "enter a current two-factor code to create an API token", "second_factor_required"
            )
        await self._require_code(ws, me, code)

    async def list_api_tokens(self, caller: Caller) -> list[ApiToken]:
        me = signed_in_person(caller)
        async with self._pool.acquire() as conn:
            return await store_tokens.list_api_tokens(conn, caller.ws, me)

    async def revoke_api_token(self, caller: Caller, token_id: str) -> None:
        me = signed_in_person(caller)
        tid = id_or_none(token_id)
        async with self._pool.acquire() as conn:
            if tid is None or not await store_tokens.revoke_api_token(conn, caller.ws, me, tid):
                raise NotFound("API token not found")

    async def resolve_api_token(self, *, workspace_id: str, token: str) -> ApiToken:
        ws = checked_workspace(workspace_id)
        if not token.startswith("fdt_"):
            raise Unauthenticated("invalid API token")
        async with self._pool.acquire() as conn:
            found = await store_tokens.resolve_api_token(conn, ws, token_hash(token))
        if found is None:
            raise Unauthenticated("invalid API token")
        return found
