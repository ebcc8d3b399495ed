"""The one JSON error shape, {"error": {"code", "message"[, "fields"]}}, and gRPC -> HTTP mapping."""

from __future__ import annotations

from typing import Any

import grpc


class ApiError(Exception):
    """An error a caller should see, with its HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


_GRPC_TO_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (422, "invalid"),
    grpc.StatusCode.OUT_OF_RANGE: (422, "invalid"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "forbidden"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "conflict"),
    grpc.StatusCode.ABORTED: (409, "conflict"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "conflict"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthenticated"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "throttled"),
    grpc.StatusCode.UNAVAILABLE: (503, "unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout"),
    grpc.StatusCode.CANCELLED: (503, "unavailable"),
}


RETRY_AFTER_SECONDS = "1"


def parse_field_errors(message: str) -> dict[str, str]:
    """Services write INVALID_ARGUMENT details as "field: problem; other: problem"."""
    fields: dict[str, str] = {}
    for part in message.split(";"):
        name, sep, problem = part.strip().partition(":")
        if sep and name and " " not in name.strip():
            fields[name.strip()] = problem.strip()
    return fields


def from_grpc(exc: grpc.aio.AioRpcError) -> ApiError:
    status, code = _GRPC_TO_HTTP.get(exc.code(), (502, "backend_error"))
    details = exc.details() or code
    headers: dict[str, str] = {}
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after" and status == 429:
            headers["Retry-After"] = str(value)
        elif key == "error-code" and status == 403 and isinstance(value, str) and value:
            code = value  # a refusal naming its reason: portal_access_off, registration_closed
    if status == 503:
        # Our infrastructure is away for a moment: say when to try again.
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    if status >= 500:
        # Backend internals never reach the caller.
        details = {503: "a backend service is unavailable", 504: "a backend service timed out"}.get(
            status, "a backend service failed"
        )
    fields = parse_field_errors(details) if status == 422 else {}
    return ApiError(status, code, details, fields, headers)
