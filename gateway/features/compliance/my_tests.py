"""My control tests (portal): the ones assigned to me, view and complete them."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import compliance_pb2

from gateway.errors import ApiError
from gateway.features.compliance.attachments import stager
from gateway.features.compliance.common import (
    PORTAL_PERMISSIONS,
    TEST_COMPLETE,
    C,
    one_of,
    tests_route,
)
from gateway.features.compliance.tests import (
    RESULTS,
    STATES,
    CompleteIn,
    CompletionOut,
    ControlTestListOut,
    ControlTestOut,
    completion_out,
    result_value,
    state_value,
    test_out,
    test_view,
)
from gateway.forms import form_action
from gateway.present import (
    form_errors,
    page_links,
    page_request,
    portal_caller,
    pretty_time,
    query_params,
    raise_invalid,
)
from gateway.routing import Ctx, Route
from gateway.uploads import MAX_UPLOAD_REQUEST, read_upload_form


class MyTestsQuery(msgspec.Struct):
    state: str = ""
    page_size: int = 25
    page_token: str = ""


def my_tests_request(ctx: Ctx, q: MyTestsQuery) -> compliance_pb2.ListMyControlTestsRequest:
    fields: dict[str, str] = {}
    req = C.ListMyControlTestsRequest(
        caller=portal_caller(ctx, PORTAL_PERMISSIONS),
        state=state_value(one_of(q.state, STATES, "state", fields)),
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    return req


async def api_my_tests(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListMyControlTests, my_tests_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        ControlTestListOut(
            items=[test_out(t) for t in resp.control_tests],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS), control_test_id=request.match_info["id"]
        ),
        safe=True,
    )
    return ctx.json(test_out(test))


async def api_complete_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: CompleteIn = ctx.body
    resp = await ctx.call(
        ctx.backends.compliance.CompleteControlTest,
        C.CompleteControlTestRequest(
            caller=portal_caller(ctx, PORTAL_PERMISSIONS),
            control_test_id=request.match_info["id"],
            result=result_value(body.result),
            notes=body.notes,
            evidence=body.evidence,
            attachment_ids=body.attachment_ids,
        ),
    )
    return ctx.json(completion_out(resp))


async def page_my_tests(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    params = query_params(request, ("state", "page_token"))
    tests: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        req = my_tests_request(
            ctx, MyTestsQuery(state=params["state"], page_token=params["page_token"])
        )
        resp = await ctx.call(ctx.backends.compliance.ListMyControlTests, req, safe=True)
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        tests = [test_view(t) for t in resp.control_tests]
        first, nxt = page_links("/control-tests", params, resp.next_page_token)
    return ctx.render(
        "compliance/my_tests.html",
        {
            "tests": tests,
            "params": params,
            "states": STATES,
            "error": error,
            "first_link": first,
            "next_link": nxt,
        },
    )


async def _render_my_test(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
    files: list[tuple[str, str]] | None = None,
) -> web.Response:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(caller=portal_caller(ctx, PORTAL_PERMISSIONS), control_test_id=ref),
        safe=True,
    )
    return ctx.render(
        "compliance/my_test.html",
        {
            "t": test_view(test, "/control-tests", ctx.person_id),
            "kept_files": files or [],
            "can_complete": ctx.has(*TEST_COMPLETE),
            "results": RESULTS,
            "errors": errors or {},
            "form": raw or {},
            "done": ctx.request.query.get("done") == "1",
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_my_test(ctx, request.match_info["id"])


async def page_complete_my_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    caller = portal_caller(ctx, PORTAL_PERMISSIONS)
    upload = await read_upload_form(ctx, stager(ctx, caller, "control_test", ref))
    raw = upload.fields
    if upload.error is not None:
        message = upload.error.fields.get("file") or upload.error.message
        return await _render_my_test(
            ctx, ref, {"files": message}, raw, status=upload.error.status, files=upload.files
        )
    result = raw.get("result", "")
    if result not in RESULTS:
        return await _render_my_test(
            ctx,
            ref,
            {"result": "choose pass, fail or not applicable"},
            raw,
            status=422,
            files=upload.files,
        )
    return await form_action(
        ctx.call(
            ctx.backends.compliance.CompleteControlTest,
            C.CompleteControlTestRequest(
                caller=caller,
                control_test_id=ref,
                result=result_value(result),
                notes=raw.get("notes", ""),
                evidence=raw.get("evidence", ""),
                attachment_ids=upload.attachment_ids,
            ),
        ),
        lambda exc: _render_my_test(
            ctx, ref, form_errors(exc), raw, status=exc.status, files=upload.files
        ),
        f"/control-tests/{ref}?done=1",
        expected=(409, 413, 422),
    )


ROUTES: list[Route] = [
    # Portal JSON: control tests assigned to me.
    tests_route(
        "GET",
        "/api/v1/control-tests",
        api_my_tests,
        query=MyTestsQuery,
        response=ControlTestListOut,
        summary="Control tests assigned to me (filter by state)",
    ),
    tests_route(
        "GET",
        "/api/v1/control-tests/{id}",
        api_my_test,
        response=ControlTestOut,
        summary="A control test assigned to me, with the control's test procedure",
    ),
    tests_route(
        "POST",
        "/api/v1/control-tests/{id}/complete",
        api_complete_my_test,
        permissions=TEST_COMPLETE,
        body=CompleteIn,
        response=CompletionOut,
        summary="Complete a test assigned to me (a fail opens an issue; completed tests are locked)",
    ),
    tests_route("GET", "/control-tests", page_my_tests, kind="page", summary="My control tests"),
    tests_route(
        "GET", "/control-tests/{id}", page_my_test, kind="page", summary="A control test of mine"
    ),
    tests_route(
        "POST",
        "/control-tests/{id}/complete",
        page_complete_my_test,
        kind="page",
        permissions=TEST_COMPLETE,
        summary="Complete a control test (form, with evidence files: multipart)",
        streams_body=True,
        max_body=MAX_UPLOAD_REQUEST,
    ),
]
