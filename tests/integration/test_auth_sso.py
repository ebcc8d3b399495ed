"""Single sign-on against a real OpenID Provider (panva's oidc-provider from npm)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from frontdesk.v1 import auth_pb2
from joserfc.jwk import RSAKey

from services.auth.sso import OidcClient, OidcError, pkce_pair
from tests.integration.test_auth_support import (
    AuthWorld,
    OidcProvider,
    auth_events,
    event_names,
    eventually,
    make_world,
    rpc_error,
    run_oidc_provider,
    sign_in_at_provider,
)
from tests.stack import Stack


@pytest.fixture
async def auth_world(stack: Stack) -> AuthWorld:
    return await make_world(stack)


@pytest.fixture
async def oidc_provider() -> AsyncIterator[OidcProvider]:
    async with run_oidc_provider() as provider:
        yield provider


async def test_relying_party_verifies_a_real_providers_id_token(
    oidc_provider: OidcProvider,
) -> None:
    client = OidcClient(allow_insecure_http=True, allow_private_networks=True)
    try:
        meta = await client.metadata(oidc_provider.issuer)
        assert meta.iss_parameter_supported
        verifier, challenge = pkce_pair()
        url = client.authorization_url(
            meta,
            client_id=oidc_provider.client_id,
            redirect_uri=oidc_provider.redirect_uri,
            state="s1",
            nonce="n1",
            code_challenge=challenge,
        )
        back = await sign_in_at_provider(url, "ann@example.com", oidc_provider.redirect_uri)
        assert back["state"] == "s1" and back["iss"] == oidc_provider.issuer
        id_token = await client.exchange_code(
            meta,
            client_id=oidc_provider.client_id,
            client_secret=oidc_provider.client_secret,
            code=back["code"],
            redirect_uri=oidc_provider.redirect_uri,
            code_verifier=verifier,
        )
        claims = await client.verify_id_token(
            meta, id_token, client_id=oidc_provider.client_id, nonce="n1"
        )
        assert claims["sub"] == "ann@example.com"
        assert claims["email"] == "ann@example.com" and claims["email_verified"] is True
        with pytest.raises(OidcError):
            await client.verify_id_token(
                meta, id_token, client_id=oidc_provider.client_id, nonce="other"
            )
        with pytest.raises(OidcError):
            await client.verify_id_token(meta, id_token, client_id="someone-else", nonce="n1")
    finally:
        await client.close()


# --- through the auth service ---------------------------------------------------------------


async def _configure(w: AuthWorld, p: OidcProvider, **extra: Any) -> auth_pb2.SsoConfig:
    return await w.auth.PutSsoConfig(
        auth_pb2.PutSsoConfigRequest(
            caller=w.caller(w.admin_id, "Settings:manage"),
            enabled=True,
            issuer=p.issuer,
            client_id=p.client_id,
            client_secret=p.client_secret,
            **extra,
        )
    )


async def _sso(
    w: AuthWorld,
    p: OidcProvider,
    login: str,
    *,
    surface: str = "portal",
    iss: str | None = None,
    replay_code: str | None = None,
) -> tuple[auth_pb2.LoginResponse, dict[str, str]]:
    started = await w.auth.StartSso(
        auth_pb2.StartSsoRequest(
            workspace_id=w.ws, redirect_uri=p.redirect_uri, surface=surface, next="/tickets"
        )
    )
    assert "code_challenge_method=S256" in started.authorization_url
    assert "nonce=" in started.authorization_url
    back = await sign_in_at_provider(started.authorization_url, login, p.redirect_uri)
    assert back["state"] == started.state
    result = await w.auth.FinishSso(
        auth_pb2.FinishSsoRequest(
            workspace_id=w.ws,
            state=back["state"],
            code=replay_code or back["code"],
            iss=back.get("iss", "") if iss is None else iss,
            redirect_uri=p.redirect_uri,
            client_ip="203.0.113.9",
        )
    )
    return result, back


async def test_sso_links_a_known_person_by_verified_email_and_starts_a_session(
    auth_world: AuthWorld, oidc_provider: OidcProvider, nats_url: str
) -> None:
    w, p = auth_world, oidc_provider
    snapshot, close = await auth_events(nats_url, w.ws)
    w.stack.on_close(close)
    config = await _configure(w, p)
    assert config.has_client_secret and p.client_secret not in str(config)
    read = await w.auth.GetSsoConfig(
        auth_pb2.GetSsoConfigRequest(caller=w.caller(w.admin_id, "Settings:manage"))
    )
    assert read.issuer == p.issuer and read.has_client_secret and p.client_secret not in str(read)
    public = await w.auth.GetSsoConfig(auth_pb2.GetSsoConfigRequest(workspace_id=w.ws))
    assert public.enabled and not public.issuer and not public.client_id

    ann = await w.add_person("ann@example.com", password=None)
    result, _ = await _sso(w, p, "ann@example.com")
    assert result.status == "ok" and result.person_id == ann and result.next == "/tickets"
    assert (await w.resolve(result.session_token)).person_id == ann

    db = await w.stack.connect("auth")
    row = await db.fetchrow("select person_id, subject from external_identities")
    assert str(row["person_id"]) == ann and row["subject"] == "ann@example.com"
    # The second time the identity is found by (issuer, subject).
    again, _ = await _sso(w, p, "ann@example.com", surface="management")
    assert again.person_id == ann
    names = await eventually(lambda: _has(event_names(snapshot()), "external_identity_linked"))
    assert names.count("external_identity_linked") == 1


async def _has(names: list[str], wanted: str) -> list[str] | None:
    return names if wanted in names else None


async def test_a_replayed_state_or_code_is_refused(
    auth_world: AuthWorld, oidc_provider: OidcProvider
) -> None:
    w, p = auth_world, oidc_provider
    await _configure(w, p)
    await w.add_person("bob@example.com", password=None)
    result, back = await _sso(w, p, "bob@example.com")
    assert result.status == "ok"
    same_state = await rpc_error(
        w.auth.FinishSso(
            auth_pb2.FinishSsoRequest(
                workspace_id=w.ws,
                state=back["state"],
                code=back["code"],
                iss=back["iss"],
                redirect_uri=p.redirect_uri,
            )
        )
    )
    assert same_state.code() == grpc.StatusCode.UNAUTHENTICATED
    # A fresh state with the old code: the provider refuses the used code.
    replayed = await rpc_error(_sso(w, p, "bob@example.com", replay_code=back["code"]))
    assert replayed.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "refused the code" in (replayed.details() or "")


async def test_wrong_nonce_wrong_issuer_and_forged_signature_are_refused(
    auth_world: AuthWorld, oidc_provider: OidcProvider
) -> None:
    w, p = auth_world, oidc_provider
    await _configure(w, p)
    await w.add_person("cy@example.com", password=None)
    attacker = RSAKey.generate_key(2048, parameters={"kid": "test-key"}, private=True)

    def tampering(**changes: Any) -> Any:
        def tamper(doc: dict[str, Any]) -> dict[str, Any]:
            key = changes.pop("key", None) if "key" in changes else None
            doc["id_token"] = p.resign(doc["id_token"], key, **changes)
            return doc

        return tamper

    cases = {
        "nonce": tampering(nonce="not-the-nonce-we-sent"),
        "iss": tampering(iss="http://127.0.0.1:1/evil"),
        "signature": tampering(key=attacker),
        "aud": tampering(aud="another-client"),
        "exp": tampering(exp=1_000_000_000),
    }
    db = await w.stack.connect("auth")
    for name, tamper in cases.items():
        p.tamper = tamper
        try:
            err = await rpc_error(_sso(w, p, "cy@example.com"), name)
        finally:
            p.tamper = None
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert "single sign-on failed" in (err.details() or ""), name
    assert await db.fetchval("select count(*) from sessions") == 0
    # Untampered, the same person signs in.
    assert (await _sso(w, p, "cy@example.com"))[0].status == "ok"


async def test_iss_on_the_callback_must_name_the_provider(
    auth_world: AuthWorld, oidc_provider: OidcProvider
) -> None:
    w, p = auth_world, oidc_provider
    await _configure(w, p)
    await w.add_person("dee@example.com", password=None)
    for iss in ("http://127.0.0.1:1/evil", ""):
        err = await rpc_error(_sso(w, p, "dee@example.com", iss=iss))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "different identity provider" in (err.details() or "")


async def test_unverified_emails_unknown_persons_domains_and_portal_access(
    auth_world: AuthWorld, oidc_provider: OidcProvider
) -> None:
    w, p = auth_world, oidc_provider
    await _configure(w, p)
    await w.add_person("eve@example.com", password=None)
    unverified = await rpc_error(_sso(w, p, "unverified:eve@example.com"))
    assert unverified.code() == grpc.StatusCode.FAILED_PRECONDITION
    db = await w.stack.connect("auth")
    assert await db.fetchval("select count(*) from external_identities") == 0

    unknown = await rpc_error(_sso(w, p, "newbie@example.com"))
    assert unknown.code() == grpc.StatusCode.FAILED_PRECONDITION

    await _configure(w, p, create_unknown_persons=True, allowed_domains=["example.com"])
    created, _ = await _sso(w, p, "newbie@example.com")
    assert created.status == "ok"
    outsider = await rpc_error(_sso(w, p, "mallory@evil.test"))
    assert outsider.code() == grpc.StatusCode.FAILED_PRECONDITION

    await w.add_person("flo@example.com", password=None, portal_access=False)
    off = await rpc_error(_sso(w, p, "flo@example.com"))
    assert off.code() == grpc.StatusCode.PERMISSION_DENIED
    assert off.details() == "portal access is not enabled for this account"
    assert (await _sso(w, p, "flo@example.com", surface="management"))[0].status == "ok"


async def test_sso_config_needs_settings_manage_and_a_reachable_issuer(
    auth_world: AuthWorld, oidc_provider: OidcProvider
) -> None:
    w, p = auth_world, oidc_provider
    ann = await w.add_person("ann@example.com")
    denied = await rpc_error(
        w.auth.PutSsoConfig(
            auth_pb2.PutSsoConfigRequest(
                caller=w.caller(ann),
                enabled=True,
                issuer=p.issuer,
                client_id="x",
                client_secret="y",
            )
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = await rpc_error(
        w.auth.PutSsoConfig(
            auth_pb2.PutSsoConfigRequest(
                caller=w.system(),
                enabled=True,
                issuer="http://127.0.0.1:1",
                client_id="x",
                client_secret="y",
            )
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and (bad.details() or "").startswith(
        "issuer:"
    )
    plain = await rpc_error(
        w.auth.PutSsoConfig(
            auth_pb2.PutSsoConfigRequest(
                caller=w.system(),
                enabled=True,
                issuer="http://idp.example.com",
                client_id="x",
                client_secret="y",
            )
        )
    )
    assert plain.code() == grpc.StatusCode.INVALID_ARGUMENT
    not_configured = await rpc_error(
        w.auth.StartSso(
            auth_pb2.StartSsoRequest(
                workspace_id=w.ws, redirect_uri=p.redirect_uri, surface="portal"
            )
        )
    )
    assert not_configured.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The secret is kept when the admin saves without retyping it.
    await _configure(w, p)
    kept = await w.auth.PutSsoConfig(
        auth_pb2.PutSsoConfigRequest(
            caller=w.system(), enabled=True, issuer=p.issuer, client_id=p.client_id
        )
    )
    assert kept.has_client_secret
