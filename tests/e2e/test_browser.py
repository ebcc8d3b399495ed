"""Frontdesk as a person uses it: a real headless Chromium against a launched suite.

Scenarios: a portal user signs in, submits a ticket, finds it in "My tickets" and comments on
it; an admin turns the Tickets section off and the portal user no longer sees it; a user
without ControlTest:update can read a control test but not complete it (and one with it can).
Screenshots of the main pages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from frontdesk.v1 import compliance_pb2, directory_pb2
from playwright.async_api import Page, expect

from tests.e2e.conftest import PASSWORD, Suite
from tests.signing import channel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


async def _page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Page:
    context = await browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    page: Page = await context.new_page()
    return page


async def _sign_in(page: Page, suite: Suite, email: str, password: str, path: str = "/") -> None:
    """Open `path` signed out: the gateway sends us to the sign-in page and back."""
    await page.goto(suite.url(path))
    await expect(page).to_have_url(suite.url("/login?next=" + quote(path, safe="/")))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Sign in")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(suite.url(path))


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')].filter(el => {
        if (el.tagName === "BUTTON") return !el.textContent.trim() && !el.getAttribute("aria-label");
        return el.labels.length === 0 && !el.getAttribute("aria-label")
            && !el.getAttribute("aria-labelledby");
    }).map(el => el.outerHTML.slice(0, 120))"""


async def _shot(page: Page, screenshots: Path, name: str) -> None:
    """Save a screenshot of a main page, and check it is usable with a keyboard and a screen
    reader: every field has a label, every button a name, the page a language and a title."""
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    assert await page.evaluate(UNLABELLED) == [], name
    assert await page.get_attribute("html", "lang") == "en"
    assert (await page.title()).strip(), name


async def submit_ticket(
    page: Page, title: str, description: str, impact: str = "medium", urgency: str = "high"
) -> str:
    """Fill and send the open "Submit a ticket" form; the new ticket's number."""
    await page.get_by_label("Title").fill(title)
    await page.get_by_label("Description").fill(description)
    await page.locator("#impact").select_option(impact)
    await page.locator("#urgency").select_option(urgency)
    await page.get_by_role("button", name="Submit").click()
    await expect(page.get_by_role("status")).to_contain_text("was submitted")
    heading = await page.get_by_role("heading", level=1).inner_text()
    number = heading.split(" ")[0]
    assert number.startswith("INC-"), heading
    return number


def _nav(page: Page) -> Any:
    return page.get_by_role("navigation", name="Main")


async def test_portal_user_signs_in_submits_a_ticket_finds_it_and_comments(
    suite: Suite, browser: Any, screenshots: Path
) -> None:
    await suite.ready()
    email = f"pat-{uuid.uuid4().hex[:6]}@acme.example"
    await suite.person(email, "Pat Portal", groups=("Portal Users",))
    page = await _page(browser)

    await page.goto(suite.url("/"))
    await expect(page.get_by_label("E-mail")).to_be_visible()
    await _shot(page, screenshots, "01-sign-in")
    # A wrong password is answered on the page, next to the form.
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("invalid e-mail or password")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(suite.url("/"))
    await expect(page.get_by_text("What do you need today?")).to_be_visible()
    await expect(_nav(page).get_by_role("link", name="Tickets")).to_be_visible()
    await _shot(page, screenshots, "02-portal-home")

    await page.get_by_role("link", name="Submit a ticket").first.click()
    await expect(page.get_by_role("heading", name="Submit a ticket")).to_be_visible()
    # An incident asks no change-request questions; choosing a change request shows them.
    await expect(page.locator("#reason")).to_be_hidden()
    await page.get_by_role("radio", name="Change request").check()
    await expect(page.locator("#reason")).to_be_visible()
    await page.get_by_role("radio", name="Incident").check()
    await expect(page.locator("#planned_start")).to_be_hidden()
    await expect(page.locator("#impact")).to_contain_text("Many people or the whole company")
    # Submitting an empty form shows the errors next to the fields.
    await page.get_by_role("button", name="Submit").click()
    await expect(page.locator("#title")).to_have_attribute("aria-invalid", "true")
    await _shot(page, screenshots, "03-ticket-form-errors")
    title = f"VPN drops every hour {uuid.uuid4().hex[:4]}"
    number = await submit_ticket(page, title, "Since Monday, on the office Wi-Fi.")
    await _shot(page, screenshots, "04-ticket-submitted")

    await _nav(page).get_by_role("link", name="Tickets").click()
    await expect(page.get_by_role("heading", name="My tickets")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=title)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(number)
    await _shot(page, screenshots, "05-my-tickets")

    await row.get_by_role("link", name=number).click()
    await expect(page).to_have_url(suite.url(f"/tickets/{number}"))
    await page.get_by_label("Add a comment").fill("It dropped again at 10:05.")
    await page.get_by_role("button", name="Comment").click()
    await expect(page.locator("#comments .comments")).to_contain_text("It dropped again at 10:05.")
    await expect(page.get_by_role("status")).to_contain_text("Your comment was added.")
    await _shot(page, screenshots, "06-ticket-with-comment")

    # The same pages read on a phone.
    phone = await _page(browser, PHONE)
    await phone.context.add_cookies(await page.context.cookies())
    await phone.goto(suite.url("/tickets"))
    await expect(phone.get_by_role("heading", name="My tickets")).to_be_visible()
    await _shot(phone, screenshots, "07-my-tickets-phone")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1  # no sideways scrolling of the page itself
    # Each ticket is a card: its status and priority are on screen, not cut off to the right.
    card = phone.get_by_role("row").filter(has_text=title)
    for label in ("Status", "Priority"):
        box = await card.locator(f'td[data-label="{label}"]').bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"], (label, box)

    await page.context.close()
    await phone.context.close()


async def test_admin_turns_tickets_off_and_the_portal_user_no_longer_sees_them(
    suite: Suite, browser: Any, screenshots: Path
) -> None:
    await suite.ready()
    email = f"sam-{uuid.uuid4().hex[:6]}@acme.example"
    await suite.person(email, "Sam Portal", groups=("Portal Users",))
    user = await _page(browser)
    await _sign_in(user, suite, email, PASSWORD, "/tickets")
    await expect(user.get_by_role("heading", name="My tickets")).to_be_visible()

    admin = await _page(browser)
    try:
        await _sign_in(admin, suite, suite.admin_email, suite.admin_password, "/management")
        await _shot(admin, screenshots, "10-management-home")
        await _nav(admin).get_by_role("link", name="Portal settings").click()
        await expect(admin.get_by_role("heading", name="Portal settings")).to_be_visible()
        tickets_box = admin.locator("#tickets_enabled")
        await expect(tickets_box).to_be_checked()
        await tickets_box.uncheck()
        await admin.get_by_role("button", name="Save settings").click()
        await expect(admin.get_by_role("status")).to_be_visible()
        await expect(admin.locator("#tickets_enabled")).not_to_be_checked()
        await _shot(admin, screenshots, "11-portal-settings-tickets-off")

        # Within a second the portal has no Tickets: not in the navigation, not on the home
        # page, and its pages answer 404.
        deadline = time.monotonic() + 1.0
        while True:
            await user.goto(suite.url("/"))
            links = await _nav(user).get_by_role("link", name="Tickets").count()
            if links == 0 or time.monotonic() > deadline:
                break
        assert links == 0
        await expect(user.get_by_role("link", name="Submit a ticket")).to_have_count(0)
        await _shot(user, screenshots, "12-portal-home-without-tickets")
        response = await user.goto(suite.url("/tickets"))
        assert response is not None and response.status == 404
        await expect(user.get_by_role("heading", name="Not found")).to_be_visible()

        # The management console still has the ticket queue.
        await _nav(admin).get_by_role("link", name="Tickets").click()
        await expect(admin).to_have_url(suite.url("/management/tickets"))
        await _shot(admin, screenshots, "13-management-ticket-queue")
    finally:
        async with channel(suite.addresses["directory"], suite.credentials) as ch:
            await suite.directory(ch).UpdatePortalSettings(
                directory_pb2.UpdatePortalSettingsRequest(caller=suite.system, tickets_enabled=True)
            )
        await user.context.close()
        await admin.context.close()


async def _control_test_for(suite: Suite, assignee_id: str, title: str) -> str:
    async with channel(suite.addresses["compliance"], suite.credentials) as ch:
        compliance = suite.compliance(ch)
        control = await compliance.CreateControl(
            compliance_pb2.CreateControlRequest(
                caller=suite.system,
                title=title,
                test_procedure="Restore last night's backup to the spare server.",
                frequency=compliance_pb2.CONTROL_FREQUENCY_AD_HOC,
                owner_id=assignee_id,
            )
        )
        due = (dt.date.today() + dt.timedelta(days=7)).isoformat()
        test = await compliance.CreateControlTest(
            compliance_pb2.CreateControlTestRequest(
                caller=suite.system, control_id=control.id, due_date=due, assignee_id=assignee_id
            )
        )
        return str(test.number)


async def test_a_user_without_control_test_update_cannot_complete_a_test(
    suite: Suite, browser: Any, screenshots: Path
) -> None:
    await suite.ready()
    tag = uuid.uuid4().hex[:6]
    await suite.role(f"Control reader {tag}", "Control:read", "ControlTest:read")
    reader_email = f"rob-{tag}@acme.example"
    reader = await suite.person(reader_email, "Rob Reader", roles=(f"Control reader {tag}",))
    doer_email = f"cara-{tag}@acme.example"
    doer = await suite.person(doer_email, "Cara Tester", groups=("Portal Users",))
    reader_test = await _control_test_for(suite, reader, f"Backups restorable {tag}")
    doer_test = await _control_test_for(suite, doer, f"Access reviewed {tag}")

    page = await _page(browser)
    await _sign_in(page, suite, reader_email, PASSWORD)
    await _nav(page).get_by_role("link", name="Control tests").click()
    await expect(page.get_by_role("heading", name="Control tests assigned to me")).to_be_visible()
    await page.get_by_role("link", name=reader_test, exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(reader_test)
    await expect(page.get_by_text("not complete it")).to_be_visible()
    await expect(page.get_by_role("button", name="Complete test")).to_have_count(0)
    await _shot(page, screenshots, "20-control-test-read-only")

    # Posting the form anyway (as a crafted page would, with a valid CSRF token) is refused
    # by the gateway before it reaches the compliance service.
    action = suite.url(f"/control-tests/{reader_test}/complete")
    async with page.expect_response(action) as answer:
        await page.evaluate(
            """([action, fields]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                const token = document.querySelector('input[name="csrf_token"]').value;
                for (const [name, value] of Object.entries({...fields, csrf_token: token})) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [action, {"result": "pass", "notes": "trust me"}],
        )
    response = await answer.value
    assert response.status == 403
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    await expect(page.get_by_text("ControlTest:update")).to_be_visible()
    await _shot(page, screenshots, "21-control-test-complete-refused")
    await page.goto(suite.url(f"/control-tests/{reader_test}"))
    await page.reload()
    await expect(page.get_by_text("not complete it")).to_be_visible()
    await page.context.close()

    # Someone holding ControlTest:update completes theirs.
    page = await _page(browser)
    await _sign_in(page, suite, doer_email, PASSWORD, f"/control-tests/{doer_test}")
    await page.get_by_label("Pass", exact=True).check()
    await page.get_by_label("Notes").fill("Restored in 12 minutes.")
    await page.get_by_label("Evidence").fill("Runbook RB-7, screenshot in the share.")
    await _shot(page, screenshots, "22-control-test-form")
    await page.get_by_role("button", name="Complete test").click()
    await expect(page.get_by_role("status")).to_contain_text("is completed")
    await _shot(page, screenshots, "23-control-test-completed")
    await page.context.close()
