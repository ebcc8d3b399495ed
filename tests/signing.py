"""Identities for tests: a key per component, and a test key that signs what a test's Caller says.

Services no longer believe the `caller` field of a request. Tests still write
`caller=common_pb2.Caller(...)`: the channels from `channel()` here carry a client interceptor
that turns that Caller into a principal signed with the TEST key (issuer "test"): a person
principal for a Caller with a person, a service principal "test" holding every right for one
without. The stacks of tests trust that key (FRONTDESK_TRUSTED_KEYS_FILE); the launcher and the
Kubernetes manifests never do. The key pair is made fresh for every test run.
"""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import grpc

from services.chassis.caller import SERVICE_RIGHTS
from services.chassis.identity import SigningInterceptor
from services.chassis.principals import Signer, generate_key, private_pem, public_jwk
from services.directory.domain import CATALOG

COMPONENTS = ("directory", "auth", "tickets", "compliance", "gateway", "launcher", "notifications")
ALL_RIGHTS = sorted({*CATALOG, *(r for rights in SERVICE_RIGHTS.values() for r in rights)})

# gRPC service name -> the audience (the component serving it)
AUDIENCES = {
    "frontdesk.v1.DirectoryService": "directory",
    "frontdesk.v1.AuthService": "auth",
    "frontdesk.v1.TicketService": "tickets",
    "frontdesk.v1.ComplianceService": "compliance",
    "frontdesk.v1.NotificationService": "notifications",
    "frontdesk.v1.ScimService": "directory",
    "frontdesk.v1.AccessService": "directory",
    "frontdesk.v1.WebhookService": "directory",
}


class Keys:
    """The key files of one test run (a temporary folder, removed with the process' tmp)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="frontdesk-keys-"))
        self.private: dict[str, Any] = {}
        for name in COMPONENTS:
            key = generate_key()
            self.private[name] = key
            (self.folder / f"{name}.pem").write_bytes(private_pem(key))
        self.test_key = generate_key()
        self.test = Signer("test", self.test_key)
        registry = [{"issuer": n, "jwk": public_jwk(k)} for n, k in self.private.items()]
        self.service_keys = self.folder / "service-keys.json"
        self.service_keys.write_text(json.dumps({"keys": registry}))
        # What every test stack trusts locally: every component's key (so a service needs no
        # auth to fetch keys from) and the test key, which may sign anyone.
        trusted = [
            *registry,
            {
                "issuer": "test",
                "jwk": public_jwk(self.test_key),
                "users": True,
                "rights": ALL_RIGHTS,
            },
        ]
        self.trusted = self.folder / "trusted-keys.json"
        self.trusted.write_text(json.dumps({"keys": trusted}))

    def key_file(self, component: str) -> str:
        return str(self.folder / f"{component}.pem")

    def env(self) -> dict[str, str]:
        return {
            "FRONTDESK_TRUSTED_KEYS_FILE": str(self.trusted),
            "FRONTDESK_SERVICE_KEYS_FILE": str(self.service_keys),
        }

    def signer(self, component: str) -> Signer:
        return Signer(component, self.private[component])


@cache
def keys() -> Keys:
    return Keys()


def audience_of(method: str | bytes) -> str:
    text = method.decode() if isinstance(method, bytes) else method
    service = text.lstrip("/").split("/", 1)[0]
    return AUDIENCES.get(service, service.rsplit(".", 1)[-1].removesuffix("Service").lower())


def caller_principal(signer: Signer, audience: str, request: Any) -> str:
    """The test key's principal for what the request's Caller says (see the module doc)."""
    fields = request.DESCRIPTOR.fields_by_name
    if "caller" in fields and request.caller.person_id:
        c = request.caller
        return signer.person_token(
            audience, c.workspace_id, c.person_id, list(c.permissions), "management", "test"
        )
    ws = ""
    if "caller" in fields:
        ws = request.caller.workspace_id
    elif "workspace_id" in fields:
        ws = request.workspace_id
    return signer.service_token(audience, ws, ALL_RIGHTS)


class TestSigningInterceptor(SigningInterceptor):
    """Signs each call with the test key, for the service the method belongs to."""

    def __init__(self, signer: Signer, audience: str | None = None) -> None:
        super().__init__("", self._principal)
        self._signer = signer
        self._fixed = audience  # for a service every component serves (OperationsService)

    async def _principal(self, audience: str, request: Any) -> str | None:
        return caller_principal(self._signer, audience, request)

    async def _details(self, details: Any, request: Any) -> Any:
        self._audience = self._fixed or audience_of(details.method)
        return await super()._details(details, request)


def channel(
    address: str,
    credentials: grpc.ChannelCredentials | None = None,
    audience: str | None = None,
) -> grpc.aio.Channel:
    """A channel whose calls carry the test key's principal for the request's Caller (over
    TLS with `credentials`, for a launched suite); `audience` names the service for a gRPC
    service that every component serves (OperationsService)."""
    from services.chassis.grpcio import channel as plain

    return plain(
        address,
        interceptors=[TestSigningInterceptor(keys().test, audience)],
        credentials=credentials,
    )
