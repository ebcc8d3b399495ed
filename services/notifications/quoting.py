"""The new text of a reply by e-mail: what the person wrote, without the quoted history.

A reply keeps what is above the first of: our "reply above this line" marker, an attribution
line ("On Mon, 7 Dec 2026 at 10:00, Desk <...> wrote:", also wrapped over two lines, as Gmail
does), Outlook's "-----Original Message-----" or its "From: ..." header block; lines starting
with ">" are dropped wherever they are; a signature after "-- " (RFC 3676) is cut. No I/O.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage

from services.notifications.compose import REPLY_ABOVE

_ATTRIBUTION = re.compile(
    r"^\s*(On|Am|Le|El|Op)\s.*(wrote|schrieb|a écrit|escribió|schreef)\s*:\s*$"
)
_WROTE_END = re.compile(r"(wrote|schrieb|a écrit|escribió|schreef)\s*:\s*$")
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht)\s*-{2,}\s*$", re.I)
_OUTLOOK_FROM = re.compile(r"^\s*\*?From:\*?\s.+")
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(Sent|Date|To|Subject):\*?\s")
_TAGS = re.compile(r"<[^>]+>")
_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/h\d)\s*/?>", re.I)
_HIDDEN = re.compile(r"<(style|script|head|blockquote)\b.*?</\1\s*>", re.I | re.S)


def text_of(message: EmailMessage) -> str:
    """The message's plain text (its text/plain part, else its HTML part as text)."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = str(part.get_content())
    if part.get_content_subtype() == "html":
        content = _BREAKS.sub("\n", _HIDDEN.sub("", content))
        content = html.unescape(_TAGS.sub("", content))
    return content.replace("\r\n", "\n").replace("\r", "\n")


def new_text(text: str) -> str:
    """What the person wrote above the quoted history, without quotes and signature."""
    lines = text.split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if REPLY_ABOVE in line or _ATTRIBUTION.match(line) or _ORIGINAL.match(line):
            break
        if line.rstrip(" ") == "--" or line == "-- ":
            break  # the signature separator ("-- ", trailing space often lost)
        if stripped.startswith(("On ", "Am ", "Le ")) and i + 1 < len(lines):
            if _WROTE_END.search(lines[i + 1]) and not lines[i + 1].lstrip().startswith(">"):
                break  # an attribution wrapped over two lines
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_NEXT.match(n) for n in lines[i + 1 : i + 4]):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join(kept)
