"""Files through the gateway, in and out, without holding them.

Uploads: a multipart body is read part by part; each file part goes on to its owning service
over a client-streaming gRPC call as its chunks arrive (256 KiB at a time), so the gateway's
memory stays flat whatever the size and nothing touches its disk. The service checks the type
on the content, counts the size against the workspace's limits, and stages the file; the
handler then names the staged ids when it creates the item.

Downloads: the service checks the caller's right to the file exactly as to its item and hands
back a presigned URL valid for 60 seconds; the gateway reads it and streams the bytes on with
headers that keep a browser from running anything (`Content-Disposition: attachment`,
`nosniff`, a sandboxing CSP). The URL never reaches the browser, so no one can pass it on, and
the object store needs no public address. Only raster images are ever shown inline.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import grpc
import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.errors import ApiError, from_grpc
from gateway.routing import CSRF_FIELD, Ctx, check_csrf, read_form
from services.chassis.identity import stream_head_var
from services.chassis.logs import request_id_var
from services.chassis.upload_stream import CHUNK, send_upload

log = logging.getLogger(__name__)

# One request may carry several files; the services enforce the real limits (per file, per
# item, per workspace) while the bytes flow. This only bounds what a declared length may be.
MAX_UPLOAD_REQUEST = 1024 * 1024 * 1024
MAX_FILES_PER_REQUEST = 20
MAX_FIELDS_BYTES = 256 * 1024
UPLOAD_TIMEOUT = 600.0
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
DOWNLOAD_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
# A staged file the user already sent with a form that came back with errors.
KEPT_FIELD = "attachment_id"

HTTP_KEY: web.AppKey[aiohttp.ClientSession] = web.AppKey("frontdesk_object_http")

Stage = Callable[[str, AsyncIterator[bytes]], Awaitable[Any]]


@dataclass
class UploadForm:
    """A form's text fields, the files it staged (service Attachment messages) and the ids of
    files staged by an earlier try of the same form."""

    fields: dict[str, str] = field(default_factory=dict)
    staged: list[Any] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    # A file the service refused (too large, wrong type): the form stops there, and a page
    # shows it again with this error next to the file field.
    error: ApiError | None = None

    @property
    def attachment_ids(self) -> list[str]:
        return [*(i for i, _ in self.kept), *(a.id for a in self.staged)]

    @property
    def files(self) -> list[tuple[str, str]]:
        """(id, name) of every staged file, for the form's hidden fields when shown again."""
        return [*self.kept, *((a.id, a.name) for a in self.staged)]


async def object_http(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the one HTTP client that reads presigned object URLs."""
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=30),
        auto_decompress=False,
    )
    app[HTTP_KEY] = session
    try:
        yield
    finally:
        await session.close()


def upload_error(exc: grpc.aio.AioRpcError) -> ApiError:
    """A refused upload: 413 too large, 415 a type not accepted, 422 malware found (the
    scanner's signature in the message), else the usual mapping (a scanner away: 503)."""
    reason = dict(exc.trailing_metadata() or ()).get("fd-reason", "")
    message = exc.details() or "the file was refused"
    if reason == "too_large":
        return ApiError(413, "too_large", message, {"file": message.partition(": ")[2] or message})
    if reason == "unsupported_type":
        return ApiError(
            415, "unsupported_type", message, {"file": message.partition(": ")[2] or message}
        )
    if reason == "malware_found":
        return ApiError(
            422, "malware_found", message, {"file": message.partition(": ")[2] or message}
        )
    return from_grpc(exc)


async def send_file(
    ctx: Ctx, method: Any, header: Any, chunks: AsyncIterator[bytes], chunk_message: Any
) -> Any:
    """Stream one file to a service's upload call; its refusal becomes the right ApiError."""
    metadata: tuple[tuple[str, str], ...] = ()
    request_id = request_id_var.get()
    if request_id:
        metadata = (("x-request-id", request_id),)
    # The principal of a client stream is signed from its header (it names the Caller).
    head = stream_head_var.set(getattr(header, "header", header))
    try:
        return await send_upload(
            method(timeout=UPLOAD_TIMEOUT, metadata=metadata), header, chunks, chunk_message
        )
    except grpc.aio.AioRpcError as exc:
        raise upload_error(exc) from None
    finally:
        stream_head_var.reset(head)


async def _part_chunks(part: BodyPartReader, first: bytes) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            return
        yield chunk


async def read_upload_form(ctx: Ctx, stage: Stage) -> UploadForm:
    """Read a form post: multipart with files (streamed to `stage`, one call per file), or a
    plain urlencoded form. Checks a deferred CSRF token (Route.streams_body) on the way."""
    request = ctx.request
    form = UploadForm()
    if request.content_type == "application/x-www-form-urlencoded":
        posted = await read_form(request)
        if ctx.csrf_deferred:
            token = posted.get(CSRF_FIELD)
            check_csrf(ctx, token if isinstance(token, str) else None)
        form.fields = {
            k: v
            for k, v in posted.items()
            if isinstance(v, str) and k not in (CSRF_FIELD, KEPT_FIELD)
        }
        for value in posted.getall(KEPT_FIELD, []):
            if isinstance(value, str):
                _keep(form, value)
        return form
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the files as multipart/form-data")
    try:
        reader = await request.multipart()
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        raise ApiError(400, "bad_form", "the form data is malformed") from exc
    field_bytes = 0
    first_part = True
    while True:
        try:
            part = await reader.next()
        except (HttpProcessingError, ValueError, AssertionError) as exc:
            raise ApiError(400, "bad_form", "the form data is malformed") from exc
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "bad_form", "nested multipart bodies are not accepted")
        name = part.name or ""
        if ctx.csrf_deferred and first_part:
            if name != CSRF_FIELD or part.filename is not None:
                check_csrf(ctx, None)
            token = (await part.read_chunk(256)).decode("ascii", "replace")
            check_csrf(ctx, token)
            ctx.csrf_deferred = False
            first_part = False
            continue
        first_part = False
        if part.filename is not None:
            first = await part.read_chunk(CHUNK)
            if not first and not part.filename:
                continue  # a file input left empty
            if len(form.staged) >= MAX_FILES_PER_REQUEST:
                raise ApiError(
                    413, "too_large", f"at most {MAX_FILES_PER_REQUEST} files in one request"
                )
            # Browsers escape these three in a multipart file name (HTML form encoding).
            filename = part.filename.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
            try:
                form.staged.append(await stage(filename, _part_chunks(part, first)))
            except ApiError as exc:
                if exc.status not in (413, 415, 422):
                    raise
                form.error = exc
                return form
            continue
        try:
            value = await part.read(decode=False)
        except (HttpProcessingError, ValueError) as exc:
            raise ApiError(400, "bad_form", "the form data is malformed") from exc
        field_bytes += len(value)
        if field_bytes > MAX_FIELDS_BYTES:
            raise ApiError(413, "too_large", "the form's text fields are too large")
        try:
            text = bytes(value).decode(part.get_charset("utf-8"))
        except (UnicodeDecodeError, LookupError) as exc:
            raise ApiError(400, "bad_form", "the form data is not valid UTF-8") from exc
        if name == KEPT_FIELD:
            _keep(form, text)
        elif name and name != CSRF_FIELD:
            form.fields[name] = text
    if ctx.csrf_deferred:
        check_csrf(ctx, None)
    return form


def _keep(form: UploadForm, value: str) -> None:
    kept_id, _, kept_name = value.partition(":")
    if kept_id and kept_id not in (i for i, _ in form.kept):
        form.kept.append((kept_id, kept_name[:200]))


def content_disposition(kind: str, name: str) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def stream_download(
    ctx: Ctx, url: str, *, name: str, content_type: str, size: int, inline: bool
) -> web.StreamResponse:
    """Read the presigned `url` and pass the bytes on; the store down is 503."""
    http = ctx.request.app[HTTP_KEY]
    show_inline = inline and content_type in INLINE_TYPES
    upstream = None
    for attempt in (1, 2):  # a pooled connection the store closed (it restarted) fails once
        try:
            upstream = await http.get(url)
            break
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if attempt == 2:
                raise ApiError(
                    503, "unavailable", "the file store is not reachable; try again"
                ) from exc
    assert upstream is not None
    try:
        if upstream.status != 200:
            log.warning("object store answered %d for a download", upstream.status)
            raise ApiError(503, "unavailable", "the file store did not answer; try again")
        response = web.StreamResponse(status=200)
        h = response.headers
        h["Content-Type"] = (
            content_type if show_inline else (content_type or "application/octet-stream")
        )
        if content_type == "text/plain":
            h["Content-Type"] = "text/plain; charset=utf-8"
        h["Content-Disposition"] = content_disposition(
            "inline" if show_inline else "attachment", name
        )
        h["X-Content-Type-Options"] = "nosniff"
        h["Content-Security-Policy"] = DOWNLOAD_CSP
        h["Cross-Origin-Resource-Policy"] = "same-origin"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        h["Cache-Control"] = "private, no-store"
        response.content_length = size
        await response.prepare(ctx.request)
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
        except (TimeoutError, aiohttp.ClientError, ConnectionResetError) as exc:
            # The headers are sent: the client sees a body shorter than its Content-Length.
            log.warning("download cut short: %s", type(exc).__name__)
            if ctx.request.transport is not None:
                ctx.request.transport.close()
        return response
    finally:
        upstream.release()


# -- what pages and JSON show of a file ------------------------------------------------------


class AttachmentOut(msgspec.Struct):
    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    comment_id: str | None
    uploader_id: str | None
    internal: bool
    inline_image: bool
    created_at: str | None
    download_url: str  # this surface's route for the file (add ?inline=1 for an image preview)


class StagedOut(msgspec.Struct):
    """Files staged for an item: name their ids in attachment_ids when creating it."""

    attachments: list[AttachmentOut]


def attachment_out(a: Any, base: str) -> AttachmentOut:
    """`a` is a service's Attachment message; `base` the item's path on this surface."""
    from gateway.present import time_of

    return AttachmentOut(
        id=a.id,
        name=a.name,
        content_type=a.content_type,
        size=int(a.size),
        sha256=a.sha256,
        comment_id=a.comment_id or None,
        uploader_id=a.uploader_id or None,
        internal=a.internal,
        inline_image=a.inline_image,
        created_at=time_of(a, "created_at"),
        download_url=f"{base}/attachments/{a.id}" if base else "",
    )


def size_label(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


TYPE_LABELS = {
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/gif": "GIF image",
    "image/webp": "WebP image",
    "application/pdf": "PDF",
    "application/zip": "ZIP archive or Office document",
    "application/vnd.ms-office": "Office document",
    "application/gzip": "gzip archive",
    "text/plain": "Text",
}


def attachment_view(a: Any, base: str, me: str = "", may_remove: bool = False) -> dict[str, Any]:
    """One file as a page lists it: name, size and type, its link, a thumbnail for images."""
    url = f"{base}/attachments/{a.id}"
    return {
        "id": a.id,
        "name": a.name,
        "size": size_label(int(a.size)),
        "type": TYPE_LABELS.get(a.content_type, a.content_type),
        "url": url,
        "thumb": f"{url}?inline=1" if a.inline_image else "",
        "internal": a.internal,
        "comment_id": a.comment_id,
        "remove_url": f"{url}/remove" if may_remove or (me and a.uploader_id == me) else "",
    }


def files_by_comment(views: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The item's own files under "", each comment's under its id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for v in views:
        out.setdefault(v["comment_id"] or "", []).append(v)
    return out
