"""The directory's rules without I/O: domain rules, permissions, paging tokens, import files."""

from __future__ import annotations

import json
import uuid

import pytest

from services.chassis.errors import InvalidField
from services.directory import importfile
from services.directory.domain import (
    AUDIT_ORDER,
    CATALOG,
    PERSONS_ORDER,
    DomainRule,
    PortalSettings,
    check_permissions,
    clean_domain,
    clean_login_name,
    domain_matches,
    like_pattern,
    validate_slug,
)


def test_domain_rules_first_match_wins_else_default() -> None:
    s = PortalSettings(
        workspace_id=uuid.uuid4(),
        portal_access_default=False,
        portal_access_rules=(
            DomainRule("vendor.acme.com", False),
            DomainRule("acme.com", True),
        ),
    )
    assert s.portal_access_for("a@acme.com") is True
    assert s.portal_access_for("a@EU.Acme.com") is True
    assert s.portal_access_for("a@vendor.acme.com") is False
    assert s.portal_access_for("a@notacme.com") is False  # suffix, not a subdomain
    assert s.portal_access_for("a@other.org") is False
    star = PortalSettings(workspace_id=uuid.uuid4(), portal_access_rules=(DomainRule("*", False),))
    assert star.portal_access_for("x@y.z") is False
    assert domain_matches("*", "anyone@anywhere.io")


def test_self_registration_modes() -> None:
    ws = uuid.uuid4()
    assert not PortalSettings(ws, self_registration="off").may_self_register("a@acme.com")
    assert PortalSettings(ws, self_registration="open").may_self_register("a@x.org")
    only = PortalSettings(ws, self_registration="domains", registration_domains=("acme.com",))
    assert only.may_self_register("a@sub.acme.com") and not only.may_self_register("a@x.org")


def test_permissions_unknown_are_named_and_known_are_ordered() -> None:
    assert check_permissions(["Audit:read", "Ticket:read", "Ticket:read"]) == (
        "Ticket:read",
        "Audit:read",
    )
    with pytest.raises(InvalidField) as info:
        check_permissions(["Ticket:read", "Ticket:delete", "Foo:bar"])
    assert str(info.value) == "permissions: unknown permission(s): Foo:bar, Ticket:delete"
    assert len(CATALOG) == 15


def test_validation_names_the_field() -> None:
    assert validate_slug("acme-2") == "acme-2"
    for bad in ("ACME", "a_b", "-a", "a-", "www"):
        with pytest.raises(InvalidField, match=r"^slug: "):
            validate_slug(bad)
    assert clean_domain("@Acme.COM", "d") == "acme.com"
    with pytest.raises(InvalidField, match=r"^d: "):
        clean_domain("not a domain", "d")
    assert clean_login_name("") == ""  # a login name is never required
    with pytest.raises(InvalidField, match=r"^login_name: "):
        clean_login_name("has space")


def test_page_tokens_round_trip_and_reject_garbage() -> None:
    page = PERSONS_ORDER.page(10, PERSONS_ORDER.token(["bob@acme.com"]))
    assert page.size == 10 and page.after == ("bob@acme.com",)
    assert PERSONS_ORDER.page(0, "").size == 50 and PERSONS_ORDER.page(10_000, "").size == 500
    with pytest.raises(InvalidField, match=r"^page_token: "):
        PERSONS_ORDER.page(10, "!!!")
    with pytest.raises(InvalidField, match=r"^page_token: "):  # the audit trail's, not ours
        PERSONS_ORDER.page(10, AUDIT_ORDER.token([7]))
    assert like_pattern("50%_a\\") == "%50\\%\\_a\\\\%"


def test_csv_import_rows_errors_and_duplicates() -> None:
    content = (
        "\ufeffE-mail,Name,Login Name,portal_access,active,groups\n"
        "a@acme.com,A,,yes,,Portal Users; Agents\n"
        'b@acme.com,"B, with comma",b,0,false,\n'
        "A@ACME.com,Dup,,,,\n"
        "c@acme.com,C,,perhaps,,\n"
        "d@acme.com,D\n"
        "\n"
        'e@acme.com,"multi\nline",,,,\n'
        "f@acme.com,F,,,,\n"
    ).encode()
    rows = importfile.parse(content, "csv")
    by_line = {r.line: r for r in rows}
    assert (
        by_line[2].ok
        and by_line[2].portal_access is True
        and by_line[2].groups == ["Portal Users", "Agents"]
    )
    assert (
        by_line[3].name == "B, with comma"
        and by_line[3].portal_access is False
        and by_line[3].active is False
    )
    assert by_line[4].errors == [("email", "'A@ACME.com' appears already on line 2")]
    assert by_line[5].errors[0][0] == "portal_access"
    assert by_line[6].errors[0][1] == "expected 6 fields, found 2"
    assert by_line[8].ok and by_line[8].name == "multi\nline"
    assert by_line[10].ok  # the line after a two-line record keeps its real number


def test_file_level_errors() -> None:
    with pytest.raises(InvalidField, match=r"not UTF-8 .* line 2"):
        importfile.parse(b"email\n\xff@x.com\n", "csv")
    with pytest.raises(InvalidField, match="unknown column"):
        importfile.parse(b"email,shoe_size\n", "csv")
    with pytest.raises(InvalidField, match="limit is 50 MB"):
        importfile.parse(b"x" * (importfile.MAX_BYTES + 1), "csv")
    with pytest.raises(InvalidField, match="line 3 column"):
        importfile.parse(b'[\n {"email": "a@b.co"},\n ]', "json")


def test_json_rows_carry_their_line_numbers() -> None:
    doc = json.dumps(
        {
            "persons": [
                {"email": "a@acme.com", "name": "A"},
                {"email": "b@acme.com", "active": "maybe"},
            ]
        },
        indent=2,
    )
    rows = importfile.parse(doc.encode(), "json")
    assert [r.line for r in rows] == [3, 7]
    assert rows[1].errors[0][0] == "active"
