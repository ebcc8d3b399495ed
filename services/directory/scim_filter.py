# ruff: noqa: S608  -- SQL fragments are constant column expressions and $n placeholders only
"""SCIM filters (RFC 7644 §3.4.2.2) as SQL: a scim2-models filter tree walked into a WHERE clause.

scim2-models parses and checks the filter; this module only maps the attributes we index to
SQL expressions and each operator to a comparison with `$n` parameters (never pasted values).
Supported: eq ne co sw ew gt ge lt le pr, and/or/not, grouping, and value paths on emails and
members (`emails[type eq "work" and value co "@acme"]`). Attribute names are case-insensitive,
and so are string comparisons except on caseExact attributes (id, externalId).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from scim2_models import InvalidFilterException, ScimFilter
from scim2_models.path import (
    AttrPath,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    Not,
    Present,
    ValuePath,
)

from services.directory.scim_models import (
    ENTERPRISE_USER_URN,
    FRONTDESK_USER_URN,
    GROUP_URN,
    USER_URN,
)
from services.directory.scim_store import USER_NAME_MATCH

Kind = Literal["text", "exact", "bool", "time", "emails", "members"]


@dataclass(frozen=True)
class Column:
    sql: str
    kind: Kind


# SQL of each filterable (and sortable) attribute; `p` persons, `su` scim_users, `g` groups,
# `sg` scim_groups. Keys are lower-case attribute paths.
USER_COLUMNS: dict[str, Column] = {
    "id": Column("p.id::text", "exact"),
    "username": Column("coalesce(su.user_name, nullif(p.login_name, ''), p.email)", "text"),
    "externalid": Column("su.external_id", "exact"),
    "displayname": Column("p.name", "text"),
    "active": Column("p.active", "bool"),
    "emails": Column("", "emails"),
    "emails.value": Column("", "emails"),
    "meta.created": Column("p.created_at", "time"),
    "meta.lastmodified": Column("greatest(p.updated_at, su.updated_at)", "time"),
    "name.givenname": Column("su.resource->'name'->>'givenName'", "text"),
    "name.familyname": Column("su.resource->'name'->>'familyName'", "text"),
    "title": Column("su.resource->>'title'", "text"),
    "usertype": Column("su.resource->>'userType'", "text"),
    "department": Column(f"su.resource->'{ENTERPRISE_USER_URN}'->>'department'", "text"),
    "employeenumber": Column(f"su.resource->'{ENTERPRISE_USER_URN}'->>'employeeNumber'", "text"),
    "portalaccess": Column("p.portal_access", "bool"),
}
USER_SORT_DEFAULT = "p.created_at, p.id"
GROUP_COLUMNS: dict[str, Column] = {
    "id": Column("g.id::text", "exact"),
    "displayname": Column("g.name", "text"),
    "externalid": Column("sg.external_id", "exact"),
    "members": Column("", "members"),
    "members.value": Column("", "members"),
    "meta.created": Column("g.created_at", "time"),
    "meta.lastmodified": Column("greatest(g.updated_at, sg.updated_at)", "time"),
}
GROUP_SORT_DEFAULT = "g.created_at, g.id"
_URN_PREFIXES = {
    USER_URN.lower(): "",
    GROUP_URN.lower(): "",
    ENTERPRISE_USER_URN.lower(): "",
    FRONTDESK_USER_URN.lower(): "",
}


def key_of(path: AttrPath) -> str:
    """'urn:...:User:name.givenName' -> 'name.givenname'."""
    key = path.attr if path.sub_attr is None else f"{path.attr}.{path.sub_attr}"
    uri = (path.uri or "").lower().rstrip(":")
    if uri and uri not in _URN_PREFIXES:
        raise InvalidFilterException(detail=f"unknown schema {path.uri!r} in the filter")
    return key.lower()


def column(columns: dict[str, Column], path: AttrPath) -> Column:
    col = columns.get(key_of(path))
    if col is None:
        raise InvalidFilterException(detail=f"filtering on {path} is not supported")
    return col


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class SqlFilter(FilterVisitor[str]):
    """Walk a filter tree into SQL; parameters are appended to `args` (numbered after them)."""

    columns: dict[str, Column]
    args: list[Any] = field(default_factory=list)
    # Set while inside a value path: the SQL alias of the JSON element being filtered.
    _element: str | None = None

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def visit_logical_expr(self, node: LogicalExpr) -> str:
        joiner = f" {node.op.value} "
        return "(" + joiner.join(self.visit(term) for term in node.terms) + ")"

    def visit_not(self, node: Not) -> str:
        return f"(not coalesce({self.visit(node.expr)}, false))"

    def visit_present(self, node: Present) -> str:
        if self._element is not None:
            sub = (node.attr_path.sub_attr or node.attr_path.attr).lower()
            return f"coalesce({self._element}->>{self.arg(_element_key(sub))}, '') <> ''"
        col = column(self.columns, node.attr_path)
        if col.kind == "emails":
            return "true"  # every person has an e-mail address
        if col.kind == "members":
            return "exists (select 1 from group_members m where m.workspace_id = g.workspace_id and m.group_id = g.id)"
        if col.kind in ("text", "exact"):
            return f"coalesce({col.sql}, '') <> ''"
        return f"{col.sql} is not null"

    def visit_comparison(self, node: Comparison) -> str:
        op = node.op.value.lower()
        value = node.value
        if self._element is not None:
            sub = (node.attr_path.sub_attr or node.attr_path.attr).lower()
            key = _element_key(sub)
            if sub == "primary":
                return self._compare(
                    f"coalesce(({self._element}->>{self.arg(key)})::boolean, false)",
                    "bool",
                    op,
                    value,
                )
            return self._compare(f"{self._element}->>{self.arg(key)}", "text", op, value)
        col = column(self.columns, node.attr_path)
        if op == "eq" and key_of(node.attr_path) == "username" and isinstance(value, str):
            # The lookup every IdP makes before creating a user: answered from indexes.
            return f"p.id in ({USER_NAME_MATCH.format(value=self.arg(value))})"
        if col.kind == "emails":
            direct = self._compare("p.email", "text", op, value)
            listed = self._compare("e->>'value'", "text", op, value)
            return (
                f"({direct} or exists (select 1 from jsonb_array_elements("
                f"coalesce(su.resource->'emails', '[]'::jsonb)) e where {listed}))"
            )
        if col.kind == "members":
            inner = self._compare("m.person_id::text", "exact", op, value)
            return (
                "exists (select 1 from group_members m where m.workspace_id = g.workspace_id"
                f" and m.group_id = g.id and {inner})"
            )
        return self._compare(col.sql, col.kind, op, value)

    def visit_value_path(self, node: ValuePath) -> str:
        col = column(self.columns, node.attr_path)
        if col.kind == "members":
            inner = SqlFilter({"value": Column("m.person_id::text", "exact")}, self.args)
            cond = inner.visit(_strip(node.val_filter))
            return (
                "exists (select 1 from group_members m where m.workspace_id = g.workspace_id"
                f" and m.group_id = g.id and {cond})"
            )
        if col.kind != "emails":
            raise InvalidFilterException(
                detail=f"value filters on {node.attr_path} are not supported"
            )
        inner = SqlFilter(self.columns, self.args, _element="e")
        cond = inner.visit(node.val_filter)
        return (
            "exists (select 1 from jsonb_array_elements("
            f"coalesce(su.resource->'emails', '[]'::jsonb)) e where {cond})"
        )

    def _compare(self, sql: str, kind: Kind | str, op: str, value: Any) -> str:
        if value is None:
            if op == "eq":
                return f"{sql} is null"
            if op == "ne":
                return f"{sql} is not null"
            raise InvalidFilterException(detail=f"{op} needs a value")
        if kind == "bool":
            if not isinstance(value, bool) or op not in ("eq", "ne"):
                raise InvalidFilterException(
                    detail="compare a boolean with eq or ne and true or false"
                )
            return f"{sql} {'=' if op == 'eq' else '<>'} {self.arg(value)}"
        if kind == "time":
            when = _datetime(value)
            sign = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}.get(op)
            if sign is None:
                raise InvalidFilterException(detail=f"{op} does not apply to a date-time")
            return f"{sql} {sign} {self.arg(when)}::timestamptz"
        text = value if isinstance(value, str) else str(value).lower()
        exact = kind == "exact"
        left = sql if exact else f"lower({sql})"
        right_value = text if exact else text.lower()
        if op in ("co", "sw", "ew"):
            pattern = like_escape(right_value)
            pattern = {"co": f"%{pattern}%", "sw": f"{pattern}%", "ew": f"%{pattern}"}[op]
            return f"{left} like {self.arg(pattern)}"
        sign = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}.get(op)
        if sign is None:
            raise InvalidFilterException(detail=f"unknown operator {op}")
        if op == "ne":
            return f"{left} is distinct from {self.arg(right_value)}"
        return f"{left} {sign} {self.arg(right_value)}"


def _element_key(sub: str) -> str:
    return {"value": "value", "type": "type", "primary": "primary", "display": "display"}.get(
        sub, sub
    )


def _strip(node: FilterNode) -> FilterNode:
    return node


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFilterException(detail=f"{value!r} is not a date-time") from None


def where_clause(text: str, model: Any, columns: dict[str, Column], args: list[Any]) -> str:
    """SQL for a filter string, checked by scim2-models against `model` first."""
    if not text.strip():
        return "true"
    try:
        parsed = ScimFilter[model](text)
    except InvalidFilterException:
        raise
    except Exception as exc:  # a parse error of any kind is the client's
        raise InvalidFilterException(detail=f"the filter is not valid: {exc}") from None
    return SqlFilter(columns, args).visit(parsed.ast)


def sort_clause(sort_by: str, order: str, columns: dict[str, Column], default: str) -> str:
    if order and order.lower() not in ("ascending", "descending"):
        raise InvalidFilterException(detail="sortOrder is ascending or descending")
    direction = "desc" if order.lower() == "descending" else "asc"
    if not sort_by:
        return f"{default.replace(',', f' {direction},')} {direction}"
    col = columns.get(_sort_key(sort_by))
    if col is None or col.kind in ("members",):
        raise InvalidFilterException(detail=f"sorting by {sort_by} is not supported")
    sql = "p.email" if col.kind == "emails" else col.sql
    if col.kind == "text":
        sql = f"lower({sql})"
    tie = default.split(",")[-1].strip()
    return f"{sql} {direction} nulls last, {tie} {direction}"


def _sort_key(text: str) -> str:
    lowered = text.strip().lower()
    for prefix in _URN_PREFIXES:
        if lowered.startswith(prefix + ":"):
            lowered = lowered[len(prefix) + 1 :]
    return lowered
