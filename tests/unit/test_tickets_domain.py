"""Tickets domain rules without I/O: ITIL matrix, workflow, validation, page tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.tickets.domain import (
    Level,
    NewTicket,
    Sort,
    Status,
    TicketType,
    check_transition,
    parse_number,
    priority_of,
    validate_new,
)
from services.tickets.service import decode_token, encode_token

WS = uuid.uuid4()
ME = uuid.uuid4()
PORTAL = Caller.person(WS, ME, {"Ticket:read", "Ticket:create"})
AGENT = Caller.person(WS, uuid.uuid4(), {"Ticket:manage"})
# A service acting on its own behalf holding Ticket:manage (no such service today, but the
# rule is the rights, not the absence of a person).
SYSTEM = Caller.of_service("test", WS, {"Ticket:manage"})


def new(**kw: object) -> NewTicket:
    base: dict[str, object] = {
        "type": TicketType.INCIDENT,
        "title": "t",
        "description": "d",
        "impact": Level.LOW,
        "urgency": Level.LOW,
        "reason": "",
        "risk": None,
        "planned_start": None,
        "planned_end": None,
        "idempotency_key": "",
        "requester_id": "",
    }
    base.update(kw)
    return NewTicket(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        (Level.HIGH, Level.HIGH, 1),
        (Level.HIGH, Level.LOW, 3),
        (Level.LOW, Level.HIGH, 3),
        (Level.MEDIUM, Level.MEDIUM, 3),
        (Level.MEDIUM, Level.LOW, 4),
        (Level.LOW, Level.LOW, 5),
    ],
)
def test_priority_follows_the_itil_matrix(impact: Level, urgency: Level, priority: int) -> None:
    assert priority_of(impact, urgency) == priority


def test_workflow_allows_the_sensible_moves_only() -> None:
    check_transition(Status.NEW, Status.IN_PROGRESS)
    check_transition(Status.WAITING_FOR_REQUESTER, Status.IN_PROGRESS)
    check_transition(Status.RESOLVED, Status.IN_PROGRESS)
    check_transition(Status.RESOLVED, Status.CLOSED)
    for current, target in [
        (Status.NEW, Status.CLOSED),
        (Status.IN_PROGRESS, Status.NEW),
        (Status.CLOSED, Status.IN_PROGRESS),
        (Status.RESOLVED, Status.RESOLVED),
    ]:
        with pytest.raises(FailedPrecondition):
            check_transition(current, target)


def test_change_request_needs_its_fields_and_end_after_start() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidArgument) as info:
        validate_new(
            PORTAL,
            new(
                type=TicketType.CHANGE_REQUEST, impact=Level.HIGH, urgency=None, planned_start=start
            ),
        )
    assert info.value.problems == [
        "impact: give impact and urgency together, or neither",
        "reason: required",
        "risk: required (low, medium or high)",
        "planned_end: required",
    ]
    ok = validate_new(
        PORTAL,
        new(
            type=TicketType.CHANGE_REQUEST,
            impact=None,
            urgency=None,
            reason="r",
            risk=Level.LOW,
            planned_start=start,
            planned_end=start + timedelta(minutes=1),
        ),
    )
    assert ok.priority == 3 and ok.requester_id == ME


def test_only_agents_and_the_system_create_for_someone_else() -> None:
    other = str(uuid.uuid4())
    with pytest.raises(PermissionDenied):
        validate_new(PORTAL, new(requester_id=other))
    assert str(validate_new(AGENT, new(requester_id=other)).requester_id) == other
    with pytest.raises(InvalidArgument, match="requester_id: required"):
        validate_new(SYSTEM, new())


def test_numbers_parse_case_insensitively() -> None:
    assert parse_number("inc-12") == (TicketType.INCIDENT, 12)
    assert parse_number(" CHG-3 ") == (TicketType.CHANGE_REQUEST, 3)
    assert parse_number("INC-") is None
    assert parse_number("REQ-1") is None


def test_page_tokens_round_trip_and_are_bound_to_their_sort() -> None:
    last = (2, datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC), uuid.uuid4())
    token = encode_token(Sort.PRIORITY, last)
    assert decode_token(token, Sort.PRIORITY) == last
    assert decode_token(token, Sort.CREATED_DESC) is None
    assert decode_token("!!!", Sort.PRIORITY) is None
    assert decode_token("e30", Sort.PRIORITY) is None  # "{}"
