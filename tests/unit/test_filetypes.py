"""What a file is by its first bytes, its cleaned name, and the download's disposition header."""

from __future__ import annotations

import pytest

from gateway.uploads import content_disposition, size_label
from services.chassis.filetypes import clean_name, sniff


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0..JFIF", "image/jpeg"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/vnd.ms-office"),
        (b"\x1f\x8b\x08", "application/gzip"),
        (b"2026-12-01 boot failed\r\n\tretry\n", "text/plain"),
        ("Grüße, 日本\n".encode(), "text/plain"),
        ("ab€".encode()[:-1], "text/plain"),  # a character cut at the end of the window
        (b"MZ\x90\x00\x03", None),  # Windows executable, whatever its name
        (b"\x7fELF\x02\x01", None),
        (b"\xcf\xfa\xed\xfe", None),  # Mach-O
        (b"#!/bin/sh\nrm -rf /", None),
        (b"<html><script>alert(1)</script>", None),
        (b"\xef\xbb\xbf  <svg onload=x>", None),
        (b"<?xml version='1.0'?>", None),
        (b"text\x00with nul", None),
        (b"\xff\xfe\x00\x00garbage", None),
        (b"", None),
    ],
)
def test_sniff_allows_only_known_types_by_content(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\Desktop\\shot.png", "shot.png"),
        ("inv\u202egpj.exe", "invgpj.exe"),  # a right-to-left override disguising the extension
        ("\x00evil\r\n.txt", "evil.txt"),
        ("...hidden", "hidden"),
        ('a<b>c:"d"|e?*.txt', "a_b_c__d__e__.txt"),
        ("   ", "file"),
        ("x" * 300 + ".docx", "x" * 195 + ".docx"),
    ],
)
def test_names_are_cleaned(raw: str, expected: str) -> None:
    assert clean_name(raw) == expected


def test_content_disposition_has_an_ascii_fallback_and_the_utf8_name() -> None:
    assert content_disposition("attachment", 'Résumé "final".pdf') == (
        "attachment; filename=\"R_sum_ _final_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"
    )


def test_size_labels() -> None:
    assert [size_label(n) for n in (12, 2048, 5 * 1024 * 1024 + 1)] == [
        "12 bytes",
        "2 KB",
        "5.0 MB",
    ]
