"""Accounts: passwords (set by an admin, changed by their owner), self-registration and e-mail
confirmation."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from services.auth import events, store
from services.auth.domain import (
    Refused,
    account_key,
    check_new_password,
    new_token,
    no_nul,
    normalize_password,
    token_hash,
)
from services.auth.service_base import ServiceBase, checked_workspace, id_or_none, signed_in_person
from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import (
    AlreadyExists,
    InvalidField,
    NotFound,
    PermissionDenied,
    Unavailable,
)

log = logging.getLogger(__name__)

EMAIL_CONFIRMATION_SECONDS = 48 * 3600
REGISTRATION_NEEDS_MAIL = (
    "self-registration limited to e-mail domains needs e-mail confirmation, and no mail "
    "server is configured; ask your administrator"
)


@dataclass(frozen=True)
class RegisterResult:
    person_id: str
    confirmation_required: bool


class AccountUseCases(ServiceBase):
    # --- passwords --------------------------------------------------------------------

    async def set_password(self, caller: Caller, person_id: str, password: str) -> None:
        ws = checked_workspace(caller.ws)
        if not caller.has_any("Person:manage", "Credential:set"):
            raise PermissionDenied("setting a password needs Person:manage")
        pid = id_or_none(person_id)
        person = await self._directory.get_person(ws, pid) if pid else None
        if person is None:
            raise NotFound("person not found")
        normalized = check_new_password(
            password, field="password", context=(person.email, person.name)
        )
        new_hash = await self._passwords.hash(normalized)
        async with self._pool.acquire() as conn, conn.transaction():
            await store.put_password(conn, ws, person.id, new_hash)
            await self.end_sessions(conn, ws, caller.actor, person.id, "password_set")
            await outbox.add(
                conn, events.person_event(ws, caller.actor, "password_changed", person.id)
            )
        log.info(
            "password set: workspace=%s person=%s by=%s",
            ws,
            person.id,
            caller.actor or f"service:{caller.service}",
        )

    async def change_password(
        self, caller: Caller, current_password: str, new_password: str, keep_session_token: str
    ) -> None:
        me = signed_in_person(caller)
        ws = caller.ws
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
            raise InvalidField("current_password", "is not correct")
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

    # --- self-registration ------------------------------------------------------------

    async def register(
        self,
        *,
        workspace_id: str,
        email: str,
        name: str,
        password: str,
        confirm_url_base: str,
        client_ip: str = "",
    ) -> RegisterResult:
        """Throttled per e-mail and per address (every attempt counts). The credentials are
        stored first under a new person id, then the directory registers that person; when
        the directory refuses or fails, the credentials are removed again, so no person is
        ever left without them (and nothing blocks registering again)."""
        ws = checked_workspace(workspace_id)
        email = email.strip()
        name = name.strip()
        no_nul("email", email)
        no_nul("name", name)
        if "@" not in email or len(email) > 320 or email.startswith("@") or email.endswith("@"):
            raise InvalidField("email", "must be an e-mail address")
        if not name:
            raise InvalidField("name", "is required")
        normalized = check_new_password(password, field="password", context=(email, name))
        rules = await self._directory.portal_rules(ws)
        if rules.self_registration not in ("open", "domains"):
            raise Refused("self-registration is off in this workspace", "registration_closed")
        confirm = self._mailer.configured
        if rules.self_registration == "domains" and not confirm:
            raise Refused(REGISTRATION_NEEDS_MAIL, "registration_needs_mail")
        if confirm and not confirm_url_base:
            raise InvalidField("confirm_url_base", "is required when e-mail is confirmed")
        keys = ["register:" + account_key(email)]
        if client_ip:
            keys.append("ip:register:" + client_ip.strip())
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn, conn.transaction():
            await self._count_failure(conn, ws, keys)

        new_hash = await self._passwords.hash(normalized)
        person_id = str(uuid.uuid4())
        token = new_token()
        async with self._pool.acquire() as conn, conn.transaction():
            await store.put_password(conn, ws, person_id, new_hash, email_confirmed=not confirm)
            if confirm:
                await store.add_email_confirmation(
                    conn, ws, token_hash(token), person_id, EMAIL_CONFIRMATION_SECONDS
                )
        try:
            person = await self._directory.register_person(ws, email, name, person_id)
        except AlreadyExists:
            await self._undo_registration(ws, person_id)
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
        except BaseException:
            await self._undo_registration(ws, person_id, unless_registered=True)
            raise
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

    async def _undo_registration(
        self, ws: str, person_id: str, *, unless_registered: bool = False
    ) -> None:
        """Remove a registration's credentials. After a failed call whose outcome is unknown
        (a timeout), they stay when the directory did register the person after all."""
        try:
            if unless_registered and await self._directory.get_person(ws, person_id) is not None:
                return
            async with self._pool.acquire() as conn, conn.transaction():
                await store.delete_registration(conn, ws, person_id)
        except Exception as exc:
            # Orphaned credentials of an id no person has are inert (sign-in looks the
            # person up first); they only cost a row.
            log.warning("could not undo registration %s: %s", person_id, type(exc).__name__)

    @property
    def mail_configured(self) -> bool:
        """Whether confirmation mail can be sent (domain-limited registration needs it)."""
        return self._mailer.configured

    async def _send_mail(self, to: str, subject: str, body: str) -> None:
        try:
            await self._mailer.send(to, subject, body)
        except Exception as exc:
            log.warning("could not send mail (%s): %s", subject, type(exc).__name__)
            raise Unavailable(
                "the confirmation e-mail could not be sent; try again later"
            ) from None

    async def confirm_email(self, *, workspace_id: str, token: str) -> str:
        ws = checked_workspace(workspace_id)
        if not token:
            raise InvalidField("token", "is required")
        async with self._pool.acquire() as conn, conn.transaction():
            person_id = await store.confirm_email(conn, ws, token_hash(token))
        if person_id is None:
            raise NotFound("the confirmation link is invalid or has expired")
        log.info("e-mail confirmed: workspace=%s person=%s", ws, person_id)
        return person_id
