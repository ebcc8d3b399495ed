"""What every service that keeps files shares: limits, refusals, and storing one upload.

Over 600 lines on purpose: staging, the malware scan and quarantine, attaching and the sweeper
share one state machine of a file's row; the scan's part is the next to move out.

A file's bytes arrive as chunks (a client-streaming gRPC call) and go straight on to the object
store; nothing is written to local disk, and the service holds at most one S3 part in memory.
The first 4 KiB decide the type (allow-list on content); the size is counted as bytes pass, so
a file over the limit is refused as soon as it crosses it, and its partial upload is aborted.
With a malware scanner (FRONTDESK_CLAMD), the stored object is streamed back through clamd
before its row becomes 'staged' (the only state that can be attached): an infected file is
quarantined and refused, and a scanner that does not answer refuses the upload as UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.chassis import attachment_store as astore
from services.chassis import metrics
from services.chassis.attachment_store import Attachment
from services.chassis.errors import InvalidArgument, NotFound
from services.chassis.filetypes import ALLOWED_DESCRIPTION, SNIFF_BYTES, clean_name, sniff
from services.chassis.malware import Clamd, ClamdSettings, ScannerUnavailable, TooLargeToScan
from services.chassis.objectstore import (
    QUARANTINE_PREFIX,
    ObjectStore,
    ObjectStoreUnavailable,
    S3Settings,
    object_key,
)
from services.chassis.settings import env_float, env_int
from services.chassis.tasks import stop_task

log = logging.getLogger(__name__)

MB = 1024 * 1024
# How long a staged file (uploaded, not yet attached to an item) or a half-done upload is kept
# before the sweeper removes it.
STAGED_TTL_SECONDS = 3600
# Reasons the gateway turns into statuses: too_large -> 413, unsupported_type -> 415,
# malware_found -> 422.
REASON_METADATA = "fd-reason"


@dataclass(frozen=True)
class Limits:
    """A workspace's attachment limits (directory portal settings; 0 there = these defaults)."""

    max_file_bytes: int = 25 * MB
    max_item_bytes: int = 100 * MB
    max_files: int = 20


class AttachmentRefused(InvalidArgument):
    """The file (or the set of files) is not accepted: INVALID_ARGUMENT with a reason."""

    reason = "invalid"


class FileTooLarge(AttachmentRefused):
    reason = "too_large"


class TypeNotAllowed(AttachmentRefused):
    reason = "unsupported_type"


class MalwareFound(AttachmentRefused):
    """The malware scanner found `signature` in the file; it is quarantined, never served."""

    reason = "malware_found"

    def __init__(self, signature: str) -> None:
        super().__init__(f"file: malware found ({signature}); the file was not accepted")
        self.signature = signature


class AttachmentNotFound(NotFound):
    """No such attachment visible to the caller (NOT_FOUND)."""


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str
    content_type: str


def size_text(size: int) -> str:
    if size >= MB and size % MB == 0:
        return f"{size // MB} MB"
    if size >= MB:
        return f"{size / MB:.1f} MB"
    return f"{size} bytes"


async def store_upload(
    objects: ObjectStore, key: str, chunks: AsyncIterator[bytes], max_bytes: int
) -> StoredFile:
    """Check and store one file under `key`; returns its size, SHA-256 and sniffed type.

    Raises TypeNotAllowed, FileTooLarge (nothing stays stored) or ObjectStoreUnavailable.
    """
    digest = hashlib.sha256()
    size = 0
    head = bytearray()
    iterator = chunks.__aiter__()
    async for chunk in iterator:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    content_type = sniff(bytes(head[:SNIFF_BYTES]))
    if content_type is None:
        if not head:
            raise AttachmentRefused("file: empty")
        raise TypeNotAllowed(f"file: this type of file is not accepted ({ALLOWED_DESCRIPTION})")

    async def counted() -> AsyncIterator[bytes]:
        nonlocal size
        for piece in (bytes(head),):
            size += len(piece)
            if size > max_bytes:
                raise FileTooLarge(f"file: larger than the limit of {size_text(max_bytes)}")
            digest.update(piece)
            yield piece
        async for piece in iterator:
            size += len(piece)
            if size > max_bytes:
                raise FileTooLarge(f"file: larger than the limit of {size_text(max_bytes)}")
            digest.update(piece)
            yield piece

    await objects.put_stream(key, counted(), content_type)
    return StoredFile(size=size, sha256=digest.hexdigest(), content_type=content_type)


def reason_metadata(exc: Exception) -> Sequence[tuple[str, str]]:
    """Trailing metadata naming why an upload was refused (for the gateway's 413/415)."""
    if isinstance(exc, AttachmentRefused):
        return ((REASON_METADATA, exc.reason),)
    return ()


async def open_object_store(settings: S3Settings | None) -> ObjectStore | None:
    """The service's object store, its bucket ensured; None when none is configured.

    A store that is down at start does not stop the service: uploads answer UNAVAILABLE until
    it is back, and the bucket is ensured again by the first sweep.
    """
    if settings is None:
        log.warning("no object store configured (FRONTDESK_S3_ENDPOINT): attachments are off")
        return None
    objects = ObjectStore(settings)
    await objects.start()
    try:
        await objects.ensure_bucket()
    except ObjectStoreUnavailable as exc:
        log.warning("object store not reachable at start: %s", exc)
    return objects


# What an operator allows at most, whatever a workspace's settings say (the widest a
# workspace may set by default).
CEILINGS = Limits(max_file_bytes=1024 * MB, max_item_bytes=10240 * MB, max_files=1000)


def limits_from_env(env: Mapping[str, str]) -> Limits:
    """The service's ceilings: FRONTDESK_ATTACHMENT_MAX_FILE_MB, _MAX_ITEM_MB, _MAX_FILES
    (defaults 1024, 10240, 1000); a workspace's own limits apply below them."""
    return Limits(
        max_file_bytes=int(env_float(env, "FRONTDESK_ATTACHMENT_MAX_FILE_MB", 1024) * MB),
        max_item_bytes=int(env_float(env, "FRONTDESK_ATTACHMENT_MAX_ITEM_MB", 10240) * MB),
        max_files=env_int(env, "FRONTDESK_ATTACHMENT_MAX_FILES", 1000),
    )


@dataclass(frozen=True)
class FileSettings:
    """What a service that keeps files reads from its environment."""

    s3: S3Settings | None = None  # None: no object store, attachments are refused
    sweep_interval: float = 300.0
    limits: Limits = CEILINGS  # the ceilings
    clamd: ClamdSettings | None = None  # None: files are not scanned for malware
    clamd_probe_interval: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FileSettings:
        return cls(
            s3=S3Settings.from_env(env),
            sweep_interval=env_float(env, "FRONTDESK_ATTACHMENT_SWEEP_INTERVAL", 300.0),
            limits=limits_from_env(env),
            clamd=ClamdSettings.from_env(env),
        )


@dataclass
class FileWiring:
    """A service's object store, its limits and the sweeper, ready to hand to the runner."""

    objects: ObjectStore | None
    limits: LimitsFor
    background: list[PeriodicJob]
    on_stop: list[Callable[[], Awaitable[None]]]
    scanner: Clamd | None = None


async def wire_files(
    settings: FileSettings, pool: asyncpg.Pool, service: str, directory: Any = None
) -> FileWiring:
    """The object store, the limits (the workspace's, from `directory`), and the sweeper."""
    objects = await open_object_store(settings.s3)
    limits = AttachmentLimits(settings.limits, directory)
    if objects is None:
        return FileWiring(None, limits.get, [], [])
    store = objects
    sweeper = PeriodicJob(
        "attachment sweeper",
        lambda: sweep_forever(pool, store, service, settings.sweep_interval),
    )
    wiring = FileWiring(objects, limits.get, [sweeper], [objects.close])
    if settings.clamd is not None:
        scanner = Clamd(settings.clamd)
        wiring.scanner = scanner
        interval = settings.clamd_probe_interval
        wiring.background.append(
            PeriodicJob("clamd probe", lambda: probe_scanner_forever(scanner, service, interval))
        )
        log.info("uploads are scanned for malware by clamd at %s", scanner.address)
    return wiring


async def probe_scanner_forever(scanner: Clamd, service: str, interval: float) -> None:
    """PING clamd every `interval` seconds: frontdesk_dependency_up{dependency="clamd"} and one
    log line per change. Not part of readiness: while clamd is away only uploads are refused
    (503, retry later); every other call of the service works, and an unready replica would get
    none of them."""
    up: bool | None = None
    gauge = metrics.DEPENDENCY_UP.labels(service=service, dependency="clamd")
    while True:
        try:
            await scanner.ping()
            now = True
        except ScannerUnavailable as exc:
            now = False
            if up is not False:
                log.warning("%s; uploads are refused (503) until it answers", exc)
        if now and up is False:
            log.info("malware scanner: clamd at %s answers again", scanner.address)
        up = now
        gauge.set(1 if up else 0)
        await asyncio.sleep(interval)


class AttachmentLimits:
    """A workspace's limits: its portal settings in the directory (remembered for `ttl`
    seconds; the defaults 25 MB, 100 MB, 20 files without a directory), never above the
    service's ceilings."""

    def __init__(
        self, ceilings: Limits = CEILINGS, directory: Any = None, ttl: float = 10.0
    ) -> None:
        self.ceilings = ceilings
        self._directory = directory
        self._ttl = ttl
        self._known: dict[uuid.UUID, tuple[float, Limits]] = {}

    def _bounded(self, wanted: Limits) -> Limits:
        c = self.ceilings
        return Limits(
            max_file_bytes=min(wanted.max_file_bytes, c.max_file_bytes),
            max_item_bytes=min(wanted.max_item_bytes, c.max_item_bytes),
            max_files=min(wanted.max_files, c.max_files),
        )

    async def get(self, workspace_id: uuid.UUID) -> Limits:
        if self._directory is None:
            return self._bounded(Limits())
        now = time.monotonic()
        known = self._known.get(workspace_id)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        s = await self._directory.portal_settings(str(workspace_id))
        default = Limits()
        limits = self._bounded(
            Limits(
                max_file_bytes=s.attachment_max_file_mb * MB or default.max_file_bytes,
                max_item_bytes=s.attachment_max_item_mb * MB or default.max_item_bytes,
                max_files=s.attachment_max_files or default.max_files,
            )
        )
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[workspace_id] = (now, limits)
        return limits


class PeriodicJob:
    """Runs a job coroutine as a background task of the service (start/stop), logging and
    restarting it after an unexpected failure."""

    def __init__(self, name: str, job: Callable[[], Awaitable[None]], backoff: float = 5.0) -> None:
        self.name = name
        self._job = job
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            try:
                await self._job()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; restarting in %.0fs", self.name, self._backoff)
                await asyncio.sleep(self._backoff)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await stop_task(self._task)


LimitsFor = Callable[[uuid.UUID], Awaitable[Limits]]


def parse_ids(ids: Sequence[str]) -> list[uuid.UUID]:
    """attachment_ids of a request, deduplicated; a malformed one is refused."""
    out: list[uuid.UUID] = []
    for raw in ids:
        try:
            parsed = uuid.UUID(raw)
        except ValueError:
            raise AttachmentRefused("attachment_ids: each must be an attachment id") from None
        if parsed not in out:
            out.append(parsed)
    return out


class Files:
    """The life of one service's files: staged, attached to an item in the item's transaction,
    listed, read through a presigned URL, removed. The service decides who may do what (its
    own item checks) and writes its events and history; this class keeps rows and objects
    consistent. A row exists before its object (state 'uploading'), so `sweep_once` can always
    remove what a failed or abandoned upload left."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        objects: ObjectStore | None,
        service: str,
        limits: LimitsFor,
        scanner: Clamd | None = None,
    ) -> None:
        self._pool = pool
        self._objects = objects
        self.service = service
        self.limits = limits
        self._scanner = scanner

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            raise AttachmentRefused("file: attachments are not configured (no object store)")
        return self._objects

    async def stage(
        self,
        workspace_id: uuid.UUID,
        uploader_id: uuid.UUID | None,
        raw_name: str,
        chunks: AsyncIterator[bytes],
        item: tuple[str, uuid.UUID] | None = None,
    ) -> Attachment:
        """Store one file for its uploader to attach later (to `item`, when it exists)."""
        objects = self.objects
        limits = await self.limits(workspace_id)
        async with self._pool.acquire() as conn:
            if item is not None:
                count, _ = await astore.item_totals(conn, workspace_id, item[0], item[1])
                if count >= limits.max_files:
                    raise FileTooLarge(f"{item[0]}: at most {limits.max_files} files each")
            staged, staged_bytes = await astore.staged_totals(conn, workspace_id, uploader_id)
            if staged >= limits.max_files or staged_bytes >= limits.max_item_bytes:
                raise FileTooLarge("file: too many files waiting to be attached; send them first")
            attachment_id = uuid.uuid4()
            key = object_key(workspace_id, self.service, item[1] if item else "new", attachment_id)
            name = clean_name(raw_name)
            await astore.insert_uploading(conn, workspace_id, attachment_id, uploader_id, name, key)
        try:
            stored = await store_upload(objects, key, chunks, limits.max_file_bytes)
            signature = await self._scan(key)
        except BaseException:
            await self._discard(workspace_id, attachment_id, key)
            raise
        if signature is not None:
            await self._quarantine(
                workspace_id, attachment_id, uploader_id, name, key, stored, signature
            )
            raise MalwareFound(signature)
        async with self._pool.acquire() as conn:
            attachment = await astore.mark_staged(
                conn, workspace_id, attachment_id, stored.content_type, stored.size, stored.sha256
            )
        log.info(
            "attachment %s staged (%d bytes, %s)", attachment_id, stored.size, stored.content_type
        )
        return attachment

    async def _scan(self, key: str) -> str | None:
        """The signature clamd finds in the stored object (read back from the store as it is
        served, a chunk at a time), None when clean or when no scanner is configured."""
        if self._scanner is None:
            return None
        outcome = "unavailable"
        try:
            signature = await self._scanner.scan(self.objects.get_stream(key))
            outcome = "clean" if signature is None else "infected"
        except TooLargeToScan:
            outcome = "too_large"
            log.warning("malware scanner: a file is over clamd's StreamMaxLength; refused")
            raise FileTooLarge(
                "file: larger than the malware scanner accepts (clamd's StreamMaxLength)"
            ) from None
        finally:
            metrics.MALWARE_SCANS.labels(service=self.service, outcome=outcome).inc()
        return signature

    async def _quarantine(
        self,
        ws: uuid.UUID,
        attachment_id: uuid.UUID,
        uploader_id: uuid.UUID | None,
        name: str,
        key: str,
        stored: StoredFile,
        signature: str,
    ) -> None:
        """Move an infected object under quarantine/ and keep its row as 'quarantined' (never
        served); logs who uploaded what. When the move fails the object stays under its key,
        quarantined all the same (the row says so); when the database fails the row stays
        'uploading', never served either, and the sweeper removes it with the object."""
        target = QUARANTINE_PREFIX + key
        try:
            await self.objects.move(key, target)
        except ObjectStoreUnavailable as exc:
            log.warning("could not move infected %s to quarantine (%s); it stays there", key, exc)
            target = key
        with contextlib.suppress(Exception):
            async with self._pool.acquire() as conn:
                await astore.mark_quarantined(
                    conn,
                    ws,
                    attachment_id,
                    (stored.content_type, stored.size, stored.sha256),
                    target,
                    signature,
                )
        log.warning(
            "malware found in an upload: workspace %s, uploader %s, file %r (%d bytes, "
            "sha256 %s), signature %s; quarantined as %s (attachment %s)",
            ws,
            uploader_id,
            name,
            stored.size,
            stored.sha256,
            signature,
            target,
            attachment_id,
        )

    async def _discard(self, ws: uuid.UUID, attachment_id: uuid.UUID, key: str) -> None:
        """Undo a failed upload; what cannot be undone now the sweeper finishes."""
        try:
            await self.objects.delete(key)
        except Exception:
            with contextlib.suppress(Exception):
                async with self._pool.acquire() as conn:
                    await astore.mark_removed(conn, ws, attachment_id)
            return
        with contextlib.suppress(Exception):
            async with self._pool.acquire() as conn:
                await astore.delete(conn, ws, attachment_id)

    async def attach(
        self,
        conn: asyncpg.Connection,
        workspace_id: uuid.UUID,
        uploader_id: uuid.UUID | None,
        item: tuple[str, uuid.UUID],
        comment_id: uuid.UUID | None,
        internal: bool,
        ids: Sequence[uuid.UUID],
    ) -> list[Attachment]:
        """Attach the uploader's staged files to the item (in the caller's transaction)."""
        if not ids:
            return []
        limits = await self.limits(workspace_id)
        kind, item_id = item
        count, total = await astore.item_totals(conn, workspace_id, kind, item_id)
        attached = await astore.attach(
            conn, workspace_id, ids, uploader_id, kind, item_id, comment_id, internal
        )
        if len(attached) != len(ids):
            raise AttachmentRefused(
                "attachment_ids: unknown, not uploaded by you, or already attached"
            )
        if count + len(attached) > limits.max_files:
            raise FileTooLarge(f"attachments: at most {limits.max_files} files per {kind}")
        if total + sum(a.size for a in attached) > limits.max_item_bytes:
            raise FileTooLarge(
                f"attachments: at most {size_text(limits.max_item_bytes)} of files per {kind}"
            )
        return attached

    async def list(
        self,
        conn: asyncpg.Connection,
        workspace_id: uuid.UUID,
        item: tuple[str, uuid.UUID],
        include_internal: bool,
    ) -> list[Attachment]:
        return await astore.list_for_item(conn, workspace_id, item[0], item[1], include_internal)

    async def find(
        self,
        conn: asyncpg.Connection,
        workspace_id: uuid.UUID,
        item: tuple[str, uuid.UUID],
        ref: str,
        include_internal: bool,
        for_update: bool = False,
    ) -> Attachment:
        """The item's attachment `ref`, else AttachmentNotFound (also for an internal one the
        caller may not see)."""
        found = None
        with contextlib.suppress(ValueError):
            found = await astore.get_for_item(
                conn, workspace_id, item[0], item[1], uuid.UUID(ref), for_update=for_update
            )
        if found is None or (found.internal and not include_internal):
            raise AttachmentNotFound("attachment: not found")
        return found

    async def url(self, attachment: Attachment, seconds: int = 60) -> str:
        return await self.objects.presign_get(attachment.object_key, seconds)

    async def mark_removed(self, conn: asyncpg.Connection, attachment: Attachment) -> None:
        """In the caller's transaction: the file is gone for everyone from now on."""
        await astore.mark_removed(conn, attachment.workspace_id, attachment.id)

    async def purge(self, attachment: Attachment) -> None:
        """After the removal committed: the object, then the row (the sweeper retries)."""
        with contextlib.suppress(Exception):
            await self.objects.delete(attachment.object_key)
            async with self._pool.acquire() as conn:
                await astore.delete_removed(conn, attachment.workspace_id, attachment.id)


SWEEP_BATCH = 200


async def sweep_once(
    pool: asyncpg.Pool, objects: ObjectStore, service: str, ttl_seconds: float = STAGED_TTL_SECONDS
) -> int:
    """Remove abandoned uploads and staged files older than `ttl_seconds`, and the objects of
    removed attachments; returns how many objects went. Objects go before their rows, so a
    pass interrupted by the store going down is finished by the next one."""
    cutoff = datetime.now(UTC) - timedelta(seconds=ttl_seconds)
    async with pool.acquire() as conn:
        expired = await astore.expire_abandoned(conn, cutoff)
        if expired:
            log.info("attachment sweeper: %d abandoned uploads expired", expired)
        rows = await astore.removed(conn, SWEEP_BATCH)
    swept = 0
    for row in rows:
        await objects.delete(row.object_key)
        async with pool.acquire() as conn:
            await astore.delete_removed(conn, row.workspace_id, row.id)
        swept += 1
    aborted = await objects.abort_stale_uploads(service, cutoff)
    if swept or aborted:
        log.info("attachment sweeper: %d objects removed, %d uploads aborted", swept, aborted)
    return swept


async def sweep_forever(
    pool: asyncpg.Pool, objects: ObjectStore, service: str, interval: float
) -> None:
    """Sweep every `interval` seconds until cancelled; a store that is down is retried."""
    while True:
        try:
            with contextlib.suppress(ObjectStoreUnavailable):
                await objects.ensure_bucket()
            await sweep_once(pool, objects, service)
        except (ObjectStoreUnavailable, OSError, asyncpg.PostgresError) as exc:
            log.warning("attachment sweeper: %s; retrying in %.0fs", exc, interval)
        await asyncio.sleep(interval)
