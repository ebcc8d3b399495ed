"""SCIM filters become SQL with $n parameters only (values never pasted); unsupported ones are
the client's error (invalidFilter)."""

from __future__ import annotations

import pytest
from scim2_models import InvalidFilterException

from services.directory.scim_filter import (
    GROUP_COLUMNS,
    USER_COLUMNS,
    USER_SORT_DEFAULT,
    sort_clause,
    where_clause,
)
from services.directory.scim_models import ScimGroup, ScimUser


def sql(text: str, model: object = ScimUser, columns: dict = USER_COLUMNS) -> tuple[str, list]:  # type: ignore[type-arg]
    args: list = [object()]  # $1 is the workspace
    return where_clause(text, model, columns, args), args[1:]


def test_values_travel_as_parameters() -> None:
    where, args = sql('displayName co "x\' or 1=1 --" and active eq true')
    assert "or 1=1" not in where
    assert args == ["%x' or 1=1 --%", True]
    assert where == "(lower(p.name) like $2 and p.active = $3)"


def test_like_specials_are_escaped_and_case_follows_case_exact() -> None:
    _, args = sql('displayName sw "50%_off"')
    assert args == ["50\\%\\_off%"]
    where, args = sql('externalId eq "AbC"')
    assert where == "su.external_id = $2" and args == ["AbC"]  # caseExact: as given
    where, args = sql('userName eq "Bob@Acme.COM"')
    assert "p.id in (" in where and args == ["Bob@Acme.COM"]  # the indexed lookup


def test_or_not_presence_and_value_paths() -> None:
    where, _ = sql('not (title pr) or emails[type eq "work" and value ew "@acme.com"]')
    assert where.startswith("((not coalesce(coalesce(su.resource->>'title', '') <> ''")
    assert "jsonb_array_elements" in where
    where, args = sql('members[value eq "abc"]', ScimGroup, GROUP_COLUMNS)
    assert "m.person_id::text = $2" in where and args == ["abc"]
    where, args = sql('meta.lastModified gt "2026-01-02T03:04:05Z"')
    assert where.endswith("> $2::timestamptz") and args[0].year == 2026


@pytest.mark.parametrize(
    "text",
    [
        "userName eq",  # syntax
        'nickName eq "x"',  # not supported
        "active gt true",  # booleans compare with eq/ne only
        'meta.lastModified gt "soon"',  # not a date-time
        'urn:example:other:1.0:User:userName eq "x"',  # unknown schema
        'addresses[type eq "work"]',  # value filter on an unsupported attribute
    ],
)
def test_unsupported_filters_are_invalid_filter(text: str) -> None:
    with pytest.raises(InvalidFilterException):
        sql(text)


def test_sorting() -> None:
    assert sort_clause("", "", USER_COLUMNS, USER_SORT_DEFAULT) == "p.created_at asc, p.id asc"
    assert sort_clause("userName", "descending", USER_COLUMNS, USER_SORT_DEFAULT).startswith(
        "lower(coalesce(su.user_name"
    )
    with pytest.raises(InvalidFilterException):
        sort_clause("emails", "sideways", USER_COLUMNS, USER_SORT_DEFAULT)
    with pytest.raises(InvalidFilterException):
        sort_clause("nickName", "", USER_COLUMNS, USER_SORT_DEFAULT)
