"""SCIM protocol pieces shared by the SCIM modules: errors in the SCIM format, the call's
context, documents, ETags, response parameters and payload parsing (no I/O)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic
from scim2_models import Context, Error, ResponseParameters, SCIMException

from services.chassis.errors import InvalidArgument
from services.directory.scim_models import MODELS, POLICY

_NOT_STORED = ("id", "meta", "groups", "members", "password")


class ScimError(Exception):
    """An error the client sees in the SCIM error format (status and scimType)."""

    def __init__(self, status: int, detail: str, scim_type: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail

    def body(self) -> dict[str, Any]:
        error = Error(status=self.status, scim_type=self.scim_type or None, detail=self.detail)
        dumped: dict[str, Any] = error.model_dump()
        return dumped


@dataclass(frozen=True)
class ScimCall:
    workspace_id: uuid.UUID
    token: str
    base_url: str


@dataclass(frozen=True)
class Document:
    body: dict[str, Any]
    etag: str = ""
    location: str = ""


def token_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def etag(doc: dict[str, Any]) -> str:
    canonical = json.dumps({k: v for k, v in doc.items() if k != "meta"}, sort_keys=True)
    return 'W/"' + hashlib.sha256(canonical.encode()).hexdigest()[:20] + '"'


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def response_params(attributes: str, excluded: str) -> ResponseParameters[Any] | None:
    attrs = [a.strip() for a in attributes.split(",") if a.strip()]
    excl = [a.strip() for a in excluded.split(",") if a.strip()]
    if not attrs and not excl:
        return None
    try:
        return ResponseParameters.model_validate(
            {"attributes": attrs or None, "excludedAttributes": excl or None}
        )
    except pydantic.ValidationError as exc:
        raise ScimError(400, f"attributes: {exc.errors()[0]['msg']}", "invalidPath") from None


def from_validation(exc: pydantic.ValidationError) -> ScimError:
    errors = Error.from_validation_errors(exc)
    first = errors[0] if errors else Error(status=400, detail="invalid payload")
    return ScimError(
        int(first.status or 400), first.detail or "invalid payload", first.scim_type or ""
    )


@contextlib.contextmanager
def scim_errors() -> Any:
    """scim2-models' exceptions and validation errors as ScimError."""
    try:
        yield
    except SCIMException as exc:
        raise ScimError(exc.status, str(exc), exc.scim_type) from None
    except pydantic.ValidationError as exc:
        raise from_validation(exc) from None
    except InvalidArgument as exc:
        raise ScimError(400, str(exc), "invalidValue") from None


def loads(raw: bytes, rtype: str = "") -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ScimError(400, "the body is not valid JSON", "invalidSyntax") from None
    if not isinstance(value, dict):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    return without_member_display(value) if rtype == "Group" else value


def without_member_display(payload: dict[str, Any]) -> dict[str, Any]:
    """Okta sends each member's display name with it; the name is the directory's (read-only),
    so it is dropped rather than refused."""

    def clean(members: Any) -> Any:
        if isinstance(members, list):
            return [
                {k: v for k, v in m.items() if k.lower() != "display"} if isinstance(m, dict) else m
                for m in members
            ]
        return members

    if "members" in payload:
        payload = {**payload, "members": clean(payload["members"])}
    ops = payload.get("Operations")
    if isinstance(ops, list):
        fixed = []
        for op in ops:
            if isinstance(op, dict) and str(op.get("path", "")).lower() == "members":
                op = {**op, "value": clean(op.get("value"))}
            elif isinstance(op, dict) and isinstance(op.get("value"), dict):
                value = op["value"]
                if "members" in value:
                    op = {**op, "value": {**value, "members": clean(value["members"])}}
            fixed.append(op)
        payload = {**payload, "Operations": fixed}
    return payload


def check_match(if_match: str, etag: str) -> None:
    if not if_match:
        return
    wanted = [t.strip() for t in if_match.split(",")]
    if "*" in wanted or etag in wanted or etag.removeprefix("W/") in wanted:
        return
    raise ScimError(412, "the resource changed since you read it (If-Match does not match)")


def resource_id(item: str, rtype: str) -> uuid.UUID:
    if rtype not in MODELS:
        raise ScimError(404, f"unknown resource type {rtype}")
    try:
        return uuid.UUID(item)
    except ValueError:
        raise ScimError(404, f"{rtype} {item} not found") from None


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def respond(doc: dict[str, Any], rtype: str, params: ResponseParameters[Any] | None) -> Document:
    """The resource as a response: through its model, so `returned` and the requested
    attributes apply."""
    with scim_errors():
        model = MODELS[rtype].model_validate(doc, scim_policy=POLICY)
        body = model.model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params, scim_policy=POLICY
        )
    return Document(body, doc["meta"]["version"], doc["meta"]["location"])


def stored_of(model: Any) -> dict[str, Any]:
    """What we keep of a resource: as the IdP would read it back, without what the person or
    group holds itself and never a password."""
    dumped: dict[str, Any] = model.model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE, scim_policy=POLICY
    )
    for key in _NOT_STORED:
        dumped.pop(key, None)
    return dumped
