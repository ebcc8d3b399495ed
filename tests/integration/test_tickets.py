"""The tickets service against real PostgreSQL, NATS and gRPC: numbers, idempotency, who sees
what, internal notes, the workflow, reopening, the queue and the events on JetStream.

Over 600 lines: one service's behaviour under one fixture set; split by concept (portal, queue) in a later change.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import nats
import pytest
from frontdesk.v1 import common_pb2, events_pb2, tickets_pb2, tickets_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from tests.people import People, workspace
from tests.signing import channel
from tests.stack import Stack

T = tickets_pb2
PORTAL = ("Ticket:read", "Ticket:create")
AGENT = ("Ticket:manage",)


def caller(ws: str, person: str, perms: tuple[str, ...] = PORTAL) -> common_pb2.Caller:
    return common_pb2.Caller(workspace_id=ws, person_id=person, permissions=list(perms))


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
async def people(stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub) -> People:
    return await workspace(stack)


@pytest.fixture
async def stub(stack: Stack) -> AsyncIterator[tickets_pb2_grpc.TicketServiceStub]:
    await stack.start("directory")  # tickets checks the persons callers name with it
    await stack.start("tickets")
    ch = channel(stack.addresses["tickets"])
    try:
        yield tickets_pb2_grpc.TicketServiceStub(ch)
    finally:
        await ch.close()


async def incident(
    stub: tickets_pb2_grpc.TicketServiceStub,
    who: common_pb2.Caller,
    title: str = "Printer on fire",
    description: str = "Smoke from the third floor printer",
    impact: int = T.TICKET_LEVEL_MEDIUM,
    urgency: int = T.TICKET_LEVEL_MEDIUM,
    key: str = "",
) -> tickets_pb2.Ticket:
    return await stub.CreateTicket(
        T.CreateTicketRequest(
            caller=who,
            type=T.TICKET_TYPE_INCIDENT,
            title=title,
            description=description,
            impact=impact,  # type: ignore[arg-type]
            urgency=urgency,  # type: ignore[arg-type]
            idempotency_key=key,
        )
    )


async def change(
    stub: tickets_pb2_grpc.TicketServiceStub, who: common_pb2.Caller, title: str = "Upgrade VPN"
) -> tickets_pb2.Ticket:
    start = datetime(2030, 1, 10, 20, 0, tzinfo=UTC)
    return await stub.CreateTicket(
        T.CreateTicketRequest(
            caller=who,
            type=T.TICKET_TYPE_CHANGE_REQUEST,
            title=title,
            description="Move the VPN concentrator to the new release",
            reason="Security fixes",
            risk=T.TICKET_LEVEL_HIGH,
            planned_start=ts(start),
            planned_end=ts(start + timedelta(hours=2)),
        )
    )


async def code_of(awaitable: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


async def test_both_types_get_numbers_per_workspace_and_type_and_itil_priority(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People, stack: Stack
) -> None:
    ws, alice = people.ws, await people.person(*PORTAL)
    elsewhere_ws = await workspace(stack)
    me = caller(ws, alice)
    first = await incident(stub, me, impact=T.TICKET_LEVEL_HIGH, urgency=T.TICKET_LEVEL_HIGH)
    second = await incident(stub, me, impact=T.TICKET_LEVEL_LOW, urgency=T.TICKET_LEVEL_MEDIUM)
    chg = await change(stub, me)
    elsewhere = await incident(stub, caller(elsewhere_ws.ws, await elsewhere_ws.person(*PORTAL)))

    assert [first.number, second.number, chg.number] == ["INC-1", "INC-2", "CHG-1"]
    assert elsewhere.number == "INC-1"
    assert first.priority == T.TICKET_PRIORITY_CRITICAL
    assert second.priority == T.TICKET_PRIORITY_LOW
    assert chg.priority == T.TICKET_PRIORITY_MEDIUM  # no impact/urgency given: medium x medium
    assert first.status == T.TICKET_STATUS_NEW
    assert first.requester_id == alice
    assert chg.type == T.TICKET_TYPE_CHANGE_REQUEST
    assert chg.reason == "Security fixes" and chg.risk == T.TICKET_LEVEL_HIGH
    assert chg.planned_end.ToDatetime() - chg.planned_start.ToDatetime() == timedelta(hours=2)

    # The number works wherever an id does.
    detail = await stub.GetTicket(T.GetTicketRequest(caller=me, ticket_id="chg-1"))
    assert detail.ticket.id == chg.id
    assert [(h.from_status, h.to_status) for h in detail.status_history] == [
        (T.TICKET_STATUS_UNSPECIFIED, T.TICKET_STATUS_NEW)
    ]


async def test_concurrent_creates_get_consecutive_numbers_without_gaps(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    ws = people.ws
    requesters = [await people.person(*PORTAL) for _ in range(25)]
    made = await asyncio.gather(
        *(incident(stub, caller(ws, who), title=f"t{n}") for n, who in enumerate(requesters))
    )
    assert sorted(int(t.number.split("-")[1]) for t in made) == list(range(1, 26))


async def test_invalid_input_names_every_field(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    ws, alice = people.ws, await people.person(*PORTAL)
    code, message = await code_of(
        stub.CreateTicket(
            T.CreateTicketRequest(caller=caller(ws, alice), type=T.TICKET_TYPE_INCIDENT, title=" ")
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.split("; ") == [
        "title: required",
        "description: required",
        "impact: required (low, medium or high)",
        "urgency: required (low, medium or high)",
    ]
    start = datetime(2030, 1, 1, tzinfo=UTC)
    code, message = await code_of(
        stub.CreateTicket(
            T.CreateTicketRequest(
                caller=caller(ws, alice),
                type=T.TICKET_TYPE_CHANGE_REQUEST,
                title="Swap core switch",
                description="x",
                reason="old",
                risk=T.TICKET_LEVEL_LOW,
                planned_start=ts(start),
                planned_end=ts(start - timedelta(minutes=1)),
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == "planned_end: must be after planned_start"
    code, message = await code_of(
        stub.CreateTicket(T.CreateTicketRequest(caller=caller(ws, alice), title="x"))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("type: ")
    # Without Ticket:create nothing is created.
    code, _ = await code_of(incident(stub, caller(ws, alice, ("Ticket:read",))))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    conn_count = await stub.ListMyTickets(T.ListMyTicketsRequest(caller=caller(ws, alice)))
    assert list(conn_count.tickets) == []


async def test_retried_create_with_the_same_key_returns_the_same_ticket(
    stack: Stack, stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    ws, alice, bob = people.ws, await people.person(*PORTAL), await people.person(*PORTAL)
    first = await incident(stub, caller(ws, alice), key="form-123")
    again = await incident(stub, caller(ws, alice), key="form-123")
    racing = await asyncio.gather(*(incident(stub, caller(ws, alice), key="k-2") for _ in range(8)))
    bobs = await incident(stub, caller(ws, bob), key="form-123")

    assert again.id == first.id and again.number == "INC-1"
    assert len({t.id for t in racing}) == 1
    assert racing[0].number == "INC-2"  # the losers of the race used no number
    assert bobs.id != first.id and bobs.number == "INC-3"
    conn = await stack.connect("tickets")
    assert (
        await conn.fetchval("select count(*) from tickets where workspace_id = $1", uuid.UUID(ws))
        == 3
    )
    created = await conn.fetchval(
        "select count(*) from outbox where subject like $1", f"fd.tickets.{ws}.ticket_created"
    )
    assert created == 3


async def test_my_tickets_lists_only_mine_newest_first_with_filters_search_and_pages(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People, stack: Stack
) -> None:
    ws, alice, bob = people.ws, await people.person(*PORTAL), await people.person(*PORTAL)
    agent = caller(ws, await people.person(*AGENT), AGENT)
    mine = [await incident(stub, caller(ws, alice), title=f"Laptop {n} broken") for n in range(7)]
    chg = await change(stub, caller(ws, alice), title="Firewall rule for payroll")
    await incident(stub, caller(ws, bob), title="Laptop of Bob broken")
    elsewhere = await workspace(stack)
    await incident(
        stub, caller(elsewhere.ws, await elsewhere.person(*PORTAL)), title="Laptop elsewhere"
    )
    await stub.ChangeStatus(
        T.ChangeStatusRequest(
            caller=agent, ticket_id=mine[2].id, status=T.TICKET_STATUS_IN_PROGRESS
        )
    )

    everything = await stub.ListMyTickets(
        T.ListMyTicketsRequest(caller=caller(ws, alice), page=common_pb2.PageRequest(page_size=100))
    )
    assert [t.id for t in everything.tickets] == [chg.id] + [t.id for t in reversed(mine)]
    assert everything.next_page_token == ""

    pages: list[str] = []
    token = ""
    while True:
        page = await stub.ListMyTickets(
            T.ListMyTicketsRequest(
                caller=caller(ws, alice), page=common_pb2.PageRequest(page_size=3, page_token=token)
            )
        )
        assert len(page.tickets) <= 3
        pages += [t.id for t in page.tickets]
        token = page.next_page_token
        if not token:
            break
    assert pages == [t.id for t in everything.tickets]

    async def ids(**kw: object) -> list[str]:
        resp = await stub.ListMyTickets(T.ListMyTicketsRequest(caller=caller(ws, alice), **kw))  # type: ignore[arg-type]
        return [t.number for t in resp.tickets]

    assert await ids(type=T.TICKET_TYPE_CHANGE_REQUEST) == ["CHG-1"]
    assert await ids(statuses=[T.TICKET_STATUS_IN_PROGRESS]) == [mine[2].number]
    assert await ids(query="payroll firewall") == ["CHG-1"]
    assert await ids(query="laptop 4") == [mine[4].number]
    assert await ids(query="50%_off") == []
    assert await ids(query=mine[5].number.lower()) == [mine[5].number]
    assert await ids(query="Bob") == []  # Bob's ticket is not mine

    code, message = await code_of(
        stub.ListMyTickets(
            T.ListMyTicketsRequest(
                caller=caller(ws, alice), page=common_pb2.PageRequest(page_token="garbage")
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("page_token: ")


async def test_another_requesters_or_workspaces_ticket_is_not_found(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People, stack: Stack
) -> None:
    ws, alice, bob = people.ws, await people.person(*PORTAL), await people.person(*PORTAL)
    elsewhere = await workspace(stack)
    ticket = await incident(stub, caller(ws, alice))
    strangers = [
        caller(ws, bob),  # another requester, same workspace
        caller(elsewhere.ws, alice),  # the same person id in another workspace
        caller(elsewhere.ws, await elsewhere.person(*AGENT), AGENT),  # another workspace's agent
    ]
    for who in strangers:
        for ref in (ticket.id, ticket.number):
            code, _ = await code_of(stub.GetTicket(T.GetTicketRequest(caller=who, ticket_id=ref)))
            assert code == grpc.StatusCode.NOT_FOUND
        code, _ = await code_of(
            stub.AddComment(T.AddCommentRequest(caller=who, ticket_id=ticket.id, body="hi"))
        )
        assert code == grpc.StatusCode.NOT_FOUND
    # Exactly what an id that never existed gives.
    code, message = await code_of(
        stub.GetTicket(T.GetTicketRequest(caller=caller(ws, bob), ticket_id=new_id()))
    )
    assert (code, message) == (grpc.StatusCode.NOT_FOUND, "ticket not found")
    code, _ = await code_of(
        stub.GetTicket(T.GetTicketRequest(caller=caller(ws, bob), ticket_id="../etc"))
    )
    assert code == grpc.StatusCode.NOT_FOUND
    # Without Ticket:read even the requester does not see it.
    code, _ = await code_of(
        stub.GetTicket(
            T.GetTicketRequest(caller=caller(ws, alice, ("Ticket:create",)), ticket_id=ticket.id)
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    # Malformed callers are refused: no principal naming a malformed workspace verifies.
    code, message = await code_of(
        stub.GetTicket(T.GetTicketRequest(caller=caller("acme", alice), ticket_id=ticket.id))
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED and "malformed workspace" in message


async def test_internal_notes_are_never_returned_to_the_requester(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    ws, alice = people.ws, await people.person(*PORTAL)
    agent = caller(ws, await people.person(*AGENT), AGENT)
    me = caller(ws, alice)
    ticket = await incident(stub, me)
    await stub.AddComment(T.AddCommentRequest(caller=me, ticket_id=ticket.id, body="Any news?"))
    note = await stub.AddComment(
        T.AddCommentRequest(
            caller=agent, ticket_id=ticket.id, body="SECRET: vendor contract lapsed", internal=True
        )
    )
    await stub.AddComment(
        T.AddCommentRequest(caller=agent, ticket_id=ticket.id, body="We are on it")
    )
    await stub.UpdateTicket(
        T.UpdateTicketRequest(caller=agent, ticket_id=ticket.id, title="Printer on fire (3rd)")
    )
    assert note.comment.internal

    seen = await stub.GetTicket(T.GetTicketRequest(caller=me, ticket_id=ticket.id))
    assert [c.body for c in seen.comments] == ["Any news?", "We are on it"]
    assert seen.ticket.comment_count == 2
    assert "SECRET" not in str(seen)
    assert list(seen.field_history) == []

    full = await stub.GetTicket(T.GetTicketRequest(caller=agent, ticket_id=ticket.id))
    assert [(c.body, c.internal) for c in full.comments] == [
        ("Any news?", False),
        ("SECRET: vendor contract lapsed", True),
        ("We are on it", False),
    ]
    assert [(f.field, f.new_value) for f in full.field_history] == [
        ("title", "Printer on fire (3rd)")
    ]
    # A requester cannot write an internal note.
    code, _ = await code_of(
        stub.AddComment(
            T.AddCommentRequest(caller=me, ticket_id=ticket.id, body="x", internal=True)
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, message = await code_of(
        stub.AddComment(T.AddCommentRequest(caller=me, ticket_id=ticket.id, body="  "))
    )
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT, "body: required")


async def test_workflow_refuses_illegal_transitions(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    ws, alice = people.ws, await people.person(*PORTAL)
    agent = caller(ws, await people.person(*AGENT), AGENT)
    ticket = await incident(stub, caller(ws, alice))

    async def move(status: int, who: common_pb2.Caller = agent) -> tickets_pb2.Ticket:
        return await stub.ChangeStatus(
            T.ChangeStatusRequest(caller=who, ticket_id=ticket.id, status=status, note="n")  # type: ignore[arg-type]
        )

    code, message = await code_of(move(T.TICKET_STATUS_CLOSED))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert message == "status: cannot go from New to Closed"
    code, _ = await code_of(move(T.TICKET_STATUS_NEW))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code, _ = await code_of(move(T.TICKET_STATUS_IN_PROGRESS, caller(ws, alice)))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = await code_of(move(T.TICKET_STATUS_UNSPECIFIED))
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    assert (await move(T.TICKET_STATUS_IN_PROGRESS)).status == T.TICKET_STATUS_IN_PROGRESS
    assert (await move(T.TICKET_STATUS_WAITING_FOR_REQUESTER)).status == (
        T.TICKET_STATUS_WAITING_FOR_REQUESTER
    )
    resolved = await move(T.TICKET_STATUS_RESOLVED)
    assert resolved.HasField("resolved_at") and not resolved.HasField("closed_at")
    closed = await move(T.TICKET_STATUS_CLOSED)
    assert closed.HasField("closed_at")
    for target in (T.TICKET_STATUS_IN_PROGRESS, T.TICKET_STATUS_RESOLVED, T.TICKET_STATUS_NEW):
        code, _ = await code_of(move(target))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
    code, _ = await code_of(
        stub.AddComment(
            T.AddCommentRequest(caller=caller(ws, alice), ticket_id=ticket.id, body="?")
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION

    detail = await stub.GetTicket(T.GetTicketRequest(caller=caller(ws, alice), ticket_id=ticket.id))
    assert [h.to_status for h in detail.status_history] == [
        T.TICKET_STATUS_NEW,
        T.TICKET_STATUS_IN_PROGRESS,
        T.TICKET_STATUS_WAITING_FOR_REQUESTER,
        T.TICKET_STATUS_RESOLVED,
        T.TICKET_STATUS_CLOSED,
    ]
    assert detail.ticket.status == T.TICKET_STATUS_CLOSED


async def test_requester_comment_reopens_a_resolved_ticket(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    ws, alice = people.ws, await people.person(*PORTAL)
    agent_id = await people.person(*AGENT)
    agent = caller(ws, agent_id, AGENT)
    me = caller(ws, alice)
    ticket = await incident(stub, me)
    await stub.ChangeStatus(
        T.ChangeStatusRequest(
            caller=agent, ticket_id=ticket.id, status=T.TICKET_STATUS_RESOLVED, note="Replaced"
        )
    )
    # The agent's own comment does not reopen it.
    after_agent = await stub.AddComment(
        T.AddCommentRequest(caller=agent, ticket_id=ticket.id, body="Closing soon")
    )
    assert after_agent.ticket.status == T.TICKET_STATUS_RESOLVED

    reply = await stub.AddComment(
        T.AddCommentRequest(caller=me, ticket_id=ticket.id, body="Still smoking!")
    )
    assert reply.ticket.status == T.TICKET_STATUS_IN_PROGRESS
    assert not reply.ticket.HasField("resolved_at")

    detail = await stub.GetTicket(T.GetTicketRequest(caller=me, ticket_id=ticket.id))
    last = detail.status_history[-1]
    assert (last.from_status, last.to_status) == (
        T.TICKET_STATUS_RESOLVED,
        T.TICKET_STATUS_IN_PROGRESS,
    )
    assert last.by_requester_comment and last.actor_id == alice
    assert detail.status_history[1].note == "Replaced"
    assert detail.status_history[1].actor_id == agent_id

    # Waiting for the requester: their answer hands the ticket back to the agents.
    await stub.ChangeStatus(
        T.ChangeStatusRequest(
            caller=agent, ticket_id=ticket.id, status=T.TICKET_STATUS_WAITING_FOR_REQUESTER
        )
    )
    answer = await stub.AddComment(
        T.AddCommentRequest(caller=me, ticket_id=ticket.id, body="Model XR-7")
    )
    assert answer.ticket.status == T.TICKET_STATUS_IN_PROGRESS


async def test_queue_filters_sorts_and_pages_for_agents_only(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People, stack: Stack
) -> None:
    ws, alice, bob = people.ws, await people.person(*PORTAL), await people.person(*PORTAL)
    agent_id = await people.person(*AGENT)
    agent = caller(ws, agent_id, AGENT)
    a1 = await incident(
        stub, caller(ws, alice), impact=T.TICKET_LEVEL_LOW, urgency=T.TICKET_LEVEL_LOW
    )
    a2 = await incident(
        stub,
        caller(ws, alice),
        title="Mail down",
        impact=T.TICKET_LEVEL_HIGH,
        urgency=T.TICKET_LEVEL_HIGH,
    )
    b1 = await incident(stub, caller(ws, bob), title="VPN slow")
    c1 = await change(stub, caller(ws, bob))
    elsewhere = await workspace(stack)
    await incident(
        stub, caller(elsewhere.ws, await elsewhere.person(*PORTAL)), title="Mail down elsewhere"
    )
    await stub.UpdateTicket(
        T.UpdateTicketRequest(caller=agent, ticket_id=b1.id, assignee_id=agent_id)
    )
    await stub.ChangeStatus(
        T.ChangeStatusRequest(caller=agent, ticket_id=b1.id, status=T.TICKET_STATUS_IN_PROGRESS)
    )

    async def numbers(**kw: object) -> list[str]:
        resp = await stub.ListTickets(T.ListTicketsRequest(caller=agent, **kw))  # type: ignore[arg-type]
        return [t.number for t in resp.tickets]

    assert await numbers() == [c1.number, b1.number, a2.number, a1.number]
    assert await numbers(sort=T.TICKET_SORT_CREATED_ASC) == [
        a1.number,
        a2.number,
        b1.number,
        c1.number,
    ]
    assert await numbers(sort=T.TICKET_SORT_PRIORITY) == [
        a2.number,
        b1.number,
        c1.number,
        a1.number,
    ]
    assert await numbers(sort=T.TICKET_SORT_UPDATED_DESC) == [
        b1.number,
        c1.number,
        a2.number,
        a1.number,
    ]
    assert await numbers(requester_id=alice) == [a2.number, a1.number]
    assert await numbers(assignee_id=agent_id) == [b1.number]
    assert await numbers(assignee_id="none") == [c1.number, a2.number, a1.number]
    assert await numbers(statuses=[T.TICKET_STATUS_IN_PROGRESS]) == [b1.number]
    assert await numbers(type=T.TICKET_TYPE_CHANGE_REQUEST) == [c1.number]
    assert await numbers(priorities=[T.TICKET_PRIORITY_CRITICAL, T.TICKET_PRIORITY_PLANNING]) == [
        a2.number,
        a1.number,
    ]
    assert await numbers(query="mail") == [a2.number]

    walked: list[str] = []
    token = ""
    while True:
        page = await stub.ListTickets(
            T.ListTicketsRequest(
                caller=agent,
                sort=T.TICKET_SORT_PRIORITY,
                page=common_pb2.PageRequest(page_size=1, page_token=token),
            )
        )
        walked += [t.number for t in page.tickets]
        token = page.next_page_token
        if not token:
            break
    assert walked == [a2.number, b1.number, c1.number, a1.number]

    code, _ = await code_of(stub.ListTickets(T.ListTicketsRequest(caller=caller(ws, alice))))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, message = await code_of(
        stub.ListTickets(T.ListTicketsRequest(caller=agent, assignee_id="bob"))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("assignee_id: ")


async def test_agents_edit_fields_and_assign_with_priority_recomputed(
    stub: tickets_pb2_grpc.TicketServiceStub, people: People
) -> None:
    ws, alice, agent_id = people.ws, await people.person(*PORTAL), await people.person(*AGENT)
    agent = caller(ws, agent_id, AGENT)
    ticket = await incident(stub, caller(ws, alice))
    updated = await stub.UpdateTicket(
        T.UpdateTicketRequest(
            caller=agent,
            ticket_id=ticket.number,
            impact=T.TICKET_LEVEL_HIGH,
            description="Whole floor affected",
            assignee_id=agent_id,
        )
    )
    assert updated.priority == T.TICKET_PRIORITY_HIGH  # high x medium
    assert updated.description == "Whole floor affected"
    assert updated.assignee_id == agent_id
    assert updated.title == ticket.title  # untouched

    unassigned = await stub.UpdateTicket(
        T.UpdateTicketRequest(caller=agent, ticket_id=ticket.id, assignee_id="")
    )
    assert unassigned.assignee_id == ""

    code, message = await code_of(
        stub.UpdateTicket(
            T.UpdateTicketRequest(
                caller=agent, ticket_id=ticket.id, reason="because", title="", assignee_id="x"
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == (
        "title: required; reason: only change requests have a reason; "
        "assignee_id: must be a person id"
    )
    code, _ = await code_of(
        stub.UpdateTicket(
            T.UpdateTicketRequest(caller=caller(ws, alice), ticket_id=ticket.id, title="x")
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED

    detail = await stub.GetTicket(T.GetTicketRequest(caller=agent, ticket_id=ticket.id))
    assert {(f.field, f.new_value) for f in detail.field_history} >= {
        ("impact", "high"),
        ("priority", "2"),
        ("assignee", agent_id),
        ("assignee", ""),
    }


async def test_events_arrive_on_jetstream_without_comment_bodies(
    stub: tickets_pb2_grpc.TicketServiceStub, nats_url: str, people: People
) -> None:
    ws, alice, agent_id = people.ws, await people.person(*PORTAL), await people.person(*AGENT)
    agent = caller(ws, agent_id, AGENT)
    me = caller(ws, alice)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"fd.tickets.{ws}.>", ordered_consumer=True)
        ticket = await incident(stub, me, key="once")
        await incident(stub, me, key="once")  # a retry: no second event
        await stub.UpdateTicket(
            T.UpdateTicketRequest(
                caller=agent, ticket_id=ticket.id, assignee_id=agent_id, title="New title"
            )
        )
        await stub.ChangeStatus(
            T.ChangeStatusRequest(
                caller=agent, ticket_id=ticket.id, status=T.TICKET_STATUS_RESOLVED
            )
        )
        note = await stub.AddComment(
            T.AddCommentRequest(
                caller=agent, ticket_id=ticket.id, body="TOPSECRET note", internal=True
            )
        )
        await stub.AddComment(T.AddCommentRequest(caller=me, ticket_id=ticket.id, body="Not fixed"))

        received: list[tuple[str, events_pb2.Event]] = []
        while len(received) < 7:
            msg = await sub.next_msg(timeout=10)
            assert b"TOPSECRET" not in msg.data and b"Not fixed" not in msg.data
            received.append((msg.subject, events_pb2.Event.FromString(msg.data)))
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.5)
    finally:
        await nc.close()

    names = [subject.rsplit(".", 1)[1] for subject, _ in received]
    assert names == [
        "ticket_created",
        "ticket_updated",
        "ticket_assigned",
        "ticket_status_changed",
        "ticket_commented",
        "ticket_commented",
        "ticket_status_changed",
    ]
    events: dict[str, list[events_pb2.Event]] = {name: [] for name in names}
    for name, (_, event) in zip(names, received, strict=True):
        events[name].append(event)
        assert event.workspace_id == ws
    assert names.count("ticket_created") == 1
    created = events["ticket_created"][0].tickets.ticket_created
    assert (created.ticket_id, created.number, created.requester_id) == (ticket.id, "INC-1", alice)
    assert events["ticket_created"][0].actor_id == alice
    assert events["ticket_assigned"][0].tickets.ticket_assigned.assignee_id == agent_id
    assert list(events["ticket_updated"][0].tickets.ticket_updated.fields) == ["title"]
    comments = [e.tickets.ticket_commented for e in events["ticket_commented"]]
    assert (comments[0].comment_id, comments[0].internal) == (note.comment.id, True)
    assert comments[1].internal is False and comments[1].author_id == alice
    moves = [e.tickets.ticket_status_changed for e in events["ticket_status_changed"]]
    assert [(m.to_status, m.by_requester_comment) for m in moves] == [
        (T.TICKET_STATUS_RESOLVED, False),
        (T.TICKET_STATUS_IN_PROGRESS, True),
    ]


async def test_assignees_and_requesters_must_be_active_persons_of_the_workspace(
    stub: tickets_pb2_grpc.TicketServiceStub, stack: Stack, people: People
) -> None:
    elsewhere = await workspace(stack)
    alice = await people.person(*PORTAL)
    agent_id = await people.person(*AGENT)
    agent = caller(people.ws, agent_id, AGENT)
    ticket = await incident(stub, caller(people.ws, alice))
    refused = {
        "another workspace's agent": await elsewhere.person(*AGENT),
        "an unknown id": new_id(),
        "an inactive agent": await people.person(*AGENT, active=False),
    }
    for why, person in refused.items():
        code, message = await code_of(
            stub.UpdateTicket(
                T.UpdateTicketRequest(caller=agent, ticket_id=ticket.id, assignee_id=person)
            )
        )
        assert (code, message) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "assignee_id: no such active person in this workspace",
        ), why
    code, message = await code_of(
        stub.UpdateTicket(
            T.UpdateTicketRequest(caller=agent, ticket_id=ticket.id, assignee_id=alice)
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == "assignee_id: must be an agent (hold Ticket:manage)"

    # Nothing changed, and no history was written by the refusals.
    detail = await stub.GetTicket(T.GetTicketRequest(caller=agent, ticket_id=ticket.id))
    assert detail.ticket.assignee_id == ""
    assert not [f for f in detail.field_history if f.field == "assignee"]

    # An agent who leaves keeps the tickets they hold: editing another field still works.
    leaving = await people.person(*AGENT)
    await stub.UpdateTicket(
        T.UpdateTicketRequest(caller=agent, ticket_id=ticket.id, assignee_id=leaving)
    )
    await people.deactivate(leaving)
    kept = await stub.UpdateTicket(
        T.UpdateTicketRequest(
            caller=agent, ticket_id=ticket.id, assignee_id=leaving, title="Still burning"
        )
    )
    assert (kept.assignee_id, kept.title) == (leaving, "Still burning")

    # A ticket filed for someone else names an active person of the workspace too.
    for person in (await elsewhere.person(*PORTAL), new_id(), await people.person(active=False)):
        code, message = await code_of(
            stub.CreateTicket(
                T.CreateTicketRequest(
                    caller=agent,
                    type=T.TICKET_TYPE_INCIDENT,
                    title="Filed by phone",
                    description="The caller could not sign in",
                    impact=T.TICKET_LEVEL_LOW,
                    urgency=T.TICKET_LEVEL_LOW,
                    requester_id=person,
                )
            )
        )
        assert (code, message) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "requester_id: no such active person in this workspace",
        )
    filed = await stub.CreateTicket(
        T.CreateTicketRequest(
            caller=agent,
            type=T.TICKET_TYPE_INCIDENT,
            title="Filed by phone",
            description="The caller could not sign in",
            impact=T.TICKET_LEVEL_LOW,
            urgency=T.TICKET_LEVEL_LOW,
            requester_id=alice,
        )
    )
    assert filed.requester_id == alice
