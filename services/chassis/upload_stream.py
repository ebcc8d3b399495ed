"""Both ends of a client-streaming upload call (a header message, then the file's chunks).

When the receiving service refuses a file midway (too large, wrong type, store down), the
sender must learn the call's status, not a failed write: `send_upload` races each write against
the end of the call. The receiver reads on briefly before it answers (`drain`), so a sender
with megabytes in flight gets the status instead of a broken stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

T = TypeVar("T")
CHUNK = 256 * 1024


async def send_upload(
    call: Any, header: Any, chunks: AsyncIterator[bytes], chunk_message: Callable[[bytes], Any]
) -> Any:
    """Write `header`, then one message per chunk; return the response (or raise its error).

    `call` is a grpc.aio StreamUnaryCall. An exception raised by `chunks` (the client went
    away, a malformed body) cancels the call and propagates.
    """
    ended = asyncio.ensure_future(call.code())
    try:
        await _write(call, ended, header)
        async for chunk in chunks:
            if ended.done() or not await _write(call, ended, chunk_message(chunk)):
                break
        else:
            if not ended.done():
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    await call.done_writing()
    except BaseException:
        call.cancel()
        raise
    finally:
        if not ended.done():
            ended.cancel()
    return await call


async def _write(call: Any, ended: asyncio.Future[Any], message: Any) -> bool:
    """Write one message; False when the call ended first (its status says why)."""
    write = asyncio.ensure_future(call.write(message))
    await asyncio.wait({write, ended}, return_when=asyncio.FIRST_COMPLETED)
    if not write.done():
        write.cancel()
        return False
    try:
        write.result()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return False
    return True


async def drain(messages: AsyncIterator[Any], seconds: float = 1.0) -> None:
    """Read and drop what the sender still has in flight, for at most `seconds`."""

    async def read_all() -> None:
        async for _ in messages:
            pass

    with contextlib.suppress(Exception):
        await asyncio.wait_for(read_all(), seconds)


class ReceivedUpload:
    """The receiving end: `await ReceivedUpload.open(messages)` reads the header (the first
    message's `header` field), then `chunks()` yields the file's bytes. On a refusal, `drain()`
    before answering."""

    def __init__(self, header: Any, messages: AsyncIterator[Any]) -> None:
        self.header = header
        self._messages = messages

    @classmethod
    async def open(cls, request_iterator: AsyncIterator[Any]) -> ReceivedUpload:
        from services.chassis.attachments import AttachmentRefused

        messages = request_iterator.__aiter__()
        try:
            first = await anext(messages)
        except StopAsyncIteration:
            raise AttachmentRefused("header: the first message must be the header") from None
        if first.WhichOneof("part") != "header":
            raise AttachmentRefused("header: the first message must be the header")
        return cls(first.header, messages)

    async def chunks(self) -> AsyncIterator[bytes]:
        from services.chassis.attachments import AttachmentRefused

        async for message in self._messages:
            if message.WhichOneof("part") != "chunk":
                raise AttachmentRefused("chunk: only the first message is a header")
            if message.chunk:
                yield message.chunk

    async def drain(self) -> None:
        await drain(self._messages)
