"""The OpenID Connect relying party: discovery, PKCE, code exchange and ID token checks.

JOSE work (JWKS, signatures, claims) is done by joserfc; HTTP by aiohttp. Discovery documents
and key sets are cached per issuer; an ID token signed with an unknown key id makes one fresh
JWKS fetch (at most once a minute), so a provider's key rotation is picked up.

The issuer is set by a workspace admin, so every fetch is guarded against server-side request
forgery: an address literal or every address a name resolves to must be public (no loopback,
link-local, private, shared, multicast or reserved ranges, also when mapped into IPv6), the
connection goes to exactly the address that was checked (the resolver is ours) and redirects
are not followed. `allow_private_networks` lifts the guard for local identity providers.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class OidcError(Exception):
    """The provider's answer or token cannot be trusted; the message is safe to show."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE_REFUSED = "is in a private, loopback or link-local network, which is not allowed"


def address_allowed(address: str) -> bool:
    """True for a public unicast address; IPv4 inside IPv6 (mapped, NAT64, 6to4) is judged
    as the IPv4 address it carries."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            address.split("%", 1)[0]
        )
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip.teredo is not None:
            ip = ip.teredo[1]
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


class BlockedAddress(OSError):
    """A name resolved to an address the guard refuses (aiohttp wraps it in a ClientError)."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} ({address}) {PRIVATE_REFUSED}")


class _GuardedResolver(AbstractResolver):
    """Resolves with the system resolver and refuses the host when any address is not public;
    aiohttp then connects to the addresses returned here, so a second lookup cannot swap in
    another (DNS rebinding)."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not address_allowed(result["host"]):
                raise BlockedAddress(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    iss_parameter_supported: bool
    token_auth_methods: tuple[str, ...]


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class OidcClient:
    def __init__(
        self,
        *,
        allow_insecure_http: bool = False,
        allow_private_networks: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self._allow_insecure = allow_insecure_http
        self._allow_private = allow_private_networks
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._metadata: dict[str, tuple[float, ProviderMetadata]] = {}
        self._jwks: dict[str, tuple[float, KeySet]] = {}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = (
                None if self._allow_private else aiohttp.TCPConnector(resolver=_GuardedResolver())
            )
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=connector, trust_env=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def check_url(self, url: str) -> None:
        """https only; plain http only to this machine and only when allowed (tests)."""
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:  # "http://[::1": not a URL at all
            raise OidcError("must be an https URL") from None
        secure = parts.scheme == "https" and bool(hostname)
        local = parts.scheme == "http" and self._allow_insecure and (hostname or "") in _LOCAL_HOSTS
        if not (secure or local):
            raise OidcError("must be an https URL")
        if self._allow_private or not hostname:
            return
        try:
            ipaddress.ip_address(hostname.split("%", 1)[0])
        except ValueError:
            return  # a name: the resolver checks every address it resolves to
        if not address_allowed(hostname):
            raise OidcError(f"{hostname} {PRIVATE_REFUSED}")

    @staticmethod
    def _unreachable(exc: Exception) -> OidcError:
        if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
            exc.os_error, BlockedAddress
        ):
            return OidcError(str(exc.os_error))
        return OidcError(f"the identity provider cannot be reached ({type(exc).__name__})")

    async def _get_json(self, url: str) -> dict[str, Any]:
        self.check_url(url)
        try:
            async with self._http().get(
                url, headers={"Accept": "application/json"}, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise OidcError(f"the identity provider answered {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._unreachable(exc) from None
        if not isinstance(body, dict):
            raise OidcError("the identity provider sent an unexpected document")
        return body

    async def metadata(self, issuer: str, *, fresh: bool = False) -> ProviderMetadata:
        cached = self._metadata.get(issuer)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1]
        doc = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if doc.get("issuer") != issuer:
            # OpenID Connect Discovery 1.0, section 4.3: they must be identical.
            raise OidcError("the discovery document names a different issuer")
        try:
            meta = ProviderMetadata(
                issuer=issuer,
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                iss_parameter_supported=bool(
                    doc.get("authorization_response_iss_parameter_supported")
                ),
                token_auth_methods=tuple(
                    doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
                ),
            )
        except KeyError as exc:
            raise OidcError(f"the discovery document lacks {exc.args[0]}") from None
        for url in (meta.authorization_endpoint, meta.token_endpoint, meta.jwks_uri):
            self.check_url(url)
        self._metadata[issuer] = (time.monotonic() + 300, meta)
        return meta

    @staticmethod
    def authorization_url(
        meta: ProviderMetadata,
        *,
        client_id: str,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str,
    ) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid email profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        sep = "&" if "?" in meta.authorization_endpoint else "?"
        return f"{meta.authorization_endpoint}{sep}{query}"

    async def exchange_code(
        self,
        meta: ProviderMetadata,
        *,
        client_id: str,
        client_secret: str,
        code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> str:
        """The ID token the token endpoint returns for `code` (used once by the provider)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        if (
            "client_secret_basic" in meta.token_auth_methods
            or "client_secret_post" not in meta.token_auth_methods
        ):
            # RFC 6749 section 2.3.1: both parts form-urlencoded before base64.
            pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = client_id
            form["client_secret"] = client_secret
        self.check_url(meta.token_endpoint)
        try:
            async with self._http().post(
                meta.token_endpoint, data=form, headers=headers, allow_redirects=False
            ) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._unreachable(exc) from None
        if status != 200 or not isinstance(body, dict):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise OidcError(f"the identity provider refused the code ({str(error)[:60] or status})")
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OidcError("the identity provider returned no ID token")
        return id_token

    async def _key_set(self, jwks_uri: str, *, fresh: bool) -> KeySet:
        cached = self._jwks.get(jwks_uri)
        if cached and (not fresh or cached[0] > time.monotonic() - 60):
            return cached[1]
        doc = await self._get_json(jwks_uri)
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise OidcError("the identity provider's key set is invalid") from None
        self._jwks[jwks_uri] = (time.monotonic(), keys)
        return keys

    async def verify_id_token(
        self, meta: ProviderMetadata, id_token: str, *, client_id: str, nonce: str
    ) -> dict[str, Any]:
        """The ID token's claims after checking signature (JWKS), iss, aud, azp, exp, iat and
        nonce (OpenID Connect Core 1.0, section 3.1.3.7)."""
        keys = await self._key_set(meta.jwks_uri, fresh=False)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:
                keys = await self._key_set(meta.jwks_uri, fresh=True)
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            raise OidcError("the ID token is signed with an unknown key") from None
        except (JoseError, ValueError):
            raise OidcError("the ID token's signature is not valid") from None
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": meta.issuer},
            sub={"essential": True},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", "") or str(exc)
            raise OidcError(f"the ID token is not valid for this sign-in ({claim})") from None
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
            raise OidcError("the ID token is not valid for this sign-in (azp)")
        return claims
