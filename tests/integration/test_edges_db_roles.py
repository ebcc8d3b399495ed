"""One database role per service, owning only its database (issue 12: every service used one
shared role that could create databases)."""

from __future__ import annotations

import asyncpg
import pytest

from deploy.databases import provision_service_database
from services.chassis.settings import ServiceSettings
from tests.stack import Stack


async def test_the_tickets_role_cannot_reach_the_directory_database(stack: Stack) -> None:
    roles = {name: f"{stack.prefix}{name}" for name in ("directory", "tickets")}
    urls: dict[str, str] = {}
    try:
        for name, role in roles.items():
            urls[name] = await provision_service_database(
                stack.pg_url, database=f"{stack.prefix}{name}", role=role, password=f"pw-{role}"
            )
            # Provisioning twice (every launcher start) changes nothing.
            assert urls[name] == await provision_service_database(
                stack.pg_url, database=f"{stack.prefix}{name}", role=role, password=f"pw-{role}"
            )
        assert roles["tickets"] in urls["tickets"] and "pw-" in urls["tickets"]

        # Services take their own URL (FRONTDESK_<SERVICE>_DATABASE_URL) and migrate as owner.
        await stack.start("directory", FRONTDESK_DIRECTORY_DATABASE_URL=urls["directory"])
        await stack.start(
            "tickets",
            FRONTDESK_TICKETS_DATABASE_URL=urls["tickets"],
            FRONTDESK_DIRECTORY_ADDR=stack.addresses["directory"],
        )
        tickets = await asyncpg.connect(urls["tickets"])
        try:
            assert await tickets.fetchval("select current_user") == roles["tickets"]
            assert await tickets.fetchval("select count(*) from tickets") == 0
            flags = await tickets.fetchrow(
                "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = $1",
                roles["tickets"],
            )
            assert tuple(flags) == (False, False, False)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await tickets.execute(f'create database "{stack.prefix}sneaky"')
        finally:
            await tickets.close()

        directory_as_tickets = urls["tickets"].rsplit("/", 1)[0] + f"/{stack.prefix}directory"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(directory_as_tickets)
    finally:
        for running in list(stack.services.values()):
            await running.stop()
        stack.services.clear()
        admin = await asyncpg.connect(stack.pg_url)
        try:
            for name, role in roles.items():
                await admin.execute(f'drop database if exists "{stack.prefix}{name}" with (force)')
                await admin.execute(f'drop role if exists "{role}"')
        finally:
            await admin.close()


def test_a_per_service_url_wins_over_the_shared_one() -> None:
    env = {
        "FRONTDESK_DATABASE_URL": "postgresql://postgres@db:5432/postgres",
        "FRONTDESK_NATS_URL": "nats://n:4222",
        "FRONTDESK_TICKETS_DATABASE_URL": "postgresql://tickets:pw@db:5432/tickets_db",
    }
    assert ServiceSettings.from_env("tickets", env).database_url.endswith(
        "tickets:pw@db:5432/tickets_db"
    )
    # The single-URL setup keeps working: each service gets its database on that server.
    assert ServiceSettings.from_env("auth", env).database_url == (
        "postgresql://postgres@db:5432/frontdesk_auth"
    )
    only_own = {k: v for k, v in env.items() if k != "FRONTDESK_DATABASE_URL"}
    assert ServiceSettings.from_env("tickets", only_own).database_url.startswith(
        "postgresql://tickets:pw@"
    )
