"""Clean text: HTML from sources becomes safe plain text (nh3 strips every tag)."""

from __future__ import annotations

import html
import re

import nh3

_BLOCK_RE = re.compile(r"<\s*(br|/p|/div|/li|/h[1-6]|/tr)\b[^>]*>", re.IGNORECASE)
_SPACES_RE = re.compile(r"[ \t\u00a0]+")
_NEWLINES_RE = re.compile(r"\n\s*\n\s*\n+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")


def html_to_text(value: str | None) -> str | None:
    """Turn HTML or plain text into plain text.

    Block-level ends (``<br>``, ``</p>`` …) become line breaks, every tag is removed by nh3,
    entities are decoded, control characters and U+2028/U+2029 become spaces, runs of spaces
    collapse. Returns None for empty input.
    """
    if value is None:
        return None
    text = str(value)
    if "<" in text and ">" in text:
        text = _BLOCK_RE.sub("\n", text)
        text = nh3.clean(text, tags=set(), clean_content_tags={"script", "style"})
    text = html.unescape(html.unescape(text)) if "&" in text else text
    text = _CONTROL_RE.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _SPACES_RE.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _NEWLINES_RE.sub("\n\n", text).strip()
    return text or None


def one_line(value: str | None) -> str | None:
    """Plain text on a single line (titles, locations)."""
    text = html_to_text(value)
    return " ".join(text.split()) if text else None


_EMAIL_IN_TEXT_RE = re.compile(r"(mailto:)?[\w.+-]+@[\w-]+(\.[\w-]+)*\.?", re.IGNORECASE)


def organizer_name(value: str | None) -> str | None:
    """A publishable organiser name: plain text on one line with every e-mail address removed.

    Organisers' addresses are personal data more often than not; the open data keeps names only
    (e.g. ``"loupiac@vins-loupiac.com|chateau@wanadoo."`` → None, ``"Asso X <a@b.fr>"`` → "Asso X").
    """
    text = one_line(value)
    if not text:
        return None
    text = _EMAIL_IN_TEXT_RE.sub(" ", text)
    text = re.sub(r"<\s*>|\(\s*\)|\[\s*\]", " ", text)  # brackets that held an address
    parts = [" ".join(p.split()).strip(" ,-:") for p in re.split(r"[|;]", text)]
    return " ; ".join(p for p in parts if p) or None
