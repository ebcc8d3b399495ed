"""Replies by e-mail without I/O: the new text (quoted history, attributions and signatures
cut), the reply token, and the refusal of an address that is forged, expired or not ours."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from email.message import EmailMessage

import pytest

from services.notifications.compose import REPLY_ABOVE
from services.notifications.quoting import new_text, text_of
from services.notifications.replies import Refusal, Replies
from services.notifications.tokens import BadToken, Tokens


def test_gmail_reply_keeps_only_the_new_text() -> None:
    text = (
        "Thanks, it works again.\n\nAnna\n\n"
        "On Mon, 7 Dec 2026 at 10:00, Acme Desk <reply+abc@acme.test>\nwrote:\n\n"
        f"> {REPLY_ABOVE}\n> Hello Anna,\n"
    )
    assert new_text(text) == "Thanks, it works again.\n\nAnna"


def test_one_line_attribution_signature_and_interleaved_quotes() -> None:
    text = "> earlier\nYes, please.\n-- \nAnna Example\nIT, 3rd floor\n"
    assert new_text(text) == "Yes, please."
    text = "Restarted it.\n\nOn 07.12.2026 Acme Desk wrote:\n> Please restart\n"
    assert new_text(text) == "Restarted it."


def test_outlook_original_message_and_header_block() -> None:
    text = "Done.\n\n-----Original Message-----\nFrom: Desk\nSent: Monday\n"
    assert new_text(text) == "Done."
    text = "Done.\n\nFrom: Acme Desk <reply+x@acme.test>\nSent: Monday, 7 December\nTo: Anna\n"
    assert new_text(text) == "Done."
    # a "From:" line in the text itself is kept
    assert new_text("From: the basement it works\nthanks") == "From: the basement it works\nthanks"


def test_our_marker_ends_the_reply_and_html_only_mail_is_read() -> None:
    message = EmailMessage()
    message.set_content(
        f"<html><body><p>Works now &amp; thanks</p><div>{REPLY_ABOVE}</div>"
        "<blockquote>old text</blockquote></body></html>",
        subtype="html",
    )
    assert new_text(text_of(message)) == "Works now & thanks"


def test_reply_token_round_trip_case_insensitive_and_forgery() -> None:
    tokens = Tokens(b"k" * 32)
    ws, person, item = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = tokens.reply(ws, person, "ticket", item, date(2026, 12, 7))
    assert len(token) <= 100 and token == token.lower()
    read = tokens.read_reply(token.upper())
    assert (read.workspace_id, read.person_id, read.item_kind, read.item_id, read.issued) == (
        ws,
        person,
        "ticket",
        item,
        date(2026, 12, 7),
    )
    with pytest.raises(BadToken):
        Tokens(b"x" * 32).read_reply(token)
    for at in (10, 60, 99):
        flipped = token[:at] + ("a" if token[at] != "a" else "b") + token[at + 1 :]
        with pytest.raises(BadToken):
            tokens.read_reply(flipped)
    with pytest.raises(BadToken):
        tokens.read_reply("not-a-token")
    later = tokens.reply(ws, person, "issue", item, date(2026, 12, 7) + timedelta(days=1))
    assert later != token and tokens.read_reply(later).item_kind == "issue"


def test_reply_addresses_expire_and_only_ours_are_taken() -> None:
    tokens = Tokens(b"k" * 32)
    replies = Replies(tokens, None, None, None, "acme.test", reply_days=90)  # type: ignore[arg-type]
    ws, person, item = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    today = date.today()
    fresh = tokens.reply(ws, person, "issue", item, today - timedelta(days=89))
    assert replies.address(f"<reply+{fresh}@ACME.test>").item_id == item
    old = tokens.reply(ws, person, "issue", item, today - timedelta(days=91))
    with pytest.raises(Refusal) as expired:
        replies.address(f"reply+{old}@acme.test")
    assert expired.value.smtp.startswith("550 5.7.1") and "expired" in expired.value.smtp
    with pytest.raises(Refusal) as elsewhere:
        replies.address(f"reply+{fresh}@other.test")
    assert elsewhere.value.smtp.startswith("550 5.1.1")
