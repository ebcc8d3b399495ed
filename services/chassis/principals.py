"""Signed principals: short-lived Ed25519 JWTs (joserfc) that say who is calling a service.

A principal names its issuer (`iss`, the component whose key signed it), its subject
(`person:<id>`, minted by auth for a session or API token, or `service:<name>`, a component on
its own behalf), the audience (`aud`, the one service it is for), the workspace (`ws`), the
surface (`sfc`), the permissions or rights (`prm`), the session (`sid`) and a lifetime of about
a minute (`iat`, `exp`). Services verify it against trusted public keys found by `kid`: their
own local list (FRONTDESK_TRUSTED_KEYS_FILE) and the keys auth publishes over gRPC
(GetPublicKeys), fetched and cached, fetched again for an unknown `kid`, so keys rotate without
downtime. Only auth's keys may sign persons; a service key signs only that service, with at
most the rights of SERVICE_RIGHTS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from services.chassis.caller import NO_WORKSPACE, SERVICE_RIGHTS, SURFACES, Caller, Surface

log = logging.getLogger(__name__)

ALGORITHM = "Ed25519"  # RFC 9864's name for EdDSA over Ed25519
METADATA_KEY = "authorization"
LIFETIME = 60  # seconds a principal is valid
MAX_LIFETIME = 300  # a principal valid longer than this is refused whoever signed it
LEEWAY = 5  # clock skew accepted on exp / iat
USER_ISSUERS = frozenset({"auth"})  # who may sign a person's principal


class Unauthenticated(Exception):
    """The principal is missing, malformed, forged, expired or not for this service."""


class KeysUnavailable(Exception):
    """The principal's key is unknown and auth's published keys cannot be fetched now."""


# -- keys ---------------------------------------------------------------------------------


def generate_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519", private=True)


def private_pem(key: OKPKey) -> bytes:
    return key.as_pem(private=True)


def load_private_key(pem: str | bytes) -> OKPKey:
    key = OKPKey.import_key(pem)
    if not key.is_private:
        raise ValueError("the identity key must be an Ed25519 private key (PKCS#8 PEM)")
    return key


def public_jwk(key: OKPKey) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.thumbprint()}


@dataclass(frozen=True)
class TrustedKey:
    """A public key and what it may sign."""

    kid: str
    issuer: str
    key: OKPKey
    users: bool = False  # may sign persons' principals
    rights: frozenset[str] | None = None  # None: SERVICE_RIGHTS[issuer]

    @classmethod
    def from_entry(cls, entry: dict[str, Any], *, local: bool) -> TrustedKey:
        """A key from a key document entry {"issuer", "jwk" | "pem", ["users", "rights"]}.

        `users` and `rights` are honoured only in a local trust file (an operator's or a test's
        choice); published keys get what the code grants their issuer.
        """
        issuer = str(entry["issuer"])
        raw = entry.get("jwk") or entry.get("pem")
        if raw is None:
            raise ValueError(f"key of {issuer!r} has neither jwk nor pem")
        key = OKPKey.import_key(raw)
        if key.is_private:
            key = OKPKey.import_key(key.as_dict(private=False))
        users = bool(entry.get("users")) if local else issuer in USER_ISSUERS
        rights = entry.get("rights") if local else None
        return cls(
            kid=key.thumbprint(),
            issuer=issuer,
            key=key,
            users=users or issuer in USER_ISSUERS,
            rights=frozenset(rights) if rights is not None else None,
        )

    def entry(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwk": public_jwk(self.key)}

    def allowed_rights(self) -> frozenset[str]:
        if self.rights is not None:
            return self.rights
        return SERVICE_RIGHTS.get(self.issuer, frozenset())


def read_key_document(path: str, *, local: bool) -> list[TrustedKey]:
    """The keys of a JSON document {"keys": [entry, ...]} (missing path: none)."""
    if not path:
        return []
    data = json.loads(Path(path).read_text())
    return [TrustedKey.from_entry(e, local=local) for e in data.get("keys", [])]


def key_document(keys: Iterable[TrustedKey | dict[str, Any]]) -> str:
    entries = [k.entry() if isinstance(k, TrustedKey) else k for k in keys]
    return json.dumps({"keys": entries}, indent=2)


# -- signing ------------------------------------------------------------------------------


class Signer:
    """Signs principals with one component's private key."""

    def __init__(self, issuer: str, key: OKPKey, lifetime: int = LIFETIME) -> None:
        self.issuer = issuer
        self.key = key
        self.kid = key.thumbprint()
        self.lifetime = lifetime
        self._cache: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}

    def trusted(self) -> TrustedKey:
        public = OKPKey.import_key(self.key.as_dict(private=False))
        return TrustedKey(self.kid, self.issuer, public, users=self.issuer in USER_ISSUERS)

    def sign(
        self,
        *,
        audience: str,
        subject: str,
        workspace: str,
        surface: Surface,
        permissions: Iterable[str],
        session_id: str = "",
        lifetime: int | None = None,
        now: float | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued,
            "exp": issued + (self.lifetime if lifetime is None else lifetime),
            "ws": workspace,
            "sfc": surface,
            "prm": sorted(set(permissions)),
            "sid": session_id,
        }
        header = {"alg": ALGORITHM, "kid": self.kid}
        return jwt.encode(header, claims, self.key, algorithms=[ALGORITHM])

    def person_token(
        self,
        audience: str,
        workspace: str,
        person: str,
        permissions: Iterable[str],
        surface: Surface,
        session_id: str,
    ) -> str:
        return self.sign(
            audience=audience,
            subject=f"person:{person}",
            workspace=workspace,
            surface=surface,
            permissions=permissions,
            session_id=session_id,
        )

    def service_token(
        self, audience: str, workspace: str = "", rights: Iterable[str] | None = None
    ) -> str:
        """This component's own principal for `audience` (cached for half its lifetime)."""
        granted = tuple(
            sorted(SERVICE_RIGHTS.get(self.issuer, frozenset()) if rights is None else rights)
        )
        key = (audience, workspace, granted)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        token = self.sign(
            audience=audience,
            subject=f"service:{self.issuer}",
            workspace=workspace,
            surface="service",
            permissions=granted,
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (token, now + self.lifetime / 2)
        return token


# -- verifying ----------------------------------------------------------------------------

Fetch = Callable[[], Awaitable[list[TrustedKey]]]


class KeyRing:
    """Trusted keys by kid: local ones, and the ones auth publishes (fetched, cached)."""

    def __init__(
        self,
        local: Sequence[TrustedKey] = (),
        fetch: Fetch | None = None,
        refresh_after: float = 300.0,
        min_interval: float = 1.0,
    ) -> None:
        self._local = {k.kid: k for k in local}
        self._remote: dict[str, TrustedKey] = {}
        self._fetch = fetch
        self._fetched_at = -1e9
        self._refresh_after = refresh_after
        self._min_interval = min_interval
        self._lock = asyncio.Lock()

    def add_local(self, key: TrustedKey) -> None:
        self._local[key.kid] = key

    async def get(self, kid: str) -> TrustedKey | None:
        known = self._local.get(kid)
        if known is not None:
            return known
        if self._fetch is None:
            return None
        age = time.monotonic() - self._fetched_at
        found = self._remote.get(kid)
        if found is not None and age < self._refresh_after:
            return found
        if found is None and age < self._min_interval:
            return None  # an unknown kid does not make us hammer auth
        await self._refresh(stale_ok=found is not None)
        return self._remote.get(kid)

    async def _refresh(self, *, stale_ok: bool) -> None:
        assert self._fetch is not None
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._min_interval:
                return
            try:
                keys = await self._fetch()
            except Exception as exc:
                if stale_ok:
                    log.warning(
                        "cannot refresh auth's public keys, keeping the cached ones: %s", exc
                    )
                    return
                raise KeysUnavailable(f"auth's public keys cannot be fetched: {exc}") from None
            self._remote = {k.kid: k for k in keys}
            self._fetched_at = time.monotonic()


class Verifier:
    """Verifies principals for one audience (this service) and builds the Caller."""

    def __init__(self, audience: str, ring: KeyRing, cache_size: int = 10_000) -> None:
        self.audience = audience
        self.ring = ring
        self._cache: dict[str, tuple[Caller, float]] = {}
        self._cache_size = cache_size

    async def verify(self, token: str | None) -> Caller:
        if not token:
            raise Unauthenticated("no principal: this service needs a signed caller")
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None:
            if hit[1] + LEEWAY > now:
                return hit[0]
            del self._cache[token]
        caller, expires = await self._verify(token, now)
        if len(self._cache) >= self._cache_size:
            self._cache = {t: v for t, v in self._cache.items() if v[1] + LEEWAY > now}
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
        self._cache[token] = (caller, expires)
        return caller

    async def _verify(self, token: str, now: float) -> tuple[Caller, float]:
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise Unauthenticated("malformed principal") from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise Unauthenticated("principal not signed with Ed25519 by a named key")
        trusted = await self.ring.get(kid)
        if trusted is None:
            raise Unauthenticated("principal signed by an unknown key")
        try:
            claims = jwt.decode(token, trusted.key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError, TypeError):
            raise Unauthenticated("principal signature does not verify") from None
        return self._caller(claims, trusted, now)

    def _caller(
        self, claims: dict[str, Any], trusted: TrustedKey, now: float
    ) -> tuple[Caller, float]:
        if claims.get("iss") != trusted.issuer:
            raise Unauthenticated("principal issuer does not match its key")
        if claims.get("aud") != self.audience:
            raise Unauthenticated(f"principal is not for {self.audience}")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise Unauthenticated("principal without issue and expiry times")
        if exp + LEEWAY <= now:
            raise Unauthenticated("principal expired")
        if iat - LEEWAY > now or exp - iat > MAX_LIFETIME:
            raise Unauthenticated("principal lifetime out of bounds")
        perms = claims.get("prm")
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            raise Unauthenticated("principal permissions malformed")
        ws_raw, surface, sid = claims.get("ws"), claims.get("sfc"), claims.get("sid", "")
        if not isinstance(ws_raw, str) or surface not in SURFACES or not isinstance(sid, str):
            raise Unauthenticated("principal claims malformed")
        subject = claims.get("sub")
        kind, _, name = subject.partition(":") if isinstance(subject, str) else ("", "", "")
        if kind == "person":
            if not trusted.users or surface == "service":
                raise Unauthenticated(f"{trusted.issuer} may not sign a person's principal")
            try:
                ws, person = uuid.UUID(ws_raw), uuid.UUID(name)
            except ValueError:
                raise Unauthenticated("principal names a malformed workspace or person") from None
            caller = Caller.person(ws, person, perms, surface, sid)
        elif kind == "service":
            if name != trusted.issuer or surface != "service":
                raise Unauthenticated("a service principal is signed by that service only")
            beyond = sorted(set(perms) - trusted.allowed_rights())
            if beyond:
                raise Unauthenticated(f"{name} claims rights it does not have: {beyond}")
            try:
                ws = uuid.UUID(ws_raw) if ws_raw else NO_WORKSPACE
            except ValueError:
                raise Unauthenticated("principal names a malformed workspace") from None
            caller = Caller.of_service(name, ws, perms)
        else:
            raise Unauthenticated("principal subject malformed")
        return caller, float(exp)


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The principal in gRPC metadata ("authorization: Bearer <jwt>")."""
    for key, value in metadata or ():
        if key == METADATA_KEY and isinstance(value, str) and value.startswith("Bearer "):
            return value[7:].strip()
    return None
