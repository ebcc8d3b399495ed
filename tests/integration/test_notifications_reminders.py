"""The notifications service's scheduled notices, fed by read models of the tickets and
compliance events: a control test due within N days is reminded once to its assignee (never one
due later; a completed test is forgotten), and the weekly digest lists what is open for each
person who asked for it, once a week."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from frontdesk.v1 import compliance_pb2, directory_pb2

from deploy.mailcatcher import MailCatcher
from tests.notifications_suite import AGENT, PORTAL, eventually, start_suite
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


async def test_the_weekly_digest_lists_what_is_open_for_those_who_asked_once(
    stack: Stack,
) -> None:
    suite = await start_suite(
        stack,
        MailCatcher(),
        FRONTDESK_NOTIFICATIONS_DIGEST_WEEKDAY=str(datetime.now(UTC).isoweekday()),
        FRONTDESK_NOTIFICATIONS_REMINDER_INTERVAL="0.3",
    )
    wants = directory_pb2.NotificationPreferences(ticket_updates=True, weekly_digest=True)
    reader, reader_email = await suite.person(*PORTAL)
    await suite.update_person(reader, notifications=wants, set_notifications=True)
    quiet, quiet_email = await suite.person(*PORTAL)  # the default: no digest
    agent, agent_email = await suite.person(*AGENT)
    await suite.update_person(agent, notifications=wants, set_notifications=True)
    ticket = await suite.ticket(reader, "Laptop battery swells")
    await suite.ticket(quiet, "Monitor flickers")
    manager, _ = await suite.person(*MANAGER)
    await suite.compliance.CreateIssue(
        C.CreateIssueRequest(
            caller=suite.caller(manager, MANAGER),
            title="Shared admin password",
            severity=C.ISSUE_SEVERITY_HIGH,
            assignee_id=agent,  # an agent without Issue:read sees it nowhere: not listed
        )
    )
    (digest,) = await suite.catcher.wait_for(
        lambda m: reader_email in m.recipients and "Your week" in m.subject
    )
    text = digest.part("plain")
    assert ticket.number in text and "Laptop battery swells" in text
    assert f"/tickets/{ticket.number}" in text
    assert digest.message["List-Unsubscribe"]  # the weekly digest preference
    await asyncio.sleep(1.5)  # five more rounds: one digest a week
    assert len([m for m in suite.catcher.to(reader_email) if "Your week" in m.subject]) == 1
    assert not [m for m in suite.catcher.to(quiet_email) if "Your week" in m.subject]
    # the agent's only open item is an issue they may not see: nothing to tell
    assert not [m for m in suite.catcher.to(agent_email) if "Your week" in m.subject]
