"""The access-change feed end to end: the example service (examples/access_table.py, on the
frontdesk_events library) bootstraps from the directory's snapshot while changes are being made,
follows the directory's events through 1,000 random access changes and a NATS restart, and its
"who may access" table then equals the directory's. Also the snapshot and catalogue routes."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest
from frontdesk.v1 import access_pb2, access_pb2_grpc, common_pb2, directory_pb2, directory_pb2_grpc

from deploy.embedded import EmbeddedNats
from examples.access_table import AccessTable
from frontdesk_events import Feed
from tests.signing import channel
from tests.stack import Stack

CHANGES = int(os.environ.get("FRONTDESK_TEST_ACCESS_CHANGES", "1000"))


async def directory_table(
    access: access_pb2_grpc.AccessServiceStub, caller: common_pb2.Caller
) -> dict[str, tuple[bool, bool, frozenset[str]]]:
    table: dict[str, tuple[bool, bool, frozenset[str]]] = {}
    token = ""
    while True:
        page = await access.GetAccessSnapshot(
            access_pb2.AccessSnapshotRequest(
                caller=caller, page=common_pb2.PageRequest(page_size=50, page_token=token)
            )
        )
        for p in page.persons:
            table[p.person_id] = (p.active, p.portal_access, frozenset(p.permissions))
        token = page.next_page_token
        if not token:
            return table


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_example_table_equals_the_directory_after_random_changes_and_a_nats_restart(
    stack: Stack, nats_server: EmbeddedNats | None
) -> None:
    if nats_server is None:
        pytest.skip("restarting NATS needs the embedded server")
    await stack.start("directory")
    ch = channel(stack.addresses["directory"])
    stack.on_close(ch.close)
    directory = directory_pb2_grpc.DirectoryServiceStub(ch)
    access = access_pb2_grpc.AccessServiceStub(ch)
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada"
        )
    )
    ws = created.workspace.id
    system = common_pb2.Caller(workspace_id=ws)
    rng = random.Random(16)
    catalog = (
        await directory.ListPermissionCatalog(
            directory_pb2.ListPermissionCatalogRequest(caller=system)
        )
    ).permissions
    roles = [
        (
            await directory.CreateRole(
                directory_pb2.CreateRoleRequest(
                    caller=system, name=f"Role {i}", permissions=rng.sample(list(catalog), 3)
                )
            )
        ).id
        for i in range(5)
    ]
    groups = [
        (
            await directory.CreateGroup(
                directory_pb2.CreateGroupRequest(
                    caller=system, name=f"Group {i}", role_ids=rng.sample(roles, 2)
                )
            )
        ).id
        for i in range(4)
    ]
    persons: list[str] = []

    async def new_person() -> None:
        n = len(persons)
        made = await directory.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=system,
                email=f"p{n}-{rng.randrange(10**6)}@acme.test",
                name=f"P {n}",
                group_ids=rng.sample(groups, rng.randint(0, 2)),
            )
        )
        persons.append(made.id)

    for _ in range(20):
        await new_person()

    async def change() -> None:
        kind = rng.choice(
            ["active", "portal", "member", "member", "grant", "grant", "role", "group", "new"]
        )
        person = rng.choice(persons)
        if kind == "active":
            await directory.UpdatePerson(
                directory_pb2.UpdatePersonRequest(
                    caller=system, person_id=person, active=rng.random() < 0.6
                )
            )
        elif kind == "portal":
            await directory.UpdatePerson(
                directory_pb2.UpdatePersonRequest(
                    caller=system, person_id=person, portal_access=rng.random() < 0.5
                )
            )
        elif kind == "member":
            request = directory_pb2.GroupMemberRequest(
                caller=system, group_id=rng.choice(groups), person_id=person
            )
            if rng.random() < 0.5:
                await directory.AddGroupMember(request)
            else:
                await directory.RemoveGroupMember(request)
        elif kind == "grant":
            request = directory_pb2.PersonRoleRequest(
                caller=system, person_id=person, role_id=rng.choice(roles)
            )
            if rng.random() < 0.5:
                await directory.GrantRole(request)
            else:
                await directory.RevokeRole(request)
        elif kind == "role":
            await directory.UpdateRole(
                directory_pb2.UpdateRoleRequest(
                    caller=system,
                    role_id=rng.choice(roles),
                    set_permissions=True,
                    permissions=rng.sample(list(catalog), rng.randint(0, 4)),
                )
            )
        elif kind == "group":
            await directory.UpdateGroup(
                directory_pb2.UpdateGroupRequest(
                    caller=system,
                    group_id=rng.choice(groups),
                    set_role_ids=True,
                    role_ids=rng.sample(roles, rng.randint(0, 3)),
                )
            )
        else:
            await new_person()

    done = 0

    async def changes(count: int) -> None:
        """`count` changes; while the directory is unavailable (NATS is part of its readiness)
        a change is retried until it is taken."""
        nonlocal done
        loop = asyncio.get_running_loop()
        for _ in range(count):
            deadline = loop.time() + 60
            while True:
                try:
                    await change()
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE or loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            done += 1

    # Changes keep coming while the example bootstraps: nothing between snapshot and follow
    # may be lost.
    background = asyncio.create_task(changes(CHANGES // 2))
    feed_channel = channel(stack.addresses["directory"])
    stack.on_close(feed_channel.close)
    feed = Feed(stack.nats_url, stack.addresses["directory"], ws, directory_channel=feed_channel)
    await feed.connect()
    stack.on_close(feed.close)
    table = AccessTable(feed)
    runner = asyncio.create_task(table.run("access-table-test"))
    try:
        await asyncio.wait_for(table.ready.wait(), 30)
        await background
        # NATS goes away and comes back (same store): the relay and the consumer resume.
        before_restart = table.last_sequence
        nats_server.stop()
        nats_server.start()
        # The first changes wait for the directory to be ready again.
        await changes(CHANGES - CHANGES // 2)
        assert done == CHANGES

        async def same() -> bool:
            if runner.done():
                runner.result()  # surface a crash of the example
            return table.state.table() == await directory_table(access, system)

        await eventually(same, "the example's table to equal the directory's", 90)
        # It followed across the restart, including what was committed while NATS was down.
        assert table.last_sequence > before_restart and table.applied > CHANGES // 4
        assert len(table.state.persons) == len(persons) + 1  # and the admin
    finally:
        runner.cancel()
        with pytest.raises((asyncio.CancelledError, Exception)):
            await runner


async def test_snapshot_route_and_catalogue_through_the_gateway(stack: Stack) -> None:
    await stack.start("directory")
    await stack.start("auth")
    base = await stack.start_gateway()
    ch = channel(stack.addresses["directory"])
    stack.on_close(ch.close)
    directory = directory_pb2_grpc.DirectoryServiceStub(ch)
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug="acme", name="Acme", admin_email="admin@acme.test", admin_name="Ada"
        )
    )
    ws = created.workspace.id
    system = common_pb2.Caller(workspace_id=ws)
    for i in range(5):
        await directory.CreatePerson(
            directory_pb2.CreatePersonRequest(caller=system, email=f"p{i}@acme.test", name=f"P{i}")
        )
    from frontdesk.v1 import auth_pb2, auth_pb2_grpc

    auth = auth_pb2_grpc.AuthServiceStub(channel(stack.addresses["auth"]))
    await auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=system, person_id=created.admin.id, password="correct horse battery staple 42"
        )
    )
    session = await auth.Login(
        auth_pb2.LoginRequest(
            workspace_id=ws,
            email="admin@acme.test",
            password="correct horse battery staple 42",
            surface="management",
        )
    )
    token = await auth.CreateApiToken(
        auth_pb2.CreateApiTokenRequest(
            caller=common_pb2.Caller(
                workspace_id=ws, person_id=created.admin.id, permissions=["Person:read"]
            ),
            name="feed",
            expires_in_days=30,
            session_token=session.session_token,
        )
    )
    port = base.rsplit(":", 1)[1]
    headers = {"Host": f"acme.localhost:{port}", "Authorization": f"Bearer {token.secret}"}
    async with aiohttp.ClientSession() as http:
        seen: list[str] = []
        sequences = set()
        page_token = ""
        while True:
            async with http.get(
                f"{base}/management/api/v1/access-snapshot",
                params={"page_size": "2", "page_token": page_token},
                headers=headers,
            ) as r:
                assert r.status == 200, await r.text()
                page = await r.json()
            seen.extend(p["email"] for p in page["persons"])
            sequences.add(page["stream_sequence"])
            assert page["stream"] == "FD_DIRECTORY" and page["total"] == 6
            assert {g["name"] for g in page["groups"]} >= {"Portal Users", "Administrators"}
            page_token = page["next_page_token"]
            if not page_token:
                break
        assert sorted(seen) == seen and len(seen) == 6
        assert len(sequences) == 1  # every page names the first page's sequence
        async with http.get(
            f"{base}/management/api/v1/access-snapshot",
            params={"page_token": "garbage"},
            headers=headers,
        ) as r:
            assert r.status == 422
        async with http.get(
            f"{base}/management/api/v1/access-snapshot", headers={"Host": headers["Host"]}
        ) as r:
            assert r.status == 401
        async with http.get(f"{base}/api/v1/asyncapi.json") as r:
            assert r.status == 200
            doc = await r.json()
        assert doc["asyncapi"] == "3.0.0"
        assert doc["channels"]["directory.person_deactivated"]["address"] == (
            "fd.directory.{workspace_id}.person_deactivated"
        )
        committed = Path(__file__).resolve().parents[2] / "protos" / "asyncapi.json"
        assert doc == json.loads(committed.read_text())
