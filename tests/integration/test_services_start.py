"""Every service starts on the chassis, migrates its own database and answers health checks."""

from __future__ import annotations

import pytest

from services.chassis.grpcio import check_health
from tests.stack import SERVICES, Stack


@pytest.mark.parametrize("name", SERVICES)
async def test_service_starts_and_is_healthy(stack: Stack, name: str) -> None:
    if name in ("tickets", "compliance"):
        await stack.start("directory")  # they check persons with it: its address is required
    await stack.start(name)
    assert await check_health(stack.addresses[name])
    conn = await stack.connect(name)
    tables = {r["tablename"] for r in await conn.fetch("select tablename from pg_tables")}
    assert {"outbox", "inbox", "dead_letters", "schema_migrations"} <= tables
