"""Reminders of control tests due soon: the notifications service's job, fed by the compliance
events, tells the assignee once that a test is due within N days, never of a test due later,
and forgets a completed test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from frontdesk.v1 import compliance_pb2

from deploy.mailcatcher import MailCatcher
from tests.notifications_suite import eventually, start_suite
from tests.stack import Stack

C = compliance_pb2
MANAGER = ("Control:manage", "Issue:manage", "Issue:read")
TESTER = ("Control:read", "ControlTest:read", "ControlTest:update")


async def test_a_test_due_within_n_days_is_reminded_once_a_later_one_not(stack: Stack) -> None:
    suite = await start_suite(
        stack,
        MailCatcher(),
        FRONTDESK_NOTIFICATIONS_DUE_SOON_DAYS="3",
        FRONTDESK_NOTIFICATIONS_REMINDER_INTERVAL="0.3",
    )
    manager, _ = await suite.person(*MANAGER)
    tester, email = await suite.person(*TESTER)
    boss = suite.caller(manager, MANAGER)
    control = await suite.compliance.CreateControl(
        C.CreateControlRequest(
            caller=boss,
            title="Backup restore",
            frequency=C.CONTROL_FREQUENCY_AD_HOC,
            owner_id=manager,
        )
    )
    today = datetime.now(UTC).date()
    soon, later = [
        await suite.compliance.CreateControlTest(
            C.CreateControlTestRequest(
                caller=boss,
                control_id=control.id,
                due_date=(today + timedelta(days=days)).isoformat(),
                assignee_id=tester,
            )
        )
        for days in (2, 10)
    ]
    (reminder,) = await suite.catcher.wait_for(
        lambda m: email in m.recipients and "due in 2 days" in m.subject
    )
    assert soon.number in reminder.subject and "Backup restore" in reminder.subject
    assert f"/control-tests/{soon.id}" in reminder.part("plain")
    assert reminder.message["List-Unsubscribe"]  # the "control test assigned" preference
    await asyncio.sleep(1.5)  # five more rounds of the job: nothing twice, nothing for later
    due_mails = [m for m in suite.catcher.to(email) if " due " in m.subject]
    assert due_mails == [reminder]
    kinds = sorted(n.kind for n in (await suite.inbox(tester)).notifications)
    assert kinds == ["control_test_assigned", "control_test_assigned", "control_test_due_soon"]

    # a completed test leaves the read model
    await suite.compliance.CompleteControlTest(
        C.CompleteControlTestRequest(
            caller=suite.caller(tester, TESTER),
            control_test_id=later.id,
            result=C.CONTROL_TEST_RESULT_PASS,
            notes="Restored last night's backup.",
        )
    )
    db = await stack.connect("notifications")

    async def forgotten() -> bool:
        left = await db.fetch("select control_test_id from due_tests")
        return [str(r["control_test_id"]) for r in left] == [soon.id]

    await eventually(forgotten)
