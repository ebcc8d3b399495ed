"""Controls (management): list, create, view, edit."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import common_pb2, compliance_pb2

from gateway.errors import ApiError
from gateway.features.compliance.common import (
    CM,
    FREQUENCIES,
    NOTICES,
    C,
    Frequency,
    freq_value,
    management_route,
    one_of,
    person_choices,
)
from gateway.features.compliance.tests import test_view
from gateway.forms import form_action
from gateway.present import (
    checked,
    copy_given,
    enum_name,
    flag,
    form_errors,
    me_or,
    notice,
    page_links,
    page_request,
    person_names,
    query_params,
    raise_invalid,
    time_of,
)
from gateway.routing import Ctx, Route


class ControlOut(msgspec.Struct):
    id: str
    number: str
    title: str
    description: str
    test_procedure: str
    framework_ref: str
    frequency: str
    owner_id: str
    active: bool
    created_at: str | None
    updated_at: str | None


class ControlListOut(msgspec.Struct):
    items: list[ControlOut]
    next_page_token: str
    total: int


class ControlIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    frequency: Frequency
    owner_id: str
    description: str = ""
    test_procedure: str = ""
    framework_ref: str = ""
    active: bool = True


class ControlPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str | None = None
    description: str | None = None
    test_procedure: str | None = None
    framework_ref: str | None = None
    frequency: Frequency | None = None
    owner_id: str | None = None
    active: bool | None = None


class ControlsQuery(msgspec.Struct):
    q: str = ""
    active: str = ""  # "true" | "false"
    frequency: str = ""
    owner: str = ""
    page_size: int = 25
    page_token: str = ""


def control_out(c: compliance_pb2.Control) -> ControlOut:
    return ControlOut(
        id=c.id,
        number=c.number,
        title=c.title,
        description=c.description,
        test_procedure=c.test_procedure,
        framework_ref=c.framework_ref,
        frequency=enum_name(C.ControlFrequency, "CONTROL_FREQUENCY_", c.frequency),
        owner_id=c.owner_id,
        active=c.active,
        created_at=time_of(c, "created_at"),
        updated_at=time_of(c, "updated_at"),
    )


def controls_request(ctx: Ctx, q: ControlsQuery) -> compliance_pb2.ListControlsRequest:
    fields: dict[str, str] = {}
    req = C.ListControlsRequest(
        caller=ctx.caller(),
        query=q.q[:200],
        frequency=freq_value(one_of(q.frequency, FREQUENCIES, "frequency", fields)),
        owner_id=me_or(ctx, q.owner),
        page=page_request(q.page_size, q.page_token, fields),
    )
    active = flag(q.active, "active", fields)
    if active is not None:
        req.active = active
    raise_invalid(fields)
    return req


def control_patch(
    caller: common_pb2.Caller, ref: str, body: ControlPatchIn
) -> compliance_pb2.UpdateControlRequest:
    req = C.UpdateControlRequest(
        caller=caller, control_id=ref, frequency=freq_value(body.frequency)
    )
    copy_given(
        body, req, ("title", "description", "test_procedure", "framework_ref", "owner_id", "active")
    )
    return req


async def api_controls(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    resp = await ctx.call(
        ctx.backends.compliance.ListControls, controls_request(ctx, ctx.query), safe=True
    )
    return ctx.json(
        ControlListOut(
            items=[control_out(c) for c in resp.controls],
            next_page_token=resp.next_page_token,
            total=resp.total,
        )
    )


async def api_create_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    body: ControlIn = ctx.body
    control = await ctx.call(
        ctx.backends.compliance.CreateControl,
        C.CreateControlRequest(
            caller=ctx.caller(),
            title=body.title,
            description=body.description,
            test_procedure=body.test_procedure,
            framework_ref=body.framework_ref,
            frequency=freq_value(body.frequency),
            owner_id=body.owner_id,
            active=body.active,
        ),
    )
    return ctx.json(control_out(control), status=201)


async def api_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    control = await ctx.call(
        ctx.backends.compliance.GetControl,
        C.GetControlRequest(caller=ctx.caller(), control_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(control_out(control))


async def api_update_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    control = await ctx.call(
        ctx.backends.compliance.UpdateControl,
        control_patch(ctx.caller(), request.match_info["id"], ctx.body),
    )
    return ctx.json(control_out(control))


def _control_view(c: compliance_pb2.Control) -> dict[str, Any]:
    out = msgspec.structs.asdict(control_out(c))
    out["frequency_label"] = FREQUENCIES.get(out["frequency"], out["frequency"])
    return out


async def page_controls(
    request: web.Request,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    keys = ("q", "active", "frequency", "owner", "page_token")
    params = query_params(request, keys)
    controls: list[dict[str, Any]] = []
    error = ""
    first = nxt = ""
    try:
        q = ControlsQuery(**params)  # type: ignore[arg-type]
        resp = await ctx.call(
            ctx.backends.compliance.ListControls, controls_request(ctx, q), safe=True
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = exc.message
    else:
        controls = [_control_view(c) for c in resp.controls]
        first, nxt = page_links("/management/controls", params, resp.next_page_token)
    people = await person_choices(ctx)
    names = await person_names(ctx, {c["owner_id"] for c in controls})
    return ctx.render(
        "compliance/controls.html",
        {
            "controls": controls,
            "params": params,
            "frequencies": FREQUENCIES,
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


async def page_create_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    frequency = raw.get("frequency", "")
    if frequency not in FREQUENCIES:
        return await page_controls(request, ctx, {"frequency": "choose a frequency"}, raw, 422)
    return await form_action(
        ctx.call(
            ctx.backends.compliance.CreateControl,
            C.CreateControlRequest(
                caller=ctx.caller(),
                title=raw.get("title", ""),
                description=raw.get("description", ""),
                test_procedure=raw.get("test_procedure", ""),
                framework_ref=raw.get("framework_ref", ""),
                frequency=freq_value(frequency),
                owner_id=raw.get("owner_id", "").strip(),
            ),
        ),
        lambda exc: page_controls(request, ctx, form_errors(exc), raw, 422),
        lambda control: f"/management/controls/{control.number}?done=created",
        expected=(422,),
    )


async def _render_control(
    ctx: Ctx,
    ref: str,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    control = await ctx.call(
        ctx.backends.compliance.GetControl,
        C.GetControlRequest(caller=ctx.caller(), control_id=ref),
        safe=True,
    )
    tests = await ctx.call(
        ctx.backends.compliance.ListControlTests,
        C.ListControlTestsRequest(
            caller=ctx.caller(),
            control_id=control.id,
            page=common_pb2.PageRequest(page_size=50),
        ),
        safe=True,
    )
    views = [test_view(t) for t in tests.control_tests]
    people = await person_choices(ctx)
    names = await person_names(ctx, {control.owner_id} | {t["assignee_id"] or "" for t in views})
    return ctx.render(
        "compliance/control.html",
        {
            "c": _control_view(control),
            "tests": views,
            "names": names,
            "people": people,
            "frequencies": FREQUENCIES,
            "errors": errors or {},
            "form": raw or {},
            "notice": notice(ctx.request, NOTICES),
        },
        status=status,
    )


async def page_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_control(ctx, request.match_info["id"])


async def page_update_control(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ref = request.match_info["id"]
    raw = await ctx.form()
    raw.pop("csrf_token", None)
    frequency = raw.get("frequency") or None
    if frequency is not None and frequency not in FREQUENCIES:
        return await _render_control(ctx, ref, {"frequency": "choose a frequency"}, raw, 422)
    patch = ControlPatchIn(
        title=raw.get("title"),
        description=raw.get("description"),
        test_procedure=raw.get("test_procedure"),
        framework_ref=raw.get("framework_ref"),
        frequency=frequency,  # type: ignore[arg-type]
        owner_id=raw.get("owner_id") or None,
        active=checked(raw, "active"),
    )
    return await form_action(
        ctx.call(ctx.backends.compliance.UpdateControl, control_patch(ctx.caller(), ref, patch)),
        lambda exc: _render_control(ctx, ref, form_errors(exc), raw, 422),
        f"/management/controls/{ref}?done=updated",
        expected=(422,),
    )


ROUTES: list[Route] = [
    # Management JSON: controls.
    management_route(
        "GET",
        "/management/api/v1/controls",
        api_controls,
        CM,
        query=ControlsQuery,
        response=ControlListOut,
        summary="Controls with search and filters",
    ),
    management_route(
        "POST",
        "/management/api/v1/controls",
        api_create_control,
        CM,
        body=ControlIn,
        response=ControlOut,
        status=201,
        summary="Create a control (a recurring one gets its first test)",
    ),
    management_route(
        "GET",
        "/management/api/v1/controls/{id}",
        api_control,
        CM,
        response=ControlOut,
        summary="A control",
    ),
    management_route(
        "PATCH",
        "/management/api/v1/controls/{id}",
        api_update_control,
        CM,
        body=ControlPatchIn,
        response=ControlOut,
        summary="Edit a control",
    ),
    # Management pages.
    management_route(
        "GET", "/management/controls", page_controls, CM, kind="page", summary="Controls"
    ),
    management_route(
        "POST",
        "/management/controls",
        page_create_control,
        CM,
        kind="page",
        summary="Create a control (form)",
    ),
    management_route(
        "GET", "/management/controls/{id}", page_control, CM, kind="page", summary="A control"
    ),
    management_route(
        "POST",
        "/management/controls/{id}",
        page_update_control,
        CM,
        kind="page",
        summary="Edit a control (form)",
    ),
]
