"""Signing in: password check with throttling, the portal-access and e-mail checks, the second
factor, starting the session."""

from __future__ import annotations

from services.auth import store, store_sessions, store_two_factor
from services.auth.domain import (
    BAD_CREDENTIALS,
    SURFACES,
    Session,
    account_key,
    ip_key,
    new_token,
    no_nul,
    normalize_password,
    token_hash,
)
from services.auth.service_base import (
    CODE_REUSED,
    REUSED_MESSAGE,
    LoginResult,
    ServiceBase,
    checked_workspace,
)
from services.chassis.errors import InvalidField, Unauthenticated

MAX_SECOND_FACTOR_ATTEMPTS = 5


class SignInUseCases(ServiceBase):
    # --- sign-in ----------------------------------------------------------------------

    async def login(
        self,
        *,
        workspace_id: str,
        email: str,
        password: str,
        surface: str,
        client_ip: str,
        user_agent: str,
    ) -> LoginResult:
        ws = checked_workspace(workspace_id)
        if surface not in SURFACES:
            raise InvalidField("surface", "must be portal or management")
        email = email.strip()
        no_nul("email", email)
        if not email:
            raise InvalidField("email", "is required")
        if not password:
            raise InvalidField("password", "is required")
        keys = [account_key(email)] + ([ip_key(client_ip)] if client_ip else [])
        await self._check_throttle(ws, keys)

        # The e-mail or the username: the profile invites people to set one to sign in with.
        person = await self._directory.find_by_email(ws, email, or_login_name=True)
        credential = None
        if person is not None:
            async with self._pool.acquire() as conn:
                credential = await store.get_credential(conn, ws, person.id)
        stored = credential.password_hash if credential else None
        if not await self._passwords.verify(stored, normalize_password(password)):
            await self._fail_login(
                ws, keys, person.id if person else "", "bad_credentials", client_ip
            )
            raise Unauthenticated(BAD_CREDENTIALS)
        assert person is not None and credential is not None and stored is not None

        # The password was right: from here on, telling the person why is no disclosure.
        await self._check_may_sign_in(
            ws, keys, person, surface, client_ip, credential.email_confirmed
        )
        if self._passwords.needs_rehash(stored):
            new_hash = await self._passwords.hash(normalize_password(password))
            async with self._pool.acquire() as conn:
                await store.rehash_password(conn, ws, person.id, stored, new_hash)

        async with self._pool.acquire() as conn:
            totp = await store_two_factor.get_totp(conn, ws, person.id)
        if totp is not None and totp.enabled:
            pending = new_token()
            async with self._pool.acquire() as conn:
                await store_sessions.insert_pending(
                    conn,
                    ws,
                    token_hash(pending),
                    person.id,
                    surface,
                    keys[0],
                    self._settings.pending_login_seconds,
                )
            return LoginResult(status="second_factor", person_id=person.id, pending_token=pending)

        rules = await self._directory.portal_rules(ws)
        token, session = await self._start_session(
            ws,
            person,
            surface,
            "password",
            client_ip,
            user_agent,
            enroll_only=rules.require_two_factor,
            clear_keys=keys[:1],
        )
        await self._after_sign_in(ws, person.id, surface)
        return LoginResult(
            status="enroll_two_factor" if rules.require_two_factor else "ok",
            person_id=person.id,
            session_token=token,
            expires_at=session.expires_at,
        )

    async def verify_second_factor(
        self, *, workspace_id: str, pending_token: str, code: str, client_ip: str, user_agent: str
    ) -> LoginResult:
        ws = checked_workspace(workspace_id)
        if not pending_token:
            raise Unauthenticated("the sign-in has expired; sign in again")
        if not code.strip():
            raise InvalidField("code", "is required")
        pending_id = token_hash(pending_token)
        async with self._pool.acquire() as conn:
            pending = await store_sessions.attempt_pending(conn, ws, pending_id)
        if pending is None:
            raise Unauthenticated("the sign-in has expired; sign in again")
        keys = [pending.throttle_key] + ([ip_key(client_ip)] if client_ip else [])
        await self._check_throttle(ws, keys)
        if pending.attempts > MAX_SECOND_FACTOR_ATTEMPTS:
            async with self._pool.acquire() as conn:
                await store_sessions.consume_pending(conn, ws, pending_id)
            raise Unauthenticated("too many wrong codes; sign in again")

        person = await self._directory.get_person(ws, pending.person_id)
        if person is None:
            raise Unauthenticated("the sign-in has expired; sign in again")
        await self._check_may_sign_in(ws, keys, person, pending.surface, client_ip, True)

        token = ""
        session: Session | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            method = await self._use_code(conn, ws, person.id, code)
            if method is not None and method != CODE_REUSED:
                if not await store_sessions.consume_pending(conn, ws, pending_id):
                    raise Unauthenticated("the sign-in has expired; sign in again")
                token, session = await self._start_session(
                    ws,
                    person,
                    pending.surface,
                    method,
                    client_ip,
                    user_agent,
                    clear_keys=keys[:1],
                    conn=conn,
                )
        if method is None or session is None:
            await self._fail_login(ws, keys, person.id, "bad_second_factor", client_ip)
            if method == CODE_REUSED:
                raise Unauthenticated(f"this code {REUSED_MESSAGE}")
            raise Unauthenticated("the code is not valid")
        await self._after_sign_in(ws, person.id, pending.surface)
        return LoginResult(
            status="ok", person_id=person.id, session_token=token, expires_at=session.expires_at
        )
