"""The principal each backend call carries: the person's (minted by auth) or the gateway's own.

Handlers still build requests with a `caller=` Caller. The client interceptor on every backend
channel (identity.SigningInterceptor) asks `GatewayPrincipals` for the principal of each call:
- a Caller naming a person: the signed principal auth issues for the request's session cookie
  or API token (IssuePrincipal), carrying the permissions the Caller lists that the person
  holds; cached per session, surface and permission set for less than its lifetime and
  dropped with the person's cached permissions when an access-change event arrives;
- anything else (host -> workspace, portal settings, names on pages, sign-in flows): the
  gateway's own service principal, signed with its key, with the gateway's rights only.
The session or token of the request is known through `credential_var`, set by routing when it
resolves the identity of a request.
"""

from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import dataclass
from typing import Any

from frontdesk.v1 import auth_pb2, auth_pb2_grpc

from gateway.cache import TtlCache, token_hash
from services.chassis.grpcio import call
from services.chassis.identity import Identity, request_workspace

log = logging.getLogger(__name__)

# The services whose principals one IssuePrincipal call asks for at once.
AUDIENCES = ("directory", "auth", "tickets", "compliance")
# A cached principal is used only while it has at least this long (or a third of its
# lifetime) to live; the cache entry expires then.
MARGIN = 20


@dataclass(frozen=True)
class Credential:
    """What signed this request in: a session cookie's token or an API token."""

    workspace_id: str
    person_id: str
    token: str
    api_token: bool
    surface: str  # "portal" or "management"


credential_var: contextvars.ContextVar[Credential | None] = contextvars.ContextVar(
    "frontdesk_credential", default=None
)

PrincipalKey = tuple[str, str, str, str, tuple[str, ...]]


class GatewayPrincipals:
    """A PrincipalSource for the gateway's backend channels."""

    def __init__(
        self,
        identity: Identity,
        cache: TtlCache[PrincipalKey, tuple[float, dict[str, str]]],
        timeout: float = 5.0,
    ) -> None:
        self._identity = identity
        self._cache = cache
        self._timeout = timeout
        self._auth: auth_pb2_grpc.AuthServiceStub | None = None

    def connect_auth(self, stub: auth_pb2_grpc.AuthServiceStub) -> None:
        self._auth = stub

    async def __call__(self, audience: str, request: Any) -> str | None:
        descriptor = getattr(request, "DESCRIPTOR", None)
        fields = descriptor.fields_by_name if descriptor is not None else {}
        if "caller" in fields and request.caller.person_id:
            return await self._person(audience, request.caller)
        return self._identity.signer.service_token(audience, request_workspace(request))

    async def _person(self, audience: str, caller: Any) -> str | None:
        cred = credential_var.get()
        if (
            cred is None
            or cred.person_id != caller.person_id
            or cred.workspace_id != caller.workspace_id
        ):
            # A Caller naming someone this request did not sign in as: send no principal
            # (the service answers UNAUTHENTICATED) rather than anything the gateway signs.
            log.warning("a backend call names person %s without their session", caller.person_id)
            return None
        perms = tuple(sorted(set(caller.permissions)))
        key: PrincipalKey = (
            cred.workspace_id,
            cred.person_id,
            token_hash(cred.token),
            cred.surface,
            perms,
        )
        now = time.time()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now and audience in hit[1]:
            return hit[1][audience]
        issued = await self._issue(cred, perms, audience)
        life = issued.expires_at - now
        lifetime = life - min(MARGIN, life / 3)
        if lifetime > 0:
            self._cache.put(key, (float(issued.expires_at), dict(issued.tokens)), ttl=lifetime)
        return issued.tokens.get(audience)

    async def _issue(
        self, cred: Credential, perms: tuple[str, ...], audience: str
    ) -> auth_pb2.IssuedPrincipal:
        assert self._auth is not None, "connect_auth() first"
        audiences = list(AUDIENCES) if audience in AUDIENCES else [*AUDIENCES, audience]
        req = auth_pb2.IssuePrincipalRequest(
            workspace_id=cred.workspace_id,
            session_token="" if cred.api_token else cred.token,
            api_token=cred.token if cred.api_token else "",
            surface=cred.surface,
            permissions=list(perms),
            audiences=audiences,
        )
        return await call(self._auth.IssuePrincipal, req, timeout=self._timeout, safe=True)
