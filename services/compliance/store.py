"""Every SQL statement of the compliance service; each is filtered by workspace_id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

import asyncpg

from services.chassis import sql
from services.chassis.paging import Page
from services.compliance.domain import (
    Control,
    ControlTest,
    Issue,
    IssueChange,
    IssueComment,
)


async def next_seq(conn: asyncpg.Connection, workspace_id: uuid.UUID, kind: str) -> int:
    """The next number of `kind` in the workspace (row-locked until the transaction ends)."""
    value: int = await conn.fetchval(
        """
        insert into counters (workspace_id, kind, value) values ($1, $2, 1)
        on conflict (workspace_id, kind) do update set value = counters.value + 1
        returning value
        """,
        workspace_id,
        kind,
    )
    return value


# Controls

_CONTROL_COLUMNS = """
    id, workspace_id, seq, title, description, test_procedure, framework_ref, frequency,
    owner_id, active, created_at, updated_at
"""


def _control(row: asyncpg.Record) -> Control:
    return Control(**{k: row[k] for k in Control.__dataclass_fields__})


async def insert_control(conn: asyncpg.Connection, c: Control) -> Control:
    row = await conn.fetchrow(
        f"""
        insert into controls (id, workspace_id, seq, title, description, test_procedure,
                              framework_ref, frequency, owner_id, active)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        returning {_CONTROL_COLUMNS}
        """,  # noqa: S608
        c.id,
        c.workspace_id,
        c.seq,
        c.title,
        c.description,
        c.test_procedure,
        c.framework_ref,
        c.frequency,
        c.owner_id,
        c.active,
    )
    return _control(row)


async def update_control(conn: asyncpg.Connection, c: Control) -> Control:
    row = await conn.fetchrow(
        f"""
        update controls set title = $3, description = $4, test_procedure = $5,
            framework_ref = $6, frequency = $7, owner_id = $8, active = $9, updated_at = now()
        where workspace_id = $1 and id = $2
        returning {_CONTROL_COLUMNS}
        """,  # noqa: S608
        c.workspace_id,
        c.id,
        c.title,
        c.description,
        c.test_procedure,
        c.framework_ref,
        c.frequency,
        c.owner_id,
        c.active,
    )
    return _control(row)


async def get_control(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    *,
    control_id: uuid.UUID | None = None,
    seq: int | None = None,
    for_update: bool = False,
) -> Control | None:
    lock = "for update" if for_update else ""
    row = await conn.fetchrow(
        f"""
        select {_CONTROL_COLUMNS} from controls
        where workspace_id = $1 and (id = $2 or seq = $3) {lock}
        """,  # noqa: S608
        workspace_id,
        control_id,
        seq,
    )
    return _control(row) if row else None


async def list_controls(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    page: Page,
    *,
    query: str = "",
    active: bool | None = None,
    frequency: str | None = None,
    owner_id: uuid.UUID | None = None,
) -> tuple[list[Control], int]:
    where = sql.Where("workspace_id", workspace_id)
    if query:
        where.add(
            "(title ilike {0} or framework_ref ilike {0} or 'CTL-' || seq ilike {0})",
            sql.like_pattern(query),
        )
    if active is not None:
        where.add("active = {}", active)
    if frequency:
        where.add("frequency = {}", frequency)
    if owner_id:
        where.add("owner_id = {}", owner_id)
    total = await conn.fetchval(f"select count(*) from controls where {where.sql()}", *where.params)  # noqa: S608
    where.after(["seq"], page.after)
    limit = where.limit(page.size + 1)
    rows = await conn.fetch(
        f"select {_CONTROL_COLUMNS} from controls where {where.sql()} order by seq {limit}",  # noqa: S608
        *where.params,
    )
    return [_control(r) for r in rows], int(total)


# Control tests

_TEST_SELECT = """
    select t.id, t.workspace_id, t.seq, t.control_id, t.ad_hoc, t.period_start, t.period_end,
           t.due_date, t.assignee_id, t.state, t.result, t.notes, t.evidence, t.tester_id,
           t.completed_at, t.review, t.reviewer_id, t.review_notes, t.reviewed_at, t.issue_id,
           t.created_at, t.updated_at,
           c.seq as control_seq, c.title as control_title, c.test_procedure,
           i.seq as issue_seq
    from control_tests t
    join controls c on c.workspace_id = t.workspace_id and c.id = t.control_id
    left join issues i on i.workspace_id = t.workspace_id and i.id = t.issue_id
"""


def _test(row: asyncpg.Record) -> ControlTest:
    return ControlTest(**{k: row[k] for k in ControlTest.__dataclass_fields__ if k in row})


async def insert_test(conn: asyncpg.Connection, t: ControlTest) -> bool:
    """False when a scheduled test of that control and period exists already."""
    status = await conn.execute(
        """
        insert into control_tests (id, workspace_id, seq, control_id, ad_hoc, period_start,
                                   period_end, due_date, assignee_id)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        on conflict (workspace_id, control_id, period_start) where not ad_hoc do nothing
        """,
        t.id,
        t.workspace_id,
        t.seq,
        t.control_id,
        t.ad_hoc,
        t.period_start,
        t.period_end,
        t.due_date,
        t.assignee_id,
    )
    return bool(status.endswith(" 1"))


async def update_test(conn: asyncpg.Connection, t: ControlTest) -> None:
    await conn.execute(
        """
        update control_tests set due_date = $3, assignee_id = $4, state = $5, result = $6,
            notes = $7, evidence = $8, tester_id = $9, completed_at = $10, review = $11,
            reviewer_id = $12, review_notes = $13, reviewed_at = $14, issue_id = $15,
            updated_at = now()
        where workspace_id = $1 and id = $2
        """,
        t.workspace_id,
        t.id,
        t.due_date,
        t.assignee_id,
        t.state,
        t.result,
        t.notes,
        t.evidence,
        t.tester_id,
        t.completed_at,
        t.review,
        t.reviewer_id,
        t.review_notes,
        t.reviewed_at,
        t.issue_id,
    )


async def get_test(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    *,
    test_id: uuid.UUID | None = None,
    seq: int | None = None,
    for_update: bool = False,
) -> ControlTest | None:
    lock = "for update of t" if for_update else ""
    row = await conn.fetchrow(
        f"{_TEST_SELECT} where t.workspace_id = $1 and (t.id = $2 or t.seq = $3) {lock}",
        workspace_id,
        test_id,
        seq,
    )
    return _test(row) if row else None


async def list_tests(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    page: Page,
    *,
    today: date,
    control_id: uuid.UUID | None = None,
    state: str | None = None,
    assignee_id: uuid.UUID | None = None,
    result: str | None = None,
) -> tuple[list[ControlTest], int]:
    where = sql.Where("t.workspace_id", workspace_id)
    if control_id:
        where.add("t.control_id = {}", control_id)
    if assignee_id:
        where.add("t.assignee_id = {}", assignee_id)
    if result:
        where.add("t.result = {}", result)
    if state == "completed":
        where.add("t.state = 'completed'")
    elif state == "overdue":
        where.add("t.state <> 'completed' and t.due_date < {}", today)
    elif state == "scheduled":
        where.add("t.state = 'scheduled' and t.due_date >= {}", today)
    total = await conn.fetchval(
        f"select count(*) from control_tests t where {where.sql()}",  # noqa: S608
        *where.params,
    )
    keys = ["(t.state = 'completed')", "t.due_date", "t.seq"]
    where.after(keys, page.after)
    limit = where.limit(page.size + 1)
    rows = await conn.fetch(
        f"""{_TEST_SELECT} where {where.sql()} {sql.order_by(keys)} {limit}""",
        *where.params,
    )
    return [_test(r) for r in rows], int(total)


async def latest_scheduled_test(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, control_id: uuid.UUID
) -> ControlTest | None:
    row = await conn.fetchrow(
        f"""{_TEST_SELECT} where t.workspace_id = $1 and t.control_id = $2 and not t.ad_hoc
        order by t.period_start desc limit 1""",
        workspace_id,
        control_id,
    )
    return _test(row) if row else None


async def has_open_test(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, control_id: uuid.UUID
) -> bool:
    return bool(
        await conn.fetchval(
            """
            select exists (select 1 from control_tests where workspace_id = $1
                           and control_id = $2 and not ad_hoc and state <> 'completed')
            """,
            workspace_id,
            control_id,
        )
    )


async def sweep_workspaces(conn: asyncpg.Connection, today: date) -> list[uuid.UUID]:
    """The workspaces the sweep has work in. The one statement not scoped to a workspace: it
    only enumerates them; the sweep's changes then run per workspace."""
    rows = await conn.fetch(
        """
        select workspace_id from control_tests where state = 'scheduled' and due_date < $1
        union
        select workspace_id from controls where active and frequency <> 'ad_hoc'
        """,
        today,
    )
    return [r["workspace_id"] for r in rows]


async def mark_overdue(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, today: date, limit: int = 500
) -> list[tuple[uuid.UUID, bool]]:
    """Record the overdue transition; concurrent sweeps each get a disjoint set of tests.
    Returns (id, first time): a test moved back to scheduled and overdue again is not new."""
    rows = await conn.fetch(
        """
        update control_tests
        set state = 'overdue', overdue_at = coalesce(overdue_at, now()), updated_at = now()
        where workspace_id = $1 and id in (
            select id from control_tests
            where workspace_id = $1 and state = 'scheduled' and due_date < $2
            order by due_date limit $3 for update skip locked)
        returning id, overdue_at = now() as first
        """,
        workspace_id,
        today,
        limit,
    )
    return [(r["id"], bool(r["first"])) for r in rows]


async def controls_due_for_schedule(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, today: date
) -> list[tuple[Control, uuid.UUID | None]]:
    """Recurring active controls whose latest scheduled test's period is over (or that have
    none), with that test's assignee."""
    rows = await conn.fetch(
        f"""
        select {", ".join("c." + c.strip() for c in _CONTROL_COLUMNS.split(","))},
               last.assignee_id as last_assignee
        from controls c
        left join lateral (
            select t.period_end, t.assignee_id from control_tests t
            where t.workspace_id = c.workspace_id and t.control_id = c.id and not t.ad_hoc
            order by t.period_start desc limit 1) last on true
        where c.workspace_id = $1 and c.active and c.frequency <> 'ad_hoc'
          and (last.period_end is null or last.period_end < $2)
        """,  # noqa: S608
        workspace_id,
        today,
    )
    return [(_control(r), r["last_assignee"]) for r in rows]


# Issues

_ISSUE_SELECT = """
    select s.id, s.workspace_id, s.seq, s.title, s.description, s.severity, s.status,
           s.reporter_id, s.assignee_id, s.remediation_due_date, s.acceptance_deadline,
           s.control_id, s.control_test_id, s.created_at, s.updated_at, s.resolved_at,
           s.closed_at,
           c.seq as control_seq, t.seq as control_test_seq,
           (select count(*) from issue_comments m
            where m.workspace_id = s.workspace_id and m.issue_id = s.id) as comment_count
    from issues s
    left join controls c on c.workspace_id = s.workspace_id and c.id = s.control_id
    left join control_tests t on t.workspace_id = s.workspace_id and t.id = s.control_test_id
"""


def _issue(row: asyncpg.Record) -> Issue:
    return Issue(**{k: row[k] for k in Issue.__dataclass_fields__})


async def insert_issue(conn: asyncpg.Connection, s: Issue) -> None:
    await conn.execute(
        """
        insert into issues (id, workspace_id, seq, title, description, severity, status,
                            reporter_id, assignee_id, remediation_due_date, acceptance_deadline,
                            control_id, control_test_id)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        """,
        s.id,
        s.workspace_id,
        s.seq,
        s.title,
        s.description,
        s.severity,
        s.status,
        s.reporter_id,
        s.assignee_id,
        s.remediation_due_date,
        s.acceptance_deadline,
        s.control_id,
        s.control_test_id,
    )


async def update_issue(conn: asyncpg.Connection, s: Issue) -> None:
    await conn.execute(
        """
        update issues set title = $3, description = $4, severity = $5, status = $6,
            assignee_id = $7, remediation_due_date = $8, acceptance_deadline = $9,
            control_id = $10, control_test_id = $11, resolved_at = $12, closed_at = $13,
            updated_at = now()
        where workspace_id = $1 and id = $2
        """,
        s.workspace_id,
        s.id,
        s.title,
        s.description,
        s.severity,
        s.status,
        s.assignee_id,
        s.remediation_due_date,
        s.acceptance_deadline,
        s.control_id,
        s.control_test_id,
        s.resolved_at,
        s.closed_at,
    )


async def get_issue(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    *,
    issue_id: uuid.UUID | None = None,
    seq: int | None = None,
    for_update: bool = False,
) -> Issue | None:
    lock = "for update of s" if for_update else ""
    row = await conn.fetchrow(
        f"{_ISSUE_SELECT} where s.workspace_id = $1 and (s.id = $2 or s.seq = $3) {lock}",
        workspace_id,
        issue_id,
        seq,
    )
    return _issue(row) if row else None


async def list_issues(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    page: Page,
    *,
    today: date,
    statuses: Sequence[str] = (),
    severities: Sequence[str] = (),
    assignee_id: uuid.UUID | None = None,
    overdue: bool | None = None,
    control_id: uuid.UUID | None = None,
    query: str = "",
) -> tuple[list[Issue], int]:
    where = sql.Where("s.workspace_id", workspace_id)
    if statuses:
        where.add("s.status = any({}::text[])", list(statuses))
    if severities:
        where.add("s.severity = any({}::text[])", list(severities))
    if assignee_id:
        where.add("s.assignee_id = {}", assignee_id)
    if control_id:
        where.add("s.control_id = {}", control_id)
    if overdue is not None:
        fragment = (
            "(s.remediation_due_date < {} and s.status not in ('resolved', 'closed', 'accepted'))"
        )
        where.add(fragment if overdue else f"not coalesce({fragment}, false)", today)
    if query:
        where.add("(s.title ilike {0} or 'ISS-' || s.seq ilike {0})", sql.like_pattern(query))
    total = await conn.fetchval(f"select count(*) from issues s where {where.sql()}", *where.params)  # noqa: S608
    where.after(["s.seq"], page.after, "desc")
    limit = where.limit(page.size + 1)
    rows = await conn.fetch(
        f"{_ISSUE_SELECT} where {where.sql()} order by s.seq desc {limit}", *where.params
    )
    return [_issue(r) for r in rows], int(total)


async def insert_comment(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    c: IssueComment,
    idempotency_key: str | None = None,
) -> IssueComment:
    row = await conn.fetchrow(
        """
        insert into issue_comments (id, workspace_id, issue_id, author_id, body, idempotency_key)
        values ($1, $2, $3, $4, $5, $6) returning created_at
        """,
        c.id,
        workspace_id,
        c.issue_id,
        c.author_id,
        c.body,
        idempotency_key,
    )
    c.created_at = row["created_at"]
    return c


async def comment_by_key(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, author_id: uuid.UUID, key: str
) -> IssueComment | None:
    """The author's issue comment added earlier with this idempotency key, if any."""
    row = await conn.fetchrow(
        """
        select id, issue_id, author_id, body, created_at from issue_comments
        where workspace_id = $1 and author_id = $2 and idempotency_key = $3
        """,
        workspace_id,
        author_id,
        key,
    )
    return None if row is None else IssueComment(**dict(row))


async def list_comments(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, issue_id: uuid.UUID
) -> list[IssueComment]:
    rows = await conn.fetch(
        """
        select id, issue_id, author_id, body, created_at from issue_comments
        where workspace_id = $1 and issue_id = $2 order by created_at, id
        """,
        workspace_id,
        issue_id,
    )
    return [IssueComment(**dict(r)) for r in rows]


async def insert_history(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    issue_id: uuid.UUID,
    changes: Sequence[IssueChange],
) -> None:
    await conn.executemany(
        """
        insert into issue_history (workspace_id, issue_id, field, old_value, new_value,
                                   actor_id, note)
        values ($1, $2, $3, $4, $5, $6, $7)
        """,
        [
            (workspace_id, issue_id, c.field, c.old_value, c.new_value, c.actor_id, c.note)
            for c in changes
        ],
    )


async def list_history(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, issue_id: uuid.UUID
) -> list[IssueChange]:
    rows = await conn.fetch(
        """
        select field, old_value, new_value, actor_id, note, changed_at from issue_history
        where workspace_id = $1 and issue_id = $2 order by id
        """,
        workspace_id,
        issue_id,
    )
    return [IssueChange(**dict(r)) for r in rows]
