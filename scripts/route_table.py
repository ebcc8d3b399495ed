"""Print the gateway's route table as Markdown, generated from gateway.routes.ROUTES itself.

    .venv/bin/python scripts/route_table.py > routes.md

One row per route: method, path, surface (public / portal / management), kind (api / page),
the permissions it needs (all of them) and the portal section that hides it when off.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.routes import ROUTES
from gateway.routing import Route

SURFACE_NOTE = {
    "public": "no sign-in",
    "portal": "signed in + portal access",
    "management": "signed in + a management permission",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def permissions_of(route: Route) -> str:
    if route.permissions:
        return ", ".join(f"`{p}`" for p in route.permissions)
    if route.surface == "management":
        return "any management permission"
    if route.surface == "portal":
        return "(signed in)"
    return "—"


def table(routes: list[Route]) -> str:
    lines = [
        "| # | Method | Path | Surface | Kind | Permissions | Section |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(routes, 1):
        lines.append(
            f"| {n} | {r.method} | `{_cell(r.path)}` | {r.surface} | {r.kind} | "
            f"{permissions_of(r)} | {r.section or '—'} |"
        )
    counts = Counter((r.surface, r.kind) for r in routes)
    summary = ", ".join(
        f"{surface} {kind}: {counts[(surface, kind)]}"
        for surface in ("public", "portal", "management")
        for kind in ("api", "page")
        if counts[(surface, kind)]
    )
    notes = "; ".join(f"{k} = {v}" for k, v in SURFACE_NOTE.items())
    return "\n".join(
        [
            f"{len(routes)} routes ({summary}).",
            "",
            f"Surfaces: {notes}. A portal route with a section answers 404 while that "
            "section is off. Management API routes (`/management/api/`) also accept a "
            "personal API token (`Authorization: Bearer`).",
            "",
            *lines,
        ]
    )


def main() -> int:
    print(table(ROUTES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
