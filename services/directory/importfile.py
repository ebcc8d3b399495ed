"""Reading an import file (CSV or JSON) into rows, with per-row errors naming line and field.

A problem with the whole file (size, encoding, syntax, header) raises Invalid("content"/"format");
a problem with one row is recorded on that row and the other rows stay valid. No I/O here.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from services.chassis.errors import InvalidField
from services.directory.domain import clean_email, clean_login_name, clean_name

MAX_BYTES = 50 * 1024 * 1024
COLUMNS = ("email", "name", "login_name", "portal_access", "active", "groups")
_ALIASES = {"e_mail": "email", "mail": "email", "login": "login_name", "username": "login_name"}
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


@dataclass
class ImportRow:
    line: int
    email: str = ""
    name: str | None = None
    login_name: str | None = None
    portal_access: bool | None = None
    active: bool | None = None
    groups: list[str] | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (field, message)

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, field_name: str, message: str) -> None:
        self.errors.append((field_name, message))


def parse(content: bytes, fmt: str) -> list[ImportRow]:
    """All rows of the file, each validated on its own, duplicates within the file marked."""
    if len(content) > MAX_BYTES:
        raise InvalidField(
            "content",
            f"the file is {len(content) / 1024 / 1024:.1f} MB; the limit is {MAX_BYTES // 1024 // 1024} MB",
        )
    fmt = fmt.strip().lower()
    if fmt not in ("csv", "json"):
        raise InvalidField("format", "use csv or json")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise InvalidField(
            "content",
            f"the file is not UTF-8 text (byte 0x{content[exc.start]:02x} on line {line});"
            " save it as UTF-8 and try again",
        ) from None
    if "\x00" in text:
        raise InvalidField("content", "the file contains NUL characters; it is not a text file")
    rows = _parse_csv(text) if fmt == "csv" else _parse_json(text)
    _mark_duplicates(rows)
    return rows


def _column(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return _ALIASES.get(key, key)


def _parse_csv(text: str) -> list[ImportRow]:
    if not text.strip():
        raise InvalidField("content", "the file is empty; the first line must name the columns")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise InvalidField("content", f"line 1: {exc}") from None
    columns = [_column(h) for h in header]
    unknown = [h for h, c in zip(header, columns, strict=True) if c not in COLUMNS]
    if unknown:
        raise InvalidField(
            "content",
            f"line 1: unknown column(s) {', '.join(repr(u) for u in unknown)};"
            f" expected {', '.join(COLUMNS)}",
        )
    if "email" not in columns:
        raise InvalidField("content", "line 1: the column 'email' is missing")
    if len(set(columns)) != len(columns):
        raise InvalidField("content", "line 1: a column is named twice")
    rows: list[ImportRow] = []
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InvalidField("content", f"line {reader.line_num}: {exc}") from None
        line = start
        start = reader.line_num + 1
        if not record or all(not c.strip() for c in record):
            continue
        row = ImportRow(line=line)
        rows.append(row)
        if len(record) != len(columns):
            row.fail("", f"expected {len(columns)} fields, found {len(record)}")
            continue
        _fill(row, dict(zip(columns, record, strict=True)))
    return rows


def _parse_json(text: str) -> list[ImportRow]:
    decoder = json.JSONDecoder()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidField("content", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if isinstance(document, dict) and isinstance(document.get("persons"), list):
        items = document["persons"]
    elif isinstance(document, list):
        items = document
    else:
        raise InvalidField("content", 'expected a JSON array of persons or {"persons": [...]}')
    lines = _item_lines(text, decoder, len(items))
    rows: list[ImportRow] = []
    for index, item in enumerate(items):
        row = ImportRow(line=lines[index] if index < len(lines) else index + 1)
        rows.append(row)
        if not isinstance(item, dict):
            row.fail("", "expected an object with email, name, ...")
            continue
        unknown = sorted(k for k in item if _column(k) not in COLUMNS)
        if unknown:
            row.fail(unknown[0], f"unknown field; expected {', '.join(COLUMNS)}")
            continue
        _fill(row, {_column(k): v for k, v in item.items()})
    return rows


def _item_lines(text: str, decoder: json.JSONDecoder, count: int) -> list[int]:
    """The line on which each top-level item starts (the document already parsed once)."""
    pos = text.find("[")
    if pos < 0 or count == 0:
        return []
    lines: list[int] = []
    line = 1 + text.count("\n", 0, pos)
    pos += 1
    last = pos
    size = len(text)
    for _ in range(count):
        while pos < size and text[pos] in " \t\r\n,":
            pos += 1
        line += text.count("\n", last, pos)
        lines.append(line)
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        line += text.count("\n", pos, end)
        last = pos = end
    return lines


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, found {value!r}")


def _fill(row: ImportRow, values: dict[str, Any]) -> None:
    try:
        row.email = clean_email(_text(values.get("email")) or "")
    except (InvalidField, ValueError) as exc:
        row.fail("email", _problem(exc))
    for name, cleaner in (("name", _clean_name), ("login_name", clean_login_name)):
        try:
            raw = _text(values.get(name))
            if raw is not None and raw.strip():
                setattr(row, name, cleaner(raw))
        except (InvalidField, ValueError) as exc:
            row.fail(name, _problem(exc))
    for name in ("portal_access", "active"):
        try:
            setattr(row, name, _flag(values.get(name)))
        except ValueError as exc:
            row.fail(name, str(exc))
    groups = values.get("groups")
    if isinstance(groups, list):
        if all(isinstance(g, str) for g in groups):
            row.groups = [g.strip() for g in groups if g.strip()]
        else:
            row.fail("groups", "expected a list of group names")
    elif isinstance(groups, str):
        row.groups = [g.strip() for g in groups.split(";") if g.strip()]
    elif groups is not None:
        row.fail("groups", "expected group names separated by ';'")


def _clean_name(value: str) -> str:
    return clean_name(value, required=False)


def _problem(exc: Exception) -> str:
    if isinstance(exc, InvalidField):
        return str(exc).split(": ", 1)[-1]
    return str(exc)


def _mark_duplicates(rows: list[ImportRow]) -> None:
    """A second row with the same e-mail (or login name) is an error; the first one counts."""
    emails: dict[str, int] = {}
    logins: dict[str, int] = {}
    for row in rows:
        if row.email:
            key = row.email.lower()
            if key in emails:
                row.fail("email", f"{row.email!r} appears already on line {emails[key]}")
                continue
            emails[key] = row.line
        if row.login_name:
            key = row.login_name.lower()
            if key in logins:
                row.fail("login_name", f"{row.login_name!r} appears already on line {logins[key]}")
                continue
            logins[key] = row.line
