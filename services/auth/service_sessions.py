"""Sessions: resolve, sign out (here or everywhere), list and revoke, and ending a person's
sessions when the directory says they changed."""

from __future__ import annotations

import asyncpg

from services.auth import events, store_sessions, store_tokens
from services.auth.domain import Session, token_hash
from services.auth.service_base import ServiceBase, checked_workspace, signed_in_person
from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import NotFound, Unauthenticated


class SessionUseCases(ServiceBase):
    # --- sessions ---------------------------------------------------------------------

    async def resolve_session(self, *, workspace_id: str, token: str, touch: bool) -> Session:
        ws = checked_workspace(workspace_id)
        if not token:
            raise Unauthenticated("not signed in")
        async with self._pool.acquire() as conn:
            session = await store_sessions.resolve_session(
                conn,
                ws,
                token_hash(token),
                touch=touch,
                idle_seconds=self._settings.session_idle_seconds,
            )
        if session is None:
            raise Unauthenticated("the session has ended; sign in again")
        return session

    async def logout(self, *, workspace_id: str, token: str) -> None:
        ws = checked_workspace(workspace_id)
        if not token:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            session = await store_sessions.delete_session(conn, ws, token_hash(token))
            if session is not None:
                await outbox.add(
                    conn,
                    events.session_revoked(
                        ws, session.person_id, session.person_id, [session.id], "logout"
                    ),
                )

    async def logout_everywhere(self, caller: Caller) -> int:
        me = signed_in_person(caller)
        async with self._pool.acquire() as conn, conn.transaction():
            return len(await self.end_sessions(conn, caller.ws, me, me, "logout_everywhere"))

    async def list_sessions(self, caller: Caller, current_token: str) -> tuple[list[Session], str]:
        me = signed_in_person(caller)
        async with self._pool.acquire() as conn:
            sessions = await store_sessions.list_sessions(conn, caller.ws, me)
        return sessions, token_hash(current_token) if current_token else ""

    async def revoke_session(self, caller: Caller, session_id: str) -> None:
        me = signed_in_person(caller)
        ws = caller.ws
        if not session_id or "\x00" in session_id:
            raise NotFound("session not found")  # no such id can exist
        async with self._pool.acquire() as conn, conn.transaction():
            session = await store_sessions.delete_session(conn, ws, session_id, me)
            if session is None:
                raise NotFound("session not found")
            await outbox.add(conn, events.session_revoked(ws, me, me, [session.id], "revoked"))

    # --- access changes (consumer) ----------------------------------------------------

    async def on_person_changed(
        self,
        conn: asyncpg.Connection,
        ws: str,
        actor_id: str,
        person_id: str,
        *,
        active: bool,
        portal_access: bool,
    ) -> None:
        if not active:
            await self.end_sessions(conn, ws, actor_id, person_id, "person_deactivated")
            await store_tokens.revoke_api_tokens_of(conn, ws, person_id)
        elif not portal_access:
            await self.end_sessions(
                conn, ws, actor_id, person_id, "portal_access_disabled", surface="portal"
            )
