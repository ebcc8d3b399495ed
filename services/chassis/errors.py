"""The one hierarchy of refusals a use case raises, in every service.

Each kind names what went wrong for the caller, not where; `services.chassis.grpcio` maps each
kind to its gRPC status (and the gateway maps that to HTTP), so no service keeps its own table.
"""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """Base of every refusal; a bare DomainError is a FAILED_PRECONDITION."""


class InvalidArgument(DomainError):
    """Bad input. The message is "field: problem", several joined by "; " (the gateway shows
    each next to its field)."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class InvalidField(InvalidArgument):
    """Bad input in one field: "field: problem"."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(DomainError):
    """Unknown, another workspace's, or not visible to the caller: all look the same."""


class PermissionDenied(DomainError):
    """The caller lacks a permission the call needs."""


class AlreadyExists(DomainError):
    """The object (or a unique value of it) exists already."""


class FailedPrecondition(DomainError):
    """The state forbids the change (a workflow step, the last admin, a lost race)."""


class Unauthenticated(DomainError):
    """Who is calling is not established (bad credentials, an ended session)."""


class Throttled(DomainError):
    """Too many failed attempts; `retry_after` seconds until the next one is allowed."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A component this call needs does not answer now; the caller may retry."""
