"""Importing persons from CSV or JSON: start an import job and follow it."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from frontdesk.v1 import directory_pb2

from gateway.errors import ApiError
from gateway.features.directory.common import API, MANAGE, D, P, management_route, page_route
from gateway.present import (
    checked,
    pretty_time,
    time_of,
)
from gateway.routing import Ctx, Route, read_form

JOB_BADGES = {"pending": "", "running": "warn", "done": "ok", "failed": "danger"}


class ImportErrorOut(msgspec.Struct):
    line: int
    field: str
    message: str


class ImportJobOut(msgspec.Struct):
    id: str
    status: str  # pending | running | done | failed
    dry_run: bool
    total_rows: int
    rows_done: int
    created: int
    updated: int
    unchanged: int
    failed: int
    errors: list[ImportErrorOut]
    message: str
    created_at: str | None
    finished_at: str | None


class ImportQuery(msgspec.Struct):
    format: str = ""  # csv | json (else from the Content-Type or the file name)
    dry_run: bool = False


def job_out(j: directory_pb2.ImportJob) -> ImportJobOut:
    return ImportJobOut(
        id=j.id,
        status=j.status,
        dry_run=j.dry_run,
        total_rows=j.total_rows,
        rows_done=j.rows_done,
        created=j.created,
        updated=j.updated,
        unchanged=j.unchanged,
        failed=j.failed,
        errors=[ImportErrorOut(line=e.line, field=e.field, message=e.message) for e in j.errors],
        message=j.message,
        created_at=time_of(j, "created_at"),
        finished_at=time_of(j, "finished_at"),
    )


def _format_of(explicit: str, content_type: str, filename: str = "") -> str:
    fmt = explicit.strip().lower()
    if fmt:
        return fmt
    if filename.lower().endswith(".json"):
        return "json"
    if filename.lower().endswith(".csv"):
        return "csv"
    if "json" in content_type:
        return "json"
    if "csv" in content_type or content_type.startswith("text/"):
        return "csv"
    return ""


def _too_large(ctx: Ctx, size: int) -> ApiError:
    limit = ctx.state.settings.max_upload_bytes
    return ApiError(
        413,
        "too_large",
        f"the file is {size / 1024 / 1024:.1f} MB; the limit is {limit / 1024 / 1024:.0f} MB",
    )


async def start_import(
    ctx: Ctx, fmt: str, content: bytes, dry_run: bool
) -> directory_pb2.ImportJob:
    if len(content) > ctx.state.settings.max_upload_bytes:
        raise _too_large(ctx, len(content))
    if fmt not in ("csv", "json"):
        raise ApiError(422, "invalid", "format: use csv or json", {"format": "use csv or json"})
    if not content:
        raise ApiError(422, "invalid", "content: the file is empty", {"content": "empty file"})
    return await ctx.call(
        ctx.backends.directory.StartImport,
        D.StartImportRequest(caller=ctx.caller(), format=fmt, content=content, dry_run=dry_run),
    )


async def api_start_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q: ImportQuery = ctx.query
    limit = ctx.state.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise _too_large(ctx, request.content_length)
    dry_run = q.dry_run
    if request.content_type == "multipart/form-data":
        form = await read_form(request)
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise ApiError(
                422, "invalid", "file: attach the file as the field 'file'", {"file": "required"}
            )
        content = upload.file.read()
        fmt = _format_of(
            q.format or str(form.get("format", "")), upload.content_type, upload.filename
        )
        flag = form.get("dry_run")
        if isinstance(flag, str) and flag:
            dry_run = flag.lower() in ("1", "true", "on", "yes")
    else:
        content = await request.read()
        fmt = _format_of(q.format, request.content_type)
    job = await start_import(ctx, fmt, content, dry_run)
    return ctx.json(job_out(job), status=200 if job.dry_run else 202)


async def api_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    job = await ctx.call(
        ctx.backends.directory.GetImport,
        D.GetImportRequest(caller=ctx.caller(), import_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.json(job_out(job))


def _job_view(j: directory_pb2.ImportJob) -> dict[str, Any]:
    out = msgspec.structs.asdict(job_out(j))
    out["errors"] = [msgspec.structs.asdict(e) for e in out["errors"]]
    out["badge"] = JOB_BADGES.get(j.status, "")
    out["running"] = j.status in ("pending", "running")
    out["started_text"] = pretty_time(out["created_at"])
    out["finished_text"] = pretty_time(out["finished_at"])
    return out


async def _render_import(
    ctx: Ctx,
    *,
    errors: dict[str, str] | None = None,
    report: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return ctx.render(
        "directory/import.html",
        {
            "errors": errors or {},
            "report": report,
            "form": form or {"dry_run": "1"},
            "limit_mb": ctx.state.settings.max_upload_bytes // (1024 * 1024),
        },
        status=status,
    )


async def page_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _render_import(ctx)


async def page_start_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    limit = ctx.state.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise _too_large(ctx, request.content_length)
    data = await read_form(request)
    raw = {k: v for k, v in data.items() if isinstance(v, str)}
    dry_run = checked(raw, "dry_run")
    form = {"dry_run": "1" if dry_run else "", "format": raw.get("format", "")}
    upload = data.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return await _render_import(ctx, errors={"file": "choose a file"}, form=form, status=422)
    content = upload.file.read()
    fmt = _format_of(raw.get("format", ""), upload.content_type, upload.filename)
    try:
        job = await start_import(ctx, fmt, content, dry_run)
    except ApiError as exc:
        if exc.status not in (409, 413, 422):
            raise
        errors = dict(exc.fields)
        if "content" in errors:
            errors["file"] = errors.pop("content")
        if not errors:
            errors = {"file": exc.message}
        return await _render_import(ctx, errors=errors, form=form, status=exc.status)
    if job.dry_run:
        return await _render_import(ctx, report=_job_view(job), form=form)
    raise ctx.redirect(f"/management/persons/import/{job.id}")


async def _apply(ctx: Ctx, checked_id: str) -> directory_pb2.ImportJob:
    return await ctx.call(
        ctx.backends.directory.ApplyImport,
        D.ApplyImportRequest(caller=ctx.caller(), import_id=checked_id),
    )


async def api_apply_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.json(job_out(await _apply(ctx, request.match_info["id"])), status=202)


async def page_apply_import(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    try:
        job = await _apply(ctx, request.match_info["id"])
    except ApiError as exc:
        if exc.status != 409:
            raise
        return await _render_import(ctx, errors={"file": exc.message}, status=409)
    raise ctx.redirect(f"/management/persons/import/{job.id}")


async def page_import_job(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    job = await ctx.call(
        ctx.backends.directory.GetImport,
        D.GetImportRequest(caller=ctx.caller(), import_id=request.match_info["id"]),
        safe=True,
    )
    return ctx.render("directory/import_job.html", {"job": _job_view(job)})


ROUTES: list[Route] = [
    # JSON (joined before the persons' routes: "/persons/import" is not a person id).
    management_route(
        "POST",
        f"{API}/persons/import",
        api_start_import,
        MANAGE,
        query=ImportQuery,
        response=ImportJobOut,
        also_status=202,
        uploads=("text/csv", "application/json", "multipart/form-data"),
        max_body=50 * 1024 * 1024,
        summary="Import persons from CSV or JSON (multipart field 'file', or the raw body with "
        "?format=csv|json); ?dry_run=true reports what would change (200), otherwise a "
        "background job starts (202). Over 50 MB: 413",
    ),
    management_route(
        "GET",
        f"{API}/persons/import/{{id}}",
        api_import,
        MANAGE,
        response=ImportJobOut,
        summary="An import job: progress (rows_done of total_rows), counts and per-row errors",
    ),
    management_route(
        "POST",
        f"{API}/persons/import/{{id}}/apply",
        api_apply_import,
        MANAGE,
        response=ImportJobOut,
        also_status=202,
        summary="Run the file a dry run checked (within an hour, once): 202 and the new job; "
        "409 when it was applied already or expired",
    ),
    page_route("GET", f"{P}/persons/import", page_import, MANAGE, "Import persons"),
    page_route(
        "POST",
        f"{P}/persons/import/{{id}}/apply",
        page_apply_import,
        MANAGE,
        "Apply a checked import",
    ),
    page_route("POST", f"{P}/persons/import", page_start_import, MANAGE, "Import persons (upload)"),
    page_route("GET", f"{P}/persons/import/{{id}}", page_import_job, MANAGE, "An import job"),
]
