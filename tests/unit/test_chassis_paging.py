"""One page-token format (chassis/paging.py) and the SQL helpers (chassis/sql.py), without I/O."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.chassis import sql
from services.chassis.errors import InvalidField
from services.chassis.paging import Keyset, Page

ORDER = Keyset("things", (bool, date, int, uuid.UUID, datetime, str), default=20, maximum=100)


def _raw(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_a_token_round_trips_every_key_type() -> None:
    last = (True, date(2030, 1, 2), 7, uuid.uuid4(), datetime(2030, 1, 2, 3, 4, 5, 6, UTC), "a@b")
    token = ORDER.token(last)
    assert "=" not in token
    assert ORDER.position(token) == last
    assert ORDER.page(5, token) == Page(5, last)


def test_page_sizes_default_clamp_and_refuse_negative() -> None:
    assert ORDER.page(0, "") == Page(20)
    assert ORDER.page(10_000, "").size == 100
    with pytest.raises(InvalidField, match=r"^page_size: "):
        ORDER.page(-1, "")


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        "e30",  # {}
        _raw([True, "2030-01-02", 7]),  # a bare list (the old directory format)
        _raw(
            {
                "l": "other",
                "k": [True, "2030-01-02", 1, str(uuid.uuid4()), "2030-01-02T00:00:00+00:00", "x"],
            }
        ),
        _raw({"l": "things", "k": [True, "2030-01-02", 1]}),  # too few keys
        _raw(
            {
                "l": "things",
                "k": [1, "2030-01-02", 1, str(uuid.uuid4()), "2030-01-02T00:00:00+00:00", "x"],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [True, "2030-01-02", -1, str(uuid.uuid4()), "2030-01-02T00:00:00+00:00", "x"],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [
                    True,
                    "2030-01-02",
                    2**63,
                    str(uuid.uuid4()),
                    "2030-01-02T00:00:00+00:00",
                    "x",
                ],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [True, "2030-01-02", 1, "no-uuid", "2030-01-02T00:00:00+00:00", "x"],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [True, "2030-01-02", 1, str(uuid.uuid4()), "2030-01-02T00:00:00", "x"],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [True, "2030-13-02", 1, str(uuid.uuid4()), "2030-01-02T00:00:00+00:00", "x"],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [
                    True,
                    "2030-01-02",
                    1,
                    str(uuid.uuid4()),
                    "2030-01-02T00:00:00+00:00",
                    "\u0000",
                ],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [True, "2030-01-02", 1, str(uuid.uuid4()), "2030-01-02T00:00:00+00:00", None],
            }
        ),
        _raw(
            {
                "l": "things",
                "k": [True, "2030-01-02", 1.5, str(uuid.uuid4()), "2030-01-02T00:00:00+00:00", "x"],
            }
        ),
        _raw({"l": "things", "k": "xyz", "extra": 1}),
    ],
)
def test_a_token_that_is_not_ours_is_refused_on_page_token(token: str) -> None:
    assert ORDER.position(token) is None
    with pytest.raises(InvalidField, match=r"^page_token: not a token this service issued$"):
        ORDER.page(10, token)


def test_cut_keeps_the_page_and_issues_a_token_only_when_more_follow() -> None:
    order = Keyset("numbers", (int,))
    page = Page(2)
    assert order.cut(page, [1, 2, 3], lambda n: (n,)) == ([1, 2], order.token([2]))
    assert order.cut(page, [1, 2], lambda n: (n,)) == ([1, 2], "")
    assert order.cut(page, [], lambda n: (n,)) == ([], "")


def test_where_numbers_parameters_in_order_and_pages_by_row_comparison() -> None:
    where = sql.Where("t.workspace_id", "ws")
    where.add("t.status = any({}::text[])", ["open"])
    where.add("(t.title ilike {0} or t.code ilike {0})", "%x%")
    where.add("t.assignee_id is null")
    where.after(["t.due", "t.seq"], ("2030-01-01", 4), "desc")
    where.after(["t.seq"], None)  # the first page: no condition
    assert where.sql() == (
        "t.workspace_id = $1 and t.status = any($2::text[]) and (t.title ilike $3 or t.code "
        "ilike $3) and t.assignee_id is null and (t.due, t.seq) < ($4, $5)"
    )
    assert where.limit(11) == "limit $6"
    assert where.params == ["ws", ["open"], "%x%", "2030-01-01", 4, 11]
    assert sql.order_by(["t.due", "t.seq"], "desc") == "order by t.due desc, t.seq desc"


def test_like_patterns_escape_likes_special_characters() -> None:
    assert sql.escape_like("50%_a\\") == "50\\%\\_a\\\\"
    assert sql.like_pattern("a_b") == "%a\\_b%"
