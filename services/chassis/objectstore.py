"""The object store: bytes of attachments in an S3-compatible bucket, through aiobotocore.

Services keep the metadata of their files; this module only moves bytes. Keys carry the
workspace (`<workspace_id>/<service>/<item>/<attachment_id>`), so a listing or a lifecycle rule
can never mix tenants. Any failure to reach the store (connection refused, timeouts, 5xx) is
`ObjectStoreUnavailable`, which servicers map to UNAVAILABLE (503 at the gateway).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from services.chassis.errors import NotFound, Unavailable
from services.chassis.settings import SettingsError

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

log = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024  # S3 parts are at least 5 MiB (but the last); this bounds memory
READ_CHUNK = 256 * 1024


class ObjectStoreUnavailable(Unavailable):
    """The object store could not be reached or failed (UNAVAILABLE, retry later)."""


class ObjectNotFound(NotFound):
    """No object under that key."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    bucket: str
    region: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings | None:
        """FRONTDESK_S3_ENDPOINT and its credentials, or None when no object store is set."""
        endpoint = env.get("FRONTDESK_S3_ENDPOINT", "")
        if not endpoint:
            return None
        access = env.get("FRONTDESK_S3_ACCESS_KEY", "")
        secret = env.get("FRONTDESK_S3_SECRET_KEY", "")
        if not access or not secret:
            raise SettingsError(
                "FRONTDESK_S3_ACCESS_KEY and FRONTDESK_S3_SECRET_KEY are required "
                "with FRONTDESK_S3_ENDPOINT"
            )
        return cls(
            endpoint=endpoint,
            bucket=env.get("FRONTDESK_S3_BUCKET", "") or "frontdesk",
            region=env.get("FRONTDESK_S3_REGION", "") or "us-east-1",
            access_key=access,
            secret_key=secret,
        )


# Infected files are moved under this prefix (then `quarantine/<their key>`), which no route
# reads: a bucket policy or lifecycle rule can single it out.
QUARANTINE_PREFIX = "quarantine/"


def object_key(workspace_id: object, service: str, item: object, attachment_id: object) -> str:
    return f"{workspace_id}/{service}/{item}/{attachment_id}"


@contextlib.contextmanager
def _unavailable(action: str) -> Iterator[None]:
    """Failures of the store become ObjectStoreUnavailable; a missing key ObjectNotFound."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"NoSuchKey", "404", "NotFound"}:
            raise ObjectNotFound(action) from exc
        raise ObjectStoreUnavailable(f"object store: {action} failed ({code})") from exc
    except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ObjectStoreUnavailable(
            f"object store: {action} failed ({type(exc).__name__})"
        ) from exc


class ObjectStore:
    """One aiobotocore S3 client for the life of the service (open with `start`)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("ObjectStore.start() was not awaited")
        return self._client

    async def start(self) -> None:
        session = get_session()
        config = AioConfig(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            # Newer botocore adds CRC checksums to every request; not every S3 server takes them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=self.settings.endpoint,
                region_name=self.settings.region,
                aws_access_key_id=self.settings.access_key,
                aws_secret_access_key=self.settings.secret_key,
                config=config,
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (harmless when it does)."""
        with _unavailable("head bucket"):
            try:
                await self.client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in {"404", "NoSuchBucket"}:
                    raise
            try:
                await self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Store what `chunks` yields under `key`; returns its size.

        Up to one part (8 MiB) is buffered at a time: a small file is one PUT, a large one a
        multipart upload that is aborted when the source or the store fails, so nothing
        half-written stays visible. Exceptions raised by `chunks` propagate unchanged.
        """
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= PART_SIZE:
                    if upload_id is None:
                        with _unavailable("start upload"):
                            started = await self.client.create_multipart_upload(
                                Bucket=self.bucket, Key=key, ContentType=content_type
                            )
                        upload_id = started["UploadId"]
                    await self._part(key, upload_id, parts, bytes(buffer))
                    buffer.clear()
            if upload_id is None:
                with _unavailable("put"):
                    await self.client.put_object(
                        Bucket=self.bucket, Key=key, Body=bytes(buffer), ContentType=content_type
                    )
                return size
            if buffer:
                await self._part(key, upload_id, parts, bytes(buffer))
            with _unavailable("complete upload"):
                await self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
            upload_id = None
            return size
        finally:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )

    async def _part(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], body: bytes
    ) -> None:
        number = len(parts) + 1
        with _unavailable("upload part"):
            answer = await self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def get_stream(self, key: str, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        """The object's bytes in chunks (ObjectNotFound, ObjectStoreUnavailable)."""
        with _unavailable("get"):
            answer = await self.client.get_object(Bucket=self.bucket, Key=key)
        body = answer["Body"]
        try:
            with _unavailable("read"):
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""
        with _unavailable("delete"):
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def move(self, key: str, to: str) -> None:
        """Copy the object to `to` inside the store (the bytes do not pass through us), then
        remove it from `key`. A single CopyObject: objects up to 5 GB."""
        with _unavailable("copy"):
            await self.client.copy_object(
                Bucket=self.bucket, Key=to, CopySource={"Bucket": self.bucket, "Key": key}
            )
        await self.delete(key)

    async def exists(self, key: str) -> bool:
        try:
            with _unavailable("head"):
                await self.client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def presign_get(self, key: str, expires: int = 60) -> str:
        """A URL that reads this one object for `expires` seconds, no credentials needed."""
        with _unavailable("presign"):
            url: str = await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
            )
        return url

    async def list_objects(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        """(key, last modified) of every object under `prefix`."""
        paginator = self.client.get_paginator("list_objects_v2")
        with _unavailable("list"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"]

    async def abort_stale_uploads(self, service: str, before: datetime) -> int:
        """Abort `service`'s multipart uploads started before `before` (a crashed writer)."""
        aborted = 0
        with _unavailable("list uploads"):
            answer = await self.client.list_multipart_uploads(Bucket=self.bucket)
            for upload in answer.get("Uploads", []):
                parts = upload["Key"].split("/")
                if len(parts) > 1 and parts[1] == service and upload["Initiated"] < before:
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted
