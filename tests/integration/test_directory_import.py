"""Bulk import of persons (CSV and JSON) through the real directory service: dry runs, background
jobs with progress, per-row errors, file-level errors, and the events an import publishes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from frontdesk.v1 import directory_pb2

from tests.integration.test_directory_core import (
    Directory,
    collect_events,
    expect_code,
    named,
    open_directory,
)
from tests.stack import Stack


@pytest.fixture
async def directory(stack: Stack) -> AsyncIterator[Directory]:
    async with open_directory(stack) as client:
        yield client


async def _start(
    directory: Directory, ws: str, content: bytes, fmt: str = "csv", dry_run: bool = False
) -> directory_pb2.ImportJob:
    return await directory.stub.StartImport(
        directory_pb2.StartImportRequest(
            caller=directory.caller(ws), format=fmt, content=content, dry_run=dry_run
        )
    )


async def _wait(directory: Directory, ws: str, job_id: str) -> directory_pb2.ImportJob:
    for _ in range(600):
        job = await directory.stub.GetImport(
            directory_pb2.GetImportRequest(caller=directory.caller(ws), import_id=job_id)
        )
        if job.status in ("done", "failed"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("import did not finish")


CSV = (
    "email,name,login_name,portal_access,active,groups\n"
    "new1@acme.com,New One,,true,,Portal Users\n"  # line 2: created, portal access on, no login name
    "new2@supplier.org,New Two,n2,,,\n"  # line 3: created, default by domain rule (off)
    "existing@acme.com,Existing Renamed,,false,,\n"  # line 4: updated
    "same@acme.com,Same,,,,\n"  # line 5: unchanged
    "bad-email,X,,,,\n"  # line 6: email error
    "new1@ACME.com,Dup,,,,\n"  # line 7: duplicate of line 2
    "ghost@acme.com,Ghost,,,,Nonexistent\n"  # line 8: unknown group
    "flag@acme.com,Flag,,maybe,,\n"  # line 9: bad boolean
    "noname@acme.com,,,,,\n"  # line 10: new person without a name
)


async def _prepare(directory: Directory) -> str:
    ws = (await directory.workspace()).workspace.id
    await directory.stub.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(
            caller=directory.caller(ws),
            set_portal_access_rules=True,
            portal_access_rules=[
                directory_pb2.DomainRule(domain="supplier.org", portal_access=False)
            ],
        )
    )
    await directory.person(ws, "existing@acme.com", "Existing")
    await directory.person(ws, "same@acme.com", "Same")
    return ws


def _errors(job: directory_pb2.ImportJob) -> dict[int, tuple[str, str]]:
    return {e.line: (e.field, e.message) for e in job.errors}


async def test_dry_run_reports_without_changing_anything(directory: Directory) -> None:
    ws = await _prepare(directory)
    job = await _start(directory, ws, CSV.encode(), dry_run=True)
    assert job.status == "done" and job.dry_run
    assert (job.total_rows, job.created, job.updated, job.unchanged, job.failed) == (9, 2, 1, 1, 5)
    errors = _errors(job)
    assert errors[6][0] == "email"
    assert errors[7][0] == "email" and "line 2" in errors[7][1]
    assert errors[8] == ("groups", "unknown group 'Nonexistent'")
    assert errors[9][0] == "portal_access" and "maybe" in errors[9][1]
    assert errors[10][0] == "name"
    listing = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=directory.caller(ws))
    )
    assert sorted(p.email for p in listing.persons) == [
        "admin@acme.com",
        "existing@acme.com",
        "same@acme.com",
    ]


async def test_real_run_is_a_background_job_keeping_valid_rows(
    directory: Directory, nats_url: str
) -> None:
    ws = await _prepare(directory)
    started = await _start(directory, ws, CSV.encode())
    assert (
        started.status in ("pending", "running", "done")
        and not started.dry_run
        and started.total_rows == 9
    )
    job = await _wait(directory, ws, started.id)
    assert job.status == "done", job.message
    assert job.rows_done == job.total_rows == 9
    assert (job.created, job.updated, job.unchanged, job.failed) == (2, 1, 1, 5)
    assert set(_errors(job)) == {6, 7, 8, 9, 10}
    sys = directory.caller(ws)

    async def find(email: str) -> directory_pb2.Person:
        return await directory.stub.FindPersonByEmail(
            directory_pb2.FindPersonByEmailRequest(caller=sys, email=email)
        )

    new1 = await find("new1@acme.com")
    assert new1.portal_access and new1.login_name == "" and new1.name == "New One"
    groups = {
        g.id: g.name
        for g in (
            await directory.stub.ListGroups(directory_pb2.ListGroupsRequest(caller=sys))
        ).groups
    }
    assert [groups[g] for g in new1.group_ids] == ["Portal Users"]
    new2 = await find("new2@supplier.org")
    assert new2.portal_access is False and new2.login_name == "n2"
    existing = await find("existing@acme.com")
    assert existing.name == "Existing Renamed" and existing.portal_access is False
    await expect_code(grpc.StatusCode.NOT_FOUND, find("ghost@acme.com"))

    events = await collect_events(nats_url, ws, {"persons_imported", "portal_access_changed"})
    (batch,) = named(events, "persons_imported")
    assert batch.import_id == started.id  # type: ignore[attr-defined]
    assert sorted(batch.created_person_ids) == sorted([new1.id, new2.id])  # type: ignore[attr-defined]
    assert sorted(batch.affected_person_ids) == sorted([new1.id, new2.id])  # type: ignore[attr-defined]
    access = named(events, "portal_access_changed")
    assert [(a.person_id, a.portal_access) for a in access] == [(existing.id, False)]  # type: ignore[attr-defined]
    assert "name" in access[0].changed_fields  # type: ignore[attr-defined]
    # Importing the same file again changes nothing more.
    again = await _wait(directory, ws, (await _start(directory, ws, CSV.encode())).id)
    assert (again.created, again.updated, again.unchanged, again.failed) == (0, 0, 4, 5)


async def test_json_import_names_lines_and_upserts(directory: Directory) -> None:
    ws = await _prepare(directory)
    doc = json.dumps(
        [
            {
                "email": "j1@acme.com",
                "name": "J One",
                "groups": ["Portal Users"],
                "portal_access": True,
            },
            {"email": "existing@acme.com", "active": False},
            {"email": "j3@acme.com", "name": "J3", "colour": "red"},
            "not an object",
        ],
        indent=2,
    ).encode()
    job = await _wait(directory, ws, (await _start(directory, ws, doc, fmt="json")).id)
    assert (job.created, job.updated, job.failed) == (1, 1, 2)
    errors = _errors(job)
    assert errors[14] == ("colour", errors[14][1])  # the third object starts on line 14
    assert 19 in errors
    existing = await directory.stub.FindPersonByEmail(
        directory_pb2.FindPersonByEmailRequest(
            caller=directory.caller(ws), email="existing@acme.com"
        )
    )
    assert existing.active is False


async def test_bad_files_give_clear_errors_and_write_nothing(directory: Directory) -> None:
    ws = await _prepare(directory)
    cases = [
        ("csv", "email,name\nlatin@acme.com,Jos\xe9\n".encode("latin-1"), "not UTF-8"),
        ("csv", b"mail;name\nx@acme.com;X\n", "unknown column"),
        ("csv", b"name\nX\n", "'email' is missing"),
        ("csv", b'email,name\n"unterminated@acme.com,X\n', "line"),
        ("json", b'[{"email": "a@acme.com",}]', "line 1"),
        ("json", b'{"people": []}', "JSON array"),
        ("xml", b"<persons/>", "csv or json"),
        ("csv", b"email,name\n" + b"x" * (50 * 1024 * 1024), "limit is 50 MB"),
    ]
    for fmt, content, expected in cases:
        for dry_run in (True, False):
            msg = await expect_code(
                grpc.StatusCode.INVALID_ARGUMENT,
                _start(directory, ws, content, fmt=fmt, dry_run=dry_run),
            )
            assert expected in msg, msg
    listing = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=directory.caller(ws))
    )
    assert listing.total == 3
    conn = await directory.stack.connect("directory")
    assert await conn.fetchval("select count(*) from import_jobs") == 0


async def test_import_needs_person_manage_and_stays_in_its_workspace(directory: Directory) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    other = (await directory.workspace()).workspace.id
    reader = directory.caller(ws, created.admin.id, ["Person:read"])
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.StartImport(
            directory_pb2.StartImportRequest(
                caller=reader, format="csv", content=b"email\na@b.co\n"
            )
        ),
    )
    job = await _start(directory, ws, b"email,name\na@acme.com,A\n", dry_run=True)
    await expect_code(
        grpc.StatusCode.NOT_FOUND,
        directory.stub.GetImport(
            directory_pb2.GetImportRequest(caller=directory.caller(other), import_id=job.id)
        ),
    )
    # Joining a group that carries permissions the importer lacks is refused.
    manager = directory.caller(ws, created.admin.id, ["Person:manage"])
    msg = await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        directory.stub.StartImport(
            directory_pb2.StartImportRequest(
                caller=manager,
                format="csv",
                content=b"email,name,groups\nz@acme.com,Z,Administrators\n",
            )
        ),
    )
    assert "Administrators" in msg


async def test_two_replicas_share_the_jobs_each_runs_once(stack: Stack) -> None:
    from services.directory.app import create_server
    from services.directory.settings import Settings

    async with open_directory(stack) as first:
        second = await create_server(Settings.from_env(stack.env_of("directory")))
        try:
            ws = (await first.workspace()).workspace.id
            jobs = []
            for k in range(6):
                rows = "".join(f"p{k}-{i}@acme.com,Person {k} {i}\n" for i in range(300))
                jobs.append(await _start(first, ws, f"email,name\n{rows}".encode()))
            finished = [await _wait(first, ws, job.id) for job in jobs]
            assert [(j.status, j.created, j.rows_done) for j in finished] == [
                ("done", 300, 300)
            ] * 6
            listing = await first.stub.ListPersons(
                directory_pb2.ListPersonsRequest(caller=first.caller(ws))
            )
            assert listing.total == 6 * 300 + 1
            conn = await stack.connect("directory")
            attempts = await conn.fetch("select attempts from import_jobs order by created_at")
            assert [r["attempts"] for r in attempts] == [1] * 6
        finally:
            await second.stop()


async def test_a_job_whose_worker_died_is_resumed_from_rows_done(directory: Directory) -> None:
    ws = (await directory.workspace()).workspace.id
    content = ("email,name\n" + "".join(f"r{i}@acme.com,R {i}\n" for i in range(2500))).encode()
    conn = await directory.stack.connect("directory")
    # A replica claimed the job, committed the first chunk (1,000 rows), then vanished.
    job_id = await conn.fetchval(
        """
        insert into import_jobs (id, workspace_id, format, content, status, total_rows, rows_done,
            created, attempts, heartbeat_at, started_at)
        values (gen_random_uuid(), $1::uuid, 'csv', $2, 'running', 2500, 1000, 1000, 1,
            now() - interval '1 hour', now() - interval '1 hour')
        returning id::text
        """,
        ws,
        content,
    )
    job = await _wait(directory, ws, job_id)
    assert (job.status, job.rows_done, job.created) == ("done", 2500, 2500)
    # Only the rows after the committed chunk were processed again.
    listing = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=directory.caller(ws), query="r1499@")
    )
    assert [p.email for p in listing.persons] == ["r1499@acme.com"]
    none = await directory.stub.ListPersons(
        directory_pb2.ListPersonsRequest(caller=directory.caller(ws), query="r999@")
    )
    assert none.total == 0
    assert await conn.fetchval("select attempts from import_jobs where id = $1::uuid", job_id) == 2


async def test_an_import_does_not_deactivate_an_administrator(directory: Directory) -> None:
    created = await directory.workspace()
    ws = created.workspace.id
    await directory.person(ws, "plain@acme.com", "Plain")
    content = b"email,active\nadmin@acme.com,false\nplain@acme.com,false\n"
    job = await _wait(directory, ws, (await _start(directory, ws, content)).id)
    assert (job.updated, job.failed) == (1, 1)
    assert _errors(job)[2][0] == "active"
    admin = await directory.stub.GetPerson(
        directory_pb2.GetPersonRequest(caller=directory.caller(ws), person_id=created.admin.id)
    )
    assert admin.active is True
