"""OIDC single sign-on: the workspace's configuration, the login round trip, linking persons."""

from __future__ import annotations

import logging
import secrets

from services.auth import events, store_sso
from services.auth.domain import (
    SURFACES,
    Person,
    SsoConfig,
    SsoState,
    account_key,
    domain_allowed,
    no_nul,
    token_hash,
)
from services.auth.service_base import LoginResult, ServiceBase, checked_workspace
from services.auth.sso import OidcError, pkce_pair
from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import (
    FailedPrecondition,
    InvalidField,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

SSO_STATE_SECONDS = 600


class SsoUseCases(ServiceBase):
    # --- SSO --------------------------------------------------------------------------

    async def _sso_config(self, ws: str) -> SsoConfig | None:
        async with self._pool.acquire() as conn:
            row = await store_sso.get_sso_config(conn, ws)
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
            ws = checked_workspace(caller.ws)
            full = caller.has("Settings:manage")
        else:
            ws = checked_workspace(workspace_id)
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
        ws = checked_workspace(caller.ws)
        if not caller.has("Settings:manage"):
            raise PermissionDenied("configuring SSO needs Settings:manage")
        issuer = issuer.strip()
        client_id = client_id.strip()
        no_nul("issuer", issuer)
        no_nul("client_id", client_id)
        no_nul("allowed_domains", *allowed_domains)
        if not issuer:
            raise InvalidField("issuer", "is required")
        try:
            self._oidc.check_url(issuer)
        except OidcError as exc:
            raise InvalidField("issuer", str(exc)) from None
        if not client_id:
            raise InvalidField("client_id", "is required")
        domains = []
        for raw in allowed_domains:
            d = raw.strip().lower().lstrip("@")
            if not d:
                continue
            if "." not in d or " " in d or "/" in d:
                raise InvalidField("allowed_domains", f"{raw!r} is not a domain")
            domains.append(d)
        existing = await self._sso_config(ws)
        if enabled and not client_secret and not (existing and existing.client_secret):
            raise InvalidField("client_secret", "is required")
        if enabled:
            try:
                await self._oidc.metadata(issuer, fresh=True)
            except OidcError as exc:
                raise InvalidField("issuer", f"discovery failed: {exc}") from None
        sealed = self._box.seal(client_secret, context=f"sso:{ws}") if client_secret else None
        async with self._pool.acquire() as conn:
            await store_sso.put_sso_config(
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
        ws = checked_workspace(workspace_id)
        if surface not in SURFACES:
            raise InvalidField("surface", "must be portal or management")
        if not redirect_uri.startswith(("https://", "http://")):
            raise InvalidField("redirect_uri", "must be an absolute URL")
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
            await store_sso.insert_sso_state(
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
        ws = checked_workspace(workspace_id)
        if not state:
            raise Unauthenticated("the sign-in link is invalid; start again")
        async with self._pool.acquire() as conn:
            started = await store_sso.consume_sso_state(conn, ws, token_hash(state))
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
            linked = await store_sso.find_external_identity(conn, ws, config.issuer, subject)
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
            if await store_sso.link_external_identity(
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
