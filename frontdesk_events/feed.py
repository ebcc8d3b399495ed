"""Connect, bootstrap from the access snapshot, follow with a durable JetStream consumer from
the snapshot's sequence, de-duplicate by event_id, decode to typed protobuf messages.

Delivery is at least once: an event is acked after the caller's loop body for it returns (the
generator resumes), so a crash before that redelivers it; duplicates are dropped by event_id.
While NATS is away (a restart), fetches fail and are retried with backoff; the durable consumer
keeps its place on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
import nats
from frontdesk.v1 import access_pb2, access_pb2_grpc, common_pb2, events_pb2
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

STREAM = "FD_DIRECTORY"


@dataclass(frozen=True)
class Decoded:
    """One event: the envelope, its service and name (the subject's parts) and typed payload."""

    envelope: events_pb2.Event
    service: str
    name: str
    payload: Message
    stream_sequence: int

    @property
    def event_id(self) -> str:
        return self.envelope.event_id


def decode(data: bytes, stream_sequence: int = 0) -> Decoded:
    """The typed event of a message body (a binary frontdesk.v1.Event)."""
    envelope = events_pb2.Event()
    envelope.ParseFromString(data)
    service = envelope.WhichOneof("payload")
    if service is None:
        raise ValueError("event without payload")
    inner = getattr(envelope, service)
    name = inner.WhichOneof("kind")
    if name is None:
        raise ValueError("event payload without kind")
    return Decoded(envelope, service, name, getattr(inner, name), stream_sequence)


@dataclass
class Snapshot:
    """All pages of a GetAccessSnapshot, and the sequence to follow from (sequence + 1)."""

    sequence: int
    persons: list[access_pb2.AccessPerson] = field(default_factory=list)
    roles: list[access_pb2.AccessRole] = field(default_factory=list)
    groups: list[access_pb2.AccessGroup] = field(default_factory=list)


class Feed:
    def __init__(
        self,
        nats_url: str,
        directory_addr: str,
        workspace_id: str,
        *,
        caller: common_pb2.Caller | None = None,
        seen_limit: int = 100_000,
        directory_channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._nats_url = nats_url
        self._directory_addr = directory_addr
        self.workspace_id = workspace_id
        # Who asks for the snapshot (Person:read); the service's own identity by default.
        self._caller = caller or common_pb2.Caller(workspace_id=workspace_id)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_limit = seen_limit
        self._nc: NATS | None = None
        # Calls need the service's signed principal: pass the channel of its Identity
        # (services.chassis.identity: identity.channel(address, "directory")).
        self._channel: grpc.aio.Channel | None = directory_channel
        self._own_channel = directory_channel is None
        self._start: int | None = None
        self.duplicates = 0

    async def connect(self) -> None:
        self._nc = await nats.connect(
            servers=[self._nats_url],
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            allow_reconnect=True,
            name=f"frontdesk-events-{self.workspace_id}",
        )
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._directory_addr)

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._channel is not None and self._own_channel:
            await self._channel.close()

    async def snapshot(self, person_ids: Sequence[str] = ()) -> Snapshot:
        """Every page of the workspace's access state (or only `person_ids`)."""
        assert self._channel is not None, "connect first"
        stub = access_pb2_grpc.AccessServiceStub(self._channel)
        token = ""
        result: Snapshot | None = None
        while True:
            page = await stub.GetAccessSnapshot(
                access_pb2.AccessSnapshotRequest(
                    caller=self._caller,
                    page=common_pb2.PageRequest(page_size=500, page_token=token),
                    person_ids=list(person_ids),
                )
            )
            if result is None:
                result = Snapshot(
                    page.stream_sequence, roles=list(page.roles), groups=list(page.groups)
                )
            result.persons.extend(page.persons)
            token = page.next_page_token
            if not token:
                return result

    async def bootstrap(self) -> Snapshot:
        """The snapshot to start from; `follow` then starts right after its sequence."""
        snap = await self.snapshot()
        self._start = snap.sequence + 1
        return snap

    async def follow(
        self, durable: str, *, batch: int = 100, idle: float = 0.5
    ) -> AsyncIterator[Decoded]:
        """The workspace's directory events from the bootstrap's sequence on, each once.

        The durable consumer is made anew at each bootstrap (its position is the snapshot's);
        without a bootstrap, an existing durable consumer resumes where it was.
        """
        assert self._nc is not None, "connect first"
        js = self._nc.jetstream()
        subject = f"fd.directory.{self.workspace_id}.>"
        if self._start is not None:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(STREAM, durable)
            config = ConsumerConfig(
                durable_name=durable,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self._start,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject=subject,
                ack_wait=30,
            )
            await js.add_consumer(STREAM, config)
            self._start = None
        sub = await js.pull_subscribe_bind(durable, stream=STREAM)
        backoff = 0.1
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=idle)
                backoff = 0.1
            except TimeoutError:
                continue
            except (nats.errors.Error, OSError) as exc:
                log.info("fetch failed (%s); retrying in %.1fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for msg in msgs:
                try:
                    event = decode(msg.data, msg.metadata.sequence.stream)
                except (DecodeError, ValueError):
                    log.warning("undecodable message on %s; terminated", msg.subject)
                    await msg.term()
                    continue
                if event.event_id in self._seen:
                    self.duplicates += 1
                else:
                    self._remember(event.event_id)
                    yield event
                with contextlib.suppress(Exception):
                    await msg.ack()

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        while len(self._seen) > self._seen_limit:
            self._seen.popitem(last=False)
