"""Files in a real browser against a launched suite (with its embedded SeaweedFS): a portal
user attaches a screenshot to a new ticket (the file field, and a second image pasted into the
form), and an agent opens the ticket in the console, sees the thumbnails and downloads the
screenshot byte for byte."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import PASSWORD, Suite
from tests.e2e.test_browser import _page, _shot, _sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PASTE = """async (b64) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const file = new File([bytes], "image.png", {type: "image/png"});
    const data = new DataTransfer();
    data.items.add(file);
    const event = new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true});
    document.querySelector("#description").dispatchEvent(event);
}"""


async def test_a_screenshot_attached_to_a_new_ticket_is_opened_by_an_agent(
    suite: Suite, browser: Any, screenshots: Path
) -> None:
    await suite.ready()
    email = f"ann-{uuid.uuid4().hex[:6]}@acme.example"
    await suite.person(email, "Ann Portal", groups=("Portal Users",))
    page = await _page(browser)
    agent = await _page(browser)
    for p in (page, agent):  # the first pages of a cold suite on a busy 2-core machine
        p.set_default_navigation_timeout(30_000)
    try:
        await _sign_in(page, suite, email, PASSWORD, "/tickets/new")
        shot = await page.screenshot()  # a real screenshot (PNG) of the form itself
        title = f"Laptop screen flickers {uuid.uuid4().hex[:4]}"
        await page.get_by_label("Title").fill(title)
        await page.get_by_label("Description").fill("See the screenshot.")
        await page.locator("#impact").select_option("low")
        await page.locator("#urgency").select_option("medium")
        await page.locator("#files").set_input_files(
            files=[{"name": "screen.png", "mimeType": "image/png", "buffer": shot}]
        )
        # Pasting an image into the form adds it to the files (progressive enhancement).
        small = await page.locator("h1").screenshot()
        await page.evaluate(PASTE, base64.b64encode(small).decode())
        await expect(page.locator("[data-attach-list]")).to_contain_text("screen.png")
        await expect(page.locator("[data-attach-list]")).to_contain_text("screenshot-")
        await _shot(page, screenshots, "20-ticket-form-with-files")
        await page.get_by_role("button", name="Submit").click()
        await expect(page.get_by_role("status")).to_contain_text("was submitted")
        number = (await page.get_by_role("heading", level=1).inner_text()).split(" ")[0]
        files = page.locator("ul.files").first
        await expect(files).to_contain_text("screen.png")
        await expect(files).to_contain_text("PNG image")
        await _shot(page, screenshots, "21-ticket-with-files")

        await _sign_in(
            agent, suite, suite.admin_email, suite.admin_password, f"/management/tickets/{number}"
        )
        link = agent.get_by_role("link", name="screen.png", exact=True)
        await expect(link).to_be_visible()
        thumbs = agent.locator("ul.files img")
        await expect(thumbs).to_have_count(2)
        loaded = await thumbs.first.evaluate("img => img.complete && img.naturalWidth > 0")
        assert loaded
        await _shot(agent, screenshots, "22-agent-sees-the-files")
        async with agent.expect_download() as info:
            await link.click()
        download = await info.value
        assert download.suggested_filename == "screen.png"
        saved = await download.path()
        assert Path(saved).read_bytes() == shot
    finally:
        await page.context.close()
        await agent.context.close()
