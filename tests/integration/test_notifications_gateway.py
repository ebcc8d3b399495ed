"""Notifications through the gateway: the portal list and its unread count in the navigation,
mark read, the one-click unsubscribe POST a mail provider sends (no cookies, no CSRF token),
and the delivery log administrators see per person."""

from __future__ import annotations

import aiohttp
from frontdesk.v1 import auth_pb2, common_pb2, directory_pb2

from deploy.mailcatcher import MailCatcher
from tests.gateway_client import GatewayClient
from tests.notifications_suite import AGENT, PORTAL, eventually, start_suite
from tests.stack import Stack

PASSWORD = "correct horse battery staple 7"


async def test_portal_list_unread_badge_mark_read_unsubscribe_and_delivery_log(
    stack: Stack,
) -> None:
    suite = await start_suite(stack, MailCatcher())
    base = await stack.start_gateway(FRONTDESK_NOTIFICATIONS_ADDR=stack.addresses["notifications"])
    ws = await suite.people.directory.GetWorkspace(directory_pb2.GetWorkspaceRequest(id=suite.ws))
    requester, email = await suite.person(*PORTAL)
    agent, _ = await suite.person(*AGENT)
    await suite.auth.SetPassword(
        auth_pb2.SetPasswordRequest(
            caller=common_pb2.Caller(workspace_id=suite.ws), person_id=requester, password=PASSWORD
        )
    )
    await suite.mails_to(email)  # the security mail of the password just set
    ticket = await suite.ticket(requester)
    await suite.comment(agent, AGENT, ticket.id, "We replaced the router.")
    mails = await suite.mails_to(email, 2)
    client = await GatewayClient.open(base, ws.slug)
    try:
        status, _ = await client.login(email, PASSWORD)
        assert status == 200
        status, listing = await client.get("/api/v1/notifications")
        assert status == 200 and listing["unread"] == 2
        kinds = {n["kind"] for n in listing["items"]}
        assert kinds == {"ticket_comment", "password_changed"}
        comment = next(n for n in listing["items"] if n["kind"] == "ticket_comment")
        assert comment["link"] == f"/tickets/{ticket.number}"
        assert "We replaced the router." in comment["body"]
        # the count in the portal navigation
        status, page = await client.get("/tickets")
        assert status == 200
        assert 'aria-label="2 unread"' in page
        status, page = await client.get("/notifications")
        assert status == 200 and "We replaced the router." in page
        status, marked = await client.post(
            "/api/v1/notifications/read", json={"ids": [comment["id"]]}
        )
        assert status == 200 and marked == {"marked": 1, "unread": 1}
        # the admin's view of the person's e-mails
        admin_perms = ("Person:manage", "Person:read")
        admin, admin_email = await suite.person(*admin_perms)
        await suite.auth.SetPassword(
            auth_pb2.SetPasswordRequest(
                caller=common_pb2.Caller(workspace_id=suite.ws), person_id=admin, password=PASSWORD
            )
        )
        admin_client = await GatewayClient.open(base, ws.slug)
        try:
            assert (await admin_client.login(admin_email, PASSWORD, "management"))[0] == 200
            status, log = await admin_client.get(
                f"/management/api/v1/persons/{requester}/deliveries"
            )
            assert status == 200
            assert sorted(d["kind"] for d in log["items"]) == ["password_changed", "ticket_comment"]
            assert {d["status"] for d in log["items"]} == {"sent"}
            status, _ = await client.get(f"/management/api/v1/persons/{agent}/deliveries")
            assert status in (401, 403)  # a portal user does not see anyone's log
        finally:
            await admin_client.close()
    finally:
        await client.close()
    # one-click unsubscribe, as a mail provider sends it: no cookies, no CSRF token
    mail = next(m for m in mails if m.message["List-Unsubscribe"])
    url = mail.message["List-Unsubscribe"].strip("<>")
    path = "/unsubscribe/" + url.rsplit("/unsubscribe/", 1)[1]
    async with aiohttp.ClientSession() as http:
        host = {"Host": client.host}
        async with http.get(base + path, headers=host) as resp:
            assert resp.status == 200 and "Unsubscribe" in await resp.text()
        async with http.post(
            base + path,
            data="List-Unsubscribe=One-Click",
            headers={**host, "Content-Type": "application/x-www-form-urlencoded"},
        ) as resp:
            assert resp.status == 200
            assert "no longer get e-mails about updates on your tickets" in await resp.text()
        async with http.post(base + path[:-4] + "AAAA", headers=host) as resp:
            assert resp.status == 404

    async def off() -> bool:
        p = await suite.people.directory.GetPerson(
            directory_pb2.GetPersonRequest(caller=suite.people.system, person_id=requester)
        )
        return not p.notifications.ticket_updates

    await eventually(off)
