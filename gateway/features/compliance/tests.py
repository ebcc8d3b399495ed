"""Control tests (management): schedule, list, view, edit and review them; their JSON shape and conversions."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from aiohttp import web
from frontdesk.v1 import compliance_pb2

from gateway.errors import ApiError
from gateway.features.compliance.common import (
    CM,
    NOTICES,
    C,
    management_route,
    one_of,
    person_choices,
)
from gateway.features.compliance.issues import IssueOut, issue_out
from gateway.forms import form_action
from gateway.present import (
    enum_name,
    enum_value,
    form_errors,
    me_or,
    notice,
    page_links,
    page_request,
    person_names,
    pretty_time,
    query_params,
    raise_invalid,
    time_of,
)
from gateway.routing import Ctx, Route
from gateway.uploads import AttachmentOut, attachment_out, attachment_view

Result = Literal["pass", "fail", "not_applicable"]
Decision = Literal["approved", "rejected"]
STATES = {"scheduled": "Scheduled", "overdue": "Overdue", "completed": "Completed"}
STATE_BADGES = {"scheduled": "", "overdue": "danger", "completed": "ok"}
RESULTS = {"pass": "Pass", "fail": "Fail", "not_applicable": "Not applicable"}
RESULT_BADGES = {"pass": "ok", "fail": "danger", "not_applicable": ""}
REVIEWS = {"approved": "Approved", "rejected": "Rejected"}


def state_value(name: str | None) -> Any:
    return enum_value(C.ControlTestState, "CONTROL_TEST_STATE_", name)


def result_value(name: str | None) -> Any:
    return enum_value(C.ControlTestResult, "CONTROL_TEST_RESULT_", name)


class ControlTestOut(msgspec.Struct):
    id: str
    number: str
    control_id: str
    control_number: str
    control_title: str
    test_procedure: str
    period_start: str
    period_end: str
    due_date: str
    assignee_id: str | None
    state: str
    ad_hoc: bool
    result: str | None
    notes: str
    evidence: str
    tester_id: str | None
    completed_at: str | None
    review: str | None
    reviewer_id: str | None
    review_notes: str
    reviewed_at: str | None
    issue_id: str | None
    issue_number: str | None
    created_at: str | None
    evidence_files: list[AttachmentOut] = msgspec.field(default_factory=list)


class ControlTestListOut(msgspec.Struct):
    items: list[ControlTestOut]
    next_page_token: str
    total: int


class CompletionOut(msgspec.Struct):
    control_test: ControlTestOut
    issue: IssueOut | None
    next_test: ControlTestOut | None


class CompleteIn(msgspec.Struct, forbid_unknown_fields=True):
    result: Result
    notes: str = ""
    evidence: str = ""
    # Evidence files staged with POST .../control-tests/{id}/uploads.
    attachment_ids: list[str] = msgspec.field(default_factory=list)


class ControlTestIn(msgspec.Struct, forbid_unknown_fields=True):
    control_id: str
    due_date: str
    period_start: str = ""
    period_end: str = ""
    assignee_id: str = ""


class ControlTestPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    assignee_id: str | None = None
    due_date: str | None = None


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True):
    decision: Decision
    notes: str = ""


class TestsQuery(msgspec.Struct):
    control: str = ""
    state: str = ""
    assignee: str = ""  # a person id or "me"
    result: str = ""
    page_size: int = 25
    page_token: str = ""


def test_out(
    t: compliance_pb2.ControlTest, files_base: str = "/api/v1/control-tests"
) -> ControlTestOut:
    return ControlTestOut(
        id=t.id,
        number=t.number,
        control_id=t.control_id,
        control_number=t.control_number,
        control_title=t.control_title,
        test_procedure=t.test_procedure,
        period_start=t.period_start,
        period_end=t.period_end,
        due_date=t.due_date,
        assignee_id=t.assignee_id or None,
        state=enum_name(C.ControlTestState, "CONTROL_TEST_STATE_", t.state),
        ad_hoc=t.ad_hoc,
        result=enum_name(C.ControlTestResult, "CONTROL_TEST_RESULT_", t.result) or None,
        notes=t.notes,
        evidence=t.evidence,
        tester_id=t.tester_id or None,
        completed_at=time_of(t, "completed_at"),
        review=enum_name(C.ReviewDecision, "REVIEW_DECISION_", t.review) or None,
        reviewer_id=t.reviewer_id or None,
        review_notes=t.review_notes,
        reviewed_at=time_of(t, "reviewed_at"),
        issue_id=t.issue_id or None,
        issue_number=t.issue_number or None,
        created_at=time_of(t, "created_at"),
        evidence_files=[attachment_out(a, f"{files_base}/{t.number}") for a in t.evidence_files],
    )


def completion_out(r: compliance_pb2.CompleteControlTestResponse) -> CompletionOut:
    return CompletionOut(
        control_test=test_out(r.control_test),
        issue=issue_out(r.issue) if r.HasField("issue") else None,
        next_test=test_out(r.next_test) if r.HasField("next_test") else None,
    )


def tests_request(ctx: Ctx, q: TestsQuery) -> compliance_pb2.ListControlTestsRequest:
    fields: dict[str, str] = {}
    req = C.ListControlTestsRequest(
        caller=ctx.caller(),
        control_id=q.control.strip(),
        state=state_value(one_of(q.state, STATES, "state", fields)),
        assignee_id=me_or(ctx, q.assignee),
        result=result_value(one_of(q.result, RESULTS, "result", fields)),
        page=page_request(q.page_size, q.page_token, fields),
    )
    raise_invalid(fields)
    return req


async def api_tests(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListControlTests, tests_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        ControlTestListOut(
            items=[test_out(t) for t in resp.control_tests],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_create_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ControlTestIn = ctx.body
    test = await ctx.call(
        ctx.backends.compliance.CreateControlTest,
        C.CreateControlTestRequest(
            caller=ctx.caller(),
            control_id=body.control_id,
            due_date=body.due_date,
            period_start=body.period_start,
            period_end=body.period_end,
            assignee_id=body.assignee_id,
        ),
    )
    return ctx.json(test_out(test), status=201)


async def api_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(caller=ctx.caller(), control_test_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(test_out(test, "/management/api/v1/control-tests"))


async def api_update_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ControlTestPatchIn = ctx.body
    req = C.UpdateControlTestRequest(caller=ctx.caller(), control_test_id=request.match_info["id"])
    if body.assignee_id is not None:
        req.assignee_id = body.assignee_id
    if body.due_date is not None:
        req.due_date = body.due_date
    test = await ctx.call(ctx.backends.compliance.UpdateControlTest, req)
    return ctx.json(test_out(test))


async def api_review_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ReviewIn = ctx.body
    test = await ctx.call(
        ctx.backends.compliance.ReviewControlTest,
        C.ReviewControlTestRequest(
            caller=ctx.caller(),
            control_test_id=request.match_info["id"],
            decision=enum_value(C.ReviewDecision, "REVIEW_DECISION_", body.decision),
            notes=body.notes,
        ),
    )
    return ctx.json(test_out(test))


def test_view(
    t: compliance_pb2.ControlTest, page_base: str = "/control-tests", me: str = ""
) -> dict[str, Any]:
    out = msgspec.structs.asdict(test_out(t))
    locked = t.state == C.CONTROL_TEST_STATE_COMPLETED
    out["files"] = [
        attachment_view(a, f"{page_base}/{t.number}", "" if locked else me)
        for a in t.evidence_files
    ]
    out["state_label"] = STATES.get(out["state"], out["state"])
    out["state_badge"] = STATE_BADGES.get(out["state"], "")
    out["result_label"] = RESULTS.get(out["result"] or "", "")
    out["result_badge"] = RESULT_BADGES.get(out["result"] or "", "")
    out["review_label"] = REVIEWS.get(out["review"] or "", "")
    return out


async def page_tests(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    keys = ("control", "state", "assignee", "result", "page_token")
    params = query_params(request, keys)
    tests: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        q = TestsQuery(**params)  # type: ignore[arg-type]
        resp = await ctx.call(
            ctx.backends.compliance.ListControlTests, tests_request(ctx, q), safe=True
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        tests = [test_view(t) for t in resp.control_tests]
        first, nxt = page_links("/management/control-tests", params, resp.next_page_token)
    people = await person_choices(ctx)
    names = await person_names(ctx, {t["assignee_id"] or "" for t in tests})
    return ctx.render(
        "compliance/tests.html",
        {
            "tests": tests,
            "params": params,
            "states": STATES,
            "results": RESULTS,
            "names": names,
            "people": people,
            "errors": errors or {},
            "form": raw or {},
            "error": error,
            "notice": notice(request, NOTICES),
            "first_link": first,
            "next_link": nxt,
        },
        status=status,
    )


async def page_create_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    return await form_action(
        ctx.call(
            ctx.backends.compliance.CreateControlTest,
            C.CreateControlTestRequest(
                caller=ctx.caller(),
                control_id=raw.get("control_id", "").strip(),
                due_date=raw.get("due_date", ""),
                period_start=raw.get("period_start", ""),
                period_end=raw.get("period_end", ""),
                assignee_id=raw.get("assignee_id", "").strip(),
            ),
        ),
        lambda exc: page_tests(request, ctx, form_errors(exc), raw, exc.status),
        lambda test: f"/management/control-tests/{test.number}?done=created",
    )


async def _render_test(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    test = await ctx.call(
        ctx.backends.compliance.GetControlTest,
        C.GetControlTestRequest(caller=ctx.caller(), control_test_id=ref),
        safe=True,
    )
    view = test_view(test, "/management/control-tests")
    people = await person_choices(ctx)
    names = await person_names(
        ctx, {view["assignee_id"] or "", view["tester_id"] or "", view["reviewer_id"] or ""}
    )
    return ctx.render(
        "compliance/test.html",
        {
            "t": view,
            "names": names,
            "people": people,
            "reviews": REVIEWS,
            "can_review": view["state"] == "completed"
            and not view["review"]
            and view["tester_id"] != ctx.person_id,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
            "pretty": pretty_time,
        },
        status=status,
    )


async def page_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_test(ctx, request.match_info["id"])


async def page_update_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    req = C.UpdateControlTestRequest(caller=ctx.caller(), control_test_id=ref)
    if raw.get("assignee_id", "").strip():
        req.assignee_id = raw["assignee_id"].strip()
    if raw.get("due_date", "").strip():
        req.due_date = raw["due_date"].strip()
    return await form_action(
        ctx.call(ctx.backends.compliance.UpdateControlTest, req),
        lambda exc: _render_test(ctx, ref, form_errors(exc), raw, exc.status),
        f"/management/control-tests/{ref}?done=updated",
    )


async def page_review_test(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    decision = raw.get("decision", "")
    if decision not in REVIEWS:
        return await _render_test(ctx, ref, {"decision": "approve or reject"}, raw, 422)
    return await form_action(
        ctx.call(
            ctx.backends.compliance.ReviewControlTest,
            C.ReviewControlTestRequest(
                caller=ctx.caller(),
                control_test_id=ref,
                decision=enum_value(C.ReviewDecision, "REVIEW_DECISION_", decision),
                notes=raw.get("review_notes", ""),
            ),
        ),
        lambda exc: _render_test(ctx, ref, {"decision": exc.message}, raw, exc.status),
        f"/management/control-tests/{ref}?done=reviewed",
        expected=(403, 409, 422),
    )


ROUTES: list[Route] = [
    # Management JSON: control tests.
    management_route(
        "GET",
        "/management/api/v1/control-tests",
        api_tests,
        CM,
        query=TestsQuery,
        response=ControlTestListOut,
        summary="Control tests with filters (control, state, assignee, result)",
    ),
    management_route(
        "POST",
        "/management/api/v1/control-tests",
        api_create_test,
        CM,
        body=ControlTestIn,
        response=ControlTestOut,
        status=201,
        summary="Create an ad hoc control test",
    ),
    management_route(
        "GET",
        "/management/api/v1/control-tests/{id}",
        api_test,
        CM,
        response=ControlTestOut,
        summary="A control test",
    ),
    management_route(
        "PATCH",
        "/management/api/v1/control-tests/{id}",
        api_update_test,
        CM,
        body=ControlTestPatchIn,
        response=ControlTestOut,
        summary="Reassign or move the due date of an open test",
    ),
    management_route(
        "POST",
        "/management/api/v1/control-tests/{id}/review",
        api_review_test,
        CM,
        body=ReviewIn,
        response=ControlTestOut,
        summary="Approve or reject a completed test (not by its tester)",
    ),
    management_route(
        "GET", "/management/control-tests", page_tests, CM, kind="page", summary="Control tests"
    ),
    management_route(
        "POST",
        "/management/control-tests",
        page_create_test,
        CM,
        kind="page",
        summary="Create an ad hoc control test (form)",
    ),
    management_route(
        "GET",
        "/management/control-tests/{id}",
        page_test,
        CM,
        kind="page",
        summary="A control test",
    ),
    management_route(
        "POST",
        "/management/control-tests/{id}",
        page_update_test,
        CM,
        kind="page",
        summary="Reassign a control test (form)",
    ),
    management_route(
        "POST",
        "/management/control-tests/{id}/review",
        page_review_test,
        CM,
        kind="page",
        summary="Review a control test (form)",
    ),
]
