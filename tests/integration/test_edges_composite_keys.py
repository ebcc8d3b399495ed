"""Every reference inside a service's schema carries the workspace: a row of workspace A can
never point at workspace B's row, even written by hand (issue 12: single-column keys)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.stack import Stack

A, B = uuid.uuid4(), uuid.uuid4()


async def _refused(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(sql, *args)


async def test_directory_memberships_stay_inside_their_workspace(stack: Stack) -> None:
    await stack.start("directory")
    db = await stack.connect("directory")
    person, role, group, role_a = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for ws, slug in ((A, "edges-a"), (B, "edges-b")):
        await db.execute("insert into workspaces (id, slug, name) values ($1, $2, $2)", ws, slug)
    await db.execute(
        "insert into persons (id, workspace_id, email, portal_access) values ($1, $2, 'p@a', true)",
        person,
        A,
    )
    await db.execute("insert into roles (id, workspace_id, name) values ($1, $2, 'R')", role, B)
    await db.execute("insert into roles (id, workspace_id, name) values ($1, $2, 'R')", role_a, A)
    await db.execute("insert into groups (id, workspace_id, name) values ($1, $2, 'G')", group, B)

    # A's person with B's role or group, written as A's row or as B's: refused either way.
    for ws in (A, B):
        await _refused(
            db,
            "insert into person_roles (workspace_id, person_id, role_id) values ($1, $2, $3)",
            ws,
            person,
            role,
        )
        await _refused(
            db,
            "insert into group_members (workspace_id, group_id, person_id) values ($1, $2, $3)",
            ws,
            group,
            person,
        )
        await _refused(
            db,
            "insert into group_roles (workspace_id, group_id, role_id) values ($1, $2, $3)",
            ws,
            group,
            role_a,
        )
    # Inside one workspace the same kind of row is accepted.
    await db.execute(
        "insert into person_roles (workspace_id, person_id, role_id) values ($1, $2, $3)",
        A,
        person,
        role_a,
    )


async def test_ticket_comments_and_history_stay_inside_their_workspace(stack: Stack) -> None:
    await stack.start("tickets", FRONTDESK_DIRECTORY_ADDR="127.0.0.1:1")
    db = await stack.connect("tickets")
    ticket = uuid.uuid4()
    await db.execute(
        """
        insert into tickets (id, workspace_id, type, seq, title, description, status,
                             requester_id, impact, urgency, priority)
        values ($1, $2, 'incident', 1, 't', 'd', 'new', $3, 'low', 'low', 5)
        """,
        ticket,
        A,
        uuid.uuid4(),
    )
    await _refused(
        db,
        "insert into ticket_comments (id, workspace_id, ticket_id, body, internal)"
        " values ($1, $2, $3, 'x', false)",
        uuid.uuid4(),
        B,
        ticket,
    )
    await _refused(
        db,
        "insert into ticket_history (workspace_id, ticket_id, kind, field)"
        " values ($1, $2, 'status', 'status')",
        B,
        ticket,
    )
    await db.execute(
        "insert into ticket_comments (id, workspace_id, ticket_id, body, internal)"
        " values ($1, $2, $3, 'x', false)",
        uuid.uuid4(),
        A,
        ticket,
    )


async def test_compliance_references_stay_inside_their_workspace(stack: Stack) -> None:
    await stack.start("compliance", FRONTDESK_DIRECTORY_ADDR="127.0.0.1:1")
    db = await stack.connect("compliance")
    control, test, issue = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await db.execute(
        "insert into controls (id, workspace_id, seq, title, frequency, owner_id)"
        " values ($1, $2, 1, 'c', 'monthly', $3)",
        control,
        A,
        uuid.uuid4(),
    )
    test_sql = (
        "insert into control_tests (id, workspace_id, seq, control_id, ad_hoc, period_start,"
        " period_end, due_date) values ($1, $2, 1, $3, true, current_date, current_date,"
        " current_date)"
    )
    await _refused(db, test_sql, uuid.uuid4(), B, control)
    await db.execute(test_sql, test, A, control)
    issue_sql = (
        "insert into issues (id, workspace_id, seq, title, severity, status, control_id,"
        " control_test_id) values ($1, $2, $3, 'i', 'low', 'open', $4, $5)"
    )
    await _refused(db, issue_sql, uuid.uuid4(), B, 1, control, None)
    await _refused(db, issue_sql, uuid.uuid4(), B, 2, None, test)
    await db.execute(issue_sql, issue, A, 1, control, test)
    await _refused(
        db,
        "insert into issue_comments (id, workspace_id, issue_id, body) values ($1, $2, $3, 'x')",
        uuid.uuid4(),
        B,
        issue,
    )
    await _refused(
        db,
        "insert into issue_history (workspace_id, issue_id, field) values ($1, $2, 'status')",
        B,
        issue,
    )
    # A test's raised issue (checked at commit): another workspace's issue is refused.
    other = uuid.uuid4()
    await db.execute(issue_sql, other, B, 3, None, None)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with db.transaction():
            await db.execute("update control_tests set issue_id = $1 where id = $2", other, test)
    await db.execute("update control_tests set issue_id = $1 where id = $2", issue, test)


async def test_auth_confirmations_belong_to_credentials_of_their_workspace(stack: Stack) -> None:
    await stack.start("directory")
    await stack.start("auth")
    db = await stack.connect("auth")
    person = uuid.uuid4()
    await db.execute(
        "insert into credentials (workspace_id, person_id, password_hash) values ($1, $2, 'x')",
        A,
        person,
    )
    confirm = (
        "insert into email_confirmations (workspace_id, token_hash, person_id, expires_at)"
        " values ($1, $2, $3, now() + interval '1 hour')"
    )
    await _refused(db, confirm, B, "t1", person)
    await db.execute(confirm, A, "t2", person)
