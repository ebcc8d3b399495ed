"""Controls, control tests and issues: dataclasses and rules (periods, workflow, access); no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition

FREQUENCIES = ("ad_hoc", "daily", "weekly", "monthly", "quarterly", "yearly")
TEST_STATES = ("scheduled", "overdue", "completed")
RESULTS = ("pass", "fail", "not_applicable")
REVIEWS = ("approved", "rejected")
SEVERITIES = ("critical", "high", "medium", "low")
ISSUE_STATUSES = ("open", "investigating", "remediation", "resolved", "closed", "accepted")

# Where an issue may go from each status; anything else is an illegal transition.
ISSUE_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"investigating", "remediation", "resolved", "accepted", "closed"}),
    "investigating": frozenset({"open", "remediation", "resolved", "accepted", "closed"}),
    "remediation": frozenset({"investigating", "resolved", "accepted", "closed"}),
    "resolved": frozenset({"open", "closed"}),
    "accepted": frozenset({"open", "closed"}),
    "closed": frozenset(),
}
# Statuses in which a remediation due date no longer makes an issue overdue.
ISSUE_SETTLED = frozenset({"resolved", "closed", "accepted"})

PREFIX_CONTROL = "CTL"
PREFIX_TEST = "TST"
PREFIX_ISSUE = "ISS"

MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_COMMENT = 10_000


def today() -> date:
    return datetime.now(UTC).date()


def parse_uuid(value: str, name: str, problems: list[str], *, required: bool) -> uuid.UUID | None:
    value = value.strip()
    if not value:
        if required:
            problems.append(f"{name}: required")
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        problems.append(f"{name}: not a valid id")
        return None


def parse_date(value: str, name: str, problems: list[str], *, required: bool) -> date | None:
    value = value.strip()
    if not value:
        if required:
            problems.append(f"{name}: required")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{name}: must be a date YYYY-MM-DD")
        return None


def check_text(
    value: str, name: str, problems: list[str], *, required: bool, limit: int = MAX_TEXT
) -> str:
    value = value.strip()
    if required and not value:
        problems.append(f"{name}: required")
    elif len(value) > limit:
        problems.append(f"{name}: at most {limit} characters")
    elif "\x00" in value:
        problems.append(f"{name}: must not contain NUL characters")
    return value


def format_number(prefix: str, seq: int) -> str:
    return f"{prefix}-{seq}"


def parse_number(value: str, prefix: str) -> int | None:
    """The sequence of "CTL-3" (case-insensitive) for prefix CTL, else None."""
    head, sep, tail = value.strip().partition("-")
    if sep and head.upper() == prefix and tail.isdigit() and len(tail) < 18:
        return int(tail)
    return None


# Periods: calendar days, ISO weeks, months, quarters and years.


def period_containing(frequency: str, day: date) -> tuple[date, date]:
    if frequency == "daily":
        return day, day
    if frequency == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    if frequency == "monthly":
        start = day.replace(day=1)
        return start, _month_end(start.year, start.month)
    if frequency == "quarterly":
        first_month = 3 * ((day.month - 1) // 3) + 1
        start = date(day.year, first_month, 1)
        return start, _month_end(day.year, first_month + 2)
    if frequency == "yearly":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    raise ValueError(f"no periods for frequency {frequency!r}")


def next_period(frequency: str, period_end: date, now: date) -> tuple[date, date]:
    """The period after one ending on `period_end`; when that one is already over, the current
    one (missed periods are not back-filled)."""
    start, end = period_containing(frequency, period_end + timedelta(days=1))
    if end < now:
        return period_containing(frequency, now)
    return start, end


def _month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)


@dataclass
class Control:
    id: uuid.UUID
    workspace_id: uuid.UUID
    seq: int
    title: str
    description: str
    test_procedure: str
    framework_ref: str
    frequency: str
    owner_id: uuid.UUID
    active: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def number(self) -> str:
        return format_number(PREFIX_CONTROL, self.seq)

    @property
    def recurring(self) -> bool:
        return self.active and self.frequency != "ad_hoc"


@dataclass
class ControlTest:
    id: uuid.UUID
    workspace_id: uuid.UUID
    seq: int
    control_id: uuid.UUID
    ad_hoc: bool
    period_start: date
    period_end: date
    due_date: date
    assignee_id: uuid.UUID | None
    state: str = "scheduled"
    result: str | None = None
    notes: str = ""
    evidence: str = ""
    tester_id: uuid.UUID | None = None
    completed_at: datetime | None = None
    review: str | None = None
    reviewer_id: uuid.UUID | None = None
    review_notes: str = ""
    reviewed_at: datetime | None = None
    issue_id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Joined from the control and the issue for display.
    control_seq: int = 0
    control_title: str = ""
    test_procedure: str = ""
    issue_seq: int | None = None
    evidence_files: list[Any] = field(default_factory=list)  # filled by get_test

    @property
    def number(self) -> str:
        return format_number(PREFIX_TEST, self.seq)

    @property
    def completed(self) -> bool:
        return self.state == "completed"

    def effective_state(self, now: date) -> str:
        """Overdue as soon as the due date has passed, before the sweep records it."""
        if self.state == "scheduled" and self.due_date < now:
            return "overdue"
        return self.state


@dataclass
class Issue:
    id: uuid.UUID
    workspace_id: uuid.UUID
    seq: int
    title: str
    description: str
    severity: str
    status: str
    reporter_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    remediation_due_date: date | None = None
    acceptance_deadline: date | None = None
    control_id: uuid.UUID | None = None
    control_test_id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    control_seq: int | None = None
    control_test_seq: int | None = None
    comment_count: int = 0

    @property
    def number(self) -> str:
        return format_number(PREFIX_ISSUE, self.seq)

    def overdue(self, now: date) -> bool:
        return (
            self.remediation_due_date is not None
            and self.remediation_due_date < now
            and self.status not in ISSUE_SETTLED
        )


@dataclass
class IssueComment:
    id: uuid.UUID
    issue_id: uuid.UUID
    author_id: uuid.UUID | None
    body: str
    created_at: datetime | None = None


@dataclass
class IssueChange:
    field: str
    old_value: str
    new_value: str
    actor_id: uuid.UUID | None
    note: str = ""
    changed_at: datetime | None = None


@dataclass
class IssueDetail:
    issue: Issue
    comments: list[IssueComment] = field(default_factory=list)
    history: list[IssueChange] = field(default_factory=list)
    attachments: list[Any] = field(default_factory=list)  # chassis attachment_store.Attachment


@dataclass
class Completion:
    test: ControlTest
    issue: Issue | None
    next_test: ControlTest | None


# Access rules (the service applies them to every item).

CONTROL_MANAGE = "Control:manage"
CONTROL_READ = "Control:read"
TEST_READ = "ControlTest:read"
TEST_UPDATE = "ControlTest:update"
ISSUE_MANAGE = "Issue:manage"
ISSUE_READ = "Issue:read"


def can_see_test(caller: Caller, test: ControlTest) -> bool:
    if caller.has(CONTROL_MANAGE):
        return True
    return caller.is_self(test.assignee_id) and caller.has(CONTROL_READ, TEST_READ)


def can_see_issue(caller: Caller, issue: Issue) -> bool:
    if caller.has(ISSUE_MANAGE):
        return True
    return caller.is_self(issue.assignee_id) and caller.has(ISSUE_READ)


def check_transition(current: str, target: str) -> None:
    if target not in ISSUE_TRANSITIONS[current]:
        raise FailedPrecondition(f"status: cannot move an issue from {current} to {target}")
