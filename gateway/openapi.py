"""The OpenAPI 3 document, built from the route table and its schemas."""

from __future__ import annotations

import re
import typing
from datetime import datetime
from typing import Any

import msgspec

from gateway.routing import Route

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def _mark_date_times(struct: Any, component: dict[str, Any]) -> None:
    """msgspec writes a datetime field as a plain string: say it is an RFC 3339 date-time."""
    if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
        return
    hints = typing.get_type_hints(struct)
    for name, prop in component.get("properties", {}).items():
        hint = hints.get(name)
        if hint is None or datetime not in (hint, *typing.get_args(hint)):
            continue
        for option in prop.get("anyOf", [prop]):
            if option.get("type") == "string":
                option["format"] = "date-time"


def build(routes: list[Route]) -> dict[str, Any]:
    api_routes = [r for r in routes if r.kind == "api" and r.needs_workspace]
    types: list[Any] = []
    for r in api_routes:
        for t in (r.body, r.query, r.response):
            if t is not None and t not in types:
                types.append(t)
    schemas_list, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip([id(t) for t in types], schemas_list, strict=True))
    for t in types:
        component = components.get(getattr(t, "__name__", ""))
        if component is None:
            continue
        # Rules a struct cannot spell as field types (e.g. what each ticket type requires).
        component.update(getattr(t, "__json_schema_extra__", None) or {})
        _mark_date_times(t, component)
    components["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for r in api_routes:
        op: dict[str, Any] = {
            "summary": r.summary or r.handler.__name__.replace("_", " "),
            "operationId": f"{r.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', r.path.lower()).strip('_')}",
            "tags": [r.surface],
            "x-permissions": list(r.permissions),
            "responses": {},
        }
        if r.section:
            op["x-portal-section"] = r.section
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", r.path)
        ]
        if r.query is not None:
            query_schema = components.get(r.query.__name__, {})
            for name, prop in query_schema.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": False, "schema": prop})
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(r.body)]}},
            }
        elif r.uploads:
            op["requestBody"] = {
                "required": True,
                "content": {
                    media: {"schema": r.upload_schema or _upload_schema(media)}
                    for media in r.uploads
                },
            }
        ok: dict[str, Any] = {"description": "OK"}
        if r.response is not None:
            ok["content"] = {"application/json": {"schema": schema_of[id(r.response)]}}
        if r.downloads:
            ok["description"] = "The file (Content-Disposition: attachment, or inline for images)"
            ok["content"] = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
        op["responses"][str(r.status)] = ok
        if r.also_status is not None:
            op["responses"][str(r.also_status)] = {**ok, "description": "Accepted"}
        for status, text in _errors_for(r):
            op["responses"][str(status)] = {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        if r.surface != "public":
            op["security"] = (
                [{"session": []}, {"apiToken": []}]
                if r.surface == "management"
                else [{"session": []}]
            )
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Frontdesk API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-fd_session"},
                "apiToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _upload_schema(media: str) -> dict[str, Any]:
    if media == "multipart/form-data":
        return {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "format": {"type": "string"},
                "dry_run": {"type": "string"},
            },
        }
    if media == "application/json":
        # A list of persons, or {"persons": [...]}; each row is checked (and reported) alone.
        return {
            "anyOf": [
                {"type": "array"},
                {
                    "type": "object",
                    "required": ["persons"],
                    "properties": {"persons": {"type": "array"}},
                },
            ]
        }
    return {"type": "string"}


def _errors_for(route: Route) -> list[tuple[int, str]]:
    changes = route.method not in ("GET", "HEAD", "OPTIONS")
    errors = [(400, "Malformed request")]
    if route.surface != "public" or changes:
        # A public state change needs the CSRF token (403); the sign-in steps answer 401.
        errors += [
            (401, "Not signed in"),
            (
                403,
                "Not allowed (the error code says why, e.g. forbidden, csrf, portal_access_off, registration_closed)",
            ),
        ]
    errors.append((404, "Unknown or hidden"))
    if changes:
        errors.append((409, "Conflicts with the current state"))
    if route.body is not None:
        errors += [(413, "Request body too large"), (415, "Body is not application/json")]
    elif route.uploads:
        errors.append((413, "Request body or a file too large"))
        if route.streams_body:
            errors += [
                (415, "A file type not accepted (judged by its content), or not multipart"),
                (
                    422,
                    "Invalid input, with field errors; malware_found: the malware scan "
                    "(FRONTDESK_CLAMD) found the signature named in the message",
                ),
            ]
    if route.body is not None or route.query is not None:
        errors.append((422, "Invalid input, with field errors"))
    if changes:
        errors.append((429, "Too many attempts; see Retry-After"))
    errors += [(503, "A backend is unavailable"), (504, "A backend timed out")]
    return errors


def encode(doc: dict[str, Any]) -> bytes:
    return msgspec.json.encode(doc)
