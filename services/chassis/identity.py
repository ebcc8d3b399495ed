"""A component's identity on the wire: its signing key, the keys it trusts, its TLS material.

`Identity.from_settings` is built once per process. It gives
- `server_interceptors()`: every call but health, reflection and auth's GetPublicKeys must carry
  a principal that verifies (else UNAUTHENTICATED); the Caller is put in `caller_var`;
- `channel(address, audience)`: a client channel whose calls carry this component's own service
  principal (or what a `PrincipalSource` gives, the gateway's persons), over mutual TLS when
  configured;
- `signer`, for auth, which signs persons' principals with its key.

Configuration (environment, see README "Identity between components"):
FRONTDESK_IDENTITY_KEY_FILE / FRONTDESK_IDENTITY_KEY (this component's Ed25519 private key),
FRONTDESK_TRUSTED_KEYS_FILE (extra public keys trusted locally), FRONTDESK_AUTH_ADDR (where
auth publishes its keys); auth alone: FRONTDESK_SERVICE_KEYS_FILE (the components' public keys)
and FRONTDESK_IDENTITY_PREVIOUS_KEYS_FILE (its retired keys, still published during rotation).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from frontdesk.v1 import auth_pb2, auth_pb2_grpc

from services.chassis import grpcio, tls
from services.chassis.caller import Caller, caller_var
from services.chassis.principals import (
    METADATA_KEY,
    USER_ISSUERS,
    KeyRing,
    KeysUnavailable,
    Signer,
    TrustedKey,
    Unauthenticated,
    Verifier,
    bearer,
    load_private_key,
    read_key_document,
)
from services.chassis.settings import IdentitySettings, SettingsError, TlsSettings

log = logging.getLogger(__name__)

# Methods any component may call without a principal.
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/frontdesk.v1.AuthService/GetPublicKeys",
)

PrincipalSource = Callable[[str, Any], Awaitable[str | None]]


class Identity:
    """The signer, verifier and transport security of one component (`name`)."""

    def __init__(
        self,
        name: str,
        signer: Signer,
        ring: KeyRing,
        published: Sequence[TrustedKey] = (),
        transport: TlsSettings | None = None,
    ) -> None:
        self.name = name
        self.signer = signer
        self.ring = ring
        self.verifier = Verifier(name, ring)
        self.published = list(published)
        self.tls = transport or TlsSettings()
        self._channels: list[grpc.aio.Channel] = []

    @classmethod
    def from_settings(cls, name: str, settings: IdentitySettings) -> Identity:
        if not settings.key_pem:
            raise SettingsError(
                f"{name} has no identity key: set FRONTDESK_IDENTITY_KEY_FILE (an Ed25519 "
                "private key, PKCS#8 PEM; the launcher makes one per component)"
            )
        try:
            signer = Signer(name, load_private_key(settings.key_pem), settings.principal_ttl)
            local = read_key_document(settings.trusted_keys_file, local=True)
            published: list[TrustedKey] = []
            if name == "auth":
                # auth verifies with what it publishes: its own keys and the components'.
                published = [
                    signer.trusted(),
                    *read_key_document(settings.previous_keys_file, local=False),
                    *read_key_document(settings.service_keys_file, local=False),
                ]
        except (OSError, ValueError, KeyError) as exc:
            raise SettingsError(f"{name}: cannot read identity keys: {exc}") from None
        for k in local:
            if k.users and k.issuer not in USER_ISSUERS:
                log.warning(
                    "!!! %s trusts a local key of %r that may sign anyone's principal "
                    "(FRONTDESK_TRUSTED_KEYS_FILE): for tests only, never in production !!!",
                    name,
                    k.issuer,
                )
        identity = cls(name, signer, KeyRing(), published, settings.tls)
        fetch = (
            identity._fetcher(settings.auth_addr) if name != "auth" and settings.auth_addr else None
        )
        identity.ring = KeyRing([*local, *published], fetch=fetch)
        identity.verifier = Verifier(name, identity.ring)
        tls.warn_if_plaintext(name, settings.tls)
        return identity

    def _fetcher(self, auth_addr: str) -> Callable[[], Awaitable[list[TrustedKey]]]:
        stubs: list[auth_pb2_grpc.AuthServiceStub] = []

        async def fetch() -> list[TrustedKey]:
            if not stubs:
                stubs.append(auth_pb2_grpc.AuthServiceStub(self.channel(auth_addr, "auth", _none)))
            stub = stubs[0]
            resp = await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=3.0)
            return [
                TrustedKey.from_entry({"issuer": k.issuer, "jwk": json.loads(k.jwk)}, local=False)
                for k in resp.keys
            ]

        return fetch

    # -- server side ----------------------------------------------------------------------
    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [VerifyingInterceptor(self.verifier)]

    def server_credentials(self) -> grpc.ServerCredentials | None:
        return tls.server_credentials(self.tls)

    # -- client side ----------------------------------------------------------------------
    async def service_principal(self, audience: str, request: Any) -> str | None:
        """This component's own principal, in the workspace the request names (if any)."""
        return self.signer.service_token(audience, request_workspace(request))

    def channel(
        self, address: str, audience: str, source: PrincipalSource | None = None
    ) -> grpc.aio.Channel:
        ch = grpcio.channel(
            address,
            interceptors=[SigningInterceptor(audience, source or self.service_principal)],
            credentials=tls.channel_credentials(self.tls),
        )
        self._channels.append(ch)
        return ch

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()
        self._channels.clear()


async def _none(audience: str, request: Any) -> str | None:
    return None


def request_workspace(request: Any) -> str:
    """The workspace a request names: its `caller.workspace_id`, else its `workspace_id`."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    fields = descriptor.fields_by_name if descriptor is not None else {}
    if "caller" in fields:
        return str(request.caller.workspace_id)
    if "workspace_id" in fields:
        return str(request.workspace_id)
    return ""


def _overwrite_caller(request: Any, caller: Caller) -> None:
    """The request's own `caller` field is replaced by the verified one, so that even code that
    still reads the body (rather than `current_caller()`) never sees what the client claimed."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None or "caller" not in descriptor.fields_by_name:
        return
    request.caller.Clear()
    request.caller.workspace_id = caller.ws
    request.caller.person_id = caller.actor
    request.caller.permissions.extend(sorted(caller.permissions))


class VerifyingInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a verified principal; serves the others with their Caller."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        token = bearer(details.invocation_metadata)
        verifier = self._verifier

        async def verified(context: grpc.aio.ServicerContext) -> Any:
            try:
                return await verifier.verify(token)
            except Unauthenticated as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            except KeysUnavailable as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

        def calling(inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                caller = await verified(context)
                _overwrite_caller(request, caller)
                reset = caller_var.set(caller)
                try:
                    return await inner(request, context)
                finally:
                    caller_var.reset(reset)

            return call

        def streaming(
            inner: Callable[..., AsyncIterator[Any]],
        ) -> Callable[..., AsyncIterator[Any]]:
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                reset = caller_var.set(await verified(context))
                try:
                    async for item in inner(request, context):
                        yield item
                finally:
                    caller_var.reset(reset)

            return stream

        kinds: list[tuple[Any, Callable[..., grpc.RpcMethodHandler], bool]] = [
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler, False),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler, True),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler, False),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler, True),
        ]
        for inner, make, streams in kinds:
            if inner is not None:
                return make(
                    streaming(inner) if streams else calling(inner),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


# A client-streaming call (an upload) has no request when it starts: its principal is decided
# from the message the sender puts here first (the upload's header, which names the Caller).
stream_head_var: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "frontdesk_stream_head", default=None
)


class SigningInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor
):
    """Adds the principal for `audience` that `source` gives to every call of a channel."""

    def __init__(self, audience: str, source: PrincipalSource) -> None:
        self._audience = audience
        self._source = source

    async def _details(self, details: Any, request: Any) -> Any:
        token = await self._source(self._audience, request)
        if token is None:
            return details
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != METADATA_KEY]
        metadata.append((METADATA_KEY, f"Bearer {token}"))
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata),
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details, request), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details, request), request)

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        head = stream_head_var.get()
        return await continuation(await self._details(details, head), request_iterator)


class StreamSigningInterceptor(grpc.aio.StreamUnaryClientInterceptor):
    """grpc.aio files each interceptor under one kind of call only, so client streams (uploads)
    get this companion, which signs them with a SigningInterceptor's principals."""

    def __init__(self, signer: SigningInterceptor) -> None:
        self._signer = signer

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await self._signer.intercept_stream_unary(continuation, details, request_iterator)


def with_stream_signers(
    interceptors: Sequence[grpc.aio.ClientInterceptor],
) -> list[grpc.aio.ClientInterceptor]:
    """`interceptors`, plus a StreamSigningInterceptor for each SigningInterceptor among them."""
    out = list(interceptors)
    out += [StreamSigningInterceptor(i) for i in interceptors if isinstance(i, SigningInterceptor)]
    return out
