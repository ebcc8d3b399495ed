"""Replies by e-mail, with real aiosmtplib sending to the notifications service's real inbound
listener (aiosmtpd): a reply becomes its sender's comment, seen through the gateway; a second
delivery adds nothing; a forged address, another sender and a person who lost portal access are
refused with a 550 saying why."""

from __future__ import annotations

import copy

from frontdesk.v1 import auth_pb2, common_pb2, compliance_pb2, directory_pb2, tickets_pb2

from deploy.mailcatcher import MailCatcher, reply_to
from services.notifications.compose import REPLY_ABOVE
from tests.gateway_client import GatewayClient
from tests.notifications_suite import AGENT, PORTAL, Suite, start_suite
from tests.stack import Stack

T = tickets_pb2
PASSWORD = "correct horse battery staple 7"


async def _commented_ticket(suite: Suite) -> tuple[str, str, str, T.Ticket, object]:
    """A requester's ticket an agent commented on, and the mail that told the requester."""
    requester, email = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    await suite.comment(agent, AGENT, ticket.id, "Please restart the VPN client.")
    (mail,) = await suite.catcher.wait_for(
        lambda m: email in m.recipients and "new comment" in m.subject
    )
    return requester, email, agent, ticket, mail


async def _comments(suite: Suite, ticket: T.Ticket, agent: str) -> list[T.TicketComment]:
    detail = await suite.tickets.GetTicket(
        T.GetTicketRequest(caller=suite.caller(agent, AGENT), ticket_id=ticket.id)
    )
    return list(detail.comments)


async def test_a_reply_adds_one_comment_seen_in_the_portal_and_a_second_delivery_none(
    stack: Stack,
) -> None:
    suite = await start_suite(stack, MailCatcher())
    base = await stack.start_gateway(FRONTDESK_NOTIFICATIONS_ADDR=stack.addresses["notifications"])
    requester, email, agent, ticket, mail = await _commented_ticket(suite)
    reply_address = str(mail.message["Reply-To"])
    assert "reply+" in reply_address and reply_address.endswith("@acme.test>")
    assert mail.part("plain").startswith(REPLY_ABOVE)

    answer = reply_to(mail.message, "Restarted it, the VPN holds now.\n\n-- \nAnna, 3rd floor")
    code, text = await suite.send(answer)
    assert code == 250, text
    code, _ = await suite.send(copy.deepcopy(answer))  # the same mail delivered again
    assert code == 250

    comments = await _comments(suite, ticket, agent)
    mine = [c for c in comments if c.author_id == requester]
    assert [c.body for c in mine] == ["Restarted it, the VPN holds now."]
    # the requester sees the reply as their own comment in the portal
    ws = await suite.people.directory.GetWorkspace(directory_pb2.GetWorkspaceRequest(id=suite.ws))
    await suite.auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=suite.ws), person_id=requester, password=PASSWORD
        )
    )
    client = await GatewayClient.open(base, ws.slug)
    try:
        assert (await client.login(email, PASSWORD))[0] == 200
        status, body = await client.get(f"/api/v1/tickets/{ticket.number}")
        assert status == 200
        texts = [c["body"] for c in body["comments"]]
        assert texts == ["Please restart the VPN client.", "Restarted it, the VPN holds now."]
    finally:
        await client.close()


async def test_forged_address_and_another_sender_are_refused(stack: Stack) -> None:
    suite = await start_suite(stack, MailCatcher())
    _, _, agent, ticket, mail = await _commented_ticket(suite)
    address = str(mail.message["Reply-To"])
    local = address[address.index("reply+") : address.index("@")]
    flipped = local[:20] + ("a" if local[20] != "a" else "b") + local[21:]
    forged = reply_to(mail.message, "Close all my tickets")
    forged.replace_header("To", f"{flipped}@acme.test")
    code, text = await suite.send(forged)
    assert code == 550 and "not valid" in text

    # the real address, replayed from another person's mailbox
    _, other_email = await suite.person(*PORTAL)
    code, text = await suite.reply(mail, "I am not Anna", sender=other_email)
    assert code == 550 and "belongs to someone else" in text

    assert [c.author_id for c in await _comments(suite, ticket, agent)] == [agent]


async def test_a_person_who_lost_portal_access_is_refused(stack: Stack) -> None:
    suite = await start_suite(stack, MailCatcher())
    requester, _, agent, ticket, mail = await _commented_ticket(suite)
    await suite.update_person(requester, portal_access=False)
    code, text = await suite.reply(mail, "Still broken")
    assert code == 550 and "no longer comment on this ticket" in text
    assert [c.author_id for c in await _comments(suite, ticket, agent)] == [agent]


async def test_the_assignee_answers_the_requesters_reply_and_the_issue_assignee_replies(
    stack: Stack,
) -> None:
    suite = await start_suite(stack, MailCatcher())
    requester, email = await suite.person(*PORTAL)
    agent, agent_email = await suite.person(*AGENT)
    ticket = await suite.ticket(requester)
    await suite.tickets.UpdateTicket(
        T.UpdateTicketRequest(
            caller=suite.caller(agent, AGENT), ticket_id=ticket.id, assignee_id=agent
        )
    )
    await suite.comment(requester, PORTAL, ticket.id, "It dropped again at 10:00.")
    (told,) = await suite.catcher.wait_for(
        lambda m: agent_email in m.recipients and "requester replied" in m.subject
    )
    code, text = await suite.reply(told, "Replaced the router.")
    assert code == 250, text
    by_agent = [c.body for c in await _comments(suite, ticket, agent) if c.author_id == agent]
    assert by_agent == ["Replaced the router."]
    # the requester hears of the agent's reply by mail, like any public comment
    (heard,) = await suite.catcher.wait_for(
        lambda m: email in m.recipients and "new comment" in m.subject
    )
    assert "Replaced the router." in heard.part("plain")

    manager, _ = await suite.person("Issue:manage", "Issue:read")
    tester, tester_email = await suite.person("Issue:read")
    issue = await suite.compliance.CreateIssue(
        compliance_pb2.CreateIssueRequest(
            caller=suite.caller(manager, ("Issue:manage", "Issue:read")),
            title="Stale admin accounts",
            severity=compliance_pb2.ISSUE_SEVERITY_HIGH,
            assignee_id=tester,
        )
    )
    (assigned,) = await suite.mails_to(tester_email)
    code, text = await suite.reply(assigned, "Removed the three accounts.")
    assert code == 250, text
    got = await suite.compliance.GetIssue(
        compliance_pb2.GetIssueRequest(
            caller=suite.caller(manager, ("Issue:manage", "Issue:read")), issue_id=issue.id
        )
    )
    assert [(c.author_id, c.body) for c in got.comments] == [
        (tester, "Removed the three accounts.")
    ]
