"""Every JSON operation of the HTTP API, fuzzed with schemathesis against a real stack.

Directory, auth, tickets and compliance services on a real PostgreSQL and NATS, and the gateway
on port 0. The admin signs in twice: a portal session (cookie + X-CSRF-Token) for /api/v1 and a
personal API token (Bearer) for /management/api/v1. Schemathesis reads the gateway's own
OpenAPI document (/api/v1/openapi.json) and sends, per operation, a bounded number of examples
that fit the document and a bounded number that do not. Whatever it sends, the gateway answers
JSON, never a 5xx, every error in the one shape {"error": {"code", "message"[, "fields"]}}, with
a status the document lists, and a success body that matches the documented schema.

Calls that would end the sessions the fuzzer uses (logout, sign-out-everywhere, a password
change, turning 2FA off) are not fuzzed here; their own tests cover them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.test_gateway_access import World, make_world
from tests.stack import Stack

EXAMPLES = int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES", "15"))  # per operation and per mode (fitting / not fitting the document)
SERVICES = ("directory", "auth", "tickets", "compliance")
# They would end the session or the token the fuzzer signs in with.
SKIPPED = {
    ("POST", "/auth/logout"),
    ("POST", "/api/v1/profile/password"),
    ("POST", "/management/api/v1/profile/password"),
    ("POST", "/api/v1/profile/2fa/disable"),
    ("POST", "/management/api/v1/profile/2fa/disable"),
    ("POST", "/api/v1/profile/sessions/sign-out-everywhere"),
    ("POST", "/management/api/v1/profile/sessions/sign-out-everywhere"),
}
ALL_SECTIONS_ON = {"tickets_enabled": True, "issues_enabled": True, "control_tests_enabled": True}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Target:
    base: str
    host: str
    portal_headers: dict[str, str]
    portal_cookies: dict[str, str]
    bearer: dict[str, str]
    # Ids of real objects, for a second pass where the path names something that exists.
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class Tally:
    operations: int = 0
    examples: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _error_shape_problem(body: Any) -> str | None:
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return "not {'error': {...}}"
    error = body["error"]
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return "error.code or error.message is not a string"
    if not set(error) <= {"code", "message", "fields"}:
        return f"unexpected keys {sorted(set(error) - {'code', 'message', 'fields'})}"
    fields = error.get("fields")
    if fields is not None and (
        not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values())
    ):
        return "error.fields is not an object of strings"
    return None


def _check_answer(response: schemathesis.Response) -> str | None:
    """The house rules every answer keeps, whatever schemathesis's own checks say."""
    if response.status_code >= 500:
        return f"server error {response.status_code}: {response.text[:300]}"
    content_type = ",".join(response.headers.get("content-type", []))
    if "application/json" not in content_type:
        return f"not JSON ({content_type}): {response.text[:200]}"
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"invalid JSON: {response.text[:200]}"
    if response.status_code >= 400:
        problem = _error_shape_problem(body)
        if problem:
            return f"{response.status_code} error body {problem}: {response.text[:300]}"
    return None


def _sent(response: schemathesis.Response) -> str:
    """What was sent, to reproduce it (without our credentials, which are in headers)."""
    request = response.request
    body = (
        request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
    )
    return f"{request.method} {request.url} {body[:500] if body else ''}"


def _fuzz(
    schema: Any,
    target: Target,
    tally: Tally,
    restore_settings: Callable[[requests.Session], None],
) -> None:
    http = requests.Session()
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in SKIPPED:
                continue
            tally.operations += 1
            for mode in schemathesis.GenerationMode:
                _fuzz_operation(operation, mode, http, target, tally, restore_settings)
            real = _real_path_parameters(operation.path, target.ids)
            if real:
                for mode in schemathesis.GenerationMode:
                    _fuzz_operation(operation, mode, http, target, tally, restore_settings, real)
    finally:
        http.close()


def _fuzz_operation(
    operation: Any,
    mode: schemathesis.GenerationMode,
    http: requests.Session,
    target: Target,
    tally: Tally,
    restore_settings: Callable[[requests.Session], None],
    path_parameters: dict[str, str] | None = None,
) -> None:
    label = f"{operation.method.upper()} {operation.path} [{mode.value}{', real ids' if path_parameters else ''}]"
    management = operation.path.startswith("/management/")
    headers = {"Host": target.host, **(target.bearer if management else target.portal_headers)}
    cookies = {} if management else target.portal_cookies

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case: Any) -> None:
        # Our own credentials, never generated ones.
        for name in list(case.headers or {}):
            if name.lower() in ("authorization", "host", "x-csrf-token", "cookie"):
                del case.headers[name]
        if case.cookies:
            case.cookies.clear()
        response = case.call(
            base_url=target.base, session=http, headers=headers, cookies=cookies, timeout=30
        )
        tally.examples += 1
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        if operation.path.endswith("/portal-settings"):
            restore_settings(http)
        problem = _check_answer(response)
        if problem:
            raise AssertionError(f"{label}: {problem}\n    sent: {_sent(response)}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as exc:
            raise AssertionError(f"{label}: {exc}\n    sent: {_sent(response)}") from None

    try:
        run()
    except AssertionError as exc:
        tally.failures.append(str(exc))
    except Unsatisfiable:
        pass  # nothing to send that breaks the document (no parameters, no body)


# Which object a path's {id} names, by the path's collection.
_ID_OF = {
    "tickets": "ticket",
    "roles": "role",
    "groups": "group",
    "persons": "person",
    "controls": "control",
    "control-tests": "control_test",
    "issues": "issue",
    "import": "import_job",
}


def _real_path_parameters(path: str, ids: dict[str, str]) -> dict[str, str] | None:
    """{"id": <a real ticket id>} for /management/api/v1/tickets/{id}, and so on."""
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    if not names:
        return None
    parts = path.split("/")
    values: dict[str, str] = {}
    for name in names:
        if name == "id":
            collection = parts[parts.index("{id}") - 1]
            key = _ID_OF.get(collection)
        else:
            key = {
                "person_id": "person",
                "role_id": "role",
                "token_id": "token",
                "session_id": "session",
            }.get(name)
        if key is None or key not in ids:
            return None
        values[name] = ids[key]
    return values


async def _seed(world: World, target: Target) -> None:
    """One of each object, to fuzz bodies and queries against things that exist."""
    admin_id = world.people[world.admin_email]
    ids = target.ids
    ids["person"] = await world.person("pat@acme.test")
    ids["role"] = await world.role("Fuzzed", "Ticket:read")
    manager = await world.client()
    headers = target.bearer

    async def create(path: str, body: dict[str, Any]) -> str:
        status, created = await manager.post(path, json=body, headers=headers)
        assert status == 201, (path, created)
        return str(created["id"])

    api = "/management/api/v1"
    ids["group"] = await create(f"{api}/groups", {"name": "Fuzzed"})
    ids["ticket"] = await create(
        f"{api}/tickets",
        {
            "type": "incident",
            "title": "Printer",
            "description": "on fire",
            "requester_id": admin_id,
            "impact": "low",
            "urgency": "low",
        },
    )
    ids["control"] = await create(
        f"{api}/controls", {"title": "Backups", "frequency": "monthly", "owner_id": admin_id}
    )
    ids["control_test"] = await create(
        f"{api}/control-tests",
        {"control_id": ids["control"], "due_date": "2030-01-31", "assignee_id": admin_id},
    )
    ids["issue"] = await create(
        f"{api}/issues", {"title": "No backups", "severity": "low", "assignee_id": admin_id}
    )
    status, token = await manager.post(f"{api}/api-tokens", json={"name": "spare"}, headers=headers)
    assert status == 201, token
    ids["token"] = token["token"]["id"]
    # A second session of the admin's, which the fuzzer may revoke.
    spare = await world.client(world.admin_email)
    status, sessions = await spare.get("/api/v1/profile/sessions")
    assert status == 200, sessions
    ids["session"] = next(s["id"] for s in sessions["items"] if s["current"])


async def _sign_in(world: World) -> Target:
    admin = await world.client(world.admin_email)
    portal_token = admin.cookie("fd_session")
    assert portal_token
    manager = await world.client(world.admin_email, surface="management")
    status, created = await manager.post(
        "/management/api/v1/api-tokens", json={"name": "fuzzer", "expires_in_days": 1}
    )
    assert status == 201, created
    return Target(
        base=admin.base_url,
        host=admin.host,
        portal_headers={"X-CSRF-Token": admin.csrf},
        portal_cookies={"fd_session": portal_token},
        bearer={"Authorization": f"Bearer {created['secret']}"},
    )


async def test_every_json_operation_answers_in_the_documented_shape_whatever_it_is_sent(
    stack: Stack,
) -> None:
    world = await make_world(stack, services=SERVICES)
    await world.set_sections(**{k.removesuffix("_enabled"): v for k, v in ALL_SECTIONS_ON.items()})
    target = await _sign_in(world)
    await _seed(world, target)

    def restore_settings(http: requests.Session) -> None:
        # A fuzzed PATCH may switch portal sections off; the portal operations need them on.
        resp = http.patch(
            f"{target.base}/management/api/v1/portal-settings",
            json={**ALL_SECTIONS_ON, "require_two_factor": False, "self_registration": "off"},
            headers={"Host": target.host, **target.bearer},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text

    resp = await asyncio.to_thread(
        requests.get, f"{target.base}/api/v1/openapi.json", headers={"Host": target.host}
    )
    assert resp.status_code == 200
    schema = schemathesis.openapi.from_dict(resp.json())
    # The credentials are ours; breaking them is the access tests' job, not the fuzzer's.
    schema.config.generation.update(with_security_parameters=False)
    tally = Tally()
    await asyncio.to_thread(_fuzz, schema, target, tally, restore_settings)

    print(
        f"\nfuzzed {tally.operations} operations, {tally.examples} examples; "
        f"statuses {dict(sorted(tally.statuses.items()))}"
    )
    assert tally.operations >= 80
    assert not tally.failures, "\n\n".join(tally.failures)
    # The session and the token the fuzzer used still work: nothing it sent ended them.
    status, me = await (await world.client(world.admin_email)).get("/api/v1/me")
    assert status == 200, me
