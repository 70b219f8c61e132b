"""Connectors: fetch a source and parse its format into source records."""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import ParseResult
from connectors.feeds import parse_feed
from connectors.ical import parse_ical

PARSERS: dict[str, Callable[[bytes, str], ParseResult]] = {
    "ical": parse_ical,
    "rss": parse_feed,
    "atom": parse_feed,
}


def parser_for(fmt: str) -> Callable[[bytes, str], ParseResult]:
    """The parse function for a registry ``format``.

    Raises:
        KeyError: unknown format.
    """
    return PARSERS[fmt]
