"""The chassis error hierarchy: every kind maps to its gRPC status without a per-service table."""

from __future__ import annotations

import grpc
import pytest

from services.chassis import errors
from services.chassis.directory_client import DirectoryUnavailable
from services.chassis.grpcio import status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument(["title: required", "due: not a date"]), "INVALID_ARGUMENT"),
        (errors.InvalidField("email", "not an e-mail address"), "INVALID_ARGUMENT"),
        (errors.NotFound("ticket not found"), "NOT_FOUND"),
        (errors.PermissionDenied("missing permission Role:manage"), "PERMISSION_DENIED"),
        (errors.AlreadyExists("email: exists already"), "ALREADY_EXISTS"),
        (errors.FailedPrecondition("status: the ticket is closed"), "FAILED_PRECONDITION"),
        (errors.Unauthenticated("invalid e-mail or password"), "UNAUTHENTICATED"),
        (errors.Throttled(30), "RESOURCE_EXHAUSTED"),
        (errors.Unavailable("directory unavailable"), "UNAVAILABLE"),
        (DirectoryUnavailable("directory unavailable: UNAVAILABLE"), "UNAVAILABLE"),
        (errors.DomainError("refused"), "FAILED_PRECONDITION"),
        (ValueError("a bug"), "INTERNAL"),
    ],
)
def test_each_kind_has_its_status(error: Exception, code: str) -> None:
    assert status_for(error) == getattr(grpc.StatusCode, code)


def test_invalid_input_names_each_field_in_its_message() -> None:
    many = errors.InvalidArgument(["title: required", "due_date: not a date"])
    assert str(many) == "title: required; due_date: not a date"
    assert many.problems == ["title: required", "due_date: not a date"]
    one = errors.InvalidField("email", "not an e-mail address")
    assert (str(one), one.field, one.problems) == (
        "email: not an e-mail address",
        "email",
        ["email: not an e-mail address"],
    )
    assert str(errors.InvalidArgument("page_token: invalid")) == "page_token: invalid"


def test_throttled_says_when_to_try_again() -> None:
    exc = errors.Throttled(42)
    assert exc.retry_after == 42
    assert str(exc) == "too many failed attempts; try again in 42 seconds"
