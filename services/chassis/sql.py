"""Small helpers for the dynamic statements of store modules: a WHERE clause assembled from fixed
fragments with every value as a $n parameter (including the keyset condition of a page), and
LIKE patterns with LIKE's special characters escaped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

Direction = Literal["asc", "desc"]


class Where:
    """Filter fragments (fixed SQL text) joined by `and`, and their parameters; the first one is
    always the workspace."""

    def __init__(self, workspace_column: str, workspace_id: Any) -> None:
        self.params: list[Any] = [workspace_id]
        self.parts: list[str] = [f"{workspace_column} = $1"]

    def param(self, value: Any) -> str:
        """A placeholder for `value`."""
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, fragment: str, *values: Any) -> None:
        """`fragment` has a {} for each value's placeholder, in order ({0} to repeat the first)."""
        self.parts.append(fragment.format(*(self.param(v) for v in values)))

    def after(
        self, columns: Sequence[str], values: Sequence[Any] | None, direction: Direction = "asc"
    ) -> None:
        """Only rows after the keyset position `values` in the order of `columns` (all in one
        direction), as one row comparison that an index can serve."""
        if values:
            op = "<" if direction == "desc" else ">"
            marks = ", ".join(self.param(v) for v in values)
            self.parts.append(f"({', '.join(columns)}) {op} ({marks})")

    def limit(self, count: int) -> str:
        return f"limit {self.param(count)}"

    def sql(self) -> str:
        return " and ".join(self.parts)


def order_by(columns: Sequence[str], direction: Direction = "asc") -> str:
    return "order by " + ", ".join(f"{c} {direction}" for c in columns)


def escape_like(text: str) -> str:
    """`text` with LIKE's special characters (\\ % _) escaped, for the default escape \\."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(text: str) -> str:
    """A LIKE / ILIKE pattern matching `text` anywhere."""
    return f"%{escape_like(text)}%"
