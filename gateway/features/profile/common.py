"""What the profile pages share: the surface's base path and the plain OK answer."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.routing import Ctx


def base_path(ctx: Ctx) -> str:
    return "/management/profile" if ctx.request.path.startswith("/management") else "/profile"


class Ok(msgspec.Struct):
    status: str = "ok"


MANAGEMENT: dict[str, Any] = {"surface": "management"}
