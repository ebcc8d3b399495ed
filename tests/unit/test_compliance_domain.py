"""Rules of the compliance domain: periods, the issue workflow, numbers, access."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition
from services.compliance.domain import (
    ControlTest,
    can_see_test,
    check_transition,
    next_period,
    parse_number,
    period_containing,
)


@pytest.mark.parametrize(
    ("frequency", "day", "expected"),
    [
        ("daily", date(2026, 3, 15), (date(2026, 3, 15), date(2026, 3, 15))),
        ("weekly", date(2026, 3, 15), (date(2026, 3, 9), date(2026, 3, 15))),  # a Sunday
        ("monthly", date(2026, 2, 10), (date(2026, 2, 1), date(2026, 2, 28))),
        ("monthly", date(2024, 2, 10), (date(2024, 2, 1), date(2024, 2, 29))),
        ("monthly", date(2026, 12, 31), (date(2026, 12, 1), date(2026, 12, 31))),
        ("quarterly", date(2026, 5, 5), (date(2026, 4, 1), date(2026, 6, 30))),
        ("quarterly", date(2026, 11, 5), (date(2026, 10, 1), date(2026, 12, 31))),
        ("yearly", date(2026, 7, 1), (date(2026, 1, 1), date(2026, 12, 31))),
    ],
)
def test_period_containing_a_day(frequency: str, day: date, expected: tuple[date, date]) -> None:
    assert period_containing(frequency, day) == expected


def test_next_period_follows_and_skips_missed_ones() -> None:
    # Completed during its own month: the next month.
    assert next_period("monthly", date(2026, 3, 31), date(2026, 3, 20)) == (
        date(2026, 4, 1),
        date(2026, 4, 30),
    )
    # Completed months late: the current month, not the missed ones in between.
    assert next_period("monthly", date(2026, 1, 31), date(2026, 6, 2)) == (
        date(2026, 6, 1),
        date(2026, 6, 30),
    )
    assert next_period("yearly", date(2026, 12, 31), date(2026, 12, 31)) == (
        date(2027, 1, 1),
        date(2027, 12, 31),
    )


def test_issue_workflow_allows_and_refuses() -> None:
    check_transition("open", "investigating")
    check_transition("remediation", "resolved")
    check_transition("resolved", "open")
    check_transition("accepted", "open")
    for current, target in [("closed", "open"), ("open", "open"), ("resolved", "remediation")]:
        with pytest.raises(FailedPrecondition):
            check_transition(current, target)


def test_numbers_parse_only_their_prefix() -> None:
    assert parse_number("TST-12", "TST") == 12
    assert parse_number("tst-3", "TST") == 3
    assert parse_number("ISS-3", "TST") is None
    assert parse_number("TST-x", "TST") is None
    assert parse_number(str(uuid.uuid4()), "TST") is None


def test_only_the_assignee_with_read_rights_or_a_manager_sees_a_test() -> None:
    ws, me, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    test = ControlTest(
        id=uuid.uuid4(),
        workspace_id=ws,
        seq=1,
        control_id=uuid.uuid4(),
        ad_hoc=True,
        period_start=date(2026, 1, 1),
        period_end=date(2026, 1, 31),
        due_date=date(2026, 1, 31),
        assignee_id=me,
    )
    portal = frozenset({"Control:read", "ControlTest:read"})
    assert can_see_test(Caller(ws, me, portal), test)
    assert not can_see_test(Caller(ws, other, portal), test)
    assert not can_see_test(Caller(ws, me, frozenset({"Control:read"})), test)
    assert can_see_test(Caller(ws, other, frozenset({"Control:manage"})), test)
    # A service sees by its rights alone: without any it sees nothing ("no person" is no pass).
    assert can_see_test(Caller.of_service("test", ws, {"Control:manage"}), test)
    assert not can_see_test(Caller.of_service("test", ws, ()), test)
    assert test.effective_state(date(2026, 2, 1)) == "overdue"
    assert test.effective_state(date(2026, 1, 31)) == "scheduled"
