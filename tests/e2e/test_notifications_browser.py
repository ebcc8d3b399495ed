"""Notifications as people meet them, in a real headless Chromium against a launched suite: an
agent comments on a ticket in the console, the requester sees the unread count in the portal's
navigation and the mail in the local catcher, answers by replying to the mail (`./dev mail
reply`, through the notifications service's inbound listener), and the agent sees the reply on
the ticket's page. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from deploy.mailcatcher import stored
from tests.e2e.conftest import PASSWORD, ROOT, Suite
from tests.e2e.test_browser import _nav, _page, _shot, _sign_in, submit_ticket

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def _mail_to(suite: Suite, email: str, subject: str) -> tuple[int, EmailMessage]:
    """The catcher's number (as `./dev mail` counts) and message of the mail to `email`."""
    deadline = time.monotonic() + 20
    while True:
        mails = stored(suite.mail_dir) if suite.mail_dir.exists() else []
        for number, (_, message) in enumerate(mails, 1):
            if email in str(message.get("To", "")) and subject in str(message.get("Subject", "")):
                return number, message
        assert time.monotonic() < deadline, f"no mail '{subject}' to {email} in the catcher"
        await asyncio.sleep(0.3)


def _log(suite: Suite, name: str) -> str:
    path = suite.mail_dir.parent / "logs" / f"{name}.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else f"(no {path})"


async def _until_badge(suite: Suite, page: Page, count: int) -> None:
    """Reload until the navigation shows `count` unread (the event travels in the meantime)."""
    badge = _nav(page).locator("[data-unread]")
    deadline = time.monotonic() + 20
    while await badge.count() == 0 or (await badge.inner_text()).strip() != str(count):
        assert time.monotonic() < deadline, (
            f"no unread count; mails: {sorted(p.name for p in suite.mail_dir.glob('*'))}\n"
            + _log(suite, "gateway")
            + _log(suite, "tickets")
        )
        await asyncio.sleep(0.3)
        await page.reload()
    await expect(badge).to_have_attribute("aria-label", f"{count} unread")


async def test_agent_comments_requester_is_told_and_replies_by_mail(
    suite: Suite, browser: Any, screenshots: Path
) -> None:
    await suite.ready()
    tag = uuid.uuid4().hex[:6]
    requester_email = f"rita-{tag}@acme.example"
    agent_email = f"alan-{tag}@acme.example"
    await suite.person(requester_email, "Rita Requester", groups=("Portal Users",))
    role = f"Agents {tag}"
    await suite.role(role, "Ticket:manage", "Ticket:read")
    await suite.person(agent_email, "Alan Agent", roles=(role,))

    requester = await _page(browser)
    await _sign_in(requester, suite, requester_email, PASSWORD, "/tickets/new")
    title = f"Printer on floor 3 jams {tag}"
    number = await submit_ticket(requester, title, "Every second page since this morning.", "low")

    agent = await _page(browser)
    try:
        await _sign_in(agent, suite, agent_email, PASSWORD, f"/management/tickets/{number}")
        await agent.get_by_label("Add a comment").fill("Please try the tray on the left.")
        await agent.get_by_role("button", name="Add", exact=True).click()
        await expect(agent.locator("#comments .comments")).to_contain_text("tray on the left")

        # The requester: the count in the navigation (the agent's comment, and the security
        # notice of the password the set-up gave them), the list, and the mail in the catcher.
        await requester.goto(suite.url("/tickets"))
        await _until_badge(suite, requester, 2)
        await _shot(requester, screenshots, "30-portal-unread-count")
        await _nav(requester).get_by_role("link", name="Notifications").click()
        await expect(requester.get_by_text("Please try the tray on the left.")).to_be_visible()
        await _shot(requester, screenshots, "31-portal-notifications")
        n, mail = await _mail_to(suite, requester_email, "new comment")
        assert "reply+" in str(mail["Reply-To"])
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None and "Please try the tray on the left." in body.get_content()

        # The requester answers the mail, as `./dev mail reply N "text"` does.
        answer = subprocess.run(
            [
                sys.executable,
                "-m",
                "deploy.mailcatcher",
                "reply",
                str(n),
                "The left tray works, thank you!",
                "--to",
                suite.inbound,
                "--dir",
                str(suite.mail_dir),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert answer.returncode == 0 and answer.stdout.startswith("250"), answer

        # The agent sees the reply on the ticket, as the requester's comment.
        await agent.reload()
        comments = agent.locator("#comments .comments")
        await expect(comments).to_contain_text("The left tray works, thank you!")
        await expect(comments.locator("li").last).to_contain_text("Rita Requester")
        await expect(comments).not_to_contain_text("wrote:")  # the quoted mail is cut
        await _shot(agent, screenshots, "32-console-ticket-with-mail-reply")
    finally:
        await agent.context.close()
        await requester.context.close()
