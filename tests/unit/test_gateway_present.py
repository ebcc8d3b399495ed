"""The presentation helpers every gateway feature shares: times, enums, filters, links, names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from frontdesk.v1 import tickets_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import ApiError
from gateway.present import (
    assignee_text,
    change_text,
    checked,
    enum_name,
    enum_value,
    fields_message,
    filter_query,
    flag,
    form_errors,
    page_links,
    page_request,
    pretty_time,
    raise_invalid,
    rfc3339,
    split_list,
    stamp,
    time_of,
    who,
)


def test_timestamps_become_rfc3339_utc_text() -> None:
    ts = Timestamp()
    ts.FromDatetime(datetime(2024, 5, 1, 9, 30, 0, 250000, tzinfo=UTC))
    assert rfc3339(ts) == "2024-05-01T09:30:00.250000Z"
    assert rfc3339(ts, whole_seconds=True) == "2024-05-01T09:30:00Z"
    assert pretty_time(rfc3339(ts)) == "2024-05-01 09:30 UTC"
    assert pretty_time(None) == "" and pretty_time("") == ""


def test_time_of_is_none_for_an_unset_field() -> None:
    ticket = tickets_pb2.Ticket()
    assert time_of(ticket, "closed_at") is None
    ticket.closed_at.FromDatetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert time_of(ticket, "closed_at") == "2024-01-02T03:04:05Z"


def test_stamp_takes_naive_datetimes_as_utc_and_converts_zones() -> None:
    assert stamp(None) is None
    naive = stamp(datetime(2024, 5, 1, 12, 0))
    zoned = stamp(datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert naive is not None and zoned is not None
    assert rfc3339(naive) == rfc3339(zoned) == "2024-05-01T12:00:00Z"


def test_enum_names_and_values_round_trip() -> None:
    wrapper, prefix = tickets_pb2.TicketStatus, "TICKET_STATUS_"
    value = tickets_pb2.TICKET_STATUS_WAITING_FOR_REQUESTER
    assert enum_name(wrapper, prefix, value) == "waiting_for_requester"
    assert enum_value(wrapper, prefix, "waiting_for_requester") == value
    assert enum_name(wrapper, prefix, 0) == ""
    assert enum_value(wrapper, prefix, "") == 0 and enum_value(wrapper, prefix, None) == 0


def test_query_values() -> None:
    assert split_list(" Open, resolved ,,") == ["open", "resolved"]
    fields: dict[str, str] = {}
    assert flag("", "active", fields) is None
    assert flag("Yes", "active", fields) is True and flag("off", "active", fields) is False
    assert fields == {}
    assert flag("maybe", "active", fields) is None
    assert fields == {"active": "use true or false"}
    assert checked({"internal": "1"}, "internal") and checked({"a": "on"}, "a")
    assert not checked({}, "internal") and not checked({"internal": ""}, "internal")


def test_page_size_limits_and_the_422_they_make() -> None:
    fields: dict[str, str] = {}
    page = page_request(25, "tok", fields)
    assert (page.page_size, page.page_token) == (25, "tok") and fields == {}
    page_request(101, "", fields)
    assert fields == {"page_size": "must be between 1 and 100"}
    page_request(500, "", {}, limit=500)
    raise_invalid({})
    with pytest.raises(ApiError) as caught:
        raise_invalid({"page_size": "must be between 1 and 100", "status": "unknown"})
    assert caught.value.status == 422
    assert caught.value.message == "page_size: must be between 1 and 100; status: unknown"
    assert caught.value.fields["status"] == "unknown"
    assert fields_message({"q": "too long"}) == "q: too long"


def test_page_links_keep_the_filters_and_drop_empty_values() -> None:
    params = {"status": "open", "q": "", "page_token": ""}
    assert page_links("/issues", params, "") == ("", "")
    assert page_links("/issues", params, "abc") == ("", "/issues?status=open&page_token=abc")
    on_page_two = {**params, "page_token": "abc"}
    assert page_links("/issues", on_page_two, "") == ("/issues?status=open", "")
    assert filter_query(on_page_two) == "status=open"


def test_who_did_what() -> None:
    names = {"p1": "Ann", "p2": "Bo"}
    assert who(names, "p1") == "Ann"
    assert who(names, "") == "System"
    assert who(names, "p9") == "System"
    assert who(names, "p1", me="p1") == "You"
    assert who({}, "p2", me="p1", default="Support") == "Support"
    assert assignee_text(names, "p2") == "Bo" and assignee_text(names, "") == "nobody"
    assert assignee_text(names, "p9") == "p9"
    assert change_text("Severity", "", "high") == "Severity: — → high"


def test_form_errors_fall_back_to_the_message() -> None:
    assert form_errors(ApiError(422, "invalid", "title: required", {"title": "required"})) == {
        "title": "required"
    }
    assert form_errors(ApiError(409, "conflict", "already closed")) == {"form": "already closed"}
