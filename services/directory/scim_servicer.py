"""The gRPC face of SCIM provisioning: requests -> ScimService, SCIM errors -> status + metadata.

A SCIM error travels as a gRPC status with trailing metadata "scim-status" (HTTP status) and
"scim-type" (scimType), so the gateway answers in the SCIM error format.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from frontdesk.v1 import common_pb2, scim_pb2, scim_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.chassis.caller import current_caller
from services.chassis.errors import NotFound
from services.chassis.grpcio import maps_errors
from services.directory.domain import parse_id
from services.directory.scim import ScimService
from services.directory.scim_store import TokenRow
from services.directory.scim_support import Document, ScimCall, ScimError

T = TypeVar("T")
_STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
}
_mapped = maps_errors()


def scim_errors(
    method: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except ScimError as exc:
            context.set_trailing_metadata(
                (("scim-status", str(exc.status)), ("scim-type", exc.scim_type))
            )
            await context.abort(_STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.detail)
        raise AssertionError("unreachable: abort raises")

    return wrapper


def _call(ctx: scim_pb2.ScimContext) -> ScimCall:
    try:
        workspace = parse_id(ctx.workspace_id, "workspace")
    except NotFound:
        raise ScimError(404, "workspace not found") from None
    return ScimCall(workspace, ctx.token, ctx.base_url.rstrip("/"))


def _doc(doc: Document) -> scim_pb2.ScimDocument:
    return scim_pb2.ScimDocument(
        json=json.dumps(doc.body).encode(), etag=doc.etag, location=doc.location
    )


def _ts(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def token_pb(row: TokenRow) -> scim_pb2.ScimToken:
    msg = scim_pb2.ScimToken(
        id=str(row.id), name=row.name, prefix=row.prefix, created_by=row.created_by
    )
    _ts(msg.created_at, row.created_at)
    _ts(msg.last_used_at, row.last_used_at)
    _ts(msg.revoked_at, row.revoked_at)
    return msg


class ScimServicer(scim_pb2_grpc.ScimServiceServicer):
    def __init__(self, service: ScimService) -> None:
        self._service = service

    @scim_errors
    async def Discover(
        self, request: scim_pb2.ScimDiscoverRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.ScimDocument:
        doc = await self._service.discover(_call(request.context), request.endpoint, request.id)
        return _doc(doc)

    @scim_errors
    async def Create(
        self, request: scim_pb2.ScimWriteRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.ScimDocument:
        doc = await self._service.create(
            _call(request.context),
            request.resource_type,
            request.json,
            request.attributes,
            request.excluded_attributes,
        )
        return _doc(doc)

    @scim_errors
    async def Get(
        self, request: scim_pb2.ScimGetRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.ScimDocument:
        doc = await self._service.get(
            _call(request.context),
            request.resource_type,
            request.id,
            request.attributes,
            request.excluded_attributes,
        )
        return _doc(doc)

    @scim_errors
    async def Replace(
        self, request: scim_pb2.ScimWriteRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.ScimDocument:
        return await self._update(self._service.replace, request)

    @scim_errors
    async def Patch(
        self, request: scim_pb2.ScimWriteRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.ScimDocument:
        return await self._update(self._service.patch, request)

    async def _update(
        self, method: Callable[..., Awaitable[Document]], request: scim_pb2.ScimWriteRequest
    ) -> scim_pb2.ScimDocument:
        doc = await method(
            _call(request.context),
            request.resource_type,
            request.id,
            request.json,
            request.if_match,
            request.attributes,
            request.excluded_attributes,
        )
        return _doc(doc)

    @scim_errors
    async def Delete(
        self, request: scim_pb2.ScimDeleteRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        await self._service.delete(
            _call(request.context), request.resource_type, request.id, request.if_match
        )
        return common_pb2.Empty()

    @scim_errors
    async def Search(
        self, request: scim_pb2.ScimSearchRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.ScimDocument:
        doc = await self._service.search(
            _call(request.context),
            request.resource_type,
            request.filter,
            request.start_index,
            request.count if request.HasField("count") else None,
            request.sort_by,
            request.sort_order,
            request.attributes,
            request.excluded_attributes,
        )
        return _doc(doc)

    @_mapped
    async def CreateScimToken(
        self, request: scim_pb2.CreateScimTokenRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.CreatedScimToken:
        row, secret = await self._service.create_token(current_caller(), request.name)
        return scim_pb2.CreatedScimToken(token=token_pb(row), secret=secret)

    @_mapped
    async def ListScimTokens(
        self, request: scim_pb2.ListScimTokensRequest, context: grpc.aio.ServicerContext
    ) -> scim_pb2.ListScimTokensResponse:
        rows = await self._service.list_tokens(current_caller())
        return scim_pb2.ListScimTokensResponse(tokens=[token_pb(r) for r in rows])

    @_mapped
    async def RevokeScimToken(
        self, request: scim_pb2.RevokeScimTokenRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        row = await self._service.revoke_token(
            current_caller(),
            parse_id(request.token_id, "SCIM token"),
        )
        if row is None:
            raise NotFound("SCIM token not found")
        return common_pb2.Empty()
