"""What every auth use case needs: its collaborators (pool, settings, directory, password hasher,
secret box, mailer, OIDC client), the throttle policies, and the helpers shared between concepts."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.auth import events, store, store_sessions, store_two_factor
from services.auth.crypto import (
    Passwords,
    SecretBox,
    matching_step,
)
from services.auth.directory import Directory
from services.auth.domain import (
    ACCOUNT_INACTIVE,
    EMAIL_UNCONFIRMED,
    PORTAL_ACCESS_OFF,
    Person,
    Refused,
    Session,
    ThrottlePolicy,
    looks_like_totp,
    new_token,
    normalize_password,
    recovery_code_hash,
    token_hash,
)
from services.auth.mail import Mailer
from services.auth.settings import Settings
from services.auth.sso import OidcClient
from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, InvalidField, PermissionDenied, Throttled

log = logging.getLogger(__name__)

# A right TOTP code that was already used: said as such, so people wait for the next one.
CODE_REUSED = "reused"
REUSED_MESSAGE = "was already used; wait for the next code on your device"


@dataclass(frozen=True)
class LoginResult:
    status: str  # "ok", "second_factor", "enroll_two_factor"
    person_id: str
    session_token: str = ""
    pending_token: str = ""
    expires_at: datetime | None = None


def checked_workspace(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise InvalidField("workspace_id", "must be a workspace id") from None


def id_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def signed_in_person(caller: Caller) -> str:
    """The signed-in person of a caller; the system has no profile of its own."""
    checked_workspace(caller.ws)
    if caller.is_service:
        raise PermissionDenied("this call needs a signed-in person")
    person = id_or_none(caller.actor)
    if person is None:
        raise PermissionDenied("caller: unknown person")
    return person


class ServiceBase:
    """The collaborators and helpers the concept mixins share; AuthService combines the mixins."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        directory: Directory,
        passwords: Passwords,
        box: SecretBox,
        mailer: Mailer,
        oidc: OidcClient,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._directory = directory
        self._passwords = passwords
        self._box = box
        self._mailer = mailer
        self._oidc = oidc
        self._account_policy = ThrottlePolicy(
            settings.throttle_free_failures,
            settings.throttle_wait_seconds,
            settings.throttle_max_wait_seconds,
            settings.throttle_max_failures,
        )
        self._ip_policy = ThrottlePolicy(
            settings.throttle_ip_free_failures,
            settings.throttle_wait_seconds,
            settings.throttle_max_wait_seconds,
            max(settings.throttle_max_failures, settings.throttle_ip_free_failures + 10),
        )

    # --- throttling -------------------------------------------------------------------

    async def _check_throttle(self, ws: str, keys: list[str]) -> None:
        async with self._pool.acquire() as conn:
            wait = await store.blocked_for(conn, ws, keys)
        if wait > 0:
            raise Throttled(wait)

    async def _count_failure(
        self,
        conn: asyncpg.Connection,
        ws: str,
        keys: list[str],
    ) -> None:
        for key in keys:
            failures = await store.count_failure(
                conn, ws, key, self._settings.throttle_reset_seconds
            )
            policy = self._ip_policy if key.startswith("ip:") else self._account_policy
            wait = policy.wait_after(failures)
            if wait:
                await store.block(conn, ws, key, wait)

    async def _fail_login(
        self,
        ws: str,
        keys: list[str],
        person_id: str,
        reason: str,
        client_ip: str,
        *,
        count: bool = True,
    ) -> None:
        """Count a failed attempt against each key and publish login_failed (one transaction)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if count:
                await self._count_failure(conn, ws, keys)
            await outbox.add(conn, events.login_failed(ws, person_id, reason, client_ip))
        log.info("sign-in refused: workspace=%s person=%s reason=%s", ws, person_id or "-", reason)

    async def _check_may_sign_in(
        self,
        ws: str,
        keys: list[str],
        person: Person,
        surface: str,
        client_ip: str,
        email_confirmed: bool,
    ) -> None:
        if not person.active:
            await self._fail_login(ws, keys, person.id, "inactive", client_ip, count=False)
            raise FailedPrecondition(ACCOUNT_INACTIVE)
        if not email_confirmed:
            await self._fail_login(ws, keys, person.id, "email_unconfirmed", client_ip, count=False)
            raise FailedPrecondition(EMAIL_UNCONFIRMED)
        if surface == "portal" and not person.portal_access:
            await self._fail_login(ws, keys, person.id, "portal_access_off", client_ip, count=False)
            raise Refused(PORTAL_ACCESS_OFF, "portal_access_off")

    async def _start_session(
        self,
        ws: str,
        person: Person,
        surface: str,
        method: str,
        client_ip: str,
        user_agent: str,
        *,
        enroll_only: bool = False,
        clear_keys: list[str] | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> tuple[str, Session]:
        """A new session token (writes the session and a login_succeeded outbox row); a portal
        sign-in is then recorded in the directory (last_portal_login_at)."""
        token = new_token()

        async def write(c: asyncpg.Connection) -> Session:
            session = await store_sessions.insert_session(
                c,
                ws=ws,
                session_id=token_hash(token),
                person_id=person.id,
                surface=surface,
                method=method,
                client_ip=client_ip,
                user_agent=user_agent,
                enroll_only=enroll_only,
                idle_seconds=self._settings.session_idle_seconds,
                max_seconds=self._settings.session_max_seconds,
            )
            for key in clear_keys or []:
                await store.clear_failures(c, ws, key)
            await outbox.add(
                c, events.login_succeeded(ws, person.id, surface, method, client_ip, user_agent)
            )
            return session

        if conn is not None:
            session = await write(conn)
        else:
            async with self._pool.acquire() as c, c.transaction():
                session = await write(c)
        log.info(
            "signed in: workspace=%s person=%s surface=%s method=%s session=%s",
            ws,
            person.id,
            surface,
            method,
            session.id[:12],
        )
        return token, session

    async def _after_sign_in(self, ws: str, person_id: str, surface: str) -> None:
        if surface != "portal":
            return
        try:
            await self._directory.record_portal_login(ws, person_id)
        except Exception as exc:
            # The session stands; only the "last signed in" column lags behind.
            log.warning("could not record portal sign-in of %s: %s", person_id, exc)

    async def _use_code(
        self, conn: asyncpg.Connection, ws: str, person_id: str, code: str
    ) -> str | None:
        """ "totp" or "recovery_code" when `code` is valid and now used up; CODE_REUSED for a
        right TOTP code that was already used (RFC 6238 5.2: each works once); else None."""
        totp = await store_two_factor.get_totp(conn, ws, person_id)
        if totp is None or not totp.enabled or totp.secret is None:
            return None
        if looks_like_totp(code):
            secret = self._box.open(totp.secret, context=f"totp:{ws}:{person_id}")
            step = matching_step(secret, code)
            if step is None:
                return None
            if not await store_two_factor.use_totp_step(conn, ws, person_id, step):
                return CODE_REUSED
            return "totp"
        if await store_two_factor.use_recovery_code(conn, ws, person_id, recovery_code_hash(code)):
            return "recovery_code"
        return None

    async def _require_code(self, ws: str, person_id: str, code: str) -> None:
        """A valid TOTP or recovery code, used up now (shared by two-factor and API tokens)."""
        keys = [f"totp:{person_id}"]
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn, conn.transaction():
            method = await self._use_code(conn, ws, person_id, code)
        if method is None or method == CODE_REUSED:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._count_failure(conn, ws, keys)
            raise InvalidField("code", REUSED_MESSAGE if method == CODE_REUSED else "is not valid")

    async def end_sessions(
        self,
        conn: asyncpg.Connection,
        ws: str,
        actor_id: str,
        person_id: str,
        reason: str,
        *,
        except_id: str | None = None,
        surface: str | None = None,
    ) -> list[str]:
        """End a person's sessions in the caller's transaction; writes session_revoked."""
        ids = await store_sessions.delete_sessions_of(
            conn, ws, person_id, except_id=except_id, surface=surface
        )
        if ids:
            everything = except_id is None and surface is None
            await outbox.add(
                conn,
                events.session_revoked(
                    ws, actor_id, person_id, ids, reason, all_sessions=everything
                ),
            )
            log.info(
                "ended %d sessions: workspace=%s person=%s reason=%s",
                len(ids),
                ws,
                person_id,
                reason,
            )
        return ids

    async def _verify_password_of(self, ws: str, person_id: str, password: str, field: str) -> None:
        keys = [f"password:{person_id}"]
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn:
            credential = await store.get_credential(conn, ws, person_id)
        stored = credential.password_hash if credential else None
        if not password or not await self._passwords.verify(stored, normalize_password(password)):
            async with self._pool.acquire() as conn, conn.transaction():
                await self._count_failure(conn, ws, keys)
            raise InvalidField(field, "is not correct")
