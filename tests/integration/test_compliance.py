"""The compliance service against real PostgreSQL, NATS and gRPC: controls, control tests,
the automatic issue from a failed test, the overdue sweep, issues, access rules, events.

Over 600 lines: one service's behaviour under one fixture set; split by concept (controls, tests, issues) in a later change.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import grpc
import nats
import pytest
from frontdesk.v1 import common_pb2, compliance_pb2, compliance_pb2_grpc, events_pb2

from services.compliance.domain import period_containing
from tests.people import People, workspace
from tests.signing import channel
from tests.stack import Stack

pb = compliance_pb2
PORTAL_TESTER = ("Control:read", "ControlTest:read", "ControlTest:update", "Issue:read")
MANAGER = ("Control:manage", "Issue:manage")


def today() -> date:
    return datetime.now(UTC).date()


@dataclass
class Env:
    stub: compliance_pb2_grpc.ComplianceServiceStub
    db: asyncpg.Connection
    ws: str
    manager: common_pb2.Caller
    owner_id: str
    people: People

    def person(self, person_id: str, perms: tuple[str, ...] = PORTAL_TESTER) -> common_pb2.Caller:
        return common_pb2.Caller(workspace_id=self.ws, person_id=person_id, permissions=perms)

    def system(self, ws: str | None = None) -> common_pb2.Caller:
        return common_pb2.Caller(workspace_id=ws or self.ws)


@pytest.fixture
async def env(stack: Stack) -> AsyncIterator[Env]:
    # A long sweep interval: tests run the sweep themselves unless they test the timer.
    await stack.start("directory")  # compliance checks the persons callers name with it
    await stack.start("compliance", FRONTDESK_COMPLIANCE_SWEEP_INTERVAL="3600")
    people = await workspace(stack)
    async with channel(stack.addresses["compliance"]) as ch:
        manager = common_pb2.Caller(
            workspace_id=people.ws, person_id=await people.person(*MANAGER), permissions=MANAGER
        )
        yield Env(
            stub=compliance_pb2_grpc.ComplianceServiceStub(ch),
            db=await stack.connect("compliance"),
            ws=people.ws,
            manager=manager,
            owner_id=await people.person(*PORTAL_TESTER),
            people=people,
        )


async def _code(awaitable: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable  # type: ignore[misc]
    return info.value.code()


async def _control(
    env: Env, frequency: int = pb.CONTROL_FREQUENCY_MONTHLY, title: str = "Access review"
) -> pb.Control:
    return await env.stub.CreateControl(
        pb.CreateControlRequest(
            caller=env.manager,
            title=title,
            description="Quarterly review of privileged access",
            test_procedure="1. Export the admin list. 2. Compare with HR records.",
            framework_ref="ISO 27001 A.5.15",
            frequency=frequency,
            owner_id=env.owner_id,
        )
    )


async def _my_tests(env: Env, person_id: str) -> list[pb.ControlTest]:
    resp = await env.stub.ListMyControlTests(
        pb.ListMyControlTestsRequest(caller=env.person(person_id))
    )
    return list(resp.control_tests)


async def test_controls_are_numbered_and_managed_by_control_manage(env: Env, stack: Stack) -> None:
    first = await _control(env)
    second = await _control(env, pb.CONTROL_FREQUENCY_AD_HOC, "Backup restore drill")
    assert (first.number, second.number) == ("CTL-1", "CTL-2")
    assert first.framework_ref == "ISO 27001 A.5.15"
    assert first.active and first.owner_id == env.owner_id

    updated = await env.stub.UpdateControl(
        pb.UpdateControlRequest(
            caller=env.manager, control_id="CTL-1", title="Privileged access review"
        )
    )
    assert updated.title == "Privileged access review"
    assert updated.test_procedure == first.test_procedure  # unset fields unchanged

    reader = env.person(await env.people.person("Control:read"), ("Control:read",))
    got = await env.stub.GetControl(pb.GetControlRequest(caller=reader, control_id=first.id))
    assert got.title == "Privileged access review"
    listed = await env.stub.ListControls(pb.ListControlsRequest(caller=reader, query="backup"))
    assert [c.number for c in listed.controls] == ["CTL-2"]

    nobody = env.person(await env.people.person(), ())
    assert (
        await _code(env.stub.GetControl(pb.GetControlRequest(caller=nobody, control_id="CTL-1")))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        await _code(
            env.stub.UpdateControl(
                pb.UpdateControlRequest(caller=reader, control_id="CTL-1", title="x")
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    other_ws = (await workspace(stack)).system
    assert (
        await _code(env.stub.GetControl(pb.GetControlRequest(caller=other_ws, control_id=first.id)))
        == grpc.StatusCode.NOT_FOUND
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await env.stub.CreateControl(
            pb.CreateControlRequest(caller=env.manager, title=" ", owner_id="nope")
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "title: required" in (info.value.details() or "")
    assert "frequency: required" in (info.value.details() or "")
    assert "owner_id: not a valid id" in (info.value.details() or "")


async def test_recurring_control_schedules_its_first_test_for_the_owner(env: Env) -> None:
    control = await _control(env)
    start, end = period_containing("monthly", today())
    tests = await _my_tests(env, env.owner_id)
    assert len(tests) == 1
    test = tests[0]
    assert test.number == "TST-1" and test.control_id == control.id
    assert (test.period_start, test.period_end) == (start.isoformat(), end.isoformat())
    assert test.due_date == end.isoformat()
    assert test.state == pb.CONTROL_TEST_STATE_SCHEDULED
    assert not test.ad_hoc
    # The portal page shows the control's test procedure with the test.
    got = await env.stub.GetControlTest(
        pb.GetControlTestRequest(caller=env.person(env.owner_id), control_test_id="TST-1")
    )
    assert got.test_procedure.startswith("1. Export the admin list")
    assert got.control_title == "Access review" and got.control_number == "CTL-1"
    # An ad hoc control gets no automatic test.
    await _control(env, pb.CONTROL_FREQUENCY_AD_HOC, "Drill")
    assert len(await _my_tests(env, env.owner_id)) == 1


async def test_assignee_completes_a_test_which_locks_it_and_schedules_the_next(env: Env) -> None:
    await _control(env)
    tester = env.person(env.owner_id)
    done = await env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=tester,
            control_test_id="TST-1",
            result=pb.CONTROL_TEST_RESULT_PASS,
            notes="All 14 admins match HR records.",
            evidence="export-2026.csv sha256 abc",
        )
    )
    test = done.control_test
    assert test.state == pb.CONTROL_TEST_STATE_COMPLETED
    assert test.result == pb.CONTROL_TEST_RESULT_PASS
    assert test.tester_id == env.owner_id and test.completed_at.seconds > 0
    assert test.evidence == "export-2026.csv sha256 abc"
    assert not done.HasField("issue")

    # The next period's test, for the same assignee.
    _, end = period_containing("monthly", today())
    next_start, next_end = period_containing("monthly", end + timedelta(days=1))
    assert done.next_test.number == "TST-2"
    assert done.next_test.period_start == next_start.isoformat()
    assert done.next_test.due_date == next_end.isoformat()
    assert done.next_test.assignee_id == env.owner_id
    assert {t.number for t in await _my_tests(env, env.owner_id)} == {"TST-1", "TST-2"}

    # Completed is locked.
    again = env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=tester, control_test_id="TST-1", result=pb.CONTROL_TEST_RESULT_FAIL
        )
    )
    assert await _code(again) == grpc.StatusCode.FAILED_PRECONDITION
    reassign = env.stub.UpdateControlTest(
        pb.UpdateControlTestRequest(
            caller=env.manager,
            control_test_id="TST-1",
            assignee_id=await env.people.person(*PORTAL_TESTER),
        )
    )
    assert await _code(reassign) == grpc.StatusCode.FAILED_PRECONDITION
    row = await env.db.fetchrow("select state, result, notes from control_tests where seq = 1")
    assert dict(row) == {
        "state": "completed",
        "result": "pass",
        "notes": "All 14 admins match HR records.",
    }
    # A result is required.
    missing = env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(caller=tester, control_test_id="TST-2")
    )
    assert await _code(missing) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_failed_test_opens_an_issue_for_the_control_owner(env: Env) -> None:
    control = await _control(env)
    tester_id = await env.people.person(*PORTAL_TESTER)
    await env.stub.UpdateControlTest(
        pb.UpdateControlTestRequest(
            caller=env.manager, control_test_id="TST-1", assignee_id=tester_id
        )
    )
    done = await env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=env.person(tester_id),
            control_test_id="TST-1",
            result=pb.CONTROL_TEST_RESULT_FAIL,
            notes="Two leavers still hold admin rights.",
        )
    )
    issue = done.issue
    assert issue.number == "ISS-1"
    assert issue.title == "Control failure: Access review"
    assert issue.severity == pb.ISSUE_SEVERITY_MEDIUM
    assert issue.status == pb.ISSUE_STATUS_OPEN
    assert issue.assignee_id == env.owner_id
    assert issue.reporter_id == tester_id
    assert (issue.control_id, issue.control_test_id) == (control.id, done.control_test.id)
    assert "Two leavers" in issue.description
    assert done.control_test.issue_number == "ISS-1"
    # The next test goes to the previous assignee (the tester), not the owner.
    assert done.next_test.assignee_id == tester_id

    # The owner sees it in the portal, with the history of its creation.
    owner = env.person(env.owner_id)
    mine = await env.stub.ListMyIssues(pb.ListMyIssuesRequest(caller=owner))
    assert [i.number for i in mine.issues] == ["ISS-1"]
    detail = await env.stub.GetIssue(pb.GetIssueRequest(caller=owner, issue_id="ISS-1"))
    assert detail.issue.control_test_number == "TST-1"
    assert detail.history[0].field == "created"
    # Committed together: the test row points at the issue row.
    row = await env.db.fetchrow(
        "select t.result, i.title from control_tests t join issues i on i.id = t.issue_id"
    )
    assert dict(row) == {"result": "fail", "title": "Control failure: Access review"}


async def test_without_control_test_update_completing_is_permission_denied(env: Env) -> None:
    await _control(env)
    read_only = env.person(env.owner_id, ("Control:read", "ControlTest:read"))
    # They can see it (read-only page) ...
    got = await env.stub.GetControlTest(
        pb.GetControlTestRequest(caller=read_only, control_test_id="TST-1")
    )
    assert got.number == "TST-1"
    # ... but not complete it.
    call = env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=read_only, control_test_id="TST-1", result=pb.CONTROL_TEST_RESULT_PASS
        )
    )
    assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED
    # A manager who is not the assignee can see it but not complete it either.
    call = env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=env.manager, control_test_id="TST-1", result=pb.CONTROL_TEST_RESULT_PASS
        )
    )
    assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED
    # Without ControlTest:read the portal list is refused.
    call = env.stub.ListMyControlTests(
        pb.ListMyControlTestsRequest(caller=env.person(env.owner_id, ("Control:read",)))
    )
    assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED
    state = await env.db.fetchval("select state from control_tests where seq = 1")
    assert state == "scheduled"


async def test_items_not_assigned_to_me_or_of_another_workspace_are_not_found(
    env: Env, stack: Stack
) -> None:
    await _control(env)
    await env.stub.CreateIssue(
        pb.CreateIssueRequest(
            caller=env.manager,
            title="Laptop without disk encryption",
            severity=pb.ISSUE_SEVERITY_HIGH,
            assignee_id=env.owner_id,
        )
    )
    test_id = (await _my_tests(env, env.owner_id))[0].id
    stranger = env.person(await env.people.person(*PORTAL_TESTER))  # nothing assigned
    other_ws = common_pb2.Caller(
        workspace_id=(await workspace(stack)).ws,
        person_id=env.owner_id,
        permissions=(*PORTAL_TESTER, *MANAGER),
    )
    for caller in (stranger, other_ws):
        for ref in ("TST-1", test_id):
            assert (
                await _code(
                    env.stub.GetControlTest(
                        pb.GetControlTestRequest(caller=caller, control_test_id=ref)
                    )
                )
                == grpc.StatusCode.NOT_FOUND
            )
            assert (
                await _code(
                    env.stub.CompleteControlTest(
                        pb.CompleteControlTestRequest(
                            caller=caller, control_test_id=ref, result=pb.CONTROL_TEST_RESULT_PASS
                        )
                    )
                )
                == grpc.StatusCode.NOT_FOUND
            )
        for call in (
            env.stub.GetIssue(pb.GetIssueRequest(caller=caller, issue_id="ISS-1")),
            env.stub.AddIssueComment(
                pb.AddIssueCommentRequest(caller=caller, issue_id="ISS-1", body="hi")
            ),
        ):
            assert await _code(call) == grpc.StatusCode.NOT_FOUND
    for ref in ("TST-99", str(uuid.uuid4()), "not-an-id"):
        call = env.stub.GetControlTest(
            pb.GetControlTestRequest(caller=env.person(env.owner_id), control_test_id=ref)
        )
        assert await _code(call) == grpc.StatusCode.NOT_FOUND
    assert (await _my_tests(env, stranger.person_id)) == []
    mine = await env.stub.ListMyIssues(pb.ListMyIssuesRequest(caller=stranger))
    assert list(mine.issues) == []
    # A manager of another workspace sees none of it in lists either.
    listed = await env.stub.ListIssues(pb.ListIssuesRequest(caller=other_ws))
    assert listed.total == 0


async def test_overdue_is_computed_then_persisted_once_by_the_sweep(env: Env) -> None:
    await _control(env, pb.CONTROL_FREQUENCY_AD_HOC)
    created = await env.stub.CreateControlTest(
        pb.CreateControlTestRequest(
            caller=env.manager, control_id="CTL-1", due_date=today().isoformat()
        )
    )
    assert created.ad_hoc and created.state == pb.CONTROL_TEST_STATE_SCHEDULED
    # Time passes: the due date is now yesterday.
    yesterday = today() - timedelta(days=1)
    await env.db.execute(
        "update control_tests set due_date = $1, period_start = $1, period_end = $1", yesterday
    )
    owner = env.person(env.owner_id)
    got = await env.stub.GetControlTest(
        pb.GetControlTestRequest(caller=owner, control_test_id="TST-1")
    )
    assert got.state == pb.CONTROL_TEST_STATE_OVERDUE  # computed before the sweep
    assert await env.db.fetchval("select state from control_tests") == "scheduled"

    swept = await env.stub.SweepControlTests(pb.SweepControlTestsRequest(caller=env.system()))
    assert swept.marked_overdue == 1
    assert await env.db.fetchval("select state from control_tests") == "overdue"
    again = await env.stub.SweepControlTests(pb.SweepControlTestsRequest(caller=env.system()))
    assert again.marked_overdue == 0
    overdue_events = await env.db.fetchval(
        "select count(*) from outbox where subject like '%.control_test_overdue'"
    )
    assert overdue_events == 1
    listed = await env.stub.ListControlTests(
        pb.ListControlTestsRequest(caller=env.manager, state=pb.CONTROL_TEST_STATE_OVERDUE)
    )
    assert [t.number for t in listed.control_tests] == ["TST-1"]
    # An overdue test can still be completed, and then it is no longer overdue.
    done = await env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=owner, control_test_id="TST-1", result=pb.CONTROL_TEST_RESULT_NOT_APPLICABLE
        )
    )
    assert done.control_test.state == pb.CONTROL_TEST_STATE_COMPLETED
    assert not done.HasField("next_test")  # ad hoc: nothing scheduled


async def test_the_periodic_sweep_marks_overdue_tests(stack: Stack) -> None:
    await stack.start("directory")
    await stack.start("compliance", FRONTDESK_COMPLIANCE_SWEEP_INTERVAL="0.1")
    people = await workspace(stack)
    async with channel(stack.addresses["compliance"]) as ch:
        stub = compliance_pb2_grpc.ComplianceServiceStub(ch)
        system = people.system
        await stub.CreateControl(
            pb.CreateControlRequest(
                caller=system,
                title="Firewall rules",
                frequency=pb.CONTROL_FREQUENCY_AD_HOC,
                owner_id=await people.person(*PORTAL_TESTER),
            )
        )
        await stub.CreateControlTest(
            pb.CreateControlTestRequest(
                caller=system, control_id="CTL-1", due_date=today().isoformat()
            )
        )
        db = await stack.connect("compliance")
        await db.execute("update control_tests set due_date = $1", today() - timedelta(days=3))
        state = ""
        for _ in range(200):
            state = await db.fetchval("select state from control_tests")
            if state == "overdue":
                break
            await asyncio.sleep(0.05)
        assert state == "overdue"


async def test_sweep_schedules_the_test_of_a_period_that_started_exactly_once(env: Env) -> None:
    await _control(env, pb.CONTROL_FREQUENCY_WEEKLY)
    # The first test's week is over and it was never completed.
    monday = today() - timedelta(days=today().weekday())
    await env.db.execute(
        "update control_tests set period_start = $1, period_end = $2, due_date = $2",
        monday - timedelta(days=7),
        monday - timedelta(days=1),
    )
    results = await asyncio.gather(
        *[
            env.stub.SweepControlTests(pb.SweepControlTestsRequest(caller=env.system()))
            for _ in range(4)
        ]
    )
    assert sum(r.scheduled for r in results) == 1
    rows = await env.db.fetch("select seq, period_start, state from control_tests order by seq")
    assert [(r["period_start"], r["state"]) for r in rows] == [
        (monday - timedelta(days=7), "overdue"),
        (monday, "scheduled"),
    ]
    assert [r["seq"] for r in rows] == [1, 2]  # no number lost to the race


async def test_review_by_someone_other_than_the_tester(env: Env) -> None:
    await _control(env)
    manager_tester = common_pb2.Caller(
        workspace_id=env.ws, person_id=env.owner_id, permissions=(*PORTAL_TESTER, *MANAGER)
    )
    await env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=manager_tester, control_test_id="TST-1", result=pb.CONTROL_TEST_RESULT_PASS
        )
    )
    own = env.stub.ReviewControlTest(
        pb.ReviewControlTestRequest(
            caller=manager_tester, control_test_id="TST-1", decision=pb.REVIEW_DECISION_APPROVED
        )
    )
    assert await _code(own) == grpc.StatusCode.PERMISSION_DENIED
    not_done = env.stub.ReviewControlTest(
        pb.ReviewControlTestRequest(
            caller=env.manager, control_test_id="TST-2", decision=pb.REVIEW_DECISION_APPROVED
        )
    )
    assert await _code(not_done) == grpc.StatusCode.FAILED_PRECONDITION
    reviewed = await env.stub.ReviewControlTest(
        pb.ReviewControlTestRequest(
            caller=env.manager,
            control_test_id="TST-1",
            decision=pb.REVIEW_DECISION_REJECTED,
            notes="Evidence missing",
        )
    )
    assert reviewed.review == pb.REVIEW_DECISION_REJECTED
    assert reviewed.reviewer_id == env.manager.person_id
    assert reviewed.review_notes == "Evidence missing"
    twice = env.stub.ReviewControlTest(
        pb.ReviewControlTestRequest(
            caller=env.manager, control_test_id="TST-1", decision=pb.REVIEW_DECISION_APPROVED
        )
    )
    assert await _code(twice) == grpc.StatusCode.FAILED_PRECONDITION


async def test_issue_workflow_filters_comments_and_history(env: Env) -> None:
    assignee = await env.people.person(*PORTAL_TESTER)
    a = await env.stub.CreateIssue(
        pb.CreateIssueRequest(
            caller=env.manager,
            title="Unpatched VPN appliance",
            severity=pb.ISSUE_SEVERITY_CRITICAL,
            assignee_id=assignee,
            remediation_due_date=(today() - timedelta(days=2)).isoformat(),
        )
    )
    b = await env.stub.CreateIssue(
        pb.CreateIssueRequest(
            caller=env.manager, title="Stale vendor list", severity=pb.ISSUE_SEVERITY_LOW
        )
    )
    assert (a.number, b.number) == ("ISS-1", "ISS-2")
    assert a.overdue and not b.overdue
    assert a.reporter_id == env.manager.person_id

    async def numbers(**filters: object) -> list[str]:
        resp = await env.stub.ListIssues(pb.ListIssuesRequest(caller=env.manager, **filters))  # type: ignore[arg-type]
        return [i.number for i in resp.issues]

    assert await numbers() == ["ISS-2", "ISS-1"]
    assert await numbers(severities=[pb.ISSUE_SEVERITY_CRITICAL]) == ["ISS-1"]
    assert await numbers(assignee_id=assignee) == ["ISS-1"]
    assert await numbers(overdue=True) == ["ISS-1"]
    assert await numbers(overdue=False) == ["ISS-2"]

    # Workflow: legal moves, illegal ones are FAILED_PRECONDITION, Accepted needs a deadline.
    async def move(status: int, **kw: str) -> pb.Issue:
        return await env.stub.ChangeIssueStatus(
            pb.ChangeIssueStatusRequest(caller=env.manager, issue_id="ISS-1", status=status, **kw)
        )

    assert (await move(pb.ISSUE_STATUS_INVESTIGATING)).status == pb.ISSUE_STATUS_INVESTIGATING
    assert (
        await move(pb.ISSUE_STATUS_REMEDIATION, note="patch ordered")
    ).status == pb.ISSUE_STATUS_REMEDIATION
    assert await _code(move(pb.ISSUE_STATUS_OPEN)) == grpc.StatusCode.FAILED_PRECONDITION
    assert await _code(move(pb.ISSUE_STATUS_ACCEPTED)) == grpc.StatusCode.INVALID_ARGUMENT
    deadline = (today() + timedelta(days=90)).isoformat()
    accepted = await move(pb.ISSUE_STATUS_ACCEPTED, acceptance_deadline=deadline)
    assert accepted.acceptance_deadline == deadline and not accepted.overdue
    assert await numbers(statuses=[pb.ISSUE_STATUS_ACCEPTED]) == ["ISS-1"]
    closed = await move(pb.ISSUE_STATUS_CLOSED)
    assert closed.closed_at.seconds > 0
    assert await _code(move(pb.ISSUE_STATUS_OPEN)) == grpc.StatusCode.FAILED_PRECONDITION

    # The assignee comments on ISS-2 once it is theirs; a manager comments too.
    await env.stub.UpdateIssue(
        pb.UpdateIssueRequest(caller=env.manager, issue_id="ISS-2", assignee_id=assignee)
    )
    me = env.person(assignee, ("Issue:read",))
    await env.stub.AddIssueComment(
        pb.AddIssueCommentRequest(caller=me, issue_id="ISS-2", body="Vendor list refreshed.")
    )
    await env.stub.AddIssueComment(
        pb.AddIssueCommentRequest(caller=env.manager, issue_id="ISS-2", body="Thanks, verifying.")
    )
    detail = await env.stub.GetIssue(pb.GetIssueRequest(caller=me, issue_id="ISS-2"))
    assert [c.body for c in detail.comments] == ["Vendor list refreshed.", "Thanks, verifying."]
    assert detail.comments[0].author_id == assignee
    assert detail.issue.comment_count == 2
    assert [h.field for h in detail.history] == ["created", "assignee_id"]
    assert detail.history[1].new_value == assignee
    empty = env.stub.AddIssueComment(
        pb.AddIssueCommentRequest(caller=me, issue_id="ISS-2", body=" ")
    )
    assert await _code(empty) == grpc.StatusCode.INVALID_ARGUMENT
    # Closed issues take no comments; ISS-1 is closed.
    closed_comment = env.stub.AddIssueComment(
        pb.AddIssueCommentRequest(caller=env.manager, issue_id="ISS-1", body="late")
    )
    assert await _code(closed_comment) == grpc.StatusCode.FAILED_PRECONDITION
    # A portal user cannot manage issues.
    assert (
        await _code(
            env.stub.ChangeIssueStatus(
                pb.ChangeIssueStatusRequest(
                    caller=me, issue_id="ISS-2", status=pb.ISSUE_STATUS_RESOLVED
                )
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    history = await env.db.fetch(
        "select field, new_value, note from issue_history where note <> ''"
    )
    assert [(r["field"], r["new_value"], r["note"]) for r in history] == [
        ("status", "remediation", "patch ordered")
    ]


async def _collect(nats_url: str, ws: str, names: set[str]) -> list[events_pb2.Event]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"fd.compliance.{ws}.>", ordered_consumer=True)
        seen: list[events_pb2.Event] = []
        for _ in range(100):
            try:
                msg = await sub.next_msg(timeout=0.2)
            except nats.errors.TimeoutError:
                if names <= {m.compliance.WhichOneof("kind") for m in seen}:
                    break
                continue
            event = events_pb2.Event.FromString(msg.data)
            assert msg.subject == f"fd.compliance.{ws}.{event.compliance.WhichOneof('kind')}"
            seen.append(event)
        return seen
    finally:
        await nc.close()


async def test_events_reach_jetstream(env: Env, nats_url: str) -> None:
    await _control(env)
    tester = env.person(env.owner_id)
    await env.stub.CompleteControlTest(
        pb.CompleteControlTestRequest(
            caller=tester, control_test_id="TST-1", result=pb.CONTROL_TEST_RESULT_FAIL
        )
    )
    await env.stub.ChangeIssueStatus(
        pb.ChangeIssueStatusRequest(
            caller=env.manager, issue_id="ISS-1", status=pb.ISSUE_STATUS_INVESTIGATING
        )
    )
    await env.stub.AddIssueComment(
        pb.AddIssueCommentRequest(caller=tester, issue_id="ISS-1", body="Looking into it")
    )
    await env.db.execute(
        "update control_tests set due_date = $1 where seq = 2", today() - timedelta(days=1)
    )
    await env.stub.SweepControlTests(pb.SweepControlTestsRequest(caller=env.manager))
    wanted = {
        "control_test_scheduled",
        "control_test_assigned",
        "control_test_completed",
        "control_test_overdue",
        "issue_created",
        "issue_assigned",
        "issue_status_changed",
        "issue_commented",
    }
    seen = await _collect(nats_url, env.ws, wanted)
    by_kind: dict[str, list[events_pb2.Event]] = {}
    for event in seen:
        by_kind.setdefault(event.compliance.WhichOneof("kind"), []).append(event)
    assert wanted <= set(by_kind)
    completed = by_kind["control_test_completed"][0].compliance.control_test_completed
    assert completed.result == "fail" and completed.test.number == "TST-1"
    assert completed.tester_id == env.owner_id and completed.issue_id
    assert by_kind["control_test_completed"][0].actor_id == env.owner_id
    created = by_kind["issue_created"][0].compliance.issue_created
    assert created.from_failed_test and created.issue.title == "Control failure: Access review"
    changed = by_kind["issue_status_changed"][0].compliance.issue_status_changed
    assert (changed.from_status, changed.to_status) == ("open", "investigating")
    assert [
        e.compliance.control_test_overdue.test.number for e in by_kind["control_test_overdue"]
    ] == ["TST-2"]
    assert len({e.event_id for e in seen}) == len(seen)  # nothing published twice


async def test_owners_and_assignees_must_be_active_persons_of_the_workspace(
    env: Env, stack: Stack
) -> None:
    elsewhere = await workspace(stack)
    refused = {
        "another workspace's person": await elsewhere.person(*PORTAL_TESTER),
        "an unknown id": str(uuid.uuid4()),
        "an inactive person": await env.people.person(*PORTAL_TESTER, active=False),
    }
    control = await _control(env)
    issue = await env.stub.CreateIssue(
        pb.CreateIssueRequest(
            caller=env.manager, title="Unencrypted laptop", severity=pb.ISSUE_SEVERITY_HIGH
        )
    )

    async def refusal(call: object) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call  # type: ignore[misc]
        return info.value.code(), info.value.details() or ""

    for why, person in refused.items():
        m = env.manager
        calls = {
            "owner_id": [
                env.stub.CreateControl(
                    pb.CreateControlRequest(
                        caller=m,
                        title="Backups",
                        frequency=pb.CONTROL_FREQUENCY_AD_HOC,
                        owner_id=person,
                    )
                ),
                env.stub.UpdateControl(
                    pb.UpdateControlRequest(caller=m, control_id=control.id, owner_id=person)
                ),
            ],
            "assignee_id": [
                env.stub.CreateControlTest(
                    pb.CreateControlTestRequest(
                        caller=m,
                        control_id=control.id,
                        due_date=today().isoformat(),
                        assignee_id=person,
                    )
                ),
                env.stub.UpdateControlTest(
                    pb.UpdateControlTestRequest(
                        caller=m, control_test_id="TST-1", assignee_id=person
                    )
                ),
                env.stub.CreateIssue(
                    pb.CreateIssueRequest(
                        caller=m,
                        title="Weak passwords",
                        severity=pb.ISSUE_SEVERITY_LOW,
                        assignee_id=person,
                    )
                ),
                env.stub.UpdateIssue(
                    pb.UpdateIssueRequest(caller=m, issue_id=issue.id, assignee_id=person)
                ),
            ],
        }
        for field, pending in calls.items():
            for call in pending:
                assert await refusal(call) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{field}: no such active person in this workspace",
                ), why

    # Nothing was written by the refusals.
    assert await env.db.fetchval("select count(*) from controls") == 1
    assert await env.db.fetchval("select count(*) from control_tests") == 1
    assert await env.db.fetchval("select count(*) from issues") == 1
    row = await env.db.fetchrow("select assignee_id from control_tests")
    assert str(row["assignee_id"]) == env.owner_id

    # An active person of the workspace is accepted everywhere; one who leaves later keeps
    # what they own, and editing something else does not ask about them again.
    newcomer = await env.people.person(*PORTAL_TESTER)
    moved = await env.stub.UpdateControl(
        pb.UpdateControlRequest(caller=env.manager, control_id=control.id, owner_id=newcomer)
    )
    assert moved.owner_id == newcomer
    assigned = await env.stub.UpdateIssue(
        pb.UpdateIssueRequest(caller=env.manager, issue_id=issue.id, assignee_id=newcomer)
    )
    assert assigned.assignee_id == newcomer
    await env.people.deactivate(newcomer)
    kept = await env.stub.UpdateControl(
        pb.UpdateControlRequest(
            caller=env.manager, control_id=control.id, owner_id=newcomer, title="Backups v2"
        )
    )
    assert (kept.owner_id, kept.title) == (newcomer, "Backups v2")


async def _all_pages(fetch: object, page_size: int) -> tuple[list[str], int]:
    """Follow next_page_token from the first page to the last; (numbers in order, total)."""
    numbers: list[str] = []
    token, total = "", -1
    for _ in range(20):
        resp = await fetch(common_pb2.PageRequest(page_size=page_size, page_token=token))  # type: ignore[operator]
        items = list(
            getattr(resp, "controls", None) or getattr(resp, "control_tests", None) or resp.issues
        )
        numbers += [i.number for i in items]
        total, token = resp.total, resp.next_page_token
        if not token:
            return numbers, total
    raise AssertionError("paging did not end")


async def test_lists_page_by_keyset_and_refuse_foreign_tokens(env: Env) -> None:
    for n in range(5):
        await _control(env, pb.CONTROL_FREQUENCY_AD_HOC, f"Drill {n}")
    base = today() + timedelta(days=30)
    for days in (3, 1, 3, 2, 1):  # equal due dates: the number decides
        await env.stub.CreateControlTest(
            pb.CreateControlTestRequest(
                caller=env.manager, control_id="CTL-1", due_date=str(base + timedelta(days=days))
            )
        )
    for n in range(5):
        await env.stub.CreateIssue(
            pb.CreateIssueRequest(
                caller=env.manager, title=f"Finding {n}", severity=pb.ISSUE_SEVERITY_LOW
            )
        )
    m = env.manager
    listings = {
        "controls": lambda page: env.stub.ListControls(pb.ListControlsRequest(caller=m, page=page)),
        "tests": lambda page: env.stub.ListControlTests(
            pb.ListControlTestsRequest(caller=m, page=page)
        ),
        "issues": lambda page: env.stub.ListIssues(pb.ListIssuesRequest(caller=m, page=page)),
    }
    expected = {
        "controls": [f"CTL-{n}" for n in range(1, 6)],
        "tests": ["TST-2", "TST-5", "TST-4", "TST-1", "TST-3"],  # by due date, then number
        "issues": [f"ISS-{n}" for n in range(5, 0, -1)],  # newest first
    }
    for name, fetch in listings.items():
        assert await _all_pages(fetch, 50) == (expected[name], 5), name
        assert await _all_pages(fetch, 2) == (expected[name], 5), name
        assert await _all_pages(fetch, 5) == (expected[name], 5), name

    first_issues = await listings["issues"](common_pb2.PageRequest(page_size=2))
    for token in (first_issues.next_page_token, "5", "garbage!"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await listings["controls"](common_pb2.PageRequest(page_size=2, page_token=token))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (info.value.details() or "").startswith("page_token: ")
