"""Accent- and case-insensitive text keys shared by themes, extraction, places and deduplication."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss",
                            "’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'",
                            "–": "-", "—": "-", "‑": "-", "\u00a0": " ", "\u202f": " "})
_SPACES = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=8192)
def _fold(text: str) -> str:
    text = text.translate(_LIGATURES)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _SPACES.sub(" ", text.lower()).strip()


def fold(text: str | None) -> str:
    """Lower-case ASCII text: accents removed, ligatures expanded, spaces collapsed.

    ``"Maison de Quartier des Quatre-Chemins — Œuvre"`` → ``"maison de quartier des
    quatre-chemins - oeuvre"``. Punctuation other than typographic quotes and dashes is kept.
    ``None`` gives ``""``.
    """
    if not text:
        return ""
    return _fold(str(text))


def words(text: str | None) -> str:
    """:func:`fold` then every run of non-alphanumerics becomes one space (for fuzzy keys)."""
    return _NON_WORD.sub(" ", fold(text)).strip()
