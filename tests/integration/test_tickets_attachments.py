"""Ticket attachments in the tickets service against real PostgreSQL, NATS, gRPC and SeaweedFS:
staging, attaching with a ticket or comment, who may read what, limits, type by content,
removal, the sweeper, and the object store going down."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from frontdesk.v1 import common_pb2, tickets_pb2, tickets_pb2_grpc

from deploy.embedded import EmbeddedS3, free_port
from services.chassis.identity import stream_head_var
from services.chassis.objectstore import ObjectStore, S3Settings
from services.chassis.upload_stream import send_upload
from services.tickets import jobs
from tests.people import People, workspace
from tests.signing import channel
from tests.stack import Stack

T = tickets_pb2
PORTAL = ("Ticket:read", "Ticket:create")
AGENT = ("Ticket:manage",)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(3000)
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(2000)


def caller(ws: str, person: str, perms: tuple[str, ...] = PORTAL) -> common_pb2.Caller:
    return common_pb2.Caller(workspace_id=ws, person_id=person, permissions=list(perms))


@pytest.fixture
async def stub(stack: Stack) -> AsyncIterator[tickets_pb2_grpc.TicketServiceStub]:
    await stack.start("directory")
    await stack.start("tickets")
    ch = channel(stack.addresses["tickets"])
    try:
        yield tickets_pb2_grpc.TicketServiceStub(ch)
    finally:
        await ch.close()


@pytest.fixture
async def people(stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub) -> People:
    return await workspace(stack)


async def upload(
    stub: tickets_pb2_grpc.TicketServiceStub,
    who: common_pb2.Caller,
    data: bytes,
    name: str = "screen.png",
    ticket_id: str = "",
    chunk: int = 64 * 1024,
) -> tickets_pb2.Attachment:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    header = T.AttachmentHeader(caller=who, ticket_id=ticket_id, name=name)
    head = stream_head_var.set(header)  # the stream's principal is signed from its header
    try:
        answer: tickets_pb2.Attachment = await send_upload(
            stub.UploadAttachment(),
            T.UploadAttachmentRequest(header=header),
            chunks(),
            lambda c: T.UploadAttachmentRequest(chunk=c),
        )
    finally:
        stream_head_var.reset(head)
    return answer


async def incident(
    stub: tickets_pb2_grpc.TicketServiceStub, who: common_pb2.Caller, ids: list[str]
) -> tickets_pb2.Ticket:
    return await stub.CreateTicket(
        T.CreateTicketRequest(
            caller=who,
            type=T.TICKET_TYPE_INCIDENT,
            title="Laptop screen broken",
            description="See the screenshot",
            impact=T.TICKET_LEVEL_LOW,
            urgency=T.TICKET_LEVEL_LOW,
            attachment_ids=ids,
        )
    )


async def fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


def bucket(stack: Stack, **overrides: str) -> ObjectStore:
    env = stack.env(**overrides)
    settings = S3Settings.from_env(env)
    assert settings is not None
    return ObjectStore(settings)


async def test_file_staged_then_attached_with_the_ticket_and_readable_by_requester_and_agent(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    me = caller(people.ws, await people.person(*PORTAL))
    agent = caller(people.ws, await people.person(*AGENT), AGENT)
    staged = await upload(stub, me, PNG, name="../../etc/\u202escreen\u202c.png")
    assert staged.name == "screen.png"
    assert staged.content_type == "image/png" and staged.inline_image
    assert staged.size == len(PNG) and staged.sha256 == hashlib.sha256(PNG).hexdigest()
    assert staged.ticket_id == ""

    ticket = await incident(stub, me, [staged.id])
    for who in (me, agent):
        detail = await stub.GetTicket(T.GetTicketRequest(caller=who, ticket_id=ticket.id))
        assert [a.id for a in detail.attachments] == [staged.id]
        got = await stub.GetAttachment(
            T.GetAttachmentRequest(caller=who, ticket_id=ticket.id, attachment_id=staged.id)
        )
        assert await fetch(got.url) == PNG
    # The object's key carries the workspace.
    db = await stack.connect("tickets")
    key = await db.fetchval(
        "select object_key from attachments where id = $1", uuid.UUID(staged.id)
    )
    assert key.startswith(f"{people.ws}/tickets/new/")
    outbox = await db.fetch("select subject from outbox where subject like '%attachment_added'")
    assert len(outbox) == 1

    # A staged file is attached once only; a second ticket naming it is refused whole.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await incident(stub, me, [staged.id])
    assert again.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await db.fetchval("select count(*) from tickets") == 1


async def test_others_never_reach_a_file(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    me = caller(people.ws, await people.person(*PORTAL))
    someone = caller(people.ws, await people.person(*PORTAL))
    other_ws = await workspace(stack)
    stranger = caller(other_ws.ws, await other_ws.person(*AGENT), AGENT)
    staged = await upload(stub, me, PNG)
    # Another person cannot attach my staged file.
    with pytest.raises(grpc.aio.AioRpcError) as stolen:
        await incident(stub, someone, [staged.id])
    assert stolen.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ticket = await incident(stub, me, [staged.id])
    for who in (someone, stranger):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await stub.GetAttachment(
                T.GetAttachmentRequest(caller=who, ticket_id=ticket.id, attachment_id=staged.id)
            )
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_internal_note_files_are_for_agents_only(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    me = caller(people.ws, await people.person(*PORTAL))
    agent = caller(people.ws, await people.person(*AGENT), AGENT)
    ticket = await incident(stub, me, [])
    note_file = await upload(
        stub, agent, b"internal findings\n", name="notes.txt", ticket_id=ticket.id
    )
    public_file = await upload(stub, agent, PNG, name="fix.png", ticket_id=ticket.id)
    await stub.AddComment(
        T.AddCommentRequest(
            caller=agent,
            ticket_id=ticket.id,
            body="root cause",
            internal=True,
            attachment_ids=[note_file.id],
        )
    )
    await stub.AddComment(
        T.AddCommentRequest(
            caller=agent, ticket_id=ticket.id, body="", attachment_ids=[public_file.id]
        )
    )
    mine = await stub.GetTicket(T.GetTicketRequest(caller=me, ticket_id=ticket.id))
    assert [a.id for a in mine.attachments] == [public_file.id]
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await stub.GetAttachment(
            T.GetAttachmentRequest(caller=me, ticket_id=ticket.id, attachment_id=note_file.id)
        )
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    agents = await stub.GetTicket(T.GetTicketRequest(caller=agent, ticket_id=ticket.id))
    assert {a.id: a.internal for a in agents.attachments} == {
        note_file.id: True,
        public_file.id: False,
    }
    assert agents.attachments[0].content_type == "text/plain"


async def test_type_is_judged_by_content_and_limits_hold(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    me = caller(people.ws, await people.person(*PORTAL))
    for data, name in (
        (EXE, "holiday.png"),
        (b"#!/bin/sh\nrm -rf /\n", "notes.txt"),
        (b"<svg onload=alert(1)>", "x.txt"),
        (b"", "empty.png"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await upload(stub, me, data, name=name)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reason = dict(refused.value.trailing_metadata() or ())["fd-reason"]
        assert reason == ("invalid" if not data else "unsupported_type")
    db = await stack.connect("tickets")
    assert await db.fetchval("select count(*) from attachments") == 0


async def test_size_and_count_limits(stack: Stack) -> None:
    await stack.start("directory")
    await stack.start(
        "tickets",
        FRONTDESK_ATTACHMENT_MAX_FILE_MB=str(100 / 1024),  # 100 KiB
        FRONTDESK_ATTACHMENT_MAX_ITEM_MB=str(250 / 1024),
        FRONTDESK_ATTACHMENT_MAX_FILES="3",
    )
    people = await workspace(stack)
    me = caller(people.ws, await people.person(*PORTAL))
    async with channel(stack.addresses["tickets"]) as ch:
        stub = tickets_pb2_grpc.TicketServiceStub(ch)
        big = b"a" * (100 * 1024 + 1)
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await upload(stub, me, big, name="big.txt")
        assert dict(too_big.value.trailing_metadata() or ())["fd-reason"] == "too_large"
        assert "102400 bytes" in (too_big.value.details() or "")
        exact = await upload(stub, me, b"a" * (100 * 1024), name="exact.txt")
        second = await upload(stub, me, b"b" * (100 * 1024), name="second.txt")
        third = await upload(stub, me, b"c" * (100 * 1024), name="third.txt")
        # Three files of 100 KiB exceed the 250 KiB per ticket: the ticket is refused whole.
        with pytest.raises(grpc.aio.AioRpcError) as item:
            await incident(stub, me, [exact.id, second.id, third.id])
        assert dict(item.value.trailing_metadata() or ())["fd-reason"] == "too_large"
        ticket = await incident(stub, me, [exact.id, second.id])
        small = [
            await upload(stub, me, b"x\n", name=f"{i}.txt", ticket_id=ticket.id) for i in range(1)
        ]
        await stub.AddComment(
            T.AddCommentRequest(
                caller=me,
                ticket_id=ticket.id,
                body="one more",
                attachment_ids=[s.id for s in small],
            )
        )
        # Three files on the ticket: a fourth is refused at upload already.
        with pytest.raises(grpc.aio.AioRpcError) as count:
            await upload(stub, me, b"y\n", name="4.txt", ticket_id=ticket.id)
        assert dict(count.value.trailing_metadata() or ())["fd-reason"] == "too_large"
        db = await stack.connect("tickets")
        states = await db.fetch("select state, count(*) as n from attachments group by state")
        assert {r["state"]: r["n"] for r in states} == {"attached": 3, "staged": 1}


async def test_removal_by_uploader_or_agent_with_history_and_event(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    me = caller(people.ws, await people.person(*PORTAL))
    someone = caller(people.ws, await people.person(*PORTAL))
    agent = caller(people.ws, await people.person(*AGENT), AGENT)
    a1 = await upload(stub, me, PNG)
    a2 = await upload(stub, me, b"log line\n", name="log.txt")
    ticket = await incident(stub, me, [a1.id, a2.id])
    db = await stack.connect("tickets")
    key1 = await db.fetchval("select object_key from attachments where id = $1", uuid.UUID(a1.id))
    store = bucket(stack)
    await store.start()
    try:
        assert await store.exists(key1)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.RemoveAttachment(
                T.RemoveAttachmentRequest(caller=someone, ticket_id=ticket.id, attachment_id=a1.id)
            )
        await stub.RemoveAttachment(
            T.RemoveAttachmentRequest(caller=me, ticket_id=ticket.id, attachment_id=a1.id)
        )
        await stub.RemoveAttachment(
            T.RemoveAttachmentRequest(caller=agent, ticket_id=ticket.id, attachment_id=a2.id)
        )
        assert not await store.exists(key1)
    finally:
        await store.close()
    detail = await stub.GetTicket(T.GetTicketRequest(caller=agent, ticket_id=ticket.id))
    assert list(detail.attachments) == []
    removals = [
        (h.field, h.old_value, h.actor_id) for h in detail.field_history if h.new_value == ""
    ]
    assert removals == [
        ("attachment", "screen.png", me.person_id),
        ("attachment", "log.txt", agent.person_id),
    ]
    subjects = await db.fetch("select subject from outbox where subject like '%attachment_removed'")
    assert len(subjects) == 2
    assert await db.fetchval("select count(*) from attachments") == 0


async def test_sweeper_removes_what_a_failed_item_left(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    me = caller(people.ws, await people.person(*PORTAL))
    staged = await upload(stub, me, PNG)
    # The item's transaction fails (an invalid ticket): the file stays staged, unseen.
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateTicket(
            T.CreateTicketRequest(
                caller=me, type=T.TICKET_TYPE_INCIDENT, title="", attachment_ids=[staged.id]
            )
        )
    db = await stack.connect("tickets")
    key = await db.fetchval(
        "select object_key from attachments where id = $1", uuid.UUID(staged.id)
    )
    store = bucket(stack)
    await store.start()
    try:
        assert await store.exists(key)
        pool = stack.services["tickets"].resources.pool
        assert await jobs.sweep_once(pool, store, ttl_seconds=3600) == 0  # still young
        assert await store.exists(key)
        assert await jobs.sweep_once(pool, store, ttl_seconds=0) == 1
        assert not await store.exists(key)
    finally:
        await store.close()
    assert await db.fetchval("select count(*) from attachments") == 0
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await incident(stub, me, [staged.id])
    assert gone.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_store_down_is_unavailable_and_leaves_nothing_visible(stack: Stack) -> None:
    """With the object store stopped uploads and downloads are UNAVAILABLE and nothing shows;
    once it is back the same calls work and the sweeper finishes what was left."""
    server = EmbeddedS3(
        Path(tempfile.mkdtemp(prefix="s3-down-")), free_port(), [free_port() for _ in range(9)]
    )
    server.start()
    try:
        access, secret = server.credentials()
        env = {
            "FRONTDESK_S3_ENDPOINT": server.endpoint,
            "FRONTDESK_S3_ACCESS_KEY": access,
            "FRONTDESK_S3_SECRET_KEY": secret,
        }
        await stack.start("directory")
        await stack.start("tickets", **env)
        people = await workspace(stack)
        me = caller(people.ws, await people.person(*PORTAL))
        async with channel(stack.addresses["tickets"]) as ch:
            stub = tickets_pb2_grpc.TicketServiceStub(ch)
            kept = await upload(stub, me, PNG)
            ticket = await incident(stub, me, [kept.id])
            server.stop()
            with pytest.raises(grpc.aio.AioRpcError) as down:
                await upload(stub, me, b"PK\x03\x04" + os.urandom(20 * 1024 * 1024), name="big.zip")
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE
            # Presigning needs no round trip; reading the URL (what the gateway does) fails.
            down_get = await stub.GetAttachment(
                T.GetAttachmentRequest(caller=me, ticket_id=ticket.id, attachment_id=kept.id)
            )
            with pytest.raises(aiohttp.ClientConnectionError):
                await fetch(down_get.url)
            detail = await stub.GetTicket(T.GetTicketRequest(caller=me, ticket_id=ticket.id))
            assert [a.id for a in detail.attachments] == [kept.id]
            db = await stack.connect("tickets")
            states = await db.fetch("select state from attachments order by created_at")
            # The refused upload is no staged file: its row waits for the sweeper.
            assert [r["state"] for r in states] == ["attached", "removed"]
            server.start()
            store = bucket(stack, **env)
            await store.start()
            try:
                pool = stack.services["tickets"].resources.pool
                assert await jobs.sweep_once(pool, store) == 1
            finally:
                await store.close()
            states = await db.fetch("select state from attachments")
            assert [r["state"] for r in states] == ["attached"]
            again = await upload(stub, me, PNG)
            assert again.size == len(PNG)
            got = await stub.GetAttachment(
                T.GetAttachmentRequest(caller=me, ticket_id=ticket.id, attachment_id=kept.id)
            )
            assert await fetch(got.url) == PNG
    finally:
        server.stop()


async def test_workspace_settings_set_the_limits(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    """An admin's portal settings bound files per item and sizes; another workspace keeps the
    defaults."""
    from frontdesk.v1 import directory_pb2

    await people.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=people.system, attachment_max_file_mb=1, attachment_max_files=2
        )
    )
    me = caller(people.ws, await people.person(*PORTAL))
    first = await upload(stub, me, b"a" * 1024 * 1024, name="exact.txt")
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await upload(stub, me, b"a" * (1024 * 1024 + 1), name="big.txt")
    assert dict(too_big.value.trailing_metadata() or ())["fd-reason"] == "too_large"
    assert "1 MB" in (too_big.value.details() or "")
    second = await upload(stub, me, b"b\n", name="b.txt")
    # Two files staged: the workspace allows two per item, so a third waits for the first two.
    with pytest.raises(grpc.aio.AioRpcError) as waiting:
        await upload(stub, me, b"c\n", name="c.txt")
    assert dict(waiting.value.trailing_metadata() or ())["fd-reason"] == "too_large"
    ticket = await incident(stub, me, [first.id, second.id])
    with pytest.raises(grpc.aio.AioRpcError) as full:
        await upload(stub, me, b"d\n", name="d.txt", ticket_id=ticket.id)
    assert "at most 2 files" in (full.value.details() or "")

    other = await workspace(stack)
    them = caller(other.ws, await other.person(*PORTAL))
    big = await upload(stub, them, b"a" * (1024 * 1024 + 1), name="big.txt")
    assert big.size == 1024 * 1024 + 1
