"""Every JSON operation of the HTTP API, fuzzed with schemathesis against a real stack.

Directory, auth, tickets and compliance services on a real PostgreSQL and NATS, and the gateway
on port 0. The admin signs in twice: a portal session (cookie + X-CSRF-Token) for /api/v1 and a
personal API token (Bearer) for /management/api/v1. Schemathesis reads the gateway's own
OpenAPI document (/api/v1/openapi.json) and sends, per operation, a bounded number of examples
that fit the document and a bounded number that do not: first with whatever path ids it makes
up, then (for paths with ids) with the ids of real objects of the workspace, and with the ids of
another workspace's objects, which must never answer 2xx nor change. Whatever it sends, the
gateway answers JSON, never a 5xx, every error in the one shape
{"error": {"code", "message"[, "fields"]}}, with a status the document lists, and a success body
that matches the documented schema; data that breaks the document is refused.

The run is bounded by example count, not time: EXAMPLES per operation and mode with made-up
ids, ID_EXAMPLES with real and with foreign ids (about 600 requests in all), so it stays well
inside its timeout on a loaded 2-core machine. FRONTDESK_FUZZ_EXAMPLES=25 (or more) searches
deeper.

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
from frontdesk.v1 import auth_pb2, common_pb2, directory_pb2
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

from tests.gateway_client import GatewayClient
from tests.integration.test_gateway_access import PASSWORD, World, make_world
from tests.stack import Stack

# Examples per operation and per mode (fitting / not fitting the document); more for a deep run.
EXAMPLES = int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES", "4"))
# The passes with real and with another workspace's ids ask less of each operation.
ID_EXAMPLES = max(1, EXAMPLES // 3)
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
    # Ids of another workspace's objects: never found, whatever is sent with them.
    foreign_ids: dict[str, str] = field(default_factory=dict)


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
            foreign = _real_path_parameters(operation.path, target.foreign_ids)
            if foreign:
                positive = schemathesis.GenerationMode.POSITIVE
                _fuzz_operation(
                    operation, positive, http, target, tally, restore_settings, foreign, True
                )
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
    foreign: bool = False,
) -> None:
    ids = ", another workspace's ids" if foreign else ", real ids" if path_parameters else ""
    label = f"{operation.method.upper()} {operation.path} [{mode.value}{ids}]"
    management = operation.path.startswith("/management/")
    headers = {"Host": target.host, **(target.bearer if management else target.portal_headers)}
    cookies = {} if management else target.portal_cookies

    @settings(
        max_examples=ID_EXAMPLES if path_parameters else EXAMPLES,
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
        try:
            response = case.call(
                base_url=target.base, session=http, headers=headers, cookies=cookies, timeout=30
            )
        except requests.RequestException as exc:  # a dropped connection is an answer too
            raise AssertionError(
                f"{label}: no answer ({exc!r}) to {case.method} {case.formatted_path} "
                f"query={case.query!r} body={case.body!r:.500}"
            ) from None
        tally.examples += 1
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        if operation.path.endswith("/portal-settings"):
            restore_settings(http)
        problem = _check_answer(response)
        if foreign and response.status_code < 300:
            problem = f"another workspace's object answered {response.status_code}"
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


async def _signed_in(world: World, slug: str, email: str, surface: str) -> GatewayClient:
    client = await GatewayClient.open(world.base, slug)
    world.stack.on_close(client.close)
    status, body = await client.login(email, PASSWORD, surface=surface)
    assert status == 200 and body["status"] == "ok", body
    return client


async def _sign_in(world: World, slug: str, email: str) -> Target:
    """The admin's portal session and a personal API token, on the workspace `slug`."""
    admin = await _signed_in(world, slug, email, "portal")
    portal_token = admin.cookie("fd_session")
    assert portal_token
    manager = await _signed_in(world, slug, email, "management")
    status, created = await manager.post(
        "/management/api/v1/api-tokens", json={"name": "fuzzer", "expires_in_days": 1}
    )
    assert status == 201, created
    target = Target(
        base=admin.base_url,
        host=admin.host,
        portal_headers={"X-CSRF-Token": admin.csrf},
        portal_cookies={"fd_session": portal_token},
        bearer={"Authorization": f"Bearer {created['secret']}"},
    )
    await _seed(world, slug, email, manager, target)
    return target


async def _seed(
    world: World, slug: str, email: str, manager: GatewayClient, target: Target
) -> None:
    """One of each object, to fuzz bodies and queries against things that exist."""
    ids = target.ids
    status, me = await manager.get("/management/api/v1/profile")
    assert status == 200, me
    admin_id = me["person_id"]

    async def create(path: str, body: dict[str, Any]) -> str:
        status, created = await manager.post(path, json=body)
        assert status == 201, (path, created)
        return str(created["id"])

    api = "/management/api/v1"
    domain = email.split("@")[1]
    ids["person"] = await create(f"{api}/persons", {"email": f"pat@{domain}", "name": "Pat"})
    ids["role"] = await create(f"{api}/roles", {"name": "Fuzzed", "permissions": ["Ticket:read"]})
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
    status, job = await manager.request(
        "POST",
        f"{api}/persons/import?format=csv&dry_run=true",
        data=f"email,name\nsam@{domain},Sam\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert status == 200, job
    ids["import_job"] = job["id"]
    status, token = await manager.post(f"{api}/api-tokens", json={"name": "spare"})
    assert status == 201, token
    ids["token"] = token["token"]["id"]
    # A second session of the admin's, which the fuzzer may revoke.
    spare = await _signed_in(world, slug, email, "portal")
    status, sessions = await spare.get("/api/v1/profile/sessions")
    assert status == 200, sessions
    ids["session"] = next(s["id"] for s in sessions["items"] if s["current"])


async def _other_workspace(world: World) -> Target:
    """Workspace 'globex' with one of each object: ids that acme's callers must never reach."""
    created = await world.directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="globex", name="Globex", admin_email="admin@globex.test", admin_name="Gus"
        )
    )
    await world.auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=created.workspace.id),
            person_id=created.admin.id,
            password=PASSWORD,
        )
    )
    await world.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=common_pb2.Caller(workspace_id=created.workspace.id),
            tickets_enabled=True,
            issues_enabled=True,
            control_tests_enabled=True,
        )
    )
    return await _sign_in(world, "globex", "admin@globex.test")


async def test_every_json_operation_answers_in_the_documented_shape_whatever_it_is_sent(
    stack: Stack,
) -> None:
    world = await make_world(stack, services=SERVICES)
    await world.set_sections(**{k.removesuffix("_enabled"): v for k, v in ALL_SECTIONS_ON.items()})
    globex = await _other_workspace(world)
    target = await _sign_in(world, "acme", world.admin_email)
    target.foreign_ids = globex.ids

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
    for headers, cookies, path in (
        (target.portal_headers, target.portal_cookies, "/api/v1/me"),
        (target.bearer, {}, "/management/api/v1/profile"),
    ):
        resp = await asyncio.to_thread(
            requests.get,
            f"{target.base}{path}",
            headers={"Host": target.host, **headers},
            cookies=cookies,
        )
        assert resp.status_code == 200, resp.text
    # Nothing of the other workspace's was touched through acme's host.
    api = "/management/api/v1"
    for path, key, value in (
        (f"{api}/persons/{globex.ids['person']}", "email", "pat@globex.test"),
        (f"{api}/roles/{globex.ids['role']}", "name", "Fuzzed"),
        (f"{api}/groups/{globex.ids['group']}", "name", "Fuzzed"),
        (f"{api}/tickets/{globex.ids['ticket']}", "title", "Printer"),
        (f"{api}/controls/{globex.ids['control']}", "title", "Backups"),
        (f"{api}/control-tests/{globex.ids['control_test']}", "due_date", "2030-01-31"),
        (f"{api}/issues/{globex.ids['issue']}", "title", "No backups"),
    ):
        resp = await asyncio.to_thread(
            requests.get, f"{target.base}{path}", headers={"Host": globex.host, **globex.bearer}
        )
        assert resp.status_code == 200, (path, resp.text)
        assert json.dumps({key: value}, separators=(",", ":"))[1:-1] in resp.text, resp.text
    resp = await asyncio.to_thread(
        requests.get,
        f"{target.base}{api}/api-tokens",
        headers={"Host": globex.host, **globex.bearer},
    )
    assert globex.ids["token"] in [t["id"] for t in resp.json()["items"]], resp.text
    resp = await asyncio.to_thread(
        requests.get,
        f"{target.base}/api/v1/profile/sessions",
        headers={"Host": globex.host, **globex.portal_headers},
        cookies=globex.portal_cookies,
    )
    assert globex.ids["session"] in [s["id"] for s in resp.json()["items"]], resp.text


# Bytes no JSON parser may take as text: invalid UTF-8, overlong forms, surrogates encoded in
# UTF-8, a raw NUL, byte order marks and UTF-16/32 bodies. (key is replaced per operation.)
BAD_ENCODINGS: list[bytes] = [
    b'{"KEY": "\xff\xfe"}',
    b'{"KEY": "caf\xe9"}',  # Latin-1, not UTF-8
    b'{"KEY": "\xc0\xaf"}',  # overlong "/"
    b'{"KEY": "\xe0\x80\xaf"}',  # overlong "/" in three bytes
    b'{"KEY": "\xf0\x80\x80\xaf"}',  # overlong in four bytes
    b'{"KEY": "\xed\xa0\x80"}',  # a lone surrogate, encoded (CESU-8)
    b'{"KEY": "\xf4\x90\x80\x80"}',  # beyond U+10FFFF
    b'{"KEY": "\\ud800"}',  # a lone high surrogate escape
    b'{"KEY": "\\udc00x"}',  # a lone low surrogate escape
    b'{"KEY": "a\x00b"}',  # a raw NUL
    b'\xef\xbb\xbf{"KEY": "x"}',  # UTF-8 byte order mark
    b'\xff\xfe{\x00"\x00K\x00"\x00:\x00 \x001\x00}\x00',  # UTF-16 LE with BOM
    b"\xfe\xff\x00{\x00}",  # UTF-16 BE with BOM
    b"\x00\x00\xfe\xff\x00\x00\x00{\x00\x00\x00}",  # UTF-32 BE with BOM
    b"\xff{}",
]
# Valid JSON, but a NUL inside a string: bad input too (a 4xx, whatever the field).
ESCAPED_NUL = b'{"KEY": "a\\u0000b"}'


def _first_string_property(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    if ref:
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    for name, prop in (schema.get("properties") or {}).items():
        types = [prop.get("type")] + [p.get("type") for p in prop.get("anyOf", [])]
        if "string" in types:
            return str(name)
    return "title"


async def test_every_json_operation_refuses_invalid_encodings_as_bad_json(stack: Stack) -> None:
    """Byte-level garbage in a JSON body is 400 bad_json in the error shape on every JSON
    operation of the OpenAPI document (issue 12: invalid UTF-8 answered 500 on 28 of them)."""
    world = await make_world(stack, services=SERVICES)
    await world.set_sections(**{k.removesuffix("_enabled"): v for k, v in ALL_SECTIONS_ON.items()})
    target = await _sign_in(world, "acme", world.admin_email)
    resp = await asyncio.to_thread(
        requests.get, f"{target.base}/api/v1/openapi.json", headers={"Host": target.host}
    )
    doc = resp.json()
    failures: list[str] = []
    operations = 0

    def run() -> None:
        nonlocal operations
        http = requests.Session()
        try:
            for path, item in doc["paths"].items():
                for method, op in item.items():
                    content = (op.get("requestBody") or {}).get("content") or {}
                    if "application/json" not in content:
                        continue
                    operations += 1
                    # An upload (JSON is one of its media types) reports a file's problems
                    # as 422 with the line; every other JSON body is parsed by the gateway.
                    upload = len(content) > 1
                    key = _first_string_property(doc, content["application/json"]["schema"])
                    params = _real_path_parameters(path, target.ids) or {}
                    url = path
                    for part in path.split("/"):
                        if part.startswith("{"):
                            value = params.get(part[1:-1], "00000000-0000-4000-8000-000000000000")
                            url = url.replace(part, value)
                    management = path.startswith("/management/")
                    headers = {
                        "Host": target.host,
                        "Content-Type": "application/json",
                        **(target.bearer if management else target.portal_headers),
                    }
                    cookies = {} if management else target.portal_cookies
                    for raw in [*BAD_ENCODINGS, ESCAPED_NUL]:
                        body = raw.replace(b"KEY", key.encode())
                        answer = http.request(
                            method.upper(),
                            target.base + url,
                            data=body,
                            headers=headers,
                            cookies=cookies,
                            timeout=30,
                        )
                        label = f"{method.upper()} {path} {body!r:.80}"
                        problem = _check_answer_bytes(answer)
                        if problem is None and raw is not ESCAPED_NUL and not upload:
                            code = answer.json()["error"]["code"]
                            if (answer.status_code, code) != (400, "bad_json"):
                                problem = f"{answer.status_code} {code}, not 400 bad_json"
                        elif problem is None and not 400 <= answer.status_code < 500:
                            problem = f"{answer.status_code} for a NUL in a string"
                        if problem:
                            failures.append(f"{label}: {problem}: {answer.text[:200]}")
        finally:
            http.close()

    await asyncio.to_thread(run)
    assert operations >= 40
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:60])


def _check_answer_bytes(answer: requests.Response) -> str | None:
    if answer.status_code < 400 or answer.status_code >= 500:
        return f"status {answer.status_code}"
    if "application/json" not in answer.headers.get("Content-Type", ""):
        return f"not JSON ({answer.headers.get('Content-Type')})"
    try:
        body = answer.json()
    except ValueError:
        return "invalid JSON"
    return _error_shape_problem(body)
