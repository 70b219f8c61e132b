"""Connectors: fetch a source and parse its format into source records."""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import ParseResult
from connectors.datainclusion import parse_datainclusion
from connectors.feeds import parse_feed
from connectors.ical import parse_ical
from connectors.openagenda import parse_openagenda

PARSERS: dict[str, Callable[[bytes, str], ParseResult]] = {
    "ical": parse_ical,
    "rss": parse_feed,
    "atom": parse_feed,
    "openagenda": parse_openagenda,
    "datainclusion": parse_datainclusion,
}


def parser_for(fmt: str) -> Callable[[bytes, str], ParseResult]:
    """The parse function for a registry ``format``.

    Raises:
        KeyError: unknown format.
    """
    return PARSERS[fmt]
