"""What a file is, judged by its first bytes, and a clean name for it.

Neither the name a client sends nor its declared type is believed: the allow-list is checked on
the content (magic bytes), so a renamed executable is refused whatever it is called. Text is
accepted when its start decodes as UTF-8 without NUL or control bytes and is not a script
(`#!`) or markup a browser would run (HTML, SVG, XML).
"""

from __future__ import annotations

import re
import unicodedata

SNIFF_BYTES = 4096

# The raster images a browser may show inline (previews, thumbnails); everything else is only
# ever downloaded.
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),  # also docx, xlsx, pptx, odt
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "application/vnd.ms-office"),  # doc, xls, msg
    (b"\x1f\x8b", 0, "application/gzip"),
)

_MARKUP = re.compile(rb"^\s*(<\?xml|<!doctype|<html|<svg|<script|<head|<body|<iframe)", re.I)
_TEXT_CONTROLS = set(range(0, 32)) - {9, 10, 12, 13}

ALLOWED_DESCRIPTION = (
    "PNG, JPEG, GIF or WebP images, PDF, Office documents, ZIP or gzip archives, plain text"
)


def sniff(head: bytes) -> str | None:
    """The content type of a file starting with `head`, or None when it is not allowed."""
    if not head:
        return None
    for magic, offset, content_type in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "text/plain" if _is_plain_text(head) else None


def _is_plain_text(head: bytes) -> bool:
    if head.startswith(b"#!") or _MARKUP.match(head.removeprefix(b"\xef\xbb\xbf")):
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sniffed window is still text; any
        # other undecodable byte is not.
        if exc.reason != "unexpected end of data" or exc.end != len(head):
            return False
        text = head[: exc.start].decode("utf-8")
    return not any(ord(ch) in _TEXT_CONTROLS for ch in text)


_BIDI_AND_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RESERVED = re.compile(r'[<>:"/\\|?*]')  # characters Windows refuses in a name
MAX_NAME = 200


def clean_name(raw: str) -> str:
    """A file name safe to show and to put in Content-Disposition.

    Path components are dropped (`..\\..\\x.exe` -> `x.exe`), as are control and bidi-override
    characters (a "gpj.exe" disguised as "exe.jpg") and characters Windows refuses; leading dots
    go (no hidden files); at most 200 characters, keeping the extension. Empty -> "file".
    """
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = _BIDI_AND_INVISIBLE.sub("", name)
    name = _CONTROL.sub("", name)
    name = _RESERVED.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_NAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME]
    return name or "file"
