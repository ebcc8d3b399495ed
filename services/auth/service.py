"""Auth use cases: sign-in, second factor, sessions, passwords, TOTP, API tokens,
self-registration and SSO. Each state change commits with its outbox row."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.auth import events, store
from services.auth.crypto import (
    Passwords,
    SecretBox,
    matching_step,
    new_totp_secret,
    provisioning_uri,
    qr_svg,
)
from services.auth.directory import Directory
from services.auth.domain import (
    ACCOUNT_INACTIVE,
    BAD_CREDENTIALS,
    EMAIL_UNCONFIRMED,
    PORTAL_ACCESS_OFF,
    SURFACES,
    AlreadyExists,
    ApiToken,
    Caller,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Person,
    Session,
    SsoConfig,
    SsoState,
    Throttled,
    ThrottlePolicy,
    Unauthenticated,
    Unavailable,
    account_key,
    check_new_password,
    domain_allowed,
    ip_key,
    looks_like_totp,
    new_api_token,
    new_recovery_codes,
    new_token,
    no_nul,
    normalize_password,
    recovery_code_hash,
    token_hash,
)
from services.auth.mail import Mailer
from services.auth.settings import Settings
from services.auth.sso import OidcClient, OidcError, pkce_pair
from services.chassis import outbox

log = logging.getLogger(__name__)

MAX_SECOND_FACTOR_ATTEMPTS = 5
SSO_STATE_SECONDS = 600
EMAIL_CONFIRMATION_SECONDS = 48 * 3600


@dataclass(frozen=True)
class LoginResult:
    status: str  # "ok", "second_factor", "enroll_two_factor"
    person_id: str
    session_token: str = ""
    pending_token: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True)
class TotpEnrollment:
    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class TwoFactorState:
    enabled: bool
    recovery_codes_left: int
    required_by_workspace: bool


@dataclass(frozen=True)
class RegisterResult:
    person_id: str
    confirmation_required: bool


def _ws(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise InvalidArgument("workspace_id", "must be a workspace id") from None


def _id_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _me(caller: Caller) -> str:
    """The signed-in person of a caller; the system has no profile of its own."""
    _ws(caller.workspace_id)
    if caller.is_system:
        raise PermissionDenied("this call needs a signed-in person")
    person = _id_or_none(caller.person_id)
    if person is None:
        raise PermissionDenied("caller: unknown person")
    return person


class AuthService:
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
        ws = _ws(workspace_id)
        if surface not in SURFACES:
            raise InvalidArgument("surface", "must be portal or management")
        email = email.strip()
        no_nul("email", email)
        if not email:
            raise InvalidArgument("email", "is required")
        if not password:
            raise InvalidArgument("password", "is required")
        keys = [account_key(email)] + ([ip_key(client_ip)] if client_ip else [])
        await self._check_throttle(ws, keys)

        person = await self._directory.find_by_email(ws, email)
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
            totp = await store.get_totp(conn, ws, person.id)
        if totp is not None and totp.enabled:
            pending = new_token()
            async with self._pool.acquire() as conn:
                await store.insert_pending(
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
            raise FailedPrecondition(PORTAL_ACCESS_OFF)

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
            session = await store.insert_session(
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
            await outbox.add(c, events.login_succeeded(ws, person.id, surface, method, client_ip))
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

    async def verify_second_factor(
        self, *, workspace_id: str, pending_token: str, code: str, client_ip: str, user_agent: str
    ) -> LoginResult:
        ws = _ws(workspace_id)
        if not pending_token:
            raise Unauthenticated("the sign-in has expired; sign in again")
        if not code.strip():
            raise InvalidArgument("code", "is required")
        pending_id = token_hash(pending_token)
        async with self._pool.acquire() as conn:
            pending = await store.attempt_pending(conn, ws, pending_id)
        if pending is None:
            raise Unauthenticated("the sign-in has expired; sign in again")
        keys = [pending.throttle_key] + ([ip_key(client_ip)] if client_ip else [])
        await self._check_throttle(ws, keys)
        if pending.attempts > MAX_SECOND_FACTOR_ATTEMPTS:
            async with self._pool.acquire() as conn:
                await store.consume_pending(conn, ws, pending_id)
            raise Unauthenticated("too many wrong codes; sign in again")

        person = await self._directory.get_person(ws, pending.person_id)
        if person is None:
            raise Unauthenticated("the sign-in has expired; sign in again")
        await self._check_may_sign_in(ws, keys, person, pending.surface, client_ip, True)

        token = ""
        session: Session | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            method = await self._use_code(conn, ws, person.id, code)
            if method is not None:
                if not await store.consume_pending(conn, ws, pending_id):
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
            raise Unauthenticated("the code is not valid")
        await self._after_sign_in(ws, person.id, pending.surface)
        return LoginResult(
            status="ok", person_id=person.id, session_token=token, expires_at=session.expires_at
        )

    async def _use_code(
        self, conn: asyncpg.Connection, ws: str, person_id: str, code: str
    ) -> str | None:
        """ "totp" or "recovery_code" when `code` is valid and now used up, else None."""
        totp = await store.get_totp(conn, ws, person_id)
        if totp is None or not totp.enabled or totp.secret is None:
            return None
        if looks_like_totp(code):
            secret = self._box.open(totp.secret, context=f"totp:{ws}:{person_id}")
            step = matching_step(secret, code)
            if step is None or not await store.use_totp_step(conn, ws, person_id, step):
                return None
            return "totp"
        if await store.use_recovery_code(conn, ws, person_id, recovery_code_hash(code)):
            return "recovery_code"
        return None

    # --- sessions ---------------------------------------------------------------------

    async def resolve_session(self, *, workspace_id: str, token: str, touch: bool) -> Session:
        ws = _ws(workspace_id)
        if not token:
            raise Unauthenticated("not signed in")
        async with self._pool.acquire() as conn:
            session = await store.resolve_session(
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
        ws = _ws(workspace_id)
        if not token:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            session = await store.delete_session(conn, ws, token_hash(token))
            if session is not None:
                await outbox.add(
                    conn,
                    events.session_revoked(
                        ws, session.person_id, session.person_id, [session.id], "logout"
                    ),
                )

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
        ids = await store.delete_sessions_of(
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

    async def logout_everywhere(self, caller: Caller) -> int:
        me = _me(caller)
        async with self._pool.acquire() as conn, conn.transaction():
            return len(
                await self.end_sessions(conn, caller.workspace_id, me, me, "logout_everywhere")
            )

    async def list_sessions(self, caller: Caller, current_token: str) -> tuple[list[Session], str]:
        me = _me(caller)
        async with self._pool.acquire() as conn:
            sessions = await store.list_sessions(conn, caller.workspace_id, me)
        return sessions, token_hash(current_token) if current_token else ""

    async def revoke_session(self, caller: Caller, session_id: str) -> None:
        me = _me(caller)
        ws = caller.workspace_id
        if not session_id or "\x00" in session_id:
            raise NotFound("session not found")  # no such id can exist
        async with self._pool.acquire() as conn, conn.transaction():
            session = await store.delete_session(conn, ws, session_id, me)
            if session is None:
                raise NotFound("session not found")
            await outbox.add(conn, events.session_revoked(ws, me, me, [session.id], "revoked"))

    # --- passwords --------------------------------------------------------------------

    async def set_password(self, caller: Caller, person_id: str, password: str) -> None:
        ws = _ws(caller.workspace_id)
        if not caller.may("Person:manage"):
            raise PermissionDenied("setting a password needs Person:manage")
        pid = _id_or_none(person_id)
        person = await self._directory.get_person(ws, pid) if pid else None
        if person is None:
            raise NotFound("person not found")
        normalized = check_new_password(
            password, field="password", context=(person.email, person.name)
        )
        new_hash = await self._passwords.hash(normalized)
        async with self._pool.acquire() as conn, conn.transaction():
            await store.put_password(conn, ws, person.id, new_hash)
            await self.end_sessions(conn, ws, caller.person_id, person.id, "password_set")
            await outbox.add(
                conn, events.person_event(ws, caller.person_id, "password_changed", person.id)
            )
        log.info(
            "password set: workspace=%s person=%s by=%s",
            ws,
            person.id,
            caller.person_id or "system",
        )

    async def change_password(
        self, caller: Caller, current_password: str, new_password: str, keep_session_token: str
    ) -> None:
        me = _me(caller)
        ws = caller.workspace_id
        keys = [f"password:{me}"]
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn:
            credential = await store.get_credential(conn, ws, me)
        stored = credential.password_hash if credential else None
        if not current_password or not await self._passwords.verify(
            stored, normalize_password(current_password)
        ):
            async with self._pool.acquire() as conn, conn.transaction():
                await self._count_failure(conn, ws, keys)
            raise InvalidArgument("current_password", "is not correct")
        person = await self._directory.get_person(ws, me)
        if person is None:
            raise NotFound("person not found")
        normalized = check_new_password(
            new_password, field="new_password", context=(person.email, person.name)
        )
        new_hash = await self._passwords.hash(normalized)
        keep = token_hash(keep_session_token) if keep_session_token else None
        async with self._pool.acquire() as conn, conn.transaction():
            await store.put_password(conn, ws, me, new_hash)
            await store.clear_failures(conn, ws, keys[0])
            await self.end_sessions(conn, ws, me, me, "password_changed", except_id=keep or "")
            await outbox.add(conn, events.person_event(ws, me, "password_changed", me))
        log.info("password changed: workspace=%s person=%s", ws, me)

    async def _verify_password_of(self, ws: str, person_id: str, password: str, field: str) -> None:
        keys = [f"password:{person_id}"]
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn:
            credential = await store.get_credential(conn, ws, person_id)
        stored = credential.password_hash if credential else None
        if not password or not await self._passwords.verify(stored, normalize_password(password)):
            async with self._pool.acquire() as conn, conn.transaction():
                await self._count_failure(conn, ws, keys)
            raise InvalidArgument(field, "is not correct")

    # --- two-factor -------------------------------------------------------------------

    async def two_factor_status(self, caller: Caller, person_id: str) -> TwoFactorState:
        ws = _ws(caller.workspace_id)
        if person_id and person_id != caller.person_id:
            if not (caller.may("Person:read") or caller.may("Person:manage")):
                raise PermissionDenied(
                    "reading another person's two-factor status needs Person:read"
                )
            target = _id_or_none(person_id)
            if target is None:
                raise NotFound("person not found")
        else:
            target = _me(caller)
        async with self._pool.acquire() as conn:
            totp = await store.get_totp(conn, ws, target)
            left = await store.recovery_codes_left(conn, ws, target)
        rules = await self._directory.portal_rules(ws)
        return TwoFactorState(
            enabled=bool(totp and totp.enabled),
            recovery_codes_left=left,
            required_by_workspace=rules.require_two_factor,
        )

    async def begin_totp(self, caller: Caller, account_label: str) -> TotpEnrollment:
        me = _me(caller)
        ws = caller.workspace_id
        async with self._pool.acquire() as conn:
            current = await store.get_totp(conn, ws, me)
        if current is not None and current.enabled:
            raise FailedPrecondition("two-factor sign-in is already on; turn it off first")
        label = account_label.strip()
        if not label:
            person = await self._directory.get_person(ws, me)
            label = person.email if person else me
        secret = new_totp_secret()
        async with self._pool.acquire() as conn:
            await store.set_pending_totp(
                conn, ws, me, self._box.seal(secret, context=f"totp:{ws}:{me}")
            )
        uri = provisioning_uri(secret, label[:200], self._settings.totp_issuer)
        return TotpEnrollment(secret=secret, uri=uri, qr_svg=qr_svg(uri))

    async def confirm_totp(self, caller: Caller, code: str, keep_session_token: str) -> list[str]:
        me = _me(caller)
        ws = caller.workspace_id
        keys = [f"totp-enroll:{me}"]
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn:
            current = await store.get_totp(conn, ws, me)
        if current is None or current.pending_secret is None:
            if current is not None and current.enabled:
                raise FailedPrecondition("two-factor sign-in is already on")
            raise FailedPrecondition("start the two-factor setup first")
        secret = self._box.open(current.pending_secret, context=f"totp:{ws}:{me}")
        step = matching_step(secret, code)
        if step is None:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._count_failure(conn, ws, keys)
            raise InvalidArgument("code", "is not valid; check your device's clock and try again")
        codes = new_recovery_codes()
        keep = token_hash(keep_session_token) if keep_session_token else ""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.enable_totp(conn, ws, me, step):
                raise FailedPrecondition("two-factor sign-in is already on")
            await store.replace_recovery_codes(conn, ws, me, [recovery_code_hash(c) for c in codes])
            await store.clear_failures(conn, ws, keys[0])
            if keep:
                await store.lift_enroll_only(conn, ws, keep)
            await self.end_sessions(conn, ws, me, me, "two_factor_enabled", except_id=keep)
            await outbox.add(conn, events.person_event(ws, me, "two_factor_enabled", me))
        log.info("two-factor enabled: workspace=%s person=%s", ws, me)
        return codes

    async def _require_code(self, ws: str, person_id: str, code: str) -> None:
        keys = [f"totp:{person_id}"]
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn, conn.transaction():
            method = await self._use_code(conn, ws, person_id, code)
        if method is None:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._count_failure(conn, ws, keys)
            raise InvalidArgument("code", "is not valid")

    async def disable_totp(
        self, caller: Caller, password: str, code: str, keep_session_token: str
    ) -> None:
        me = _me(caller)
        ws = caller.workspace_id
        async with self._pool.acquire() as conn:
            current = await store.get_totp(conn, ws, me)
        if current is None or not current.enabled:
            raise FailedPrecondition("two-factor sign-in is not on")
        await self._verify_password_of(ws, me, password, "password")
        await self._require_code(ws, me, code)
        keep = token_hash(keep_session_token) if keep_session_token else ""
        async with self._pool.acquire() as conn, conn.transaction():
            if await store.delete_totp(conn, ws, me):
                await self.end_sessions(conn, ws, me, me, "two_factor_disabled", except_id=keep)
                await outbox.add(conn, events.person_event(ws, me, "two_factor_disabled", me))
        log.info("two-factor disabled: workspace=%s person=%s", ws, me)

    async def regenerate_recovery_codes(self, caller: Caller, code: str) -> list[str]:
        me = _me(caller)
        ws = caller.workspace_id
        async with self._pool.acquire() as conn:
            current = await store.get_totp(conn, ws, me)
        if current is None or not current.enabled:
            raise FailedPrecondition("two-factor sign-in is not on")
        await self._require_code(ws, me, code)
        codes = new_recovery_codes()
        async with self._pool.acquire() as conn, conn.transaction():
            await store.replace_recovery_codes(conn, ws, me, [recovery_code_hash(c) for c in codes])
        return codes

    async def admin_reset_two_factor(self, caller: Caller, person_id: str) -> None:
        ws = _ws(caller.workspace_id)
        if not caller.may("Person:manage"):
            raise PermissionDenied("resetting two-factor needs Person:manage")
        target = _id_or_none(person_id)
        if target is None or await self._directory.get_person(ws, target) is None:
            raise NotFound("person not found")
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.delete_totp(conn, ws, target):
                raise FailedPrecondition("two-factor sign-in is not on for this person")
            await self.end_sessions(conn, ws, caller.person_id, target, "two_factor_reset")
            await outbox.add(
                conn, events.person_event(ws, caller.person_id, "two_factor_disabled", target)
            )
        log.info(
            "two-factor reset: workspace=%s person=%s by=%s",
            ws,
            target,
            caller.person_id or "system",
        )

    # --- API tokens -------------------------------------------------------------------

    async def create_api_token(
        self, caller: Caller, name: str, expires_in_days: int
    ) -> tuple[ApiToken, str]:
        me = _me(caller)
        name = name.strip()
        no_nul("name", name)
        if not name:
            raise InvalidArgument("name", "is required")
        if len(name) > 100:
            raise InvalidArgument("name", "must be at most 100 characters")
        if expires_in_days < 0 or expires_in_days > 3650:
            raise InvalidArgument("expires_in_days", "must be between 0 (never) and 3650")
        secret, prefix = new_api_token()
        async with self._pool.acquire() as conn:
            token = await store.insert_api_token(
                conn, caller.workspace_id, me, name, prefix, token_hash(secret), expires_in_days
            )
        log.info(
            "API token created: workspace=%s person=%s token=%s", caller.workspace_id, me, token.id
        )
        return token, secret

    async def list_api_tokens(self, caller: Caller) -> list[ApiToken]:
        me = _me(caller)
        async with self._pool.acquire() as conn:
            return await store.list_api_tokens(conn, caller.workspace_id, me)

    async def revoke_api_token(self, caller: Caller, token_id: str) -> None:
        me = _me(caller)
        tid = _id_or_none(token_id)
        async with self._pool.acquire() as conn:
            if tid is None or not await store.revoke_api_token(conn, caller.workspace_id, me, tid):
                raise NotFound("API token not found")

    async def resolve_api_token(self, *, workspace_id: str, token: str) -> ApiToken:
        ws = _ws(workspace_id)
        if not token.startswith("fdt_"):
            raise Unauthenticated("invalid API token")
        async with self._pool.acquire() as conn:
            found = await store.resolve_api_token(conn, ws, token_hash(token))
        if found is None:
            raise Unauthenticated("invalid API token")
        return found

    # --- self-registration ------------------------------------------------------------

    async def register(
        self, *, workspace_id: str, email: str, name: str, password: str, confirm_url_base: str
    ) -> RegisterResult:
        ws = _ws(workspace_id)
        email = email.strip()
        name = name.strip()
        no_nul("email", email)
        no_nul("name", name)
        if "@" not in email or len(email) > 320 or email.startswith("@") or email.endswith("@"):
            raise InvalidArgument("email", "must be an e-mail address")
        if not name:
            raise InvalidArgument("name", "is required")
        normalized = check_new_password(password, field="password", context=(email, name))
        confirm = self._mailer.configured
        if confirm and not confirm_url_base:
            raise InvalidArgument("confirm_url_base", "is required when e-mail is confirmed")
        try:
            person = await self._directory.register_person(ws, email, name)
        except AlreadyExists:
            if not confirm:
                raise AlreadyExists("email: is already registered; sign in instead") from None
            # With mail, the answer is the same whether or not the address is known.
            await self._send_mail(
                email,
                "Your account",
                "Someone tried to register with this address, which already has an account.\n"
                "If that was you, sign in instead (or ask your administrator to reset your password).\n",
            )
            return RegisterResult(person_id="", confirmation_required=True)
        new_hash = await self._passwords.hash(normalized)
        token = new_token()
        async with self._pool.acquire() as conn, conn.transaction():
            await store.put_password(conn, ws, person.id, new_hash, email_confirmed=not confirm)
            if confirm:
                await store.add_email_confirmation(
                    conn, ws, token_hash(token), person.id, EMAIL_CONFIRMATION_SECONDS
                )
        log.info("registered: workspace=%s person=%s confirmation=%s", ws, person.id, confirm)
        if confirm:
            sep = "&" if "?" in confirm_url_base else "?"
            await self._send_mail(
                email,
                "Confirm your e-mail address",
                f"Hello {name},\n\nconfirm your e-mail address to finish signing up:\n\n"
                f"{confirm_url_base}{sep}token={token}\n\nThe link is valid for 48 hours.\n",
            )
        return RegisterResult(person_id=person.id, confirmation_required=confirm)

    async def _send_mail(self, to: str, subject: str, body: str) -> None:
        try:
            await self._mailer.send(to, subject, body)
        except Exception as exc:
            log.warning("could not send mail (%s): %s", subject, type(exc).__name__)
            raise Unavailable(
                "the confirmation e-mail could not be sent; try again later"
            ) from None

    async def confirm_email(self, *, workspace_id: str, token: str) -> str:
        ws = _ws(workspace_id)
        if not token:
            raise InvalidArgument("token", "is required")
        async with self._pool.acquire() as conn, conn.transaction():
            person_id = await store.confirm_email(conn, ws, token_hash(token))
        if person_id is None:
            raise NotFound("the confirmation link is invalid or has expired")
        log.info("e-mail confirmed: workspace=%s person=%s", ws, person_id)
        return person_id

    # --- SSO --------------------------------------------------------------------------

    async def _sso_config(self, ws: str) -> SsoConfig | None:
        async with self._pool.acquire() as conn:
            row = await store.get_sso_config(conn, ws)
        if row is None:
            return None
        sealed = row["client_secret"]
        return SsoConfig(
            workspace_id=ws,
            enabled=row["enabled"],
            issuer=row["issuer"],
            client_id=row["client_id"],
            client_secret=self._box.open(sealed, context=f"sso:{ws}") if sealed else "",
            allowed_domains=tuple(row["allowed_domains"]),
            create_unknown_persons=row["create_unknown_persons"],
        )

    async def get_sso_config(
        self, caller: Caller | None, workspace_id: str
    ) -> tuple[SsoConfig | None, bool]:
        """(config, full): without Settings:manage only whether SSO is on is shown."""
        if caller is not None:
            ws = _ws(caller.workspace_id)
            full = caller.may("Settings:manage")
        else:
            ws = _ws(workspace_id)
            full = False
        return await self._sso_config(ws), full

    async def put_sso_config(
        self,
        caller: Caller,
        *,
        enabled: bool,
        issuer: str,
        client_id: str,
        client_secret: str,
        allowed_domains: list[str],
        create_unknown_persons: bool,
    ) -> SsoConfig:
        ws = _ws(caller.workspace_id)
        if not caller.may("Settings:manage"):
            raise PermissionDenied("configuring SSO needs Settings:manage")
        issuer = issuer.strip()
        client_id = client_id.strip()
        no_nul("issuer", issuer)
        no_nul("client_id", client_id)
        no_nul("allowed_domains", *allowed_domains)
        if not issuer:
            raise InvalidArgument("issuer", "is required")
        try:
            self._oidc.check_url(issuer)
        except OidcError as exc:
            raise InvalidArgument("issuer", str(exc)) from None
        if not client_id:
            raise InvalidArgument("client_id", "is required")
        domains = []
        for raw in allowed_domains:
            d = raw.strip().lower().lstrip("@")
            if not d:
                continue
            if "." not in d or " " in d or "/" in d:
                raise InvalidArgument("allowed_domains", f"{raw!r} is not a domain")
            domains.append(d)
        existing = await self._sso_config(ws)
        if enabled and not client_secret and not (existing and existing.client_secret):
            raise InvalidArgument("client_secret", "is required")
        if enabled:
            try:
                await self._oidc.metadata(issuer, fresh=True)
            except OidcError as exc:
                raise InvalidArgument("issuer", f"discovery failed: {exc}") from None
        sealed = self._box.seal(client_secret, context=f"sso:{ws}") if client_secret else None
        async with self._pool.acquire() as conn:
            await store.put_sso_config(
                conn,
                ws,
                enabled=enabled,
                issuer=issuer,
                client_id=client_id,
                sealed_secret=sealed,
                allowed_domains=domains,
                create_unknown_persons=create_unknown_persons,
            )
        log.info("SSO configured: workspace=%s issuer=%s enabled=%s", ws, issuer, enabled)
        config = await self._sso_config(ws)
        assert config is not None
        return config

    async def start_sso(
        self, *, workspace_id: str, redirect_uri: str, surface: str, next_url: str
    ) -> tuple[str, str]:
        ws = _ws(workspace_id)
        if surface not in SURFACES:
            raise InvalidArgument("surface", "must be portal or management")
        if not redirect_uri.startswith(("https://", "http://")):
            raise InvalidArgument("redirect_uri", "must be an absolute URL")
        config = await self._sso_config(ws)
        if config is None or not config.enabled:
            raise FailedPrecondition("single sign-on is not configured for this workspace")
        try:
            meta = await self._oidc.metadata(config.issuer)
        except OidcError as exc:
            raise Unavailable(f"single sign-on is unavailable: {exc}") from None
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        async with self._pool.acquire() as conn:
            await store.insert_sso_state(
                conn,
                ws,
                token_hash(state),
                SsoState(nonce, verifier, redirect_uri, surface, next_url[:2000]),
                SSO_STATE_SECONDS,
            )
        url = self._oidc.authorization_url(
            meta,
            client_id=config.client_id,
            redirect_uri=redirect_uri,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
        )
        return url, state

    async def finish_sso(
        self,
        *,
        workspace_id: str,
        state: str,
        code: str,
        iss: str,
        redirect_uri: str,
        client_ip: str,
        user_agent: str,
        error: str,
    ) -> tuple[LoginResult, str]:
        """(sign-in result, `next` from the start); every refusal is UNAUTHENTICATED or
        FAILED_PRECONDITION with a message safe to show."""
        ws = _ws(workspace_id)
        if not state:
            raise Unauthenticated("the sign-in link is invalid; start again")
        async with self._pool.acquire() as conn:
            started = await store.consume_sso_state(conn, ws, token_hash(state))
        if started is None:
            raise Unauthenticated("the sign-in link has expired or was already used; start again")
        config = await self._sso_config(ws)
        if config is None or not config.enabled:
            raise FailedPrecondition("single sign-on is not configured for this workspace")
        if error:
            safe = "".join(ch for ch in error[:60] if ch.isalnum() or ch in "_-")
            raise Unauthenticated(f"the identity provider did not sign you in ({safe})")
        if redirect_uri and redirect_uri != started.redirect_uri:
            raise Unauthenticated("the sign-in came back to a different address; start again")
        try:
            meta = await self._oidc.metadata(config.issuer)
            # RFC 9207: the callback's iss must name our issuer (required when advertised).
            if iss != meta.issuer and (iss or meta.iss_parameter_supported):
                raise OidcError("the answer came from a different identity provider")
            if not code:
                raise OidcError("the identity provider sent no code")
            id_token = await self._oidc.exchange_code(
                meta,
                client_id=config.client_id,
                client_secret=config.client_secret,
                code=code,
                redirect_uri=started.redirect_uri,
                code_verifier=started.code_verifier,
            )
            claims = await self._oidc.verify_id_token(
                meta, id_token, client_id=config.client_id, nonce=started.nonce
            )
        except OidcError as exc:
            await self._fail_login(ws, [], "", "sso_invalid", client_ip, count=False)
            log.info("SSO refused: workspace=%s reason=%s", ws, exc)
            raise Unauthenticated(f"single sign-on failed: {exc}") from None

        person = await self._sso_person(ws, config, claims)
        keys = [account_key(person.email)]
        await self._check_may_sign_in(ws, keys, person, started.surface, client_ip, True)
        token, session = await self._start_session(
            ws, person, started.surface, "sso", client_ip, user_agent
        )
        await self._after_sign_in(ws, person.id, started.surface)
        return LoginResult(
            status="ok", person_id=person.id, session_token=token, expires_at=session.expires_at
        ), started.next

    async def _sso_person(self, ws: str, config: SsoConfig, claims: dict[str, object]) -> Person:
        subject = str(claims["sub"])
        email = str(claims.get("email") or "").strip()
        verified = claims.get("email_verified") is True
        async with self._pool.acquire() as conn:
            linked = await store.find_external_identity(conn, ws, config.issuer, subject)
        if linked is not None:
            person = await self._directory.get_person(ws, linked)
            if person is None:
                raise Unauthenticated("the account linked to this identity no longer exists")
            return person
        if not email or not verified:
            raise FailedPrecondition("the identity provider did not confirm your e-mail address")
        if not domain_allowed(email, config.allowed_domains):
            raise FailedPrecondition("your e-mail domain may not sign in with single sign-on here")
        person = await self._directory.find_by_email(ws, email)
        if person is None:
            if not config.create_unknown_persons:
                raise FailedPrecondition(
                    "there is no account for your e-mail address; ask your administrator"
                )
            name = str(claims.get("name") or "").strip() or email
            person = await self._directory.create_sso_person(ws, email, name)
        async with self._pool.acquire() as conn, conn.transaction():
            if await store.link_external_identity(
                conn, ws, config.issuer, subject, person.id, email
            ):
                await outbox.add(
                    conn, events.identity_linked(ws, person.id, config.issuer, subject)
                )
        log.info(
            "external identity linked: workspace=%s person=%s issuer=%s",
            ws,
            person.id,
            config.issuer,
        )
        return person

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
            await store.revoke_api_tokens_of(conn, ws, person_id)
        elif not portal_access:
            await self.end_sessions(
                conn, ws, actor_id, person_id, "portal_access_disabled", surface="portal"
            )
