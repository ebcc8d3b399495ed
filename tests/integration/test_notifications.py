"""The notifications service's rules against real services, NATS, PostgreSQL and a real SMTP
server (aiosmtpd): who is told what, with which text and headers, and who is never told."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from frontdesk.v1 import (
    auth_pb2,
    common_pb2,
    compliance_pb2,
    directory_pb2,
    notifications_pb2,
    tickets_pb2,
)

from deploy.mailcatcher import MailCatcher
from tests.notifications_suite import AGENT, PORTAL, Suite, eventually, start_suite
from tests.stack import Stack

T = tickets_pb2
C = compliance_pb2


@pytest.fixture
async def suite(stack: Stack) -> AsyncIterator[Suite]:
    yield await start_suite(stack, MailCatcher())


async def test_agent_comment_and_status_reach_the_requester_threaded_with_the_text(
    suite: Suite,
) -> None:
    requester, email = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    await suite.comment(agent, AGENT, ticket.id, "Internal: check the firewall", internal=True)
    await suite.comment(agent, AGENT, ticket.id, "Please reinstall the VPN client.")
    await suite.tickets.ChangeStatus(
        T.ChangeStatusRequest(
            caller=suite.caller(agent, AGENT),
            ticket_id=ticket.id,
            status=T.TICKET_STATUS_WAITING_FOR_REQUESTER,
        )
    )
    comment, status = await suite.mails_to(email, 2)
    assert ticket.number in comment.subject and "new comment" in comment.subject
    text, page = comment.part("plain"), comment.part("html")
    assert "Please reinstall the VPN client." in text
    assert "Please reinstall the VPN client." in page
    assert "{slug}" not in text
    assert f"/tickets/{ticket.number}" in text
    assert "firewall" not in text + page + status.part("plain")  # internal notes never leak
    assert "waiting for your answer" in status.subject
    assert "Please reinstall the VPN client." in status.part("plain")
    # threading: both mails name the ticket's thread root, each has its own Message-ID
    root = f"<ticket-{ticket.id}@acme.test>"
    for mail in (comment, status):
        assert mail.message["In-Reply-To"] == root
        assert root in mail.message["References"]
        assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail.message["List-Unsubscribe"].startswith("<http://")
        assert "/unsubscribe/" in mail.message["List-Unsubscribe"]
    assert comment.message["Message-ID"] != status.message["Message-ID"]
    assert comment.message.get_content_type() == "multipart/alternative"
    # in the app: two unread, then read
    inbox = await suite.inbox(requester)
    assert inbox.unread == 2
    assert {n.kind for n in inbox.notifications} == {"ticket_comment", "ticket_status"}
    marked = await suite.notifications.MarkRead(
        notifications_pb2.MarkReadRequest(caller=suite.caller(requester, ()), all=True)
    )
    assert (marked.marked, marked.unread) == (2, 0)
    assert (await suite.inbox(requester)).unread == 0
    # the delivery log says sent
    log = await suite.deliveries(requester)
    assert sorted(d.status for d in log) == ["sent", "sent"]


async def test_assignee_hears_of_the_assignment_and_of_the_requester_reply(suite: Suite) -> None:
    requester, _ = await suite.person(*PORTAL)
    lead, _ = await suite.person(*AGENT)
    agent, agent_email = await suite.person(*AGENT, portal_access=False)
    ticket = await suite.ticket(requester)
    await suite.tickets.UpdateTicket(
        T.UpdateTicketRequest(
            caller=suite.caller(lead, AGENT), ticket_id=ticket.id, assignee_id=agent
        )
    )
    (assigned,) = await suite.mails_to(agent_email)
    assert "assigned to you" in assigned.subject
    assert f"/management/tickets/{ticket.number}" in assigned.part("plain")
    await suite.comment(requester, PORTAL, ticket.id, "It still drops at 10:15.")
    _, reply = await suite.mails_to(agent_email, 2)
    assert "the requester replied" in reply.subject
    assert "It still drops at 10:15." in reply.part("plain")
    assert reply.message["References"] == f"<ticket-{ticket.id}@acme.test>"


async def test_issue_and_control_test_assignees_are_told(suite: Suite) -> None:
    manager, _ = await suite.person("Issue:manage", "Control:manage", "Issue:read")
    tester, email = await suite.person("Issue:read", "Control:read", "ControlTest:read")
    boss = suite.caller(manager, ("Issue:manage", "Control:manage", "Issue:read"))
    issue = await suite.compliance.CreateIssue(
        C.CreateIssueRequest(
            caller=boss,
            title="Stale admin accounts",
            severity=C.ISSUE_SEVERITY_HIGH,
            assignee_id=tester,
        )
    )
    control = await suite.compliance.CreateControl(
        C.CreateControlRequest(
            caller=boss,
            title="Access review",
            frequency=C.CONTROL_FREQUENCY_AD_HOC,
            owner_id=manager,
        )
    )
    await suite.compliance.CreateControlTest(
        C.CreateControlTestRequest(
            caller=boss, control_id=control.id, due_date="2031-01-31", assignee_id=tester
        )
    )
    mails = await suite.mails_to(email, 2)
    subjects = sorted(m.subject for m in mails)
    assert any("Stale admin accounts" in s and "assigned to you" in s for s in subjects)
    test_mail = next(m for m in mails if "Access review" in m.subject)
    assert "2031-01-31" in test_mail.part("plain")
    assert f"/issues/{issue.id}" in next(m for m in mails if m is not test_mail).part("plain")
    kinds = {n.kind for n in (await suite.inbox(tester)).notifications}
    assert kinds == {"issue_assigned", "control_test_assigned"}


async def test_a_preference_turned_off_means_no_mail_and_unsubscribe_turns_it_off(
    suite: Suite,
) -> None:
    requester, email = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    await suite.comment(agent, AGENT, ticket.id, "First answer")
    (first,) = await suite.mails_to(email)
    url = first.message["List-Unsubscribe"].strip("<>")
    token = url.rsplit("/unsubscribe/", 1)[1]
    # a forged token is refused, the real one turns ticket_updates off
    with pytest.raises(Exception) as forged:
        await suite.notifications.Unsubscribe(
            notifications_pb2.UnsubscribeRequest(token=token[:-3] + "AAA", workspace_id=suite.ws)
        )
    assert "INVALID_ARGUMENT" in str(forged.value)
    done = await suite.notifications.Unsubscribe(
        notifications_pb2.UnsubscribeRequest(token=token, workspace_id=suite.ws)
    )
    assert done.preference == "ticket_updates"
    person = await suite.people.directory.GetPerson(
        directory_pb2.GetPersonRequest(caller=suite.people.system, person_id=requester)
    )
    assert person.notifications.ticket_updates is False
    assert person.notifications.issue_assigned is True  # only that kind
    await suite.comment(agent, AGENT, ticket.id, "Second answer")
    # the event was handled (its in-app entry is there) and recorded no mail at all
    await eventually(lambda: _count(suite, requester, 2))
    assert len(await suite.deliveries(requester)) == 1
    assert len(suite.catcher.to(email)) == 1


async def _count(suite: Suite, person: str, n: int) -> bool:
    return len((await suite.inbox(person)).notifications) >= n


async def test_security_mails_are_always_sent_without_unsubscribe(suite: Suite) -> None:
    person, email = await suite.person(*PORTAL)
    await suite.update_person(
        person,
        notifications=directory_pb2.NotificationPreferences(),  # everything off
        set_notifications=True,
    )
    await suite.auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=suite.ws),
            person_id=person,
            password="a long and unusual passphrase 42",
        )
    )
    (mail,) = await suite.mails_to(email)
    assert "password was changed" in mail.subject
    assert mail.message["List-Unsubscribe"] is None
    assert "/profile" in mail.part("plain")


CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/{v}.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


async def test_a_sign_in_from_a_new_device_or_address_is_told_the_first_one_not(
    suite: Suite,
) -> None:
    person, email = await suite.person(*PORTAL)
    password = "a long and unusual passphrase 43"
    await suite.auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=suite.ws), person_id=person, password=password
        )
    )
    await suite.mails_to(email)  # the password's security mail

    async def sign_in(address: str, browser: str) -> None:
        resp = await suite.auth.Login(
            auth_pb2.LoginRequest(
                workspace_id=suite.ws,
                email=email,
                password=password,
                surface="portal",
                client_ip=address,
                user_agent=browser,
            )
        )
        assert resp.status == "ok"

    def told() -> list[str]:
        return [m.part("plain") for m in suite.catcher.to(email) if "new device" in m.subject]

    await sign_in("198.51.100.7", CHROME.format(v=120))  # the first sign-in: nothing to tell
    await sign_in("198.51.100.7", CHROME.format(v=121))  # the same browser, updated
    await sign_in("203.0.113.9", CHROME.format(v=121))  # a new address
    await suite.catcher.wait_for(lambda m: "new device" in m.subject and email in m.recipients)
    await sign_in("203.0.113.9", FIREFOX)  # a new browser
    await suite.catcher.wait_for(
        lambda m: "new device" in m.subject and email in m.recipients, count=2
    )
    first, second = told()
    assert "Address: 203.0.113.9" in first and "Chrome/121" in first
    assert "Firefox/133.0" in second
    mail = suite.catcher.to(email)[-1]
    assert mail.message["List-Unsubscribe"] is None  # security: always sent
    kinds = [n.kind for n in (await suite.inbox(person)).notifications]
    assert kinds.count("new_sign_in") == 2


async def test_nobody_hears_of_what_they_may_no_longer_see(suite: Suite) -> None:
    agent, _ = await suite.person(*AGENT)
    no_portal, no_portal_email = await suite.person(*PORTAL)
    gone, gone_email = await suite.person(*PORTAL)
    witness, witness_email = await suite.person(*PORTAL)
    t1 = await suite.ticket(no_portal)
    t2 = await suite.ticket(gone)
    await suite.update_person(no_portal, portal_access=False)
    await suite.update_person(gone, active=False)
    await suite.comment(agent, AGENT, t1.id, "Answer for someone without portal access")
    await suite.comment(agent, AGENT, t2.id, "Answer for someone deactivated")
    # the tickets section turned off: requesters are not told of portal tickets either
    t3 = await suite.ticket(witness)
    await suite.people.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=suite.people.system, tickets_enabled=False)
    )
    await suite.comment(agent, AGENT, t3.id, "Answer while the section is off")
    # a barrier: events of one stream are handled in order, so once an agent (who sees tickets
    # in the console, section or not) hears of a later assignment, the comments were decided
    other, other_email = await suite.person(*AGENT)
    await suite.tickets.UpdateTicket(
        T.UpdateTicketRequest(caller=suite.caller(agent, AGENT), ticket_id=t3.id, assignee_id=other)
    )
    await suite.mails_to(other_email)
    assert suite.catcher.to(witness_email) == []
    await suite.people.directory.UpdatePortalSettings(
        directory_pb2.UpdatePortalSettingsRequest(caller=suite.people.system, tickets_enabled=True)
    )
    await suite.comment(agent, AGENT, t3.id, "Answer once the section is back")
    (mail,) = await suite.mails_to(witness_email)
    assert "once the section is back" in mail.part("plain")
    assert suite.catcher.to(no_portal_email) == []
    assert suite.catcher.to(gone_email) == []
    for person in (no_portal, gone):
        assert (await suite.inbox(person)).notifications == []
        assert await suite.deliveries(person) == []
    assert len((await suite.inbox(witness)).notifications) == 1
