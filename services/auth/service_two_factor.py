"""Two-factor sign-in: TOTP enrolment and confirmation, recovery codes, turning it off, an
admin's reset."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.auth import events, store, store_sessions, store_two_factor
from services.auth.crypto import (
    matching_step,
    new_totp_secret,
    provisioning_uri,
    qr_svg,
)
from services.auth.domain import new_recovery_codes, recovery_code_hash, token_hash
from services.auth.service_base import ServiceBase, checked_workspace, id_or_none, signed_in_person
from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, InvalidField, NotFound, PermissionDenied

log = logging.getLogger(__name__)


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


class TwoFactorUseCases(ServiceBase):
    # --- two-factor -------------------------------------------------------------------

    async def two_factor_status(self, caller: Caller, person_id: str) -> TwoFactorState:
        ws = checked_workspace(caller.ws)
        if person_id and person_id != caller.actor:
            if not (caller.has("Person:read") or caller.has("Person:manage")):
                raise PermissionDenied(
                    "reading another person's two-factor status needs Person:read"
                )
            target = id_or_none(person_id)
            # Someone of another workspace (or nobody) is not found, never "not enrolled".
            if target is None or await self._directory.get_person(ws, target) is None:
                raise NotFound("person not found")
        else:
            target = signed_in_person(caller)
        async with self._pool.acquire() as conn:
            totp = await store_two_factor.get_totp(conn, ws, target)
            left = await store_two_factor.recovery_codes_left(conn, ws, target)
        rules = await self._directory.portal_rules(ws)
        return TwoFactorState(
            enabled=bool(totp and totp.enabled),
            recovery_codes_left=left,
            required_by_workspace=rules.require_two_factor,
        )

    async def begin_totp(self, caller: Caller, account_label: str) -> TotpEnrollment:
        me = signed_in_person(caller)
        ws = caller.ws
        async with self._pool.acquire() as conn:
            current = await store_two_factor.get_totp(conn, ws, me)
        if current is not None and current.enabled:
            raise FailedPrecondition("two-factor sign-in is already on; turn it off first")
        label = account_label.strip()
        if not label:
            person = await self._directory.get_person(ws, me)
            label = person.email if person else me
        secret = new_totp_secret()
        async with self._pool.acquire() as conn:
            await store_two_factor.set_pending_totp(
                conn, ws, me, self._box.seal(secret, context=f"totp:{ws}:{me}")
            )
        uri = provisioning_uri(secret, label[:200], self._settings.totp_issuer)
        return TotpEnrollment(secret=secret, uri=uri, qr_svg=qr_svg(uri))

    async def confirm_totp(self, caller: Caller, code: str, keep_session_token: str) -> list[str]:
        me = signed_in_person(caller)
        ws = caller.ws
        keys = [f"totp-enroll:{me}"]
        await self._check_throttle(ws, keys)
        async with self._pool.acquire() as conn:
            current = await store_two_factor.get_totp(conn, ws, me)
        if current is None or current.pending_secret is None:
            if current is not None and current.enabled:
                raise FailedPrecondition("two-factor sign-in is already on")
            raise FailedPrecondition("start the two-factor setup first")
        secret = self._box.open(current.pending_secret, context=f"totp:{ws}:{me}")
        step = matching_step(secret, code)
        if step is None:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._count_failure(conn, ws, keys)
            raise InvalidField("code", "is not valid; check your device's clock and try again")
        codes = new_recovery_codes()
        keep = token_hash(keep_session_token) if keep_session_token else ""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store_two_factor.enable_totp(conn, ws, me, step):
                raise FailedPrecondition("two-factor sign-in is already on")
            await store_two_factor.replace_recovery_codes(
                conn, ws, me, [recovery_code_hash(c) for c in codes]
            )
            await store.clear_failures(conn, ws, keys[0])
            if keep:
                await store_sessions.lift_enroll_only(conn, ws, keep)
            await self.end_sessions(conn, ws, me, me, "two_factor_enabled", except_id=keep)
            await outbox.add(conn, events.person_event(ws, me, "two_factor_enabled", me))
        log.info("two-factor enabled: workspace=%s person=%s", ws, me)
        return codes

    async def disable_totp(
        self, caller: Caller, password: str, code: str, keep_session_token: str
    ) -> None:
        me = signed_in_person(caller)
        ws = caller.ws
        async with self._pool.acquire() as conn:
            current = await store_two_factor.get_totp(conn, ws, me)
        if current is None or not current.enabled:
            raise FailedPrecondition("two-factor sign-in is not on")
        await self._verify_password_of(ws, me, password, "password")
        await self._require_code(ws, me, code)
        keep = token_hash(keep_session_token) if keep_session_token else ""
        async with self._pool.acquire() as conn, conn.transaction():
            if await store_two_factor.delete_totp(conn, ws, me):
                await self.end_sessions(conn, ws, me, me, "two_factor_disabled", except_id=keep)
                await outbox.add(conn, events.person_event(ws, me, "two_factor_disabled", me))
        log.info("two-factor disabled: workspace=%s person=%s", ws, me)

    async def regenerate_recovery_codes(self, caller: Caller, code: str) -> list[str]:
        me = signed_in_person(caller)
        ws = caller.ws
        async with self._pool.acquire() as conn:
            current = await store_two_factor.get_totp(conn, ws, me)
        if current is None or not current.enabled:
            raise FailedPrecondition("two-factor sign-in is not on")
        await self._require_code(ws, me, code)
        codes = new_recovery_codes()
        async with self._pool.acquire() as conn, conn.transaction():
            await store_two_factor.replace_recovery_codes(
                conn, ws, me, [recovery_code_hash(c) for c in codes]
            )
        return codes

    async def admin_reset_two_factor(self, caller: Caller, person_id: str) -> None:
        ws = checked_workspace(caller.ws)
        if not caller.has("Person:manage"):
            raise PermissionDenied("resetting two-factor needs Person:manage")
        target = id_or_none(person_id)
        if target is None or await self._directory.get_person(ws, target) is None:
            raise NotFound("person not found")
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store_two_factor.delete_totp(conn, ws, target):
                raise FailedPrecondition("two-factor sign-in is not on for this person")
            await self.end_sessions(conn, ws, caller.actor, target, "two_factor_reset")
            await outbox.add(
                conn, events.person_event(ws, caller.actor, "two_factor_disabled", target)
            )
        log.info(
            "two-factor reset: workspace=%s person=%s by=%s",
            ws,
            target,
            caller.actor or f"service:{caller.service}",
        )
